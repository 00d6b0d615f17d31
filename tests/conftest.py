"""Shared fixtures: the real packaged model (loaded once per session) and a tiny random one;
the gate's example run on the real model (`example_gate_run`, once per session).

The tiny model shares only the packaged model's tokenizer, read without its weights, so the
fast subset (`-m "not real_model"`) never loads the real model: tests that use `real_lm` are
marked `real_model` automatically, and under `-m "not real_model"` loading the packaged weights
is an error.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from relyscope.case import Case
from relyscope.models import CausalLM

ZELK_SOURCES = [
    ("d0", "The Orrin river floods every spring, covering the valley farms with silt."),
    ("d1", "The Zelk guild was founded by Anna Roth in the harbour town of Mirel."),
    ("d2", "Copper prices rose sharply in the northern markets last year."),
    ("d3", "The Velmar festival celebrates the first snowfall with paper lanterns."),
    ("d4", "Tidewater lighthouses use rotating lenses to guide ships at night."),
]
PACKAGED_WEIGHT_LOADS: list[str] = []  # what loaded the packaged weights this session


def zelk_case(answer: str | None = "The Zelk guild was founded by Anna Roth.", **extra) -> Case:
    data = {
        "id": "zelk",
        "system": "Answer the question in one sentence using the context.",
        "query": "Who founded the Zelk guild?",
        "sources": [{"id": i, "text": t} for i, t in ZELK_SOURCES],
        "tool_calls": [{"id": "call_1", "name": "get_temperature",
                        "arguments": {"city": "Mirel"}, "output": "18 degrees Celsius"}],
        "answer": answer,
    }
    data.update(extra)
    return Case.from_dict(data)


def packaged_tokenizer() -> Any:
    """The packaged model's tokenizer without its weights: from the cached float folder when a
    real-model run already made it, else straight from the GGUF's metadata."""
    from transformers import AutoTokenizer

    from relyscope.models.packaged import DEFAULT_MODEL, file_digest, packaged_gguf, relyscope_home

    gguf = packaged_gguf()
    cached = relyscope_home() / "models" / f"{DEFAULT_MODEL}-{file_digest(gguf)[:16]}"
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached))
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.fixture(scope="session")
def real_lm() -> CausalLM:
    return CausalLM.load()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    return packaged_tokenizer()


@pytest.fixture(scope="session")
def tiny_lm(tiny_tokenizer: Any) -> CausalLM:
    """A 2-layer randomly initialised Llama with the real tokenizer: fast plumbing tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    return CausalLM(model, tiny_tokenizer, model_id="tiny-random-llama", revision="seed0")


@dataclass(frozen=True)
class GateRun:
    """One `relyscope gate` run of examples/gate (baseline vs degraded) with every output."""

    code: int
    folder: Path  # gate.json, gate.md, gate.xml, runs/{baseline,candidate}.jsonl
    cache: Path  # the score cache it filled: later gate runs of these queries score nothing
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        return json.loads((self.folder / "gate.json").read_text())


@pytest.fixture(scope="session")
def example_gate_run(tmp_path_factory: pytest.TempPathFactory, real_lm: CausalLM) -> GateRun:
    """The packaged model's gate run of examples/gate on its own evaluation set (nine
    queries), run once and shared: it answers and audits 18 queries, the costliest thing the
    gate tests do. `real_lm`: the tests using it are real-model tests (the command loads its
    own model)."""
    from relyscope.cli import main

    examples = Path(__file__).resolve().parent.parent / "examples" / "gate"
    folder = tmp_path_factory.mktemp("example-gate")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["gate", "--eval", str(examples / "eval.jsonl"),
                     "--baseline", str(examples / "baseline.toml"),
                     "--candidate", str(examples / "degraded.toml"),
                     "--thresholds", str(examples / "thresholds.toml"),
                     "--cache", str(folder / "scores.sqlite"),
                     "--save-results", str(folder / "runs"),
                     "--json", str(folder / "gate.json"), "--markdown", str(folder / "gate.md"),
                     "--junit", str(folder / "gate.xml")])
    return GateRun(code, folder, folder / "scores.sqlite", out.getvalue(), err.getvalue())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for the real model is a real-model test, marked or not."""
    for item in items:
        if "real_lm" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
                "real_model"):
            item.add_marker(pytest.mark.real_model)


def pytest_configure(config: pytest.Config) -> None:
    if "not real_model" in (config.option.markexpr or ""):
        _refuse_packaged_weights()


def _refuse_packaged_weights() -> None:
    """Loading the packaged model's weights (the cached float folder or the GGUF) fails the
    test that does it, and is recorded for the session summary."""
    from transformers import AutoModelForCausalLM

    from relyscope.models.packaged import relyscope_home

    original = AutoModelForCausalLM.from_pretrained.__func__  # type: ignore[attr-defined]
    packaged = (relyscope_home() / "models").resolve()

    def guarded(cls: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        where = Path(str(path)).expanduser().resolve()
        if kwargs.get("gguf_file") or where.is_relative_to(packaged):
            PACKAGED_WEIGHT_LOADS.append(str(where))
            raise RuntimeError(f"the fast subset (-m 'not real_model') loaded the packaged "
                               f"model's weights from {where}: mark the test real_model")
        return original(cls, path, *args, **kwargs)

    AutoModelForCausalLM.from_pretrained = classmethod(guarded)  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if "not real_model" in (config.option.markexpr or ""):
        terminalreporter.write_line(
            f"packaged model weight loads in this session: {len(PACKAGED_WEIGHT_LOADS)}")
