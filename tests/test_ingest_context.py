"""Context blocks pasted into prompts, and OpenAI records that carry their context that way."""

from __future__ import annotations

from pathlib import Path

import ingest_logs as logs

from relyscope.ingest import read_logs
from relyscope.ingest.context import InlinePassage, question_of, split_context


def test_bracketed_block_gives_ids_and_leaves_the_question() -> None:
    passages, rest = split_context(logs.user_prompt())
    assert passages == [InlinePassage(text, doc_id) for doc_id, text, _ in logs.SOURCES]
    assert question_of(rest) == logs.QUERY


def test_bracketed_passages_may_span_lines() -> None:
    passages, rest = split_context("Sources:\n[a] first line\n  goes on\n[b] second\n\nQuery: q?")
    assert passages == [InlinePassage("first line goes on", "a"), InlinePassage("second", "b")]
    assert question_of(rest) == "q?"


def test_tagged_documents_anywhere() -> None:
    text = ('Use these.\n<documents><document id="x1" title="T">Alpha.</document>\n'
            "<doc id='x2'>Beta.</doc></documents>\nWhat is alpha?")
    passages, rest = split_context(text)
    assert passages == [InlinePassage("Alpha.", "x1", "T"), InlinePassage("Beta.", "x2")]
    assert rest == "Use these.\n\nWhat is alpha?"


def test_paragraph_block_without_ids() -> None:
    passages, rest = split_context("Context:\nOne.\n\nTwo.\n\nQuestion: Why?")
    assert [p.text for p in passages] == ["One.", "Two."]
    assert all(p.id is None for p in passages)
    assert question_of(rest) == "Why?"


def test_text_without_a_block_is_untouched() -> None:
    text = "Tell me about the context: it matters."
    assert split_context(text) == ([], text)
    assert question_of(text) == text


def test_openai_record_with_inline_context(tmp_path: Path) -> None:
    record = logs.openai_record("inline")
    del record["documents"]
    (read,) = read_logs(logs.write_jsonl(tmp_path / "chat.jsonl", [record]))
    assert read.case.query == logs.QUERY
    assert [(s.id, s.text) for s in read.case.sources] == [(i, t) for i, t, _ in logs.SOURCES]


def test_context_in_the_system_message(tmp_path: Path) -> None:
    record = logs.openai_record("sys")
    del record["documents"]
    record["messages"][0]["content"] = (
        logs.SYSTEM + '\n<document id="d9">Mirel lies on the coast.</document>')
    record["messages"][1]["content"] = logs.QUERY
    (read,) = read_logs(logs.write_jsonl(tmp_path / "chat.jsonl", [record]))
    assert read.case.system == logs.SYSTEM
    assert [(s.id, s.text) for s in read.case.sources] == [("d9", "Mirel lies on the coast.")]
    assert read.case.query == logs.QUERY


def test_plain_string_documents_and_content_parts(tmp_path: Path) -> None:
    record = logs.openai_record("parts", documents=["Alpha.", "Beta."])
    record["messages"][1]["content"] = [{"type": "text", "text": "What is "},
                                        {"type": "text", "text": "alpha?"}]
    (read,) = read_logs(logs.write_jsonl(tmp_path / "chat.jsonl", [record]))
    assert read.case.query == "What is alpha?"
    assert [(s.id, s.text) for s in read.case.sources] == [("doc-0", "Alpha."), ("doc-1", "Beta.")]
