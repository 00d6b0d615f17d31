"""Finding the string field that holds invalid UTF-8 in a serialized protobuf message.

The protobuf runtime refuses such a message as a whole ("Error parsing message"); this walks
the wire format against the message's descriptor to name the field (``case.sources[1].text``)
so the caller learns what to fix. Struct and Value wrappers are named like JSON paths
(``case.metadata[origin]``).
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_WRAPPERS = {"google.protobuf.Struct": ("fields",),
             "google.protobuf.Value": ("string_value", "struct_value", "list_value"),
             "google.protobuf.ListValue": ("values",)}


class _Truncated(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Truncated
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, bytes | None]]:
    """(field number, bytes of a length-delimited value or None) for every field."""
    found: list[tuple[int, bytes | None]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            found.append((key >> 3, None))
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            found.append((key >> 3, None))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Truncated
            found.append((key >> 3, data[pos:pos + length]))
            pos += length
        else:  # groups (3, 4) and invalid wire types
            raise _Truncated
    if pos > len(data):
        raise _Truncated
    return found


def _join(prefix: str, name: str, descriptor: Descriptor) -> str:
    if name in _WRAPPERS.get(descriptor.full_name, ()):
        return prefix
    return f"{prefix}.{name}" if prefix else name


def invalid_utf8_field(data: bytes, descriptor: Descriptor, prefix: str = "") -> str | None:
    """The path of the first string field whose bytes are not UTF-8; None when there is none
    (or when `data` is not a well-formed message at all)."""
    try:
        return _walk(data, descriptor, prefix)
    except _Truncated:
        return None


def _walk(data: bytes, descriptor: Descriptor, prefix: str) -> str | None:
    counts: dict[int, int] = {}
    for number, chunk in _fields(data):
        field = descriptor.fields_by_number.get(number)
        if field is None or chunk is None:
            continue
        path = _join(prefix, field.name, descriptor)
        if field.is_repeated and not _is_map(field):
            path += f"[{counts.get(number, 0)}]"
            counts[number] = counts.get(number, 0) + 1
        if field.type == FieldDescriptor.TYPE_STRING:
            if not _is_utf8(chunk):
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            found = (_map_entry(chunk, field, path) if _is_map(field)
                     else _walk(chunk, field.message_type, path))
            if found is not None:
                return found
    return None


def _map_entry(data: bytes, field: FieldDescriptor, path: str) -> str | None:
    entry = field.message_type
    parts = dict(_fields(data))
    key = parts.get(1) or b""
    if not _is_utf8(key):
        return f"{path} (a key)"
    where = f"{path}[{key.decode()}]"
    value, value_field = parts.get(2), entry.fields_by_number[2]
    if value is None:
        return None
    if value_field.type == FieldDescriptor.TYPE_STRING:
        return None if _is_utf8(value) else where
    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
        return _walk(value, value_field.message_type, where)
    return None


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
