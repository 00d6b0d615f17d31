"""The light client: `pip install ./clients/python` into a fresh venv pulls no torch, and a call
from that venv reaches a real server on a localhost socket, through `relyscope.client` and
through stubs the caller compiled from proto/ themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from service_support import running_server

from relyscope.models import CausalLM
from tools.gen_proto import PROTO_ROOT, proto_files

REPO = Path(__file__).resolve().parents[1]
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
HEAVY = {"torch", "transformers", "numpy", "scipy", "scikit-learn", "sentence-transformers",
         "faiss-cpu", "accelerate", "langchain-core", "jinja2"}


def _index_reachable() -> bool:
    try:
        with urllib.request.urlopen(f"{INDEX}/grpcio/", timeout=15) as response:
            return response.status == 200
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _index_reachable(),
                                reason=f"the package index {INDEX} is unreachable: the client "
                                       f"cannot be installed into a fresh venv")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("client") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                           str(REPO / "clients" / "python")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return venv


def installed(venv: Path) -> dict[str, str]:
    listing = subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "json"],
                             check=True, capture_output=True, text=True).stdout
    return {item["name"].lower().replace("_", "-"): item["version"]
            for item in json.loads(listing)}


def run_in(venv: Path, script: str, **env: str) -> Any:
    """Run `script` with the venv's python (outside the repository, so only the installed
    package is importable); it prints one JSON value."""
    done = subprocess.run([str(venv / "bin" / "python"), "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=300, cwd=venv,
                          env={"PATH": os.environ["PATH"], **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_client_installs_without_the_model_stack(client_venv: Path) -> None:
    packages = installed(client_venv)
    print("installed in the client venv:", json.dumps(packages, sort_keys=True))
    assert "relyscope-client" in packages
    assert {"grpcio", "protobuf", "pydantic"} <= set(packages)
    assert not HEAVY & set(packages), HEAVY & set(packages)
    assert "relyscope" not in packages  # the full distribution is not pulled in


def test_a_call_from_the_client_venv_reaches_a_running_server(client_venv: Path,
                                                              tiny_lm: CausalLM) -> None:
    with running_server(tiny_lm) as server:
        result = run_in(client_venv, f"""
            import json, sys
            import relyscope
            from relyscope import AuditConfig, Case
            from relyscope.client import Client

            case = Case.from_dict({{
                "id": "light1", "query": "Who founded the Zelk guild?",
                "sources": [{{"id": "d0", "text": "Anna Roth founded the Zelk guild."}},
                            {{"id": "d1", "text": "Copper prices rose last year."}}],
                "answer": "Anna Roth."}})
            with Client("127.0.0.1:{server.port}", timeout=120) as client:
                health = client.health()
                report = client.audit(case, AuditConfig(methods=("loo",)))
            print(json.dumps({{
                "case_id": report.case_id, "units": [u.id for u in report.units],
                "loo": [u.reliance.get("loo") for u in report.units],
                "package": relyscope.__file__, "health": health,
                "heavy": sorted(m for m in ("torch", "transformers", "numpy")
                                if m in sys.modules)}}))
            """)
    assert result["case_id"] == "light1" and result["units"] == ["d0", "d1"]
    assert result["health"] == "SERVING"
    assert all(isinstance(score, float) for score in result["loo"])
    assert str(client_venv) in result["package"] and "site-packages" in result["package"]
    assert result["heavy"] == []


def test_stubs_a_caller_compiled_from_the_proto_are_the_installed_ones(
        client_venv: Path, tiny_lm: CausalLM, tmp_path: Path) -> None:
    from grpc_tools import protoc

    generated = tmp_path / "generated"
    generated.mkdir()
    well_known = Path(protoc.__file__).parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
            f"--python_out={generated}", f"--grpc_python_out={generated}",
            *(str(p.relative_to(PROTO_ROOT)) for p in proto_files())]
    assert protoc.main(args) == 0
    assert (generated / "relyscope" / "v1" / "audit_pb2.py").is_file()
    with running_server(tiny_lm) as server:
        result = run_in(client_venv, f"""
            import json
            import grpc
            # the caller's own protoc output, imported the way protoc's code imports itself
            from relyscope.v1 import audit_pb2, audit_pb2_grpc
            import relyscope.client  # the installed client beside the caller's own stubs

            channel = grpc.insecure_channel("127.0.0.1:{server.port}")
            stub = audit_pb2_grpc.AuditServiceStub(channel)
            request = audit_pb2.AuditRequest(id="own-stubs", case=audit_pb2.Case(
                id="own1", query="Who founded the Zelk guild?", answer="Anna Roth.",
                sources=[audit_pb2.Source(id="d0", text="Anna Roth founded the Zelk guild.")]))
            request.config.methods.append("loo")
            response = stub.Audit(request, timeout=120)
            print(json.dumps({{"module": audit_pb2.__file__,
                               "units": [u.id for u in response.report.units]}}))
            """, PYTHONPATH=str(generated))
    assert result["units"] == ["d0"]
    assert "site-packages" in result["module"]  # one copy of the file in protobuf's pool
