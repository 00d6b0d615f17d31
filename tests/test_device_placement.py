"""Every tensor an audit method creates follows the model's device and dtype (issue 17, 11).

No GPU here, so the check is made where a mismatch would show on one: every registered method
runs on the tiny model cast to float64, under a torch function mode that watches every op.
- dtype: an op that mixes a float64 tensor (the model's activations, weights, or anything
  built to match them) with a floating tensor of another dtype that relyscope code made (or
  in an op relyscope code calls) is a violation; PyTorch would promote silently on a CPU,
  and the method's tensor was built in the wrong dtype. Mixes inside third-party code
  (Captum multiplies float64 gradients by its own float32 step sizes, moved to the gradients'
  device) are not relyscope's tensors and are not counted.
- device: a tensor that relyscope code creates without naming a device (a factory call such
  as torch.randn or torch.tensor with no `device=`) lands on the default device, the CPU, not
  the model's; when it, or anything computed from it, meets a float64 tensor, that is a
  violation (on a GPU it is the "expected all tensors on the same device" error).
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from relyscope.audits import run_audit
from relyscope.audits.registry import method_names
from relyscope.config import AuditConfig
from relyscope.models import CausalLM
from tests.conftest import zelk_case

RELYSCOPE = str(Path(__file__).resolve().parent.parent / "relyscope")
FACTORIES = {torch.tensor, torch.as_tensor, torch.zeros, torch.ones, torch.empty, torch.full,
             torch.randn, torch.rand, torch.randint, torch.normal, torch.arange, torch.eye,
             torch.linspace}


def _caller() -> tuple[str, bool]:
    """file:line of the innermost frame outside torch and this module, and whether it is
    relyscope's own code (else transformers, the test, ...)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "site-packages/torch" not in name and name != __file__:
            return f"{Path(name).name}:{frame.f_lineno}", name.startswith(RELYSCOPE)
        frame = frame.f_back
    return "?", False


class Placement(TorchFunctionMode):
    """Watches tensors that relyscope code creates (and everything computed from them) and
    records where they meet the model's dtype with another dtype, or without a device."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        # id -> (the tensor, where relyscope made its ancestor, made without a device)
        self.made: dict[int, tuple[weakref.ref[torch.Tensor], str, bool]] = {}
        self.violations: list[str] = []
        self.ops = 0
        self.checked = 0  # ops where a tensor relyscope made met the model's tensors

    def record(self, tensor: torch.Tensor) -> tuple[str, bool] | None:
        entry = self.made.get(id(tensor))
        return entry[1:] if entry is not None and entry[0]() is tensor else None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops += 1
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        name = getattr(func, "__name__", str(func))
        records = [(t, r) for t in tensors if (r := self.record(t)) is not None]
        if any(t.dtype == self.dtype for t in tensors):  # it meets the model's tensors
            where, ours = _caller()
            self.checked += bool(records)
            for t in tensors:
                made = self.record(t)
                if t.is_floating_point() and t.dtype != self.dtype and (made or ours):
                    self.violations.append(f"{name} at {where}: a {t.dtype} tensor made at "
                                           f"{made[0] if made else where} meets {self.dtype}")
                if made and made[1]:
                    self.violations.append(f"{name} at {where}: a tensor made without a "
                                           f"device at {made[0]} meets the model's tensors")
        origin: tuple[str, bool] | None = None
        if func in FACTORIES:
            where, ours = _caller()
            origin = (where, "device" not in kwargs) if ours else None
        elif records:
            where, deviceless = records[0][1]
            moved = name == "to" and ("device" in kwargs or any(
                isinstance(a, str | torch.device) for a in args[1:]))
            origin = (where, deviceless and not moved)
        if origin is not None:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.made[id(t)] = (weakref.ref(t), *origin)
        return out


@pytest.fixture(scope="module")
def float64_lm(tiny_tokenizer: Any) -> CausalLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).to(torch.float64)
    return CausalLM(model, tiny_tokenizer, model_id="tiny-random-llama-f64", revision="seed0")


def test_every_method_keeps_to_the_models_dtype_and_device(float64_lm):
    methods = method_names()
    assert {"attention", "loo", "ablation", "tools", "tracing"} <= set(methods)
    config = AuditConfig(methods=methods, stability=True, method_settings={
        "ablation": {"ablations": 8}, "tracing": {"samples": 2, "top_units": 2}})
    watch = Placement(torch.float64)
    with watch:
        report = run_audit(zelk_case(), float64_lm, config)
    # a method may refuse the tiny model (e.g. one that needs weights trained for a model):
    # a CaseError naming the setting, not a crash; every other method must have run
    refused = {name for name, error in report.errors.items() if error.startswith("CaseError")}
    assert set(report.errors) == refused
    assert not refused & {"attention", "loo", "ablation", "tools", "tracing"}
    assert set(report.methods) >= set(methods) - refused
    assert report.settings["model"]["dtype"] == "float64"
    assert len(report.methods["tracing"]["layer_profiles"]) == 2  # restoration ran too
    assert watch.ops > 1000  # the mode saw the model's ops, not just the runner's
    assert watch.checked > 10  # tensors relyscope made (noise, masks, ids) met the model's
    assert watch.violations == []


def test_the_check_catches_a_tensor_made_on_the_wrong_dtype_or_device(float64_lm):
    """The old tracing noise: torch.randn on the default device and dtype, added to the
    embeddings. Both checks must flag it (run from a relyscope frame's point of view)."""
    embeddings = float64_lm.model.get_input_embeddings().weight[:3]
    watch = Placement(torch.float64)
    namespace = {"torch": torch, "embeddings": embeddings}
    code = compile("noise = torch.randn(embeddings.shape)\nout = embeddings + noise",
                   f"{RELYSCOPE}/audits/old_tracing.py", "exec")
    with watch:
        exec(code, namespace)
    assert any("torch.float32 tensor made at old_tracing.py:1" in v for v in watch.violations)
    assert any("made without a device at old_tracing.py:1" in v for v in watch.violations)
