"""Commands that need no model start without the model stack: building the CLI parser,
`relyscope report`, `relyscope gate` on saved results and `--help` import neither torch nor
transformers (each in a fresh interpreter: this test process has them loaded already). The
registry's static list of the built-in methods, which the parser and report columns read
without importing the methods, says exactly what the method classes say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from relyscope.audits import registry
from relyscope.report_model import Report, UnitReport

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "celery", "grpc", "sentence_transformers")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def heavy_modules_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; the heavy modules it imported."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_building_the_parser_imports_no_model_stack() -> None:
    assert heavy_modules_after("from relyscope.cli import build_parser\nbuild_parser()") == []


def test_help_of_every_command_imports_no_model_stack() -> None:
    code = ("import contextlib, io\nfrom relyscope.cli import build_parser, main\n"
            "names = list(build_parser()._subparsers._group_actions[0].choices)\n"
            "assert len(names) >= 9, names\n"
            "for name in [None, *names]:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n"
            "            main([name, '--help'] if name else ['--help'])\n"
            "        except SystemExit as stop:\n"
            "            assert stop.code == 0, (name, stop.code)")
    assert heavy_modules_after(code) == []


def test_report_and_gate_on_saved_reports_import_no_model_stack(tmp_path: Path) -> None:
    units = [UnitReport(id="d0", kind="source", reliance={"loo": 4.0, "ablation": 3.0},
                        provenance={"attention_share": 0.7}, verdict="relied")]
    saved = tmp_path / "reports.jsonl"
    saved.write_text(json.dumps(Report(case_id="c1", answer="a", answer_logprob=-3.0,
                                       answer_tokens=4, units=units).to_dict()) + "\n")
    code = ("import contextlib, io\nfrom relyscope.cli import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            f"    assert main(['report', {str(saved)!r}, '--html', {str(tmp_path / 'r.html')!r}])"
            " == 0\n"
            f"    assert main(['gate', '--baseline-results', {str(saved)!r},"
            f" '--candidate-results', {str(saved)!r}]) == 0\n"
            "assert '| d0 | source |' in out.getvalue(), out.getvalue()")
    assert heavy_modules_after(code) == []
    assert (tmp_path / "r.html").is_file()


def test_the_static_list_of_built_in_methods_matches_their_classes() -> None:
    registry.load_builtins()
    static = {info.name: info for info in registry.BUILTIN}
    built_in = {name: registry.info_of(registry.method_class(name))
                for name in registry.method_names()
                if registry.method_class(name).__module__.startswith("relyscope.audits.")}
    assert built_in == static


def test_names_without_the_method_modules_equal_those_of_the_classes() -> None:
    """A fresh interpreter answers from the static list alone (no method module imported);
    this process, from the registered classes."""
    functions = ("method_names", "default_methods", "voting_methods", "unit_score_columns")
    registry.load_builtins()
    code = ("import json\nfrom relyscope.audits import registry\n"
            f"names = {{f: getattr(registry, f)() for f in {functions!r}}}\n"
            "assert not registry._METHODS, 'a method module was imported'\n"
            "print(json.dumps(names))")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    static = {f: tuple(names) for f, names in json.loads(done.stdout).items()}
    assert static == {f: getattr(registry, f)() for f in functions}
