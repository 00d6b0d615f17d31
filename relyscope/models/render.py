"""Render a case through the model's own chat template, keeping where every unit landed.

Each unit's text is wrapped in private-use marker characters before the template runs; the
markers are then stripped from the rendered string and their positions kept as char spans.
So whatever the template does around the content (roles, special tokens, whitespace), the
spans are exact. Char spans map to token spans through the tokenizer's offset mapping.

A variant of a case removes units (the text is re-rendered, so templates stay well formed)
or overrides their text (placeholders, error statuses, counterfactual tool outputs).

Tool modes:
- ``native``: assistant tool-call messages and ``tool`` messages, for templates that know them.
- ``inline``: tool results inlined in the user turn before the question, one line per call
  (``name(arguments) returned OUTPUT``). Default for templates without tool support: the
  packaged SmolLM2 ignores the question when results come as tool turns.
- ``tool_role``: the call as an assistant message, its output as a ``tool`` role message,
  for templates without native tool support (kept as an option).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from relyscope.case import Case, Granularity, split_sentences

ToolMode = Literal["native", "inline", "tool_role"]

_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(f"{_OPEN}(\\d+){_OPEN}|{_CLOSE}")
_CONTEXT_HEADER = "Context:"
_TOOLS_HEADER = "Tool results:"


@dataclass(frozen=True)
class Variant:
    """Which units are removed, and which have their text replaced, in one scoring variant."""

    removed: frozenset[str] = frozenset()
    overrides: tuple[tuple[str, str], ...] = ()
    status_overrides: tuple[tuple[str, str], ...] = ()

    @classmethod
    def without(cls, unit_ids: Sequence[str] | frozenset[str]) -> Variant:
        return cls(removed=frozenset(unit_ids))

    @classmethod
    def replacing(cls, texts: Mapping[str, str], statuses: Mapping[str, str] | None = None
                  ) -> Variant:
        return cls(overrides=tuple(sorted(texts.items())),
                   status_overrides=tuple(sorted((statuses or {}).items())))


FULL = Variant()


@dataclass(frozen=True)
class Rendered:
    """One rendered prompt + scoring target with char and token spans of each unit present."""

    prompt: str
    target: str
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    unit_char_spans: dict[str, tuple[int, int]]
    unit_token_spans: dict[str, tuple[int, int]]
    tool_mode: ToolMode
    variant: Variant = field(default=FULL)

    @property
    def input_ids(self) -> tuple[int, ...]:
        return self.prompt_ids + self.target_ids

    @property
    def target_token_span(self) -> tuple[int, int]:
        start = len(self.prompt_ids)
        return start, start + len(self.target_ids)

    @property
    def target_predicting_positions(self) -> range:
        """The positions whose next-token logits predict the target (one before each target
        token): the rows an attention pass keeps."""
        start, end = self.target_token_span
        return range(start - 1, end - 1)


def supports_native_tools(tokenizer: PreTrainedTokenizerBase) -> bool:
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = " ".join(template.values())
    return bool(template) and "tool_calls" in template


def default_tool_mode(tokenizer: PreTrainedTokenizerBase) -> ToolMode:
    return "native" if supports_native_tools(tokenizer) else "inline"


def placeholder_for(text: str) -> str:
    """A neutral stand-in of about the same length in words."""
    return " ".join(["..."] * max(1, len(text.split())))


class Renderer:
    """Renders variants of one case for one tokenizer; `granularity` picks the unit level."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, case: Case, *,
                 granularity: Granularity = "source", tool_mode: ToolMode | None = None) -> None:
        self.tokenizer = tokenizer
        self.case = case
        self.granularity = granularity
        self.tool_mode: ToolMode = tool_mode or default_tool_mode(tokenizer)
        self.units = case.units(granularity)
        self._marker_index = {unit.id: i for i, unit in enumerate(self.units)}

    # -- public -------------------------------------------------------------------------

    def render(self, variant: Variant = FULL, *, target: str | None = None,
               upto_tool: int | None = None) -> Rendered:
        """Render `variant`. The target is the case's answer unless given.

        With `upto_tool=k` the conversation stops before tool call k (for scoring the model's
        decision to make that call); the caller passes the call's text as `target`.
        """
        if target is None:
            if self.case.answer is None:
                raise ValueError("case has no answer: generate one first")
            target = self.case.answer
        marked = self._marked_prompt(variant, upto_tool)
        prompt, char_spans = _strip_markers(marked, [u.id for u in self.units])
        encoded = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        prompt_ids = tuple(encoded["input_ids"])
        token_spans = {uid: _char_to_token_span(encoded["offset_mapping"], span)
                       for uid, span in char_spans.items()}
        target_ids = tuple(self.tokenizer(target, add_special_tokens=False)["input_ids"])
        if not target_ids:
            raise ValueError("the target text is empty after tokenisation")
        return Rendered(prompt=prompt, target=target, prompt_ids=prompt_ids,
                        target_ids=target_ids, unit_char_spans=char_spans,
                        unit_token_spans=token_spans, tool_mode=self.tool_mode, variant=variant)

    def tool_call_text(self, index: int) -> str:
        """The text a model emits to make tool call `index`, in this renderer's tool mode."""
        call = self.case.tool_calls[index]
        return f"{call.name}({call.arguments})"

    # -- building the marked conversation ---------------------------------------------------

    def _mark(self, unit_id: str, text: str) -> str:
        return f"{_OPEN}{self._marker_index[unit_id]}{_OPEN}{text}{_CLOSE}"

    def _unit_text(self, unit_id: str, original: str, variant: Variant) -> str | None:
        if unit_id in variant.removed:
            return None
        return dict(variant.overrides).get(unit_id, original)

    def _source_block(self, source_index: int, variant: Variant) -> str | None:
        source = self.case.sources[source_index]
        if self.granularity == "source":
            text = self._unit_text(source.id, source.text, variant)
            body = None if text is None else self._mark(source.id, text)
        else:
            kept = []
            for i, (sentence, _start) in enumerate(split_sentences(source.text)):
                uid = f"{source.id}#{i}"
                text = self._unit_text(uid, sentence, variant)
                if text is not None:
                    kept.append(self._mark(uid, text))
            body = " ".join(kept) if kept else None
        if body is None:
            return None
        return f"[{source.title}] {body}" if source.title else body

    def _tool_output(self, index: int, variant: Variant) -> str | None:
        call = self.case.tool_calls[index]
        text = self._unit_text(call.id, call.output, variant)
        return None if text is None else self._mark(call.id, text)

    def _tool_status(self, index: int, variant: Variant) -> str:
        call = self.case.tool_calls[index]
        return dict(variant.status_overrides).get(call.id, call.status)

    def _marked_prompt(self, variant: Variant, upto_tool: int | None) -> str:
        n_tools = len(self.case.tool_calls) if upto_tool is None else upto_tool
        blocks = [b for i in range(len(self.case.sources))
                  if (b := self._source_block(i, variant)) is not None]
        sections = []
        if blocks:
            sections.append(_CONTEXT_HEADER + "\n" + "\n\n".join(blocks))
        tool_messages: list[dict[str, Any]] = []
        if self.tool_mode == "inline":
            lines = []
            for i in range(n_tools):
                output = self._tool_output(i, variant)
                if output is None:
                    continue
                call = self.case.tool_calls[i]
                verb = "failed with" if self._tool_status(i, variant) == "error" else "returned"
                lines.append(f"{call.name}({call.arguments}) {verb} {output}")
            if lines:
                sections.append(_TOOLS_HEADER + "\n" + "\n".join(lines))
        else:
            tool_messages = self._tool_turns(variant, n_tools)
        sections.append(f"Question: {self.case.query}")
        messages: list[dict[str, Any]] = []
        if self.case.system:
            messages.append({"role": "system", "content": self.case.system})
        messages.append({"role": "user", "content": "\n\n".join(sections)})
        messages.extend(tool_messages)
        return self._apply_template(messages)

    def _tool_turns(self, variant: Variant, n_tools: int) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = []
        for i in range(n_tools):
            call = self.case.tool_calls[i]
            output = self._tool_output(i, variant)
            if output is None:
                continue
            if self._tool_status(i, variant) == "error":
                output = f"Error: {output}"
            if self.tool_mode == "native":
                turns.append({"role": "assistant", "content": "", "tool_calls": [{
                    "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments}}]})
                turns.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                              "content": output})
            else:
                turns.append({"role": "assistant",
                              "content": f"Calling {call.name}({call.arguments})"})
                turns.append({"role": "tool", "content": output})
        return turns

    def _apply_template(self, messages: list[dict[str, Any]]) -> str:
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
        except TemplateError:
            if messages[0]["role"] != "system":
                raise
            # templates without a system role: fold the system text into the user turn
            merged = [{"role": "user",
                       "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
            return self.tokenizer.apply_chat_template(merged + messages[2:], tokenize=False,
                                                      add_generation_prompt=True)


def _strip_markers(marked: str, unit_ids: list[str]) -> tuple[str, dict[str, tuple[int, int]]]:
    out: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    length = 0
    open_stack: list[tuple[str, int]] = []
    cursor = 0
    for match in _MARKER.finditer(marked):
        piece = marked[cursor:match.start()]
        out.append(piece)
        length += len(piece)
        cursor = match.end()
        if match.group(1) is not None:
            open_stack.append((unit_ids[int(match.group(1))], length))
        else:
            unit_id, start = open_stack.pop()
            spans[unit_id] = (start, length)
    out.append(marked[cursor:])
    if open_stack:
        raise ValueError("chat template dropped a unit's closing marker")
    return "".join(out), spans


def _char_to_token_span(offsets: Sequence[tuple[int, int]], span: tuple[int, int]
                        ) -> tuple[int, int]:
    """Tokens whose chars overlap [start, end); an empty unit gets an empty span at its place."""
    start, end = span
    inside = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
    if inside:
        return inside[0], inside[-1] + 1
    after = next((i for i, (a, _b) in enumerate(offsets) if a >= start), len(offsets))
    return after, after
