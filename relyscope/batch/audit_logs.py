"""`audit_logs`: audit every record of some log files into a resumable results JSONL.

Records whose id already has a line in the output are skipped, so a killed run is resumed by
running it again; malformed records become error lines (never retried) and the run goes on.
With ``workers > 1`` the audits run in spawned worker processes that each load the model once;
results come back to this process, which alone writes the output, so lines never interleave.
The summary HTML and the annotations file are rebuilt from the whole output at the end, so they
cover earlier runs too and a crash never leaves them half-updated.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relyscope.batch.results import (
    ResultsFile,
    error_detail,
    error_line,
    ok_line,
    read_results,
)
from relyscope.case import Case
from relyscope.config import AuditConfig
from relyscope.ingest.detect import read_logs
from relyscope.ingest.records import FormatName, LogRecord
from relyscope.report_model import Report

if TYPE_CHECKING:
    from relyscope.models import CausalLM
    from relyscope.models.loading import ModelOptions

#: Audits queued per worker: enough to keep each busy, few enough that a kill loses little.
QUEUE_PER_WORKER = 2


@dataclass
class BatchSummary:
    """What one `audit_logs` run did."""

    out: Path
    records: int = 0          # distinct record ids read from the logs
    skipped: int = 0          # already in the output before this run
    audited: int = 0          # ok lines written by this run
    errors: int = 0           # error lines written by this run
    results: int = 0          # lines in the output after this run
    duplicate_ids: list[str] = field(default_factory=list)
    repaired_tail: bool = False
    seconds: float = 0.0
    html: Path | None = None
    annotations: Path | None = None

    def describe(self) -> str:
        text = (f"{self.records} records: {self.audited} audited, {self.errors} errors, "
                f"{self.skipped} already in {self.out} ({self.results} results there now) "
                f"in {self.seconds:.1f} s")
        if self.repaired_tail:
            text += "; a torn final line from an interrupted run was cut away"
        if self.duplicate_ids:
            text += f"; {len(self.duplicate_ids)} records repeat an earlier record id and " \
                    f"were skipped (first: {self.duplicate_ids[0]})"
        return text


def audit_logs(paths: str | Path | Iterable[str | Path], out: str | Path, *,
               config: AuditConfig | None = None, lm: CausalLM | None = None,
               model: ModelOptions | str | None = None, workers: int = 1,
               html: str | Path | None = None,
               annotations: str | Path | None = None, fmt: FormatName | None = None,
               parse_arguments: bool = False, progress: bool = True) -> BatchSummary:
    """Audit the records of `paths` not yet in `out`, appending one line per record.

    `lm` (in-process, one worker only) or `model` chooses the model: `ModelOptions` (model
    folder, device, dtype), a model folder, or None for the packaged model on the CPU; every
    worker process loads it with the same options. `parse_arguments` makes tool-call arguments
    that are not JSON an error.
    """
    from relyscope.models.loading import ModelOptions

    if workers < 1:
        raise ValueError("workers must be at least 1")
    if lm is not None and workers > 1:
        raise ValueError("a loaded model cannot be shared with worker processes: give the "
                         "model's folder or ModelOptions (model=...) with workers > 1")
    options = ModelOptions.of(model)  # bad options fail here, before any log is read
    config = config or AuditConfig(methods=("attention", "loo"))
    started = time.monotonic()
    summary = BatchSummary(out=Path(out))
    with ResultsFile.open(out) as results:
        summary.repaired_tail = bool(results.repaired_tail)
        todo: list[LogRecord] = []
        seen: set[str] = set()
        for record in read_logs(paths, fmt=fmt, parse_arguments=parse_arguments):
            if record.record_id in seen:
                summary.duplicate_ids.append(record.record_id)
                continue
            seen.add(record.record_id)
            if record.record_id in results.done:
                summary.skipped += 1
            elif record.case is None:
                detail = error_detail(record.error or ValueError("no case"))
                results.append(error_line(record.record_id, record.location, record.format,
                                          detail))
                summary.errors += 1
            else:
                todo.append(record)
        summary.records = len(seen)
        if todo:
            _audit_all(todo, results, summary, config=config, lm=lm, model=options,
                       workers=workers, progress=progress)
        summary.results = len(results.done)
    if html is not None:
        from relyscope.report.summary import write_summary_html

        summary.html = Path(html)
        write_summary_html(read_results(out), summary.html)
    if annotations is not None:
        summary.annotations = Path(annotations)
        write_result_annotations(read_results(out), summary.annotations)
    summary.seconds = time.monotonic() - started
    return summary


def audit_one(case: Case, lm: CausalLM, config: AuditConfig) -> tuple[str, dict[str, Any]]:
    """("ok", report) or ("error", error detail), as plain dicts; never raises."""
    from relyscope.audits import run_audit

    try:
        return "ok", run_audit(case, lm, config).to_dict()
    except Exception as err:  # one record's failure is its error line, not the run's end
        return "error", error_detail(err, stage="audit")


def _audit_all(todo: list[LogRecord], results: ResultsFile, summary: BatchSummary, *,
               config: AuditConfig, lm: CausalLM | None, model: ModelOptions, workers: int,
               progress: bool) -> None:
    from tqdm import tqdm

    if workers == 1 and lm is None:
        lm = model.load()
    # malformed records already have their error lines: the bar counts them as done
    with tqdm(total=len(todo) + summary.errors, initial=summary.errors, unit="record",
              file=sys.stderr, disable=not progress, dynamic_ncols=True, smoothing=0.05) as bar:
        bar.set_postfix(errors=summary.errors, refresh=False)
        if summary.skipped:
            bar.write(f"resuming: {summary.skipped} records already in {results.path}",
                      file=sys.stderr)

        def record_result(record: LogRecord, status: str, value: dict[str, Any]) -> None:
            assert record.case is not None
            if status == "ok":
                line = ok_line(record.record_id, record.location, record.format, value,
                               record.case)
                summary.audited += 1
            else:
                line = error_line(record.record_id, record.location, record.format, value)
                summary.errors += 1
            results.append(line)
            bar.set_postfix(errors=summary.errors, refresh=False)
            bar.update(1)

        if lm is not None:
            for record in todo:
                assert record.case is not None
                record_result(record, *audit_one(record.case, lm, config))
        else:
            _audit_in_pool(todo, record_result, config=config, model=model, workers=workers)


def _audit_in_pool(todo: list[LogRecord],
                   record_result: Callable[[LogRecord, str, dict[str, Any]], None],
                   *, config: AuditConfig, model: ModelOptions, workers: int) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = iter(todo)
    in_flight: dict[Future[tuple[str, dict[str, Any]]], LogRecord] = {}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(model, config.model_dump(mode="json"), threads)) as pool:

        def submit_next() -> None:
            record = next(pending, None)
            if record is not None:
                in_flight[pool.submit(_audit_in_worker, record.case)] = record

        for _ in range(workers * QUEUE_PER_WORKER):
            submit_next()
        while in_flight:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                record_result(in_flight.pop(future), *future.result())
                submit_next()


_WORKER: dict[str, Any] = {}


def _init_worker(model: ModelOptions, config: dict[str, Any], threads: int) -> None:
    """Runs once in each worker process: split the cores, load the model."""
    import torch

    torch.set_num_threads(threads)
    _WORKER["lm"] = model.load()
    _WORKER["config"] = AuditConfig.model_validate(config)


def _audit_in_worker(case: Case) -> tuple[str, dict[str, Any]]:
    return audit_one(case, _WORKER["lm"], _WORKER["config"])


def write_result_annotations(lines: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Rewrite `path` with the OpenInference span annotations of every ok result line."""
    from relyscope.batch.annotations import annotation_rows, write_annotations

    rows: list[dict[str, Any]] = []
    for line in lines:
        if line.get("status") != "ok":
            continue
        ingest = line.get("ingest") or {}
        report = Report.from_dict(line["report"])
        found = annotation_rows(report, unit_spans=ingest.get("unit_spans") or {},
                                answer_span=ingest.get("answer_span") or line["record_id"])
        if ingest.get("trace_id"):
            for row in found:
                row["trace_id"] = ingest["trace_id"]
        rows.extend(found)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    count = write_annotations(rows, staging, append=False)
    os.replace(staging, path)
    return count
