import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_DONE: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_DONE: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class Parameter(_message.Message):
    __slots__ = ("bool_param", "int64_param", "string_param", "double_param")
    BOOL_PARAM_FIELD_NUMBER: _ClassVar[int]
    INT64_PARAM_FIELD_NUMBER: _ClassVar[int]
    STRING_PARAM_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_PARAM_FIELD_NUMBER: _ClassVar[int]
    bool_param: bool
    int64_param: int
    string_param: str
    double_param: float
    def __init__(self, bool_param: _Optional[bool] = ..., int64_param: _Optional[int] = ..., string_param: _Optional[str] = ..., double_param: _Optional[float] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "status", "message", "field")
    CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    code: int
    status: str
    message: str
    field: str
    def __init__(self, code: _Optional[int] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class Source(_message.Message):
    __slots__ = ("id", "text", "title", "retrieval_score", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    title: str
    retrieval_score: float
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ..., retrieval_score: _Optional[float] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments", "output", "status", "counterfactual")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNTERFACTUAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments: str
    output: str
    status: str
    counterfactual: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ..., output: _Optional[str] = ..., status: _Optional[str] = ..., counterfactual: _Optional[str] = ...) -> None: ...

class Decoding(_message.Message):
    __slots__ = ("max_new_tokens",)
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    def __init__(self, max_new_tokens: _Optional[int] = ...) -> None: ...

class Case(_message.Message):
    __slots__ = ("id", "system", "query", "sources", "tool_calls", "answer", "model", "decoding", "metadata", "claims")
    ID_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DECODING_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    system: str
    query: str
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    answer: str
    model: str
    decoding: Decoding
    metadata: _struct_pb2.Struct
    claims: Claims
    def __init__(self, id: _Optional[str] = ..., system: _Optional[str] = ..., query: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., answer: _Optional[str] = ..., model: _Optional[str] = ..., decoding: _Optional[_Union[Decoding, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., claims: _Optional[_Union[Claims, _Mapping]] = ...) -> None: ...

class ClaimSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Claims(_message.Message):
    __slots__ = ("auto", "spans")
    AUTO_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    auto: bool
    spans: _containers.RepeatedCompositeFieldContainer[ClaimSpan]
    def __init__(self, auto: _Optional[bool] = ..., spans: _Optional[_Iterable[_Union[ClaimSpan, _Mapping]]] = ...) -> None: ...

class Thresholds(_message.Message):
    __slots__ = ("relied_drop", "attended_ratio", "parametric_logprob_per_token", "redundancy_ratio", "ablation_relative", "unstable_spearman", "proxy_logprob_per_token", "proxy_agreement")
    RELIED_DROP_FIELD_NUMBER: _ClassVar[int]
    ATTENDED_RATIO_FIELD_NUMBER: _ClassVar[int]
    PARAMETRIC_LOGPROB_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REDUNDANCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    ABLATION_RELATIVE_FIELD_NUMBER: _ClassVar[int]
    UNSTABLE_SPEARMAN_FIELD_NUMBER: _ClassVar[int]
    PROXY_LOGPROB_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROXY_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    relied_drop: float
    attended_ratio: float
    parametric_logprob_per_token: float
    redundancy_ratio: float
    ablation_relative: float
    unstable_spearman: float
    proxy_logprob_per_token: float
    proxy_agreement: float
    def __init__(self, relied_drop: _Optional[float] = ..., attended_ratio: _Optional[float] = ..., parametric_logprob_per_token: _Optional[float] = ..., redundancy_ratio: _Optional[float] = ..., ablation_relative: _Optional[float] = ..., unstable_spearman: _Optional[float] = ..., proxy_logprob_per_token: _Optional[float] = ..., proxy_agreement: _Optional[float] = ...) -> None: ...

class AuditConfig(_message.Message):
    __slots__ = ("methods", "granularity", "tool_mode", "removal", "ablations", "ablation_keep_prob", "ablation_alpha", "lds_masks", "tracing_samples", "tracing_noise_scale", "tracing_window", "tracing_top_units", "tracing_in_distribution", "regenerate", "stability", "seed", "max_forward_passes", "max_seconds", "thresholds", "method_settings", "claims", "preset")
    METHODS_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TOOL_MODE_FIELD_NUMBER: _ClassVar[int]
    REMOVAL_FIELD_NUMBER: _ClassVar[int]
    ABLATIONS_FIELD_NUMBER: _ClassVar[int]
    ABLATION_KEEP_PROB_FIELD_NUMBER: _ClassVar[int]
    ABLATION_ALPHA_FIELD_NUMBER: _ClassVar[int]
    LDS_MASKS_FIELD_NUMBER: _ClassVar[int]
    TRACING_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TRACING_NOISE_SCALE_FIELD_NUMBER: _ClassVar[int]
    TRACING_WINDOW_FIELD_NUMBER: _ClassVar[int]
    TRACING_TOP_UNITS_FIELD_NUMBER: _ClassVar[int]
    TRACING_IN_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    REGENERATE_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_FORWARD_PASSES_FIELD_NUMBER: _ClassVar[int]
    MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    METHOD_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    methods: _containers.RepeatedScalarFieldContainer[str]
    granularity: str
    tool_mode: str
    removal: str
    ablations: int
    ablation_keep_prob: float
    ablation_alpha: float
    lds_masks: int
    tracing_samples: int
    tracing_noise_scale: float
    tracing_window: int
    tracing_top_units: int
    tracing_in_distribution: bool
    regenerate: bool
    stability: bool
    seed: int
    max_forward_passes: int
    max_seconds: float
    thresholds: Thresholds
    method_settings: _struct_pb2.Struct
    claims: Claims
    preset: str
    def __init__(self, methods: _Optional[_Iterable[str]] = ..., granularity: _Optional[str] = ..., tool_mode: _Optional[str] = ..., removal: _Optional[str] = ..., ablations: _Optional[int] = ..., ablation_keep_prob: _Optional[float] = ..., ablation_alpha: _Optional[float] = ..., lds_masks: _Optional[int] = ..., tracing_samples: _Optional[int] = ..., tracing_noise_scale: _Optional[float] = ..., tracing_window: _Optional[int] = ..., tracing_top_units: _Optional[int] = ..., tracing_in_distribution: _Optional[bool] = ..., regenerate: _Optional[bool] = ..., stability: _Optional[bool] = ..., seed: _Optional[int] = ..., max_forward_passes: _Optional[int] = ..., max_seconds: _Optional[float] = ..., thresholds: _Optional[_Union[Thresholds, _Mapping]] = ..., method_settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., claims: _Optional[_Union[Claims, _Mapping]] = ..., preset: _Optional[str] = ...) -> None: ...

class Score(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: float
    def __init__(self, value: _Optional[float] = ...) -> None: ...

class UnitReport(_message.Message):
    __slots__ = ("id", "kind", "parent", "provenance", "reliance", "verdict", "text", "char_span", "title")
    class ProvenanceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Score
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Score, _Mapping]] = ...) -> None: ...
    class RelianceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Score
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Score, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    RELIANCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHAR_SPAN_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    parent: str
    provenance: _containers.MessageMap[str, Score]
    reliance: _containers.MessageMap[str, Score]
    verdict: str
    text: str
    char_span: ClaimSpan
    title: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., parent: _Optional[str] = ..., provenance: _Optional[_Mapping[str, Score]] = ..., reliance: _Optional[_Mapping[str, Score]] = ..., verdict: _Optional[str] = ..., text: _Optional[str] = ..., char_span: _Optional[_Union[ClaimSpan, _Mapping]] = ..., title: _Optional[str] = ...) -> None: ...

class UnitScores(_message.Message):
    __slots__ = ("scores",)
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Score
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Score, _Mapping]] = ...) -> None: ...
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.MessageMap[str, Score]
    def __init__(self, scores: _Optional[_Mapping[str, Score]] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("index", "text", "char_span", "token_span", "logprob", "logprob_per_token", "joint_drop", "scores", "reliance", "top_units", "citations", "verdict", "reading", "verdicts", "extras")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: UnitScores
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[UnitScores, _Mapping]] = ...) -> None: ...
    class RelianceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Score
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Score, _Mapping]] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHAR_SPAN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SPAN_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOINT_DROP_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    RELIANCE_FIELD_NUMBER: _ClassVar[int]
    TOP_UNITS_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    READING_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    char_span: ClaimSpan
    token_span: ClaimSpan
    logprob: float
    logprob_per_token: float
    joint_drop: float
    scores: _containers.MessageMap[str, UnitScores]
    reliance: _containers.MessageMap[str, Score]
    top_units: _containers.RepeatedScalarFieldContainer[str]
    citations: _containers.RepeatedScalarFieldContainer[str]
    verdict: str
    reading: str
    verdicts: _containers.RepeatedScalarFieldContainer[str]
    extras: _struct_pb2.Struct
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., char_span: _Optional[_Union[ClaimSpan, _Mapping]] = ..., token_span: _Optional[_Union[ClaimSpan, _Mapping]] = ..., logprob: _Optional[float] = ..., logprob_per_token: _Optional[float] = ..., joint_drop: _Optional[float] = ..., scores: _Optional[_Mapping[str, UnitScores]] = ..., reliance: _Optional[_Mapping[str, Score]] = ..., top_units: _Optional[_Iterable[str]] = ..., citations: _Optional[_Iterable[str]] = ..., verdict: _Optional[str] = ..., reading: _Optional[str] = ..., verdicts: _Optional[_Iterable[str]] = ..., extras: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class MethodCost(_message.Message):
    __slots__ = ("forward_passes", "seconds")
    FORWARD_PASSES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    forward_passes: int
    seconds: float
    def __init__(self, forward_passes: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class Cost(_message.Message):
    __slots__ = ("forward_passes", "model_calls", "tokens", "cache_hits", "cache_misses", "seconds", "shared_scoring_seconds", "per_method", "extra")
    class PerMethodEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MethodCost
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MethodCost, _Mapping]] = ...) -> None: ...
    FORWARD_PASSES_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_MISSES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SHARED_SCORING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PER_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    forward_passes: int
    model_calls: int
    tokens: int
    cache_hits: int
    cache_misses: int
    seconds: float
    shared_scoring_seconds: float
    per_method: _containers.MessageMap[str, MethodCost]
    extra: _struct_pb2.Struct
    def __init__(self, forward_passes: _Optional[int] = ..., model_calls: _Optional[int] = ..., tokens: _Optional[int] = ..., cache_hits: _Optional[int] = ..., cache_misses: _Optional[int] = ..., seconds: _Optional[float] = ..., shared_scoring_seconds: _Optional[float] = ..., per_method: _Optional[_Mapping[str, MethodCost]] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("case_id", "answer", "answer_logprob", "answer_tokens", "partial", "units", "verdicts", "faithfulness", "methods", "errors", "cost", "settings", "warnings", "claims", "proxy")
    class ErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    ANSWER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    FAITHFULNESS_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    PROXY_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    answer: str
    answer_logprob: float
    answer_tokens: int
    partial: bool
    units: _containers.RepeatedCompositeFieldContainer[UnitReport]
    verdicts: _containers.RepeatedScalarFieldContainer[str]
    faithfulness: _struct_pb2.Struct
    methods: _struct_pb2.Struct
    errors: _containers.ScalarMap[str, str]
    cost: Cost
    settings: _struct_pb2.Struct
    warnings: _containers.RepeatedScalarFieldContainer[str]
    claims: _containers.RepeatedCompositeFieldContainer[Claim]
    proxy: _struct_pb2.Struct
    def __init__(self, case_id: _Optional[str] = ..., answer: _Optional[str] = ..., answer_logprob: _Optional[float] = ..., answer_tokens: _Optional[int] = ..., partial: _Optional[bool] = ..., units: _Optional[_Iterable[_Union[UnitReport, _Mapping]]] = ..., verdicts: _Optional[_Iterable[str]] = ..., faithfulness: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., methods: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., errors: _Optional[_Mapping[str, str]] = ..., cost: _Optional[_Union[Cost, _Mapping]] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., claims: _Optional[_Iterable[_Union[Claim, _Mapping]]] = ..., proxy: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ("id", "case", "config", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Parameter
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Parameter, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CASE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    case: Case
    config: AuditConfig
    parameters: _containers.MessageMap[str, Parameter]
    def __init__(self, id: _Optional[str] = ..., case: _Optional[_Union[Case, _Mapping]] = ..., config: _Optional[_Union[AuditConfig, _Mapping]] = ..., parameters: _Optional[_Mapping[str, Parameter]] = ...) -> None: ...

class AuditResponse(_message.Message):
    __slots__ = ("id", "report", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    report: Report
    error: Error
    def __init__(self, id: _Optional[str] = ..., report: _Optional[_Union[Report, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class Queued(_message.Message):
    __slots__ = ("job_id", "position")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    position: int
    def __init__(self, job_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class MethodStarted(_message.Message):
    __slots__ = ("method",)
    METHOD_FIELD_NUMBER: _ClassVar[int]
    method: str
    def __init__(self, method: _Optional[str] = ...) -> None: ...

class MethodFinished(_message.Message):
    __slots__ = ("method", "scores", "forward_passes", "seconds")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Score
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Score, _Mapping]] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FORWARD_PASSES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    method: str
    scores: _containers.MessageMap[str, Score]
    forward_passes: int
    seconds: float
    def __init__(self, method: _Optional[str] = ..., scores: _Optional[_Mapping[str, Score]] = ..., forward_passes: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class MethodFailed(_message.Message):
    __slots__ = ("method", "error")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    method: str
    error: str
    def __init__(self, method: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "queued", "method_started", "method_finished", "method_failed", "report")
    ID_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    METHOD_STARTED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FINISHED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FAILED_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    id: str
    queued: Queued
    method_started: MethodStarted
    method_finished: MethodFinished
    method_failed: MethodFailed
    report: Report
    def __init__(self, id: _Optional[str] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., method_started: _Optional[_Union[MethodStarted, _Mapping]] = ..., method_finished: _Optional[_Union[MethodFinished, _Mapping]] = ..., method_failed: _Optional[_Union[MethodFailed, _Mapping]] = ..., report: _Optional[_Union[Report, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "request_id", "state", "report", "error", "methods_done", "created_at", "started_at", "finished_at", "position")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METHODS_DONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    request_id: str
    state: JobState
    report: Report
    error: Error
    methods_done: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    position: int
    def __init__(self, job_id: _Optional[str] = ..., request_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., report: _Optional[_Union[Report, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., methods_done: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("id", "job_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    job_id: str
    def __init__(self, id: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class JobResponse(_message.Message):
    __slots__ = ("id", "job")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    id: str
    job: Job
    def __init__(self, id: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...
