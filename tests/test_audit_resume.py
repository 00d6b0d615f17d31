"""`relyscope audit CASES.jsonl --out reports.jsonl`: one durable line per finished case, and a
re-run after a kill audits only the cases that are missing (a tiny random model keeps it fast)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_audit_logs import tiny_model_dir

from relyscope.cli import main

__all__ = ["tiny_model_dir"]

ROOT = Path(__file__).resolve().parents[1]
CASES = 120


def case_line(i: int) -> dict[str, Any]:
    return {"id": f"case{i:03d}", "system": "Answer from the context.",
            "query": f"Who founded guild {i}?",
            "sources": [{"id": "d0", "text": f"Guild {i} was founded by Anna Roth."},
                        {"id": "d1", "text": "Copper prices rose last year."}],
            "answer": "Anna Roth."}


def write_cases(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps(case_line(i)) + "\n" for i in range(count)),
                    encoding="utf-8")
    return path


def run_cli(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-m", "relyscope", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "a torn final line"
    return data.splitlines(keepends=True)


def test_killed_audit_is_resumed_with_only_the_missing_cases(tmp_path: Path,
                                                             tiny_model_dir: Path) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", CASES)
    out = tmp_path / "reports.jsonl"
    args = ("audit", str(cases), "--out", str(out), "--model", str(tiny_model_dir),
            "--methods", "loo")
    proc = run_cli(*args)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed: " + \
        proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes()
    done_before = before.count(b"\n")
    assert 1 <= done_before < CASES

    rerun = run_cli(*args)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr.decode()[-2000:]

    text = stderr.decode()
    kept = done_before  # complete lines; a torn tail (if any) is cut away and redone
    assert f"resuming: {kept} of {CASES} cases already in {out}; auditing {CASES - kept}" \
        in text, text[-2000:]
    after = out.read_bytes()
    complete = before[: before.rfind(b"\n") + 1]
    assert after.startswith(complete), "the re-run rewrote lines of the killed run"
    lines = complete_lines(out)
    ids = [json.loads(line)["case_id"] for line in lines]
    assert len(ids) == len(set(ids)) == CASES
    assert set(ids) == {f"case{i:03d}" for i in range(CASES)}

    again = run_cli(*args)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0
    assert f"resuming: {CASES} of {CASES} cases already in {out}; auditing 0" in \
        stderr.decode()
    assert "loading model" not in stderr.decode()  # nothing left to audit: no model loaded
    assert out.read_bytes() == after


def test_each_finished_case_is_a_line_and_the_table_covers_every_case(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", 3)
    out = tmp_path / "reports.jsonl"
    out.write_text(json.dumps({"case_id": "case001", "answer": "Anna Roth.",
                               "answer_logprob": -1.0, "answer_tokens": 4}) + "\n")
    code = main(["audit", str(cases), "--out", str(out), "--model", str(tiny_model_dir),
                 "--methods", "loo"])
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["case_id"] for line in lines] == ["case001", "case000", "case002"]
    assert lines[0]["answer_logprob"] == -1.0  # the earlier line was kept, not redone
    printed = capsys.readouterr().out
    assert [part.split("\n")[0] for part in printed.split("### ")[1:]] == [
        "case000", "case001", "case002"]


def test_duplicate_case_ids_are_refused_before_any_audit(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps(case_line(0)) + "\n" + json.dumps(case_line(0)) + "\n")
    out = tmp_path / "reports.jsonl"
    assert main(["audit", str(cases), "--out", str(out)]) == 2
    assert "id: duplicate case id 'case000' (also case 1)" in capsys.readouterr().err
    assert not out.exists()


# -- audit-logs: progress over every record, clean JSON error messages -------------------------


def test_audit_logs_progress_counts_malformed_records_and_errors_read_cleanly(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_audit_logs import conversation, write_log

    from relyscope.batch.results import read_results

    bad_args = conversation(8)  # every fourth conversation calls a tool
    bad_args["messages"][2]["tool_calls"][0]["function"]["arguments"] = '{"guild": 4'
    log = write_log(tmp_path / "chat.jsonl", [
        conversation(0), '{"id": "rec001", "messages": [', bad_args, '{"id": "x" "y"}',
        conversation(5)])
    out = tmp_path / "results.jsonl"
    assert main(["audit-logs", str(log), "--out", str(out), "--model", str(tiny_model_dir),
                 "--methods", "loo", "--strict-arguments"]) == 0
    bar = capsys.readouterr().err
    assert "5/5" in bar and "errors=3" in bar, bar  # 2 audited + 3 malformed, all counted
    errors = {line["location"].rsplit(":", 1)[1]: line["error"]["message"]
              for line in read_results(out) if line["status"] == "error"}
    assert errors == {
        "2": "not valid JSON: it ends early (expecting value at the end)",
        "3": "not valid JSON: it ends early (expecting ',' delimiter at the end)",
        "4": "not valid JSON: expecting ',' delimiter at column 12"}


def test_the_readme_log_records_are_each_read_as_one_case(tmp_path: Path) -> None:
    from relyscope.ingest.detect import read_logs

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- log-records")[1].split("<!-- /log-records -->")[0]
    blocks = re.findall(r"```jsonl\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 4
    formats = []
    for number, block in enumerate(blocks):
        log = tmp_path / f"record{number}.jsonl"
        log.write_text(block, encoding="utf-8")
        records = list(read_logs([log]))
        assert len(records) == 1 and records[0].case is not None, records[0].error
        case = records[0].case
        assert case.query == "Who founded the Zelk guild?"
        assert [(s.id, s.text) for s in case.sources] == [
            ("d1", "The Zelk guild was founded by Anna Roth.")]
        assert case.answer == "Anna Roth founded it."
        formats.append(records[0].format)
    assert formats == ["openai", "openinference", "otel_genai", "langsmith"]
