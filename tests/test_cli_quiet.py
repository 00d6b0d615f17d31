"""A quiet, clean command line: transformers' "Loading weights" bars only with --verbose; a
closed pipe (`relyscope report ... | head`) ends the command without a traceback; a file that is
not a report gets one line naming the field, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_audit_logs import tiny_model_dir

from relyscope.cli import main
from relyscope.report_model import Report, UnitReport

__all__ = ["tiny_model_dir"]

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def relyscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relyscope", *args], env=ENV,
                          capture_output=True, text=True, timeout=300)


def report(case_id: str) -> Report:
    return Report(case_id=case_id, answer="Anna Roth founded it.", answer_logprob=-3.2,
                  answer_tokens=6, units=[
                      UnitReport(id="d0", kind="source", reliance={"loo": 4.0},
                                 provenance={"attention_share": 0.7}, verdict="relied"),
                      UnitReport(id="d1", kind="source", reliance={"loo": 0.1},
                                 provenance={"attention_share": 0.3}, verdict="unused")])


@pytest.mark.parametrize("verbose", [False, True])
def test_loading_weights_bars_only_with_verbose(tmp_path: Path, tiny_model_dir: Path,
                                                verbose: bool) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"id": "c1", "query": "Who founded the guild?",
                                "sources": [{"id": "d0", "text": "Anna Roth founded it."}],
                                "answer": "Anna Roth."}))
    flags = ["--verbose"] if verbose else []
    done = relyscope("audit", str(case), "--model", str(tiny_model_dir), "--methods", "loo",
                     *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| d0 | source |" in done.stdout
    assert ("Loading weights" in done.stderr) is verbose, done.stderr[-2000:]


def test_report_into_a_closed_pipe_prints_no_broken_pipe(tmp_path: Path) -> None:
    reports = tmp_path / "reports.jsonl"
    reports.write_text("".join(json.dumps(report(f"case{i:04d}").to_dict()) + "\n"
                               for i in range(3000)))  # far more than a pipe buffer of Markdown
    proc = subprocess.Popen([sys.executable, "-m", "relyscope", "report", str(reports)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"### case0000\n"  # what `| head -1` reads, then it exits
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr, stderr
    assert stderr == ""
    assert proc.returncode == 1


@pytest.mark.parametrize(("content", "name", "expected"), [
    ('{"id": "c1", "query": "q", "sources": []}\n', "case.json",
     "case.json: case_id: missing: not a report written by relyscope audit or audit-logs"),
    ("not json at all\n", "notes.jsonl", "notes.jsonl:1: not a report: not valid JSON"),
    ('[1, 2]\n', "list.json", "list.json: not a report: a report is a JSON object, got list"),
    ('{"case_id": "c1", "answer": "a", "answer_logprob": "high", "answer_tokens": 3}\n',
     "typed.json", "typed.json: answer_logprob: Input should be a valid number"),
    ('{"case_id": "c1", "answer": "a", "answer_logprob": -1, "answer_tokens": 3, '
     '"units": [{"id": "d0", "kind": "paragraph"}]}\n', "units.json",
     "units.json: units[0].kind: Input should be"),
])
def test_a_file_that_is_not_a_report_is_one_line_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, name: str,
        expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("relyscope: invalid input: "), err
    assert expected in err.replace(str(tmp_path) + "/", ""), err


def test_report_reads_audit_logs_results_and_reports_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(
        json.dumps({"record_id": "r1", "status": "ok", "report": report("r1").to_dict()}) + "\n"
        + json.dumps({"record_id": "r2", "status": "error", "error": {"field": "", "message":
                                                                      "x", "reason": "y"}})
        + "\n")
    assert main(["report", str(results)]) == 0
    assert "### r1" in capsys.readouterr().out
