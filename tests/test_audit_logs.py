"""`audit-logs`: resumable batch audits of logged conversations.

The bulk, kill and worker tests run a tiny randomly initialised Llama (saved to a folder and
loaded by path, as a user's own model would be): what they check is the bookkeeping (every
record once, nothing torn, errors reported), not audit quality. One test on the real packaged
model checks that the planted source is the one found relied on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from relyscope.batch.audit_logs import audit_logs
from relyscope.batch.results import ResultsFile, read_results
from relyscope.cli import main
from relyscope.config import AuditConfig
from relyscope.report.summary import summarise

ROOT = Path(__file__).resolve().parents[1]
CONFIG = AuditConfig(methods=("attention", "loo"))
SYSTEM = "Answer the question in one sentence using the context."
FILLER = [
    "The Orrin river floods every spring.",
    "Copper prices rose sharply last year.",
    "Tidewater lighthouses guide ships at night.",
]


def conversation(i: int) -> dict[str, Any]:
    """A short logged RAG answer; every fourth one also calls a tool."""
    fact = f"Guild {i} was founded by Anna Roth."
    docs = [{"id": f"fact{i}", "text": fact}, {"id": f"filler{i % 3}", "text": FILLER[i % 3]}]
    context = "\n".join(f"[{d['id']}] {d['text']}" for d in docs)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Context:\n{context}\n\nQuestion: Who founded guild {i}?"}]
    if i % 4 == 0:
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": f"call{i}", "type": "function",
                "function": {"name": "lookup_founder", "arguments": json.dumps({"guild": i})}}]},
            {"role": "tool", "tool_call_id": f"call{i}", "content": "Anna Roth"}]
    messages.append({"role": "assistant", "content": fact})
    return {"id": f"rec{i:03d}", "model": "gpt-4o-mini", "documents": docs, "messages": messages}


def write_log(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


def result_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def assert_clean(path: Path, expected_ids: set[str]) -> list[dict[str, Any]]:
    """Every line complete JSON, one per expected record id, none twice."""
    lines = result_lines(path)
    assert all(line.endswith("\n") for line in lines)
    values = [json.loads(line) for line in lines]
    ids = [v["record_id"] for v in values]
    assert len(ids) == len(set(ids)), "duplicate result lines"
    assert set(ids) == expected_ids
    return values


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """One thread per audit: on a shared, busy machine it is several times faster than two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """A 2-layer random Llama with the packaged model's real tokenizer, saved as a folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir: Path) -> Any:
    from relyscope.models import CausalLM

    return CausalLM.load(str(tiny_model_dir))


def test_killed_run_restarts_to_exactly_200_results(tmp_path: Path, tiny_model_dir: Path,
                                                    tiny_lm: Any) -> None:
    log = write_log(tmp_path / "chat.jsonl", [conversation(i) for i in range(200)])
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relyscope", "audit-logs", str(log),
         "--out", str(out), "--model", str(tiny_model_dir), "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600  # a loaded shared machine: 86 lines in 120 s seen
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 100:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: " \
                                f"{proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
    lines = out.read_bytes().count(b"\n") if out.exists() else 0
    assert lines >= 100, f"only {lines} results after 600 s"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes().count(b"\n")
    assert 100 <= before < 200

    summary = audit_logs(log, out, config=CONFIG, lm=tiny_lm, progress=False)

    values = assert_clean(out, {f"rec{i:03d}" for i in range(200)})
    assert len(values) == 200 and all(v["status"] == "ok" for v in values)
    assert summary.skipped == before and summary.audited == 200 - before
    assert summary.records == summary.results == 200 and summary.errors == 0
    again = audit_logs(log, out, config=CONFIG, lm=tiny_lm, progress=False)
    assert (again.skipped, again.audited, again.errors) == (200, 0, 0)
    assert len(result_lines(out)) == 200


@pytest.mark.parametrize("tear", ["half a line", "no final newline"])
def test_torn_final_line_is_cut_away_and_its_record_redone(tmp_path: Path, tiny_lm: Any,
                                                           tear: str) -> None:
    log = write_log(tmp_path / "chat.jsonl", [conversation(i) for i in range(5)])
    out = tmp_path / "results.jsonl"
    audit_logs(log, out, config=CONFIG, lm=tiny_lm, progress=False)
    lines = result_lines(out)
    last = json.loads(lines[-1])
    torn = lines[-1][: len(lines[-1]) // 2] if tear == "half a line" else lines[-1][:-1]
    out.write_text("".join(lines[:-1]) + torn, encoding="utf-8")

    summary = audit_logs(log, out, config=CONFIG, lm=tiny_lm, progress=False)

    assert summary.repaired_tail and (summary.skipped, summary.audited) == (4, 1)
    values = assert_clean(out, {f"rec{i:03d}" for i in range(5)})
    assert values[-1]["record_id"] == last["record_id"]
    assert values[-1]["report"]["units"] == last["report"]["units"]


def test_a_corrupt_line_before_the_end_stops_the_run(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    out.write_text('{"record_id": "a", "status": "ok"}\nnot json\n{"record_id": "b"}\n')
    with pytest.raises(ValueError, match=r"results\.jsonl:2: not a result line"):
        ResultsFile.open(out)
    assert out.read_text().count("\n") == 3  # left as it was


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    with ResultsFile.open(tmp_path / "results.jsonl"), \
            pytest.raises(ValueError, match="another audit-logs run"):
        ResultsFile.open(tmp_path / "results.jsonl")


def test_malformed_records_are_reported_by_line_and_id_and_the_rest_audited(
        tmp_path: Path, tiny_lm: Any) -> None:
    no_text = conversation(2)
    del no_text["documents"][0]["text"]
    bad_args = conversation(4)
    bad_args["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"guild": 4'
    no_answer = conversation(5)
    no_answer["messages"] = no_answer["messages"][:-1]
    log = write_log(tmp_path / "chat.jsonl", [
        conversation(0), '{"id": "rec001", "messages": [', no_text, conversation(3), bad_args,
        no_answer, conversation(6)])
    out = tmp_path / "results.jsonl"

    summary = audit_logs(log, out, config=CONFIG, lm=tiny_lm, parse_arguments=True,
                         progress=False)

    values = {v["record_id"]: v for v in read_results(out)}
    assert (summary.audited, summary.errors) == (3, 4)
    assert {k for k, v in values.items() if v["status"] == "ok"} == {"rec000", "rec003",
                                                                    "rec006"}
    errors = {k: (v["location"], v["error"]["reason"])
              for k, v in values.items() if v["status"] == "error"}
    assert errors == {f"{log}:2": (f"{log}:2", "bad-json"),
                      "rec002": (f"{log}:3", "missing-content"),
                      "rec004": (f"{log}:5", "invalid-tool-arguments"),
                      "rec005": (f"{log}:6", "missing-content")}
    assert values["rec002"]["error"]["field"] == "documents[0].text"
    assert values["rec004"]["error"]["field"] == "tool_calls[call4].arguments"
    assert "answer" in values["rec005"]["error"]["message"]
    assert values["rec000"]["ingest"]["tools"] == {"call0": "lookup_founder"}
    rerun = audit_logs(log, out, config=CONFIG, lm=tiny_lm, parse_arguments=True,
                       progress=False)
    assert (rerun.skipped, rerun.audited, rerun.errors) == (7, 0, 0)  # errors are not retried


def test_a_repeated_record_id_is_audited_once(tmp_path: Path, tiny_lm: Any) -> None:
    log = write_log(tmp_path / "chat.jsonl", [conversation(0), conversation(1), conversation(0)])
    out = tmp_path / "results.jsonl"
    summary = audit_logs(log, out, config=CONFIG, lm=tiny_lm, progress=False)
    assert (summary.records, summary.audited, summary.duplicate_ids) == (2, 2, ["rec000"])
    assert_clean(out, {"rec000", "rec001"})


def test_cli_writes_results_summary_html_and_annotations(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from relyscope.batch.annotations import annotation_rows
    from relyscope.report_model import Report

    log = write_log(tmp_path / "chat.jsonl",
                    [conversation(0), conversation(1), '{"broken', conversation(4)])
    out, html, notes = tmp_path / "r.jsonl", tmp_path / "s.html", tmp_path / "a.jsonl"
    code = main(["audit-logs", str(log), "--out", str(out), "--html", str(html),
                 "--annotations", str(notes), "--model", str(tiny_model_dir)])
    assert code == 0
    err = capsys.readouterr().err
    # the bar counts the malformed record too: 4 of 4 done
    bar = err[err.index("4/4"):].split("]")[0]  # e.g. "4/4 [00:01<00:00,  2.51record/s"
    assert "<" in bar and ("record/s" in bar or "s/record" in bar)  # elapsed<ETA, rate
    assert "4 records: 3 audited, 1 errors, 0 already in" in err
    values = list(read_results(out))
    assert [v["status"] for v in values] == ["error", "ok", "ok", "ok"]
    assert values[1]["report"]["settings"]["config"]["methods"] == ["attention", "loo"]

    page = html.read_text()
    assert "<script" not in page and "://" not in page  # self-contained
    assert "lookup_founder" in page and "bad-json" in page and f"{log}:3" in page
    assert "4 records: 3 audited" in " ".join(page.split())

    rows = [json.loads(line) for line in notes.read_text().splitlines()]
    expected = sum(len(annotation_rows(Report.from_dict(v["report"]))) for v in values[1:])
    assert len(rows) == expected
    spans = {r["span_id"] for r in rows}
    assert spans == {"rec000", "rec001", "rec004"}  # OpenAI logs: the record is the span
    assert any(r.get("unit_id") == "call0" for r in rows)


def test_summary_counts_grounded_sources_tools_and_errors() -> None:
    def unit(uid: str, kind: str, verdict: str, loo: float, parent: str | None = None
             ) -> dict[str, Any]:
        return {"id": uid, "kind": kind, "parent": parent, "verdict": verdict,
                "reliance": {"loo": loo}}

    def ok(rid: str, verdicts: list[str], units: list[dict[str, Any]],
           tools: dict[str, str]) -> dict[str, Any]:
        return {"record_id": rid, "status": "ok", "ingest": {"tools": tools},
                "report": {"verdicts": verdicts, "units": units, "partial": False}}

    lines = [
        ok("a", ["grounded"], [unit("d1", "source", "relied", 6.0),
                               unit("d2", "source", "consulted-not-relied", 0.1),
                               unit("c1", "tool_output", "relied", 4.0)], {"c1": "weather"}),
        ok("b", ["grounded"], [unit("d1#0", "sentence", "unused", 0.5, "d1"),
                               unit("d1#1", "sentence", "relied", 3.0, "d1"),
                               unit("c9", "tool_output", "unused", 0.0)], {"c9": "weather"}),
        ok("c", ["parametric"], [unit("d2", "source", "consulted-not-relied", -0.2)], {}),
        {"record_id": "x.jsonl:4", "status": "error",
         "error": {"field": "", "message": "not valid JSON", "reason": "bad-json"}},
    ]
    s = summarise(lines)
    assert (s.records, s.audited, s.grounded, s.parametric) == (4, 3, 2, 1)
    assert s.share(s.grounded) == pytest.approx(2 / 3)
    d1 = s.most_relied()[0]
    assert (d1.name, d1.seen, d1.relied, d1.mean_reliance) == ("d1", 2, 2, 4.5)
    d2 = s.most_idle()[0]
    assert (d2.name, d2.consulted_not_relied) == ("d2", 2)
    assert d2.mean_reliance == pytest.approx(-0.05)
    weather = s.tools["weather"]
    assert (weather.seen, weather.relied, weather.mean_reliance) == (2, 1, 2.0)
    assert dict(s.errors) == {"bad-json": 1}
    assert s.error_examples[0]["location"] is None and s.error_examples[0]["record_id"] == \
        "x.jsonl:4"


def test_two_workers_give_the_same_results_as_one(tmp_path: Path, tiny_model_dir: Path) -> None:
    log = write_log(tmp_path / "chat.jsonl", [conversation(i) for i in range(8)])

    def scores(out: Path) -> dict[str, list[tuple[str, float, float]]]:
        return {v["record_id"]: [(u["id"], u["reliance"]["loo"],
                                  u["provenance"]["attention_share"])
                                 for u in v["report"]["units"]] for v in read_results(out)}

    one = audit_logs(log, tmp_path / "one.jsonl", config=CONFIG, model=str(tiny_model_dir),
                     progress=False)
    two = audit_logs(log, tmp_path / "two.jsonl", config=CONFIG, model=str(tiny_model_dir),
                     workers=2, progress=False)
    assert one.audited == two.audited == 8
    first, second = scores(tmp_path / "one.jsonl"), scores(tmp_path / "two.jsonl")
    assert sorted(first) == sorted(second) == [f"rec{i:03d}" for i in range(8)]
    for rid, units in first.items():
        assert [u[0] for u in units] == [u[0] for u in second[rid]]
        for (_, loo_a, att_a), (_, loo_b, att_b) in zip(units, second[rid], strict=True):
            assert loo_b == pytest.approx(loo_a, abs=1e-4)
            assert att_b == pytest.approx(att_a, abs=1e-5)


def test_loaded_model_with_several_workers_is_refused(tmp_path: Path, tiny_lm: Any) -> None:
    log = write_log(tmp_path / "chat.jsonl", [conversation(0)])
    with pytest.raises(ValueError, match="model's folder"):
        audit_logs(log, tmp_path / "r.jsonl", lm=tiny_lm, workers=2)


@pytest.mark.real_model
def test_real_model_finds_the_planted_source(tmp_path: Path, real_lm: Any) -> None:
    facts = [("Who founded the Zelk guild?", "The Zelk guild was founded by Anna Roth."),
             ("What is the capital of Quorvia?", "The capital of Quorvia is Tessaly.")]
    records = []
    for i, (query, fact) in enumerate(facts):
        docs = [{"id": f"filler{j}", "text": t} for j, t in enumerate(FILLER)]
        docs.insert(i + 1, {"id": "planted", "text": fact})
        records.append({"id": f"real{i}", "documents": docs, "messages": [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": query},
            {"role": "assistant", "content": fact}]})
    out = tmp_path / "results.jsonl"
    summary = audit_logs(write_log(tmp_path / "chat.jsonl", records), out, config=CONFIG,
                         lm=real_lm, progress=False)
    assert summary.audited == 2
    for value in read_results(out):
        units = {u["id"]: u for u in value["report"]["units"]}
        best = max(units, key=lambda uid: units[uid]["reliance"]["loo"])
        assert best == "planted", (value["record_id"], units)
        assert units["planted"]["verdict"] in {"relied", "relied-not-attended"}
        assert "grounded" in value["report"]["verdicts"]


def test_annotations_of_a_span_log_land_on_the_logged_spans(tmp_path: Path,
                                                            tiny_lm: Any) -> None:
    """Rebuilt from the results file, the rows equal those made from the ingested Case."""
    import ingest_logs as logs

    from relyscope.batch.annotations import annotation_rows
    from relyscope.ingest import read_logs
    from relyscope.report_model import Report

    log = logs.write_openinference(tmp_path / "spans.json", runs=2)
    out, notes = tmp_path / "r.jsonl", tmp_path / "a.jsonl"
    summary = audit_logs(log, out, config=CONFIG, lm=tiny_lm, annotations=notes,
                         progress=False)
    assert summary.audited == 2
    cases = {r.record_id: r.case for r in read_logs(log)}
    expected = [row for line in read_results(out) for row in annotation_rows(
        Report.from_dict(line["report"]), cases[line["record_id"]])]
    rows = [json.loads(line) for line in notes.read_text().splitlines()]
    assert rows == expected
    spans = {row["span_id"] for row in rows}
    for case in cases.values():
        assert case is not None
        unit_spans = case.metadata["ingest"]["unit_spans"]
        assert unit_spans and set(unit_spans.values()) <= spans
