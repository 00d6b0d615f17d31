"""`relyscope audit --ablations`: a mask count or 'auto' (the adaptive mask count), carried
into the ablation method's settings; anything else is refused naming the flag."""

from __future__ import annotations

import pytest

from relyscope.cli import build_parser
from relyscope.cli.options import audit_config_from


def _config(*flags: str):  # noqa: ANN202 - AuditConfig
    args = build_parser().parse_args(["audit", "case.json", "--methods", "ablation", *flags])
    return audit_config_from(args)


def test_ablations_auto_reaches_the_method_settings() -> None:
    assert _config("--ablations", "auto").method_settings["ablation"]["ablations"] == "auto"
    assert _config("--ablations", "AUTO").method_settings["ablation"]["ablations"] == "auto"


def test_ablations_count_stays_a_number() -> None:
    assert _config("--ablations", "32").method_settings["ablation"]["ablations"] == 32
    assert _config().method_settings["ablation"]["ablations"] == 64


def test_ablations_other_text_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    with pytest.raises(SystemExit):
        _config("--ablations", "many")
    assert "ablations" in capsys.readouterr().err


def test_help_mentions_auto(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["audit", "--help"])
    assert "'auto'" in capsys.readouterr().out
