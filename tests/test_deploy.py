"""deploy/: manifests valid against the Kubernetes schemas (offline), the image installs the
README's way, and the compose file wires service, worker and Redis together."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))


def test_there_are_manifests_for_each_part():
    kinds = {(d["kind"], d["metadata"]["name"]) for p in MANIFESTS
             for d in yaml.safe_load_all(p.read_text())}
    assert ("Deployment", "relyscope-service") in kinds
    assert ("Deployment", "relyscope-worker") in kinds
    assert ("Service", "relyscope") in kinds
    assert ("ConfigMap", "relyscope-config") in kinds
    assert ("HorizontalPodAutoscaler", "relyscope-worker") in kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.30", strict=True)


def test_an_invalid_manifest_is_caught():
    bad = yaml.safe_load((ROOT / "deploy" / "k8s" / "service.yaml").read_text())
    bad["spec"]["ports"][0]["port"] = "not-a-port"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30", strict=True)


def test_service_is_probed_through_grpc_health():
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "service-deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["grpc"]["port"] == 50051
    assert container["livenessProbe"]["grpc"]["port"] == 50051


def _make_setup_recipe() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): pyproject.toml\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in recipe.splitlines()]


def test_dockerfile_installs_with_the_readme_commands_as_non_root():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "RUN make setup" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "packaged_model_dir()" in dockerfile  # model cached at build time
    pip_lines = [line for line in _make_setup_recipe() if "pip install" in line]
    assert len(pip_lines) == 3
    for line in pip_lines:  # each step the Makefile runs is one the README documents
        command = line.replace("$(BIN)/", ".venv/bin/").replace("--quiet ", "")
        assert command in readme, command


def test_compose_runs_service_worker_and_redis():
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "service", "worker"}
    assert services["service"]["command"][0] == "serve"
    assert services["worker"]["command"][0] == "worker"
    for name in ("service", "worker"):
        assert "redis://redis:6379/0" in services[name]["command"]
