"""proto <-> relyscope's Case, AuditConfig and Report, losing nothing on the way.

Proto messages are turned into the same dicts the JSON case and report files hold and then
validated by the models in relyscope.case, so a bad field raises the same `CaseError` with the
same field name (``sources[1].id``) whether a case came as JSON or over gRPC. Unset `optional`
fields are left out of those dicts, so the models' defaults apply.

google.protobuf.Struct stores every number as a double: integral numbers coming back out of a
Struct are returned as ints (counts stay counts; a float that happens to be integral compares
equal either way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from typing import Any

from google.protobuf import struct_pb2

from relyscope.case import Case, CaseError
from relyscope.config import LEGACY_SETTINGS, AuditConfig
from relyscope.report_model import Report
from relyscope.v1 import audit_pb2 as pb

# -- Struct and small helpers ---------------------------------------------------------------


def to_struct(data: Mapping[str, Any], target: struct_pb2.Struct | None = None
              ) -> struct_pb2.Struct:
    struct = target if target is not None else struct_pb2.Struct()
    struct.Clear()
    for key, value in data.items():
        _set_value(struct.fields[str(key)], value)
    return struct


def _set_value(target: struct_pb2.Value, value: Any) -> None:
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int | float):
        target.number_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        to_struct(value, target.struct_value)
    elif isinstance(value, list | tuple):
        target.list_value.Clear()
        for item in value:
            _set_value(target.list_value.values.add(), item)
    else:
        target.string_value = str(value)


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _from_value(value) for key, value in struct.fields.items()}


def _from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [_from_value(item) for item in value.list_value.values]
    return None


def _optional(message: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The set `optional` fields of a message, by name."""
    return {name: getattr(message, name) for name in names if message.HasField(name)}


def _set_optional(message: Any, data: Mapping[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if data.get(name) is not None:
            setattr(message, name, data[name])


def scores_to_proto(scores: Mapping[str, float | None],
                    target: MutableMapping[str, pb.Score]) -> None:
    for key, value in scores.items():
        target[key].CopyFrom(pb.Score() if value is None else pb.Score(value=value))


def scores_from_proto(scores: Mapping[str, pb.Score]) -> dict[str, float | None]:
    return {key: s.value if s.HasField("value") else None for key, s in scores.items()}


# -- Case ------------------------------------------------------------------------------------

_SOURCE_OPTIONAL = ("title", "retrieval_score")
_TOOL_OPTIONAL = ("arguments", "status", "counterfactual")
_CASE_OPTIONAL = ("system", "answer", "model")


def case_to_dict(message: pb.Case) -> dict[str, Any]:
    """The JSON-shaped dict of a proto case (unset optional fields left out)."""
    data: dict[str, Any] = {"id": message.id, "query": message.query,
                            **_optional(message, _CASE_OPTIONAL)}
    data["sources"] = [{"id": s.id, "text": s.text, **_optional(s, _SOURCE_OPTIONAL),
                        "metadata": from_struct(s.metadata)} for s in message.sources]
    data["tool_calls"] = [{"id": t.id, "name": t.name, "output": t.output,
                           **_optional(t, _TOOL_OPTIONAL)} for t in message.tool_calls]
    if message.decoding.HasField("max_new_tokens"):
        data["decoding"] = {"max_new_tokens": message.decoding.max_new_tokens}
    data["metadata"] = from_struct(message.metadata)
    if message.HasField("claims"):
        data["claims"] = claims_from_proto(message.claims)
    return data


def claims_from_proto(message: pb.Claims) -> Any:
    """"auto", or the [start, end] spans (validated where the case or config is)."""
    return "auto" if message.auto else [[span.start, span.end] for span in message.spans]


def claims_to_proto(claims: Any, message: pb.Claims) -> None:
    if claims == "auto":
        message.auto = True
    else:
        for start, end in claims:
            message.spans.add(start=start, end=end)


def case_from_proto(message: pb.Case) -> Case:
    """Raises CaseError naming the field exactly as for a JSON case file."""
    return Case.from_dict(case_to_dict(message))


def case_to_proto(case: Case) -> pb.Case:
    data = case.to_dict()
    message = pb.Case(id=case.id, query=case.query)
    _set_optional(message, data, _CASE_OPTIONAL)
    for source in data["sources"]:
        item = message.sources.add(id=source["id"], text=source["text"])
        _set_optional(item, source, _SOURCE_OPTIONAL)
        to_struct(source["metadata"], item.metadata)
    for call in data["tool_calls"]:
        item = message.tool_calls.add(id=call["id"], name=call["name"], output=call["output"])
        _set_optional(item, call, _TOOL_OPTIONAL)
    message.decoding.max_new_tokens = case.decoding.max_new_tokens
    to_struct(data["metadata"], message.metadata)
    if case.claims is not None:
        claims_to_proto(case.claims, message.claims)
    return message


# -- AuditConfig --------------------------------------------------------------------------------

_CONFIG_OPTIONAL = ("granularity", "tool_mode", "removal", "stability", "seed",
                    "max_forward_passes", "max_seconds", "preset")
# deprecated typed fields, read (AuditConfig moves them into method_settings), never written
_CONFIG_LEGACY = tuple(LEGACY_SETTINGS)
_THRESHOLDS = ("relied_drop", "attended_ratio", "parametric_logprob_per_token",
               "redundancy_ratio", "ablation_relative", "unstable_spearman",
               "proxy_logprob_per_token", "proxy_agreement")


def config_from_proto(message: pb.AuditConfig | None) -> AuditConfig:
    """Unset fields take AuditConfig's defaults; raises CaseError naming the field."""
    if message is None:
        return AuditConfig()
    data: dict[str, Any] = _optional(message, _CONFIG_OPTIONAL + _CONFIG_LEGACY)
    if message.methods:
        data["methods"] = list(message.methods)
    if message.HasField("method_settings"):
        data["method_settings"] = from_struct(message.method_settings)
    thresholds = _optional(message.thresholds, _THRESHOLDS)
    if thresholds:
        data["thresholds"] = thresholds
    if message.HasField("claims"):
        data["claims"] = claims_from_proto(message.claims)
    return AuditConfig.from_dict(data)


def config_to_proto(config: AuditConfig) -> pb.AuditConfig:
    data = config.model_dump(mode="json")
    # methods left unset go as none, so the server's registry picks its default set
    message = pb.AuditConfig(methods=data["methods"] if "methods" in config.model_fields_set
                             else [])
    _set_optional(message, data, _CONFIG_OPTIONAL)
    if data["method_settings"]:
        to_struct(data["method_settings"], message.method_settings)
    _set_optional(message.thresholds, data["thresholds"], _THRESHOLDS)
    if config.claims is not None:
        claims_to_proto(config.claims, message.claims)
    return message


# -- Report ----------------------------------------------------------------------------------------

_COST_INTS = ("forward_passes", "model_calls", "tokens", "cache_hits", "cache_misses")
_COST_FLOATS = ("seconds", "shared_scoring_seconds")
_METHOD_COST = {"forward_passes", "seconds"}


def _cost_to_proto(cost: Mapping[str, Any], message: pb.Cost) -> None:
    extra: dict[str, Any] = {}
    for key, value in cost.items():
        if key in _COST_INTS and isinstance(value, int) and not isinstance(value, bool):
            setattr(message, key, value)
        elif key in _COST_FLOATS and isinstance(value, int | float):
            setattr(message, key, float(value))
        elif key == "per_method" and _fits_method_costs(value):
            for name, entry in value.items():
                _set_optional(message.per_method[name], entry, ("forward_passes", "seconds"))
        else:
            extra[key] = value
    if extra:
        to_struct(extra, message.extra)


def _fits_method_costs(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(entry, Mapping) and set(entry) <= _METHOD_COST
        and isinstance(entry.get("forward_passes", 0), int)
        and isinstance(entry.get("seconds", 0.0), int | float)
        for entry in value.values())


def _cost_from_proto(message: pb.Cost) -> dict[str, Any]:
    cost: dict[str, Any] = _optional(message, _COST_INTS + _COST_FLOATS)
    if message.per_method:
        cost["per_method"] = {name: _optional(entry, ("forward_passes", "seconds"))
                              for name, entry in message.per_method.items()}
    cost.update(from_struct(message.extra))
    return cost


def report_to_proto(report: Report) -> pb.Report:
    data = report.to_dict()
    message = pb.Report(case_id=report.case_id, answer=report.answer,
                        answer_logprob=report.answer_logprob,
                        answer_tokens=report.answer_tokens, partial=report.partial,
                        verdicts=report.verdicts, warnings=report.warnings,
                        errors=report.errors)
    for unit in report.units:
        item = message.units.add(id=unit.id, kind=unit.kind)
        if unit.parent is not None:
            item.parent = unit.parent
        if unit.verdict is not None:
            item.verdict = unit.verdict
        _set_optional(item, {"text": unit.text, "title": unit.title}, ("text", "title"))
        if unit.char_span is not None:
            item.char_span.start, item.char_span.end = unit.char_span
        scores_to_proto(unit.provenance, item.provenance)
        scores_to_proto(unit.reliance, item.reliance)
    to_struct(data["faithfulness"], message.faithfulness)
    to_struct(data["methods"], message.methods)
    to_struct(data["settings"], message.settings)
    _cost_to_proto(data["cost"], message.cost)
    for claim in data["claims"]:
        _claim_to_proto(claim, message.claims.add())
    if data.get("proxy") is not None:
        to_struct(data["proxy"], message.proxy)
    return message


_CLAIM_OPTIONAL = ("joint_drop", "verdict", "reading")


def _claim_to_proto(claim: Mapping[str, Any], message: pb.Claim) -> None:
    message.index, message.text = claim["index"], claim["text"]
    message.char_span.start, message.char_span.end = claim["char_span"]
    message.token_span.start, message.token_span.end = claim["token_span"]
    message.logprob, message.logprob_per_token = claim["logprob"], claim["logprob_per_token"]
    _set_optional(message, claim, _CLAIM_OPTIONAL)
    for method, scores in claim["scores"].items():
        scores_to_proto(scores, message.scores[method].scores)
    scores_to_proto(claim["reliance"], message.reliance)
    message.top_units.extend(claim["top_units"])
    message.citations.extend(claim["citations"])
    message.verdicts.extend(claim["verdicts"])
    to_struct(claim["extras"], message.extras)


def _claim_from_proto(message: pb.Claim) -> dict[str, Any]:
    return {"index": message.index, "text": message.text,
            "char_span": (message.char_span.start, message.char_span.end),
            "token_span": (message.token_span.start, message.token_span.end),
            "logprob": message.logprob, "logprob_per_token": message.logprob_per_token,
            **_optional(message, _CLAIM_OPTIONAL),
            "scores": {method: scores_from_proto(entry.scores)
                       for method, entry in message.scores.items()},
            "reliance": scores_from_proto(message.reliance),
            "top_units": list(message.top_units), "citations": list(message.citations),
            "verdicts": list(message.verdicts), "extras": from_struct(message.extras)}


def report_from_proto(message: pb.Report) -> Report:
    units = [{"id": u.id, "kind": u.kind, **_optional(u, ("parent", "verdict", "text", "title")),
              "provenance": scores_from_proto(u.provenance),
              "reliance": scores_from_proto(u.reliance),
              **({"char_span": (u.char_span.start, u.char_span.end)}
                 if u.HasField("char_span") else {})} for u in message.units]
    return Report.from_dict({
        "case_id": message.case_id, "answer": message.answer,
        "answer_logprob": message.answer_logprob, "answer_tokens": message.answer_tokens,
        "partial": message.partial, "units": units, "verdicts": list(message.verdicts),
        "faithfulness": from_struct(message.faithfulness),
        "methods": from_struct(message.methods), "errors": dict(message.errors),
        "cost": _cost_from_proto(message.cost), "settings": from_struct(message.settings),
        "warnings": list(message.warnings),
        "claims": [_claim_from_proto(claim) for claim in message.claims],
        "proxy": from_struct(message.proxy) if message.HasField("proxy") else None})


# -- request parameters ---------------------------------------------------------------------------


def parameters_from_proto(parameters: Mapping[str, pb.Parameter]) -> dict[str, Any]:
    """KServe-style parameters as plain values; an unset parameter raises CaseError."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("choice")
        if choice is None:
            raise CaseError(f"parameters[{key}]", "no value set")
        values[key] = getattr(parameter, choice)
    return values


def parameters_to_proto(values: Mapping[str, Any],
                        target: MutableMapping[str, pb.Parameter]) -> None:
    for key, value in values.items():
        if isinstance(value, bool):
            target[key].CopyFrom(pb.Parameter(bool_param=value))
        elif isinstance(value, int):
            target[key].CopyFrom(pb.Parameter(int64_param=value))
        elif isinstance(value, float):
            target[key].CopyFrom(pb.Parameter(double_param=value))
        else:
            target[key].CopyFrom(pb.Parameter(string_param=str(value)))


# -- jobs, errors and stream events ---------------------------------------------------------------


def error_to_proto(error: Any) -> pb.Error:
    """A relyscope.service.errors.JobError as the proto Error."""
    return pb.Error(code=error.code, status=error.status, message=error.message,
                    field=error.field)


def job_to_proto(job: Any) -> pb.Job:
    """A relyscope.service.jobs.inprocess.Job snapshot as the proto Job."""
    message = pb.Job(job_id=job.job_id, request_id=job.request_id,
                     state=pb.JobState.Value(f"JOB_STATE_{job.state.value}"),
                     methods_done=list(job.methods_done), position=job.position)
    for name in ("created_at", "started_at", "finished_at"):
        seconds = getattr(job, name)
        if seconds is not None:
            getattr(message, name).FromNanoseconds(int(seconds * 1e9))
    if job.report is not None:
        message.report.CopyFrom(report_to_proto(job.report))
    if job.error is not None:
        message.error.CopyFrom(error_to_proto(job.error))
    return message


def event_to_proto(request_id: str, event: Mapping[str, Any]) -> pb.AuditEvent | None:
    """A progress event of the audit runner as a stream event (None for unknown kinds)."""
    kind = event.get("event")
    message = pb.AuditEvent(id=request_id)
    if kind == "method_started":
        message.method_started.method = str(event["method"])
    elif kind == "method_finished":
        finished = message.method_finished
        finished.method = str(event["method"])
        scores_to_proto(event.get("scores") or {}, finished.scores)
        finished.forward_passes = int(event.get("forward_passes") or 0)
        finished.seconds = float(event.get("seconds") or 0.0)
    elif kind == "method_failed":
        message.method_failed.method = str(event["method"])
        message.method_failed.error = str(event.get("error", ""))
    elif kind == "report":
        message.report.CopyFrom(report_to_proto(event["report"]))
    else:
        return None
    return message
