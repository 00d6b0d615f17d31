"""Retrieved context pasted into a prompt: the block, its passages, and the question.

Recognised shapes (others are left in the text untouched):

- tagged passages anywhere: ``<document id="d1" title="...">text</document>`` (also ``doc``,
  ``source``, ``passage``), optionally wrapped in ``<documents>`` / ``<context>``;
- a header line ``Context:`` (or ``Documents:``, ``Sources:``, ``Passages:``, ``Retrieved
  context:``) followed by ``[id] text`` lines, or by blank-line separated paragraphs;
- a ``Question:`` / ``Query:`` label: the query is the text after the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAGGED = re.compile(r"<(document|doc|source|passage)\b([^>]*)>(.*?)</\1\s*>", re.S | re.I)
_WRAPPER = re.compile(r"</?(documents|context|sources|passages)\s*>", re.I)
_TAG_ATTR = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_HEADER = re.compile(
    r"^[ \t]*(?:retrieved[ \t]+)?(?:context|documents|sources|passages)(?:[ \t]+information)?"
    r"[ \t]*:[ \t]*\n", re.I | re.M)
_BRACKETED = re.compile(r"^\s*\[([^\]\s]+)\]\s?(.*)$")
_QUESTION = re.compile(r"^[ \t]*(?:user[ \t]+)?(?:question|query)[ \t]*:[ \t]*", re.I | re.M)


@dataclass(frozen=True)
class InlinePassage:
    """A passage found in a prompt; `id` is None when the prompt gave none."""

    text: str
    id: str | None = None
    title: str | None = None


def split_context(text: str) -> tuple[list[InlinePassage], str]:
    """The passages of the context block(s) in `text`, and the text without them."""
    passages: list[InlinePassage] = []

    def take_tagged(match: re.Match[str]) -> str:
        attrs = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                 for m in _TAG_ATTR.finditer(match.group(2))}
        passages.append(InlinePassage(match.group(3).strip(), attrs.get("id"), attrs.get("title")))
        return ""

    rest = _TAGGED.sub(take_tagged, text)
    if passages:
        rest = _WRAPPER.sub("", rest)
    header = _HEADER.search(rest)
    if header:
        found, end = _block_after(rest, header.end())
        if found:
            passages.extend(found)
            rest = rest[:header.start()] + rest[end:]
    return passages, re.sub(r"\n[ \t]*(?:\n[ \t]*)+\n", "\n\n", rest).strip()


def question_of(text: str) -> str:
    """The text after the last ``Question:`` label, or the whole text (stripped)."""
    labels = list(_QUESTION.finditer(text))
    return text[labels[-1].end():].strip() if labels else text.strip()


def _block_after(text: str, start: int) -> tuple[list[InlinePassage], int]:
    """Passages from `start` until a question label or the end; returns them and where they end."""
    label = _QUESTION.search(text, start)
    end = label.start() if label else len(text)
    lines = text[start:end].split("\n")
    if any(_BRACKETED.match(line) for line in lines):
        return _bracketed(lines), end
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text[start:end]) if p.strip()]
    return [InlinePassage(p) for p in paragraphs], end


def _bracketed(lines: list[str]) -> list[InlinePassage]:
    passages: list[tuple[str, list[str]]] = []
    for line in lines:
        match = _BRACKETED.match(line)
        if match:
            passages.append((match.group(1), [match.group(2)]))
        elif passages and line.strip():
            passages[-1][1].append(line.strip())
    return [InlinePassage(" ".join(parts).strip(), pid) for pid, parts in passages]
