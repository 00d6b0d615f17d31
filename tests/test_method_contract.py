"""The method contract and registry: a method defined here (a subclass, nothing else) runs,
lands in reports, Markdown and HTML, and is accepted over the gRPC config; bad names and
settings are named errors; the deprecated flat settings still work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import Field

from relyscope.audits import AuditMethod, MethodSettings, Outcome, registry, run_audit
from relyscope.audits.base import AuditContext
from relyscope.case import CaseError
from relyscope.config import AuditConfig
from relyscope.protocol.convert import (
    config_from_proto,
    config_to_proto,
    report_from_proto,
    report_to_proto,
    to_struct,
)
from relyscope.report import markdown, render_html
from relyscope.report_model import Report
from relyscope.v1 import audit_pb2 as pb
from tests.conftest import zelk_case

BUILT_IN = ("attention", "loo", "tools", "ablation", "tracing")
# shipped but not in the default set: the learned attributor, and (costly) knockout, head
# importance, gradients; every registered method in priority order
ALL = ("attention", "learned", "loo", "tools", "ablation", "tracing", "knockout", "heads",
       "input_x_gradient", "integrated_gradients")


class OffsetSettings(MethodSettings):
    offset: float = Field(default=1.0, ge=0.0)


@pytest.fixture
def offset_method() -> Iterator[type[AuditMethod]]:
    """A reliance method scoring unit i as offset + i, registered for one test only."""
    with registry.scoped():
        class OffsetScore(AuditMethod):
            name = "offset"
            kind = "reliance"
            priority = 35
            default = False
            Settings = OffsetSettings

            def compute(self, ctx: AuditContext, settings: OffsetSettings) -> Outcome:
                scores: dict[str, float | None] = {
                    uid: settings.offset + i for i, uid in enumerate(ctx.unit_ids)}
                return Outcome(scores, {"offset": settings.offset})

        yield OffsetScore
    assert "offset" not in registry.method_names()


@pytest.fixture
def uniform_provenance() -> Iterator[type[AuditMethod]]:
    """A provenance method: every unit gets 1 / units."""
    with registry.scoped():
        class Uniform(AuditMethod):
            name = "uniform"
            kind = "provenance"
            priority = 5
            default = False

            def compute(self, ctx: AuditContext, settings: MethodSettings) -> Outcome:
                return Outcome({uid: 1 / len(ctx.unit_ids) for uid in ctx.unit_ids})

        yield Uniform


def test_the_registry_knows_the_built_in_methods_in_priority_order():
    assert registry.method_names() == ALL
    assert registry.default_methods() == BUILT_IN
    assert registry.voting_methods() == ("loo", "tools", "ablation")
    assert registry.methods_of_kind("provenance") == ("attention", "input_x_gradient",
                                                      "integrated_gradients")
    assert registry.methods_of_kind("reliance") == ("learned", "loo", "tools", "ablation",
                                                    "knockout")
    assert registry.methods_of_kind("localisation") == ("tracing", "heads")
    assert registry.unit_score_columns() == ("loo", "ablation", "tools", "tracing", "knockout",
                                             "heads", "learned")
    assert registry.method_class("loo").name == "loo"


def test_a_new_method_is_registered_by_subclassing_and_reaches_the_report(offset_method,
                                                                         tiny_lm):
    assert registry.method_names() == ("attention", "learned", "loo", "tools", "ablation",
                                       "offset", "tracing", "knockout", "heads",
                                       "input_x_gradient", "integrated_gradients")
    assert "offset" not in registry.default_methods()
    assert registry.methods_of_kind("reliance") == ("learned", "loo", "tools", "ablation",
                                                    "offset", "knockout")
    config = AuditConfig(methods=("loo", "offset"), method_settings={"offset": {"offset": 2.5}})
    report = run_audit(zelk_case(), tiny_lm, config)
    ids = [u.id for u in report.units]
    for i, unit in enumerate(report.units):
        assert unit.reliance["offset"] == 2.5 + i
    assert report.methods["offset"] == {"offset": 2.5, "cut": None}
    assert report.settings["config"]["method_settings"]["offset"] == {"offset": 2.5}
    assert report.cost["per_method"]["offset"]["forward_passes"] == 0
    assert report.faithfulness["offset"]["topk_drop"]["1"] is not None
    assert report.ranking("offset") == ids[::-1]
    header = next(line for line in markdown([report]).splitlines()
                  if line.startswith("| unit |"))
    assert header.split(" | ")[3:8] == ["loo", "ablation", "tools", "offset", "tracing"]
    assert "<th>offset (reliance)</th>" in render_html([report])


def test_a_new_provenance_method_lands_in_provenance(uniform_provenance, tiny_lm):
    report = run_audit(zelk_case(), tiny_lm, AuditConfig(methods=("uniform", "loo")))
    unit = report.unit("d1")
    assert unit.provenance == {"uniform": pytest.approx(1 / len(report.units))}
    assert "uniform" not in unit.reliance
    assert list(report.methods)[0] == "uniform"  # priority 5 runs before loo


def test_the_grpc_config_carries_a_new_method_and_its_settings(offset_method, tiny_lm):
    message = pb.AuditConfig(methods=["offset"])
    to_struct({"offset": {"offset": 4}}, message.method_settings)
    config = config_from_proto(message)
    assert config.method_settings == {"offset": {"offset": 4}}
    assert config_from_proto(config_to_proto(config)) == config
    report = report_from_proto(report_to_proto(run_audit(zelk_case(), tiny_lm, config)))
    assert [u.reliance["offset"] for u in report.units] == [4 + i for i in range(6)]


def test_registered_methods_do_not_leak_between_tests(tiny_lm):
    assert registry.method_names() == ALL
    report = run_audit(zelk_case(), tiny_lm, AuditConfig(methods=("loo",)))
    # the default methods' keys always; an opt-in method's only when it ran
    assert set(report.unit("d1").reliance) == {"loo", "ablation", "tools", "tracing"}


def test_run_turns_a_budget_cut_in_compute_into_a_cut(tiny_lm):
    with registry.scoped():
        class Hungry(AuditMethod):
            name = "hungry"
            kind = "reliance"
            priority = 50

            def compute(self, ctx: AuditContext, settings: MethodSettings) -> Outcome:
                ctx.require(10_000)
                raise AssertionError("the budget cannot afford this")

        report = run_audit(zelk_case(), tiny_lm,
                           AuditConfig(methods=("loo", "hungry"), max_forward_passes=100))
    assert report.partial
    assert report.methods["hungry"]["cut"].startswith("pass budget")
    assert all(u.reliance["hungry"] is None for u in report.units)
    assert all(u.reliance["loo"] is not None for u in report.units)


def test_a_method_must_declare_its_kind_and_priority_and_own_its_name():
    with registry.scoped():
        with pytest.raises(TypeError, match="kind, priority"):
            class Vague(AuditMethod):
                name = "vague"

                def compute(self, ctx, settings):
                    return Outcome({})
        with pytest.raises(ValueError, match="'loo' is taken"):
            class Impostor(AuditMethod):
                name = "loo"
                kind = "reliance"
                priority = 99

                def compute(self, ctx, settings):
                    return Outcome({})


def test_unknown_method_names_are_named_errors(tiny_lm):
    with pytest.raises(CaseError) as info:
        registry.method_class("telepathy")
    assert info.value.field == "methods"
    assert "known: " + ", ".join(ALL) in info.value.message
    with pytest.raises(CaseError) as info:
        run_audit(zelk_case(), tiny_lm, AuditConfig(methods="loo,telepathy"))
    assert info.value.field == "methods[1]"
    with pytest.raises(CaseError) as info:
        registry.validate_config(AuditConfig(method_settings={"telepathy": {}}))
    assert info.value.field == "method_settings.telepathy"


@pytest.mark.parametrize(("settings", "field"), [
    ({"ablation": {"ablations": 2}}, "method_settings.ablation.ablations"),
    ({"ablation": {"keep_prob": 1.5}}, "method_settings.ablation.keep_prob"),
    ({"tracing": {"sample": 3}}, "method_settings.tracing.sample"),
    ({"loo": {"regenerate": "sometimes"}}, "method_settings.loo.regenerate"),
    ({"attention": {"anything": 1}}, "method_settings.attention.anything"),
])
def test_a_bad_setting_is_a_named_error(settings, field, tiny_lm):
    config = AuditConfig(method_settings=settings)
    with pytest.raises(CaseError) as info:
        registry.validate_config(config)
    assert info.value.field == field
    with pytest.raises(CaseError) as info:
        run_audit(zelk_case(), tiny_lm, config)
    assert info.value.field == field


def test_method_settings_must_be_a_mapping_per_method():
    with pytest.raises(CaseError) as info:
        AuditConfig.from_dict({"method_settings": {"ablation": 8}})
    assert info.value.field == "method_settings.ablation"


def test_the_deprecated_flat_settings_still_work():
    config = AuditConfig(ablations=8, ablation_keep_prob=0.25, ablation_alpha=0.1, lds_masks=4,
                         tracing_samples=2, tracing_noise_scale=2.0, tracing_window=3,
                         tracing_top_units=1, tracing_in_distribution=False, regenerate=True)
    assert config.method_settings == {
        "ablation": {"ablations": 8, "keep_prob": 0.25, "alpha": 0.1, "lds_masks": 4},
        "tracing": {"samples": 2, "noise_scale": 2.0, "window": 3, "top_units": 1,
                    "in_distribution": False},
        "loo": {"regenerate": True}}
    assert registry.settings_for(config, "tracing").samples == 2
    assert registry.settings_for(AuditConfig(), "ablation").ablations == 64  # the default
    both = AuditConfig.from_dict({"ablations": 8,
                                  "method_settings": {"ablation": {"ablations": 16}}})
    assert both.method_settings == {"ablation": {"ablations": 16}}  # the new shape wins
    legacy = config_from_proto(pb.AuditConfig(ablations=12, regenerate=True))
    assert legacy.method_settings == {"ablation": {"ablations": 12}, "loo": {"regenerate": True}}
    assert not config_to_proto(legacy).HasField("ablations")  # never written back


def test_unset_methods_mean_the_registry_defaults(offset_method):
    assert registry.validate_config(AuditConfig()) == BUILT_IN
    assert registry.validate_config(AuditConfig(methods=("offset", "loo"))) == ("loo", "offset")
    assert config_to_proto(AuditConfig()).methods == []


def test_a_saved_report_keeps_the_columns_of_a_method_this_process_does_not_know():
    report = Report(case_id="c", answer="a", answer_logprob=-1.0, answer_tokens=1, units=[
        {"id": "u", "kind": "source", "reliance": {"loo": 1.0, "mystery": 2.5}}])
    header = next(line for line in markdown([report]).splitlines()
                  if line.startswith("| unit |"))
    assert header.split(" | ")[3:8] == ["loo", "ablation", "tools", "tracing", "mystery"]
    assert "| u | source | — | 1.00 | — | — | — | 2.50 |" in markdown([report])
    assert "<th>mystery (reliance)</th>" in render_html([report])
