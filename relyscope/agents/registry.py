"""Tools: Python callables with JSON-schema parameters, run so that failures are data.

Parameters come from the callable's type hints and Google-style docstring (LangChain's
``convert_to_openai_function`` does the derivation) or are given as a JSON schema. Running a
tool never raises: a tool that fails, an unknown tool name or arguments that are not a JSON
object give a `ToolResult` with status ``error`` and the message as output, which is what the
model saw and what an audit must be able to remove.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.tools import StructuredTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_function

Status = Literal["ok", "error"]


@dataclass(frozen=True)
class ToolResult:
    output: str
    status: Status = "ok"


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None,
                      parameters: dict[str, Any] | None = None) -> Tool:
        derived: dict[str, Any] = {}
        if parameters is None or description is None:
            derived = convert_to_openai_function(fn)
        return cls(name=name or fn.__name__,
                   description=description if description is not None
                   else derived.get("description", ""),
                   parameters=parameters if parameters is not None
                   else derived.get("parameters", {"type": "object", "properties": {}}),
                   fn=fn)

    def run(self, arguments: str | Mapping[str, Any]) -> ToolResult:
        """Call the tool with JSON-text or dict arguments; errors become an error result."""
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        except json.JSONDecodeError as err:
            return ToolResult(f"invalid arguments for {self.name}: not JSON ({err})", "error")
        if not isinstance(args, dict):
            return ToolResult(f"invalid arguments for {self.name}: expected a JSON object, "
                              f"got {type(args).__name__}", "error")
        try:
            return ToolResult(output_text(self.fn(**args)))
        except Exception as err:  # noqa: BLE001 - a failing tool is recorded, not raised
            return ToolResult(error_text(err), "error")

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style tool schema (``{"type": "function", "function": {...}}``)."""
        return {"type": "function", "function": {"name": self.name,
                                                 "description": self.description,
                                                 "parameters": self.parameters}}

    def as_langchain(self) -> StructuredTool:
        """A LangChain tool; a raising callable gives a ToolMessage with status "error"."""
        def call(**kwargs: Any) -> str:
            try:
                return output_text(self.fn(**kwargs))
            except Exception as err:  # noqa: BLE001
                raise ToolException(error_text(err)) from err

        return StructuredTool(name=self.name, description=self.description or self.name,
                              args_schema=self.parameters, func=call, handle_tool_error=True)


class ToolRegistry:
    """Tools by name. `register` works as a plain call or as a decorator."""

    def __init__(self, tools: Iterable[Callable[..., Any] | Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, fn: Callable[..., Any] | Tool | None = None, *, name: str | None = None,
                 description: str | None = None, parameters: dict[str, Any] | None = None
                 ) -> Any:
        if fn is None:
            def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
                self.register(f, name=name, description=description, parameters=parameters)
                return f
            return decorate
        tool = fn if isinstance(fn, Tool) else Tool.from_function(
            fn, name=name, description=description, parameters=parameters)
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def call(self, name: str, arguments: str | Mapping[str, Any]) -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult(f"unknown tool {name!r} (known: {', '.join(self._tools)})",
                              "error")
        return tool.run(arguments)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self]

    def langchain_tools(self) -> list[StructuredTool]:
        return [tool.as_langchain() for tool in self]


def output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
