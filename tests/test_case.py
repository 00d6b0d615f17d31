import json

import pytest

from relyscope.case import Case, CaseError, iter_cases, load_case, split_sentences
from relyscope.cli.demo import example_case_path

ISSUE_SHAPE = {
    "id": "c1", "system": "Answer using the context.", "query": "Who founded the Zelk guild?",
    "sources": [{"id": "d0", "text": "...", "title": None, "retrieval_score": 0.81,
                 "metadata": {}}],
    "tool_calls": [{"id": "call_1", "name": "get_temperature", "arguments": "{\"city\": \"Orrin\"}",
                    "output": "18 degrees Celsius", "status": "ok"}],
    "answer": "optional: generated greedily when absent", "metadata": {},
}


def test_the_documented_shape_loads_and_round_trips():
    case = Case.from_dict({**ISSUE_SHAPE, "unknown_key": [1, 2]})
    assert case.sources[0].retrieval_score == 0.81
    assert case.tool_calls[0].parsed_arguments() == {"city": "Orrin"}
    again = Case.from_dict(case.to_dict())
    assert again == case
    assert "unknown_key" not in case.to_dict()


def test_bundled_example_is_valid():
    case = load_case(example_case_path())
    assert [u.kind for u in case.units()].count("source") == 5
    assert case.answer is None


@pytest.mark.parametrize(("mutate", "field", "words"), [
    (lambda d: d.update(query="  "), "query", "empty"),
    (lambda d: d["sources"].append({"id": "call_1", "text": "x"}), "tool_calls[0].id", "duplicate"),
    (lambda d: d["sources"].append({"id": "d0", "text": "x"}), "sources[1].id", "duplicate"),
    (lambda d: d["sources"][0].update(text=5), "sources[0].text", "string"),
    (lambda d: d["tool_calls"][0].update(status="maybe"), "tool_calls[0].status", "ok"),
    (lambda d: d.pop("query"), "query", "required"),
    (lambda d: d.update(answer=""), "answer", "empty"),
])
def test_invalid_cases_name_the_field(mutate, field, words):
    data = json.loads(json.dumps(ISSUE_SHAPE))
    mutate(data)
    with pytest.raises(CaseError) as info:
        Case.from_dict(data)
    assert info.value.field == field
    assert words in str(info.value)


def test_dict_arguments_become_json_text_and_bad_json_is_named():
    case = Case.from_dict({**ISSUE_SHAPE, "tool_calls": [
        {"id": "a", "name": "f", "arguments": {"x": 1}},
        {"id": "b", "name": "g", "arguments": "{not json"}]})
    assert case.tool_calls[0].arguments == '{"x": 1}'
    with pytest.raises(CaseError, match=r"tool_calls\[b\]\.arguments"):
        case.tool_calls[1].parsed_arguments()


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "cases.jsonl"
    good = json.dumps(ISSUE_SHAPE)
    path.write_text(good + "\n\n" + "{broken\n")
    cases = iter_cases(path)
    assert next(cases).id == "c1"
    with pytest.raises(CaseError, match=r"cases.jsonl:3"):
        next(cases)


def test_sentence_units_cover_the_source():
    text = "Hello there. The Zelk guild was founded by Anna Roth in 1802. It is old!"
    pieces = split_sentences(text)
    assert [p for p, _ in pieces] == ["Hello there.",
                                      "The Zelk guild was founded by Anna Roth in 1802.",
                                      "It is old!"]
    assert all(text[start:start + len(p)] == p for p, start in pieces)
    case = Case.from_dict({**ISSUE_SHAPE, "sources": [{"id": "d0", "text": text}]})
    assert [u.id for u in case.units("sentence")] == ["d0#0", "d0#1", "d0#2", "call_1"]
