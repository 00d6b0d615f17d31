"""The library's one-import face: `import relyscope` gives the data model at once and the model
stack only when asked for, so a caller that only builds cases (or the light client) never loads
torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import relyscope

PROBE = """
import sys
import relyscope
case = relyscope.Case(id="c", query="q?", sources=[relyscope.Source(id="d", text="t")])
config = relyscope.AuditConfig(methods=("attention",))
print("torch" in sys.modules, "transformers" in sys.modules, case.id, config.methods)
"""


def test_importing_relyscope_loads_no_model_stack() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["False", "False", "c", "('attention',)"]


def test_the_library_example_needs_one_import() -> None:
    from relyscope.audits import run_audit
    from relyscope.models import CausalLM

    assert relyscope.run_audit is run_audit
    assert relyscope.CausalLM is CausalLM
    assert {"Case", "AuditConfig", "Report", "load_case", "run_audit", "CausalLM"} <= set(
        relyscope.__all__)


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = relyscope.nothing_here
