"""--model/--device/--dtype reach the model everywhere one is loaded: audit-logs (in-process and
in each spawned worker), serve, the gate, the Celery worker runtime, the service engine and
`assert_reliance`. A tiny random Llama saved to a folder keeps it fast (see test_audit_logs)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_audit_logs import conversation, tiny_model_dir, write_log

from relyscope.batch.results import read_results
from relyscope.cli import main
from relyscope.config import AuditConfig
from relyscope.models.cache import RedisScoreCache, SqliteScoreCache
from relyscope.models.loading import ModelOptions

__all__ = ["tiny_model_dir"]  # the fixture, shared with test_audit_logs

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("workers", [1, 2])
def test_audit_logs_audits_in_the_dtype_asked_for(tmp_path: Path, tiny_model_dir: Path,
                                                  workers: int) -> None:
    log = write_log(tmp_path / "chat.jsonl", [conversation(i) for i in range(3)])
    out = tmp_path / "results.jsonl"
    code = main(["audit-logs", str(log), "--out", str(out), "--model", str(tiny_model_dir),
                 "--device", "cpu", "--dtype", "bfloat16", "--workers", str(workers),
                 "--no-progress"])
    assert code == 0
    lines = list(read_results(out))
    assert [line["status"] for line in lines] == ["ok"] * 3, [line.get("error") for line in lines]
    for line in lines:
        model = line["report"]["settings"]["model"]
        assert (model["dtype"], model["device"]) == ("bfloat16", "cpu")
        assert model["id"] == str(tiny_model_dir)


def test_gate_model_keeps_scores_in_the_cache_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    from relyscope.gate.runs import load_model

    options = ModelOptions(model=str(tiny_model_dir), dtype="bfloat16")
    lm = load_model(options, cache_file=tmp_path / "cache" / "scores.sqlite")
    assert lm.info.dtype == "bfloat16"
    assert isinstance(lm.scorer.cache, SqliteScoreCache)
    assert (tmp_path / "cache" / "scores.sqlite").is_file()
    assert not isinstance(load_model(options, cache_file=None).scorer.cache, SqliteScoreCache)


def test_engine_and_worker_runtime_load_through_model_options(tiny_model_dir: Path) -> None:
    from relyscope.service.engine import Engine
    from relyscope.service.jobs.worker import WorkerRuntime, WorkerSettings

    options = ModelOptions(model=str(tiny_model_dir), dtype="bfloat16")
    assert Engine.load(options).lm.info.dtype == "bfloat16"
    assert Engine.load(str(tiny_model_dir)).lm.info.dtype == "float32"  # a folder still works
    runtime = WorkerRuntime(WorkerSettings(redis_url=REDIS_URL, model=options,
                                           prefix="relyscope-test-loading:"))
    assert runtime.lm.info.dtype == "bfloat16"
    assert isinstance(runtime.lm.scorer.cache, RedisScoreCache)


def test_assert_reliance_loads_each_options_once(tiny_model_dir: Path) -> None:
    from relyscope.testing import shared_model

    options = ModelOptions(model=str(tiny_model_dir), dtype="bfloat16")
    lm = shared_model(options)
    assert lm.info.dtype == "bfloat16"
    assert shared_model(ModelOptions(model=str(tiny_model_dir), dtype="bfloat16")) is lm


def test_serve_audits_with_the_model_options_it_was_given(tiny_model_dir: Path) -> None:
    from conftest import zelk_case

    from relyscope.client import Client

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relyscope", "serve", "--host", "127.0.0.1", "--port", "0",
         "--grace", "1", "--model", str(tiny_model_dir), "--dtype", "bfloat16"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr],  # type: ignore
                     daemon=True).start()
    try:
        port = None
        while port is None:
            found = re.search(r"serving on 127\.0\.0\.1:(\d+)", lines.get(timeout=120))
            port = int(found.group(1)) if found else None
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while client.health() != "SERVING":
                assert time.monotonic() < deadline, "the model did not load"
                time.sleep(0.2)
            report: Any = client.audit(zelk_case(), AuditConfig(methods=("attention",)))
        assert report.settings["model"]["dtype"] == "bfloat16"
        assert report.settings["model"]["id"] == str(tiny_model_dir)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
