"""The layer contracts in pyproject.toml hold, and they would catch a backwards import.

Both tests run the real `lint-imports` (import-linter) command: the first on the package as it
is, the second on a copy of the package with one backwards import planted in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(),
                                reason="import-linter is not installed (dev extra)")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the `relyscope` package found under `root`, with the repo's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_package_keeps_its_layer_contracts() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "backwards", "contract"), [
    # the model backend reaching up into the audit methods
    ("models/packaged.py", "import relyscope.audits.runner", "layers"),
    # the wire conversion pulling in the model stack
    ("protocol/convert.py", "import torch", "the client and the wire conversion stay light"),
])
def test_a_backwards_import_breaks_a_contract(tmp_path: Path, module: str, backwards: str,
                                              contract: str) -> None:
    copy = tmp_path / "relyscope"
    shutil.copytree(REPO / "relyscope", copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{backwards}  # planted\n",
                      encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "1 broken" in result.stdout
    assert contract in result.stdout
    assert backwards.split()[-1] in result.stdout  # the report names the planted import
