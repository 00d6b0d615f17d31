"""The shared command-line options: one spelling of --model/--device/--dtype on every command
that loads a model, parsed into one `ModelOptions`; --methods from the method registry."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import pytest

from relyscope.audits import registry
from relyscope.audits.method import AuditMethod, Outcome
from relyscope.cli import build_parser, main
from relyscope.cli.options import audit_config_from, model_options
from relyscope.errors import CaseError
from relyscope.models.loading import ModelOptions

# the smallest valid command line of each command that loads a model
MODEL_COMMANDS: dict[str, list[str]] = {
    "demo": ["demo"],
    "audit": ["audit", "case.json"],
    "audit-logs": ["audit-logs", "chat.jsonl", "--out", "r.jsonl"],
    "ask": ["ask", "idx", "a question"],
    "gate": ["gate", "--eval", "e.jsonl", "--baseline", "a.toml", "--candidate", "b.toml"],
    "serve": ["serve"],
    "worker": ["worker", "--redis-url", "redis://127.0.0.1:6379/0"],
}
MODEL_FLAGS = ["--model", "/models/m", "--device", "cuda:1", "--dtype", "bfloat16"]


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_every_model_command_takes_model_device_and_dtype(command: str) -> None:
    parser = build_parser()
    args = parser.parse_args(MODEL_COMMANDS[command] + MODEL_FLAGS)
    assert model_options(args) == ModelOptions(model="/models/m", device="cuda:1",
                                               dtype="bfloat16")
    defaults = parser.parse_args(MODEL_COMMANDS[command])
    assert model_options(defaults) == ModelOptions(model=None, device="cpu", dtype="float32")


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_a_bad_dtype_exits_2_naming_the_option(command: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(MODEL_COMMANDS[command] + ["--dtype", "int8"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--dtype" in err and "'int8'" in err and "bfloat16" in err


def test_commands_without_a_model_do_not_take_the_model_flags(
        capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["report", "r.jsonl"], ["index", "docs", "--out", "idx"]):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--dtype", "bfloat16"])
        assert exit_.value.code == 2
        assert "unrecognized arguments: --dtype" in capsys.readouterr().err


def test_a_bad_device_is_refused_before_loading_naming_the_device(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = tmp_path / "case.json"
    case.write_text('{"id": "c", "query": "q", "sources": [{"id": "a", "text": "t"}], '
                    '"answer": "x"}')
    assert main(["audit", str(case), "--device", "gpu0"]) == 2
    assert "invalid input: device: 'gpu0' is not a torch device" in capsys.readouterr().err


def test_model_options_validate_and_survive_pickling() -> None:
    options = ModelOptions(model="/models/m", device="cuda:1", dtype="float16")
    assert pickle.loads(pickle.dumps(options)) == options  # spawned audit-logs workers
    assert hash(options) == hash(ModelOptions("/models/m", "cuda:1", "float16"))
    with pytest.raises(CaseError) as bad:
        ModelOptions(dtype="float64")
    assert bad.value.field == "dtype" and "float32, bfloat16, float16" in bad.value.message
    with pytest.raises(CaseError) as bad:
        ModelOptions(device="")
    assert bad.value.field == "device"
    assert ModelOptions.of("/models/m") == ModelOptions(model="/models/m")
    assert ModelOptions.of(None) == ModelOptions.of("") == ModelOptions()
    assert ModelOptions.of(options) is options
    assert ModelOptions().model_id == "smollm2-135m-instruct"
    assert ModelOptions(model="/models/m").model_id == "/models/m"


def test_cuda_on_a_machine_without_it_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(CaseError, match="device: 'cuda': CUDA is not available"):
        ModelOptions(device="cuda").load()


def test_methods_come_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with registry.scoped():
        class Echo(AuditMethod):  # defining it registers it, for this block only
            name: ClassVar[str] = "echo"
            kind: ClassVar[Any] = "reliance"
            priority: ClassVar[int] = 99
            default: ClassVar[bool] = False

            def compute(self, ctx: Any, settings: Any) -> Outcome:
                return Outcome(scores={})

        parser = build_parser()
        args = parser.parse_args(["audit", "c.json", "--methods", "loo,echo"])
        assert args.methods == ("loo", "echo")
        default = parser.parse_args(["audit", "c.json"]).methods
        assert default == registry.default_methods() and "echo" not in default
        with pytest.raises(SystemExit):
            parser.parse_args(["audit", "--help"])
        assert "echo" in capsys.readouterr().out
    assert parser.parse_args(["audit-logs", "x", "--out", "y"]).methods == ("attention", "loo")
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["audit", "c.json", "--methods", "loo,echo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--methods" in err and "unknown method 'echo'" in err
    assert ", ".join(registry.method_names()) in err


def test_per_method_flags_go_into_method_settings_of_the_methods_that_run() -> None:
    parser = build_parser()
    args = parser.parse_args(["audit", "c.json", "--methods", "loo,ablation", "--ablations",
                              "16", "--tracing-samples", "2", "--regenerate"])
    config = audit_config_from(args)
    assert config.methods == ("loo", "ablation")
    assert config.method_settings == {"ablation": {"ablations": 16},
                                      "loo": {"regenerate": True}}
