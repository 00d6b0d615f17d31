"""Tool registry, trajectory-recording executor, and capture of LangChain runs into Cases."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from relyscope.agents import AgentExecutor, CaseRecorder, ToolRegistry, case_from_messages
from relyscope.case import Case, Source
from relyscope.models import Variant

WEATHER = "minus 4 degrees Celsius and light snow"
POPULATION = "8,300 residents"
FINAL = f"In Brisk it is {WEATHER}."


def get_weather(city: str) -> str:
    """Current weather in a Velmora town.

    Args:
        city: the town's name
    """
    return WEATHER if city == "Brisk" else "unknown town"


def get_population(town: str, year: int = 2024) -> str:
    """Number of residents of a town.

    Args:
        town: the town's name
        year: census year
    """
    return POPULATION if town == "Mirel" else "no data"


def tide_table(port: str) -> str:
    """Tide times for a port."""
    raise ConnectionError(f"tide service for {port} is down")


class ToolCallingFake(GenericFakeChatModel):
    """LangChain's fake chat model, standing in for an API model that can call tools."""

    def bind_tools(self, tools, **kwargs):  # the script already says which tools it calls
        return self


def scripted(*messages: AIMessage) -> ToolCallingFake:
    return ToolCallingFake(messages=iter(messages))


def two_tool_script() -> list[AIMessage]:
    return [
        AIMessage("", tool_calls=[{"id": "call_pop", "name": "get_population",
                                   "args": {"town": "Mirel"}}]),
        AIMessage("", tool_calls=[{"id": "call_wx", "name": "get_weather",
                                   "args": {"city": "Brisk"}}]),
        AIMessage(FINAL),
    ]


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([get_weather, get_population, tide_table])


# -- registry -------------------------------------------------------------------------------


def test_registry_derives_json_schema_from_hints_and_docstring(registry):
    schema = registry["get_population"].parameters
    assert schema["required"] == ["town"]
    assert schema["properties"]["year"]["type"] == "integer"
    assert schema["properties"]["town"]["description"] == "the town's name"
    assert registry["get_weather"].description == "Current weather in a Velmora town."
    names = [s["function"]["name"] for s in registry.schemas()]
    assert names == ["get_weather", "get_population", "tide_table"]


def test_registry_given_schema_decorator_and_errors_as_results():
    reg = ToolRegistry()

    @reg.register(name="double", description="Twice n.",
                  parameters={"type": "object", "properties": {"n": {"type": "integer"}},
                              "required": ["n"]})
    def _double(n: int) -> int:
        return 2 * n

    assert reg.call("double", '{"n": 21}').output == "42"
    assert reg["double"].parameters["required"] == ["n"]
    assert reg.call("double", "{not json").status == "error"
    assert reg.call("double", "[1, 2]").status == "error"
    missing = reg.call("nope", "{}")
    assert missing.status == "error" and "unknown tool 'nope'" in missing.output
    with pytest.raises(ValueError, match="already registered"):
        reg.register(_double, name="double")


# -- executor ---------------------------------------------------------------------------------


def test_executor_records_trajectory_and_returns_an_auditable_case(registry):
    run = AgentExecutor(scripted(*two_tool_script()), registry, system="Be brief.").run(
        "What is the weather in Brisk?", case_id="wx")
    case = run.case
    assert run.stopped == "answer" and run.steps == 3
    assert [(c.id, c.name, c.status) for c in case.tool_calls] == [
        ("call_pop", "get_population", "ok"), ("call_wx", "get_weather", "ok")]
    assert json.loads(case.tool_calls[0].arguments) == {"town": "Mirel"}
    assert [c.output for c in case.tool_calls] == [POPULATION, WEATHER]
    assert case.answer == FINAL and case.system == "Be brief." and case.id == "wx"
    # the model saw the tool outputs as ToolMessages with the same ids
    seen = {m.tool_call_id: m.content for m in run.messages if isinstance(m, ToolMessage)}
    assert seen == {"call_pop": POPULATION, "call_wx": WEATHER}
    assert Case.from_dict(case.to_dict()) == case  # round-trips as a case file


def test_a_tool_that_raises_is_an_error_in_the_trajectory_not_a_crash(registry):
    script = [AIMessage("", tool_calls=[{"id": "call_tide", "name": "tide_table",
                                         "args": {"port": "Hask"}}]),
              AIMessage("The tide service is unavailable.")]
    run = AgentExecutor(scripted(*script), registry).run("When is high tide in Hask?")
    (call,) = run.case.tool_calls
    assert (call.id, call.status) == ("call_tide", "error")
    assert call.output == "ConnectionError: tide service for Hask is down"
    tool_message = next(m for m in run.messages if isinstance(m, ToolMessage))
    assert tool_message.status == "error"
    assert run.case.answer == "The tide service is unavailable."


def test_executor_with_the_simple_protocol_model_and_invalid_arguments(registry):
    class Scripted:
        def __init__(self):
            self.seen_tools: list[str] = []
            self.turn = 0

        def chat(self, messages, tools):
            self.seen_tools = [t["function"]["name"] for t in tools]
            self.turn += 1
            if self.turn == 1:
                return {"content": "", "tool_calls": [
                    {"id": "a", "name": "get_weather", "arguments": '{"city": "Brisk"}'},
                    {"id": "b", "name": "get_weather", "arguments": "{oops"}]}
            assert messages[-1]["role"] == "tool"
            return {"content": "Cold."}

    model = Scripted()
    run = AgentExecutor(model, registry, max_steps=4).run(
        "Weather?", sources=[Source(id="s1", text="Brisk is high up.")])
    assert model.seen_tools == ["get_weather", "get_population", "tide_table"]
    a, b = run.case.tool_calls
    assert (a.status, a.output) == ("ok", WEATHER)
    assert (b.status, b.arguments) == ("error", "{oops") and "not JSON" in b.output
    assert [s.id for s in run.case.sources] == ["s1"]
    assert "Brisk is high up." in run.messages[0].content


def test_executor_stops_at_max_steps_without_an_answer(registry):
    loop = [AIMessage("", tool_calls=[{"id": f"c{i}", "name": "get_weather",
                                       "args": {"city": "Brisk"}}]) for i in range(5)]
    run = AgentExecutor(scripted(*loop), registry, max_steps=2).run("Weather?")
    assert run.stopped == "max_steps" and run.case.answer is None
    assert [c.id for c in run.case.tool_calls] == ["c0", "c1"]


# -- LangChain message lists and callbacks --------------------------------------------------------


def test_case_from_langchain_messages():
    messages = [
        SystemMessage("Be brief."), HumanMessage("Weather in Brisk?"),
        AIMessage("", tool_calls=[{"id": "t1", "name": "get_weather", "args": {"city": "Brisk"}},
                                  {"id": "t2", "name": "get_weather", "args": {"city": "X"}}]),
        ToolMessage(WEATHER, tool_call_id="t1"),
        ToolMessage("boom", tool_call_id="t2", status="error"),
        AIMessage(FINAL),
    ]
    case = case_from_messages(messages, case_id="m1")
    assert (case.system, case.query, case.answer) == ("Be brief.", "Weather in Brisk?", FINAL)
    assert [(c.id, c.output, c.status) for c in case.tool_calls] == [
        ("t1", WEATHER, "ok"), ("t2", "boom", "error")]
    # OpenAI-format dicts work too
    openai = [{"role": "user", "content": "Q?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "x", "type": "function",
                   "function": {"name": "f", "arguments": '{"a": 1}'}}]},
              {"role": "tool", "tool_call_id": "x", "content": "one"},
              {"role": "assistant", "content": "One."}]
    case = case_from_messages(openai)
    assert case.tool_calls[0].arguments == '{"a": 1}' and case.answer == "One."


def test_recorder_fills_tool_calls_from_model_inputs_when_no_langchain_tool_ran(registry):
    """The executor runs tools itself (no tool callbacks): the recorder still gets them."""
    recorder = CaseRecorder()
    run = AgentExecutor(scripted(*two_tool_script()), registry).run(
        "What is the weather in Brisk?", config={"callbacks": [recorder]})
    captured = recorder.to_case(case_id=run.case.id)
    assert captured.tool_calls == run.case.tool_calls
    assert (captured.query, captured.answer) == (run.case.query, FINAL)


def run_langchain_agent(registry: ToolRegistry):
    agents = pytest.importorskip("langchain.agents", reason="needs the langchain package")
    agent = agents.create_agent(scripted(*two_tool_script()), tools=registry.langchain_tools(),
                                system_prompt="Answer from the tool results.")
    recorder = CaseRecorder()
    result = agent.invoke({"messages": [{"role": "user",
                                         "content": "What is the weather in Brisk?"}]},
                          config={"callbacks": [recorder]})
    return recorder.to_case(case_id="lc-agent"), result["messages"]


def test_langchain_agent_run_is_captured_with_matching_tool_calls(registry):
    case, messages = run_langchain_agent(registry)
    ran = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    assert [c.id for c in case.tool_calls] == ["call_pop", "call_wx"] == list(ran)
    for call in case.tool_calls:
        assert call.output == ran[call.id].content
        assert call.name == ran[call.id].name
    assert json.loads(case.tool_calls[1].arguments) == {"city": "Brisk"}
    assert case.query == "What is the weather in Brisk?"
    assert case.system == "Answer from the tool results."
    assert case.answer == FINAL == messages[-1].content
    assert case_from_messages(messages).tool_calls == case.tool_calls


def test_langchain_agent_with_a_raising_tool_records_the_error(registry):
    agents = pytest.importorskip("langchain.agents", reason="needs the langchain package")
    script = [AIMessage("", tool_calls=[{"id": "call_tide", "name": "tide_table",
                                         "args": {"port": "Hask"}}]),
              AIMessage("No tide data.")]
    agent = agents.create_agent(scripted(*script), tools=registry.langchain_tools())
    recorder = CaseRecorder()
    agent.invoke({"messages": [{"role": "user", "content": "Tide in Hask?"}]},
                 config={"callbacks": [recorder]})
    (call,) = recorder.to_case().tool_calls
    assert (call.id, call.status) == ("call_tide", "error")
    assert "tide service for Hask is down" in call.output


@pytest.mark.real_model
def test_captured_agent_case_audits_the_quoted_tool_output_first(registry, real_lm):
    """Leave-one-out on the real model: the tool output the answer quotes matters most."""
    case = AgentExecutor(scripted(*two_tool_script()), registry).run(
        "What is the weather in Brisk?").case
    renderer = real_lm.renderer(case)
    full, *without = real_lm.score(
        [renderer.render()] + [renderer.render(Variant.without([u.id])) for u in renderer.units])
    drops = {u.id: full.total - s.total for u, s in zip(renderer.units, without, strict=True)}
    assert max(drops, key=drops.get) == "call_wx"
    assert drops["call_wx"] > 2 * abs(drops["call_pop"])
