"""Audit live LangChain runs on a relyscope server, in the background.

    from relyscope.integrations.langchain_service import ServiceAuditCallback
    hook = ServiceAuditCallback("relyscope:50051", sample_rate=0.05)
    chain.invoke(question, config={"callbacks": [hook]})
    hook.jobs[run_id]  # -> the audit's job id on the server, once submitted

Each sampled root run is recorded by a `CaseRecorder` (retrieval, tools, answer) and, when it
ends, queued as a case; a daemon thread submits it (`SubmitAudit`) and keeps the job id under
the run id. The user's chain never waits for the server and never sees its errors: the queue
is bounded (a full queue drops the case), and every failure is logged and counted in
`stats`. The case carries the run id in its metadata (``langchain_run_id``), so the audit
report links back to the run; LangChain gives a callback no way to add metadata to a run
after it started, so the job id is kept here (`jobs`, `job_for`) and passed to `on_submitted`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from relyscope.agents import CaseRecorder
from relyscope.case import Case
from relyscope.client import Client
from relyscope.config import AuditConfig

log = logging.getLogger(__name__)

COUNTERS = ("runs", "sampled", "queued", "submitted", "failed", "dropped", "record_errors")


@dataclass(frozen=True)
class _Pending:
    run_id: UUID
    case: Case


class ServiceAuditCallback(BaseCallbackHandler):
    """A LangChain callback handler that sends sampled runs to a relyscope server for audit.

    `target` is a server address (a `Client` is made with `client_options`), or pass a
    `Client`. `sample_rate` is the share of root runs audited (seeded by `seed`); `config` is
    the audit configuration (None: the server's default). `queue_size` bounds the cases waiting
    to be submitted; `jobs_kept` bounds the run id -> job id links kept (oldest forgotten).
    `submit_timeout` bounds one SubmitAudit call, but the server also takes that call's
    deadline as the audit's time budget (the job comes back partial when it runs longer), so
    it is off by default: a server that is down fails the call at once, and one that hangs
    holds only the submitting thread while new cases are dropped and counted.
    """

    raise_error = False  # LangChain logs a handler's exception instead of raising it

    def __init__(self, target: str | Client, *, sample_rate: float = 1.0,
                 config: AuditConfig | None = None, queue_size: int = 256,
                 submit_timeout: float | None = None, seed: int | None = None,
                 on_submitted: Callable[[UUID, str], None] | None = None,
                 jobs_kept: int = 10_000, **client_options: Any) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.client = target if isinstance(target, Client) else Client(target,
                                                                       **client_options)
        self._own_client = not isinstance(target, Client)
        self.sample_rate = sample_rate
        self.config = config
        self.submit_timeout = submit_timeout
        self.on_submitted = on_submitted
        self.jobs: OrderedDict[UUID, str] = OrderedDict()  # run id -> job id, newest last
        self.jobs_kept = jobs_kept  # the oldest links are forgotten beyond this many
        self.stats = dict.fromkeys(COUNTERS, 0)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._recorders: dict[UUID, CaseRecorder] = {}  # root run id -> its recorder
        self._roots: dict[UUID, UUID] = {}  # any run id of a sampled run -> its root run id
        self._seen: dict[UUID, UUID] = {}  # any run id of an unsampled run -> its root run id
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_size)
        self._worker = threading.Thread(target=self._submit_loop, daemon=True,
                                        name="relyscope-audit-submit")
        self._worker.start()

    # -- public -----------------------------------------------------------------------------

    def job_for(self, run_id: UUID | str) -> str | None:
        """The job id of a submitted run (None when unsampled, pending, dropped or failed)."""
        return self.jobs.get(UUID(str(run_id)))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued case was submitted or failed; False on timeout."""
        give_up = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > give_up:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the submitting thread and close the client if this handler made it."""
        self.flush(timeout)
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        self._worker.join(timeout=5.0)
        if self._own_client:
            self.client.close()

    # -- routing LangChain's events to each run's recorder ----------------------------------

    def _start(self, run_id: UUID, parent_run_id: UUID | None) -> CaseRecorder | None:
        """The recorder of the root run `run_id` belongs to, deciding sampling at the root."""
        with self._lock:
            if parent_run_id is not None:
                if parent_run_id in self._roots:
                    root = self._roots[parent_run_id]
                    self._roots[run_id] = root
                    return self._recorders.get(root)
                if parent_run_id in self._seen:
                    self._seen[run_id] = self._seen[parent_run_id]
                    return None
            # a root: no parent, or a parent this handler was not attached to
            self.stats["runs"] += 1
            if self._random.random() >= self.sample_rate:
                self._seen[run_id] = run_id
                return None
            self.stats["sampled"] += 1
            self._roots[run_id] = run_id
            self._recorders[run_id] = CaseRecorder()
            return self._recorders[run_id]

    def _recorder(self, run_id: UUID) -> CaseRecorder | None:
        with self._lock:
            root = self._roots.get(run_id)
            return None if root is None else self._recorders.get(root)

    def _forward(self, event: str, recorder: CaseRecorder | None, *args: Any,
                 **kwargs: Any) -> None:
        if recorder is None:
            return
        try:
            getattr(recorder, event)(*args, **kwargs)
        except Exception:  # noqa: BLE001 - recording must never fail the user's run
            self._count("record_errors")
            log.exception("relyscope: recording %s failed", event)

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        recorder = self._start(run_id, parent_run_id)
        root = self._is_root(run_id)
        self._forward("on_chain_start", recorder, serialized, inputs, run_id=run_id,
                      parent_run_id=None if root else parent_run_id, **kwargs)

    def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: Any, *,
                            run_id: UUID, parent_run_id: UUID | None = None,
                            **kwargs: Any) -> None:
        recorder = self._start(run_id, parent_run_id)
        self._forward("on_chat_model_start", recorder, serialized, messages, run_id=run_id,
                      parent_run_id=parent_run_id, **kwargs)

    def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *,
                     run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        recorder = self._start(run_id, parent_run_id)
        self._forward("on_llm_start", recorder, serialized, prompts, run_id=run_id,
                      parent_run_id=parent_run_id, **kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._forward("on_llm_end", self._recorder(run_id), response, run_id=run_id, **kwargs)
        self._end(run_id, ok=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, ok=False)

    def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, *,
                           run_id: UUID, parent_run_id: UUID | None = None,
                           **kwargs: Any) -> None:
        recorder = self._start(run_id, parent_run_id)
        self._forward("on_retriever_start", recorder, serialized, query, run_id=run_id,
                      parent_run_id=parent_run_id, **kwargs)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._forward("on_retriever_end", self._recorder(run_id), documents, run_id=run_id,
                      **kwargs)
        self._end(run_id, ok=True)

    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *,
                      run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:
        recorder = self._start(run_id, parent_run_id)
        self._forward("on_tool_start", recorder, serialized, input_str, run_id=run_id,
                      parent_run_id=parent_run_id, **kwargs)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._forward("on_tool_end", self._recorder(run_id), output, run_id=run_id, **kwargs)
        self._end(run_id, ok=True)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._forward("on_tool_error", self._recorder(run_id), error, run_id=run_id, **kwargs)
        self._end(run_id, ok=False)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, ok=True)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, ok=False)

    # -- a root run ends: queue its case ------------------------------------------------------

    def _is_root(self, run_id: UUID) -> bool:
        with self._lock:
            return self._roots.get(run_id) == run_id

    def _end(self, run_id: UUID, *, ok: bool) -> None:
        with self._lock:
            if self._seen.get(run_id) == run_id:  # an unsampled root: forget its tree
                self._seen = {k: v for k, v in self._seen.items() if v != run_id}
                return
            if self._roots.get(run_id) != run_id:
                return
            recorder = self._recorders.pop(run_id)
            self._roots = {k: v for k, v in self._roots.items() if v != run_id}
        if not ok:  # a failed run has no answer to audit
            return
        try:
            case = recorder.to_case(f"langchain-{run_id}",
                                    metadata={"langchain_run_id": str(run_id)})
        except Exception:  # noqa: BLE001 - a run that makes no case is counted, not raised
            self._count("record_errors")
            log.exception("relyscope: run %s could not be recorded as a case", run_id)
            return
        try:
            self._queue.put_nowait(_Pending(run_id, case))
            self._count("queued")
        except queue.Full:
            self._count("dropped")
            log.warning("relyscope: audit queue full, run %s not audited", run_id)

    # -- the submitting thread ----------------------------------------------------------------

    def _submit_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._submit(item)
            finally:
                self._queue.task_done()

    def _submit(self, item: _Pending) -> None:
        try:
            job_id = self.client.submit(item.case, self.config, request_id=item.run_id.hex,
                                        timeout=self.submit_timeout)
        except Exception as err:  # noqa: BLE001 - the server's trouble is logged and counted
            self._count("failed")
            log.warning("relyscope: submitting run %s failed: %s", item.run_id, err)
            return
        with self._lock:
            self.jobs[item.run_id] = job_id
            while len(self.jobs) > self.jobs_kept:
                self.jobs.popitem(last=False)
            self.stats["submitted"] += 1
        if self.on_submitted is not None:
            try:
                self.on_submitted(item.run_id, job_id)
            except Exception:  # noqa: BLE001
                log.exception("relyscope: on_submitted failed for run %s", item.run_id)

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1
