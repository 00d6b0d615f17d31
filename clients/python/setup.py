"""Build relyscope-client from the repository's own relyscope/ sources: the light modules only.

The client distribution holds the same modules as the full `relyscope` package, byte for byte
(the import name is `relyscope` in both), so code written against the client runs unchanged
with the full package. Building from the repository stages those modules into src/ first; an
sdist carries src/ and builds from it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
REPO_PACKAGE = HERE.parents[1] / "relyscope"
STAGED = HERE / "src" / "relyscope"

#: The modules of relyscope the client needs: the client, the proto conversion, the data
#: model and the generated stubs (the import-linter contract keeps them free of torch).
MODULES = ("__init__.py", "case.py", "client.py", "config.py", "errors.py", "limits.py",
           "report_model.py")
PACKAGES = ("protocol", "v1")


def stage() -> None:
    if not (REPO_PACKAGE / "client.py").is_file():
        return  # building from an sdist: src/ is already staged
    shutil.rmtree(STAGED, ignore_errors=True)
    shutil.rmtree(HERE / "build", ignore_errors=True)  # no stale module from an earlier build
    STAGED.mkdir(parents=True)
    for name in MODULES:
        shutil.copyfile(REPO_PACKAGE / name, STAGED / name)
    for package in PACKAGES:
        (STAGED / package).mkdir()
        for source in sorted((REPO_PACKAGE / package).glob("*.py*")):
            shutil.copyfile(source, STAGED / package / source.name)


stage()
setup(package_dir={"": "src"},
      packages=["relyscope", *(f"relyscope.{p}" for p in PACKAGES)],
      package_data={"relyscope.v1": ["*.pyi"]})
