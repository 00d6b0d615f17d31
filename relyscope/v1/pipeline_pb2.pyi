from relyscope.v1 import audit_pb2 as _audit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ToolRequest(_message.Message):
    __slots__ = ("name", "arguments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: str
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("id", "query", "top_k", "tools", "audit", "system", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _audit_pb2.Parameter
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_audit_pb2.Parameter, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    query: str
    top_k: int
    tools: _containers.RepeatedCompositeFieldContainer[ToolRequest]
    audit: _audit_pb2.AuditConfig
    system: str
    parameters: _containers.MessageMap[str, _audit_pb2.Parameter]
    def __init__(self, id: _Optional[str] = ..., query: _Optional[str] = ..., top_k: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[ToolRequest, _Mapping]]] = ..., audit: _Optional[_Union[_audit_pb2.AuditConfig, _Mapping]] = ..., system: _Optional[str] = ..., parameters: _Optional[_Mapping[str, _audit_pb2.Parameter]] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("id", "case", "report", "timings")
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CASE_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    case: _audit_pb2.Case
    report: _audit_pb2.Report
    timings: _containers.ScalarMap[str, float]
    def __init__(self, id: _Optional[str] = ..., case: _Optional[_Union[_audit_pb2.Case, _Mapping]] = ..., report: _Optional[_Union[_audit_pb2.Report, _Mapping]] = ..., timings: _Optional[_Mapping[str, float]] = ...) -> None: ...
