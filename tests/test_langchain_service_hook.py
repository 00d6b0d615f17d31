"""The LangChain hook into the service: a real LCEL RAG chain, audited on a real server.

The chain is langchain-core runnables around relyscope's FAISS index (through its LangChain
adapter); only the LLM is a fake chat model (an API model cannot run here). The server is a
real gRPC server on a free localhost port with the packaged model.
"""

from __future__ import annotations

import socket
import time
import uuid
from importlib import resources
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from service_support import running_server

from relyscope.client import Client
from relyscope.config import AuditConfig
from relyscope.integrations.langchain_service import ServiceAuditCallback
from relyscope.retrievers import FaissRetriever
from relyscope.retrievers.langchain import as_langchain_retriever

DEMO = Path(str(resources.files("relyscope") / "data" / "demo_corpus.jsonl"))
SYSTEM = "Answer the question in one sentence using the context."
QA = [
    ("Who founded the Zelk guild of glassblowers?", "zelk-guild#c0",
     "The Zelk guild was founded by Anna Roth."),
    ("Who designed the Kestrel Point lighthouse?", "kestrel-lighthouse#c0",
     "The Kestrel Point lighthouse was designed by Edith Marrowby."),
    ("How many martens live in the Grey Hills?", "grey-hills#c0",
     "About two hundred martens live in the Grey Hills."),
]
AUDIT = AuditConfig(methods=("loo",))


@pytest.fixture(scope="module")
def retriever():
    return as_langchain_retriever(FaissRetriever.build(DEMO, progress=False), top_k=3)


def rag_chain(retriever, answers: list[str]) -> Runnable:
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM), ("human", "Context:\n{context}\n\nQuestion: {question}")])

    def context(docs) -> str:
        return "\n\n".join(d.page_content for d in docs)

    return ({"context": retriever | RunnableLambda(context), "question": RunnablePassthrough()}
            | prompt | FakeListChatModel(responses=answers) | StrOutputParser())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_three_chain_runs_become_three_finished_audits(real_lm, retriever):
    chain = rag_chain(retriever, [a for _, _, a in QA])
    with running_server(real_lm) as server:
        target = f"127.0.0.1:{server.port}"
        submitted: list[tuple[str, str]] = []
        hook = ServiceAuditCallback(target, sample_rate=1.0, config=AUDIT,
                                    on_submitted=lambda run, job: submitted.append((run, job)))
        run_ids = [uuid.uuid4() for _ in QA]
        answers = []
        for (question, _, _), run_id in zip(QA, run_ids, strict=True):
            started = time.perf_counter()
            answers.append(chain.invoke(question, config={"callbacks": [hook],
                                                          "run_id": run_id}))
            assert time.perf_counter() - started < 5  # the chain does not wait for the audit
        assert answers == [a for _, _, a in QA]
        assert hook.flush(60)
        assert hook.stats["runs"] == hook.stats["sampled"] == hook.stats["submitted"] == 3
        assert hook.stats["failed"] == hook.stats["dropped"] == hook.stats["record_errors"] == 0
        assert len(hook.jobs) == 3 and len(set(hook.jobs.values())) == 3
        assert sorted(submitted) == sorted(hook.jobs.items())
        assert set(hook.jobs) == set(run_ids)
        with Client(target, timeout=60) as client:
            for (_, planted, answer), run_id in zip(QA, run_ids, strict=True):
                job_id = hook.job_for(run_id)
                status = client.wait(job_id, timeout=300)
                assert status.state == "DONE", status.error
                report = status.report
                assert report is not None and report.case_id == f"langchain-{run_id}"
                assert report.answer == answer
                # the case the hook recorded: the three retrieved chunks, the planted one among
                sources = [u.id for u in report.units if u.kind == "source"]
                assert len(sources) == 3 and planted in sources
                assert "loo" in report.methods
                assert not report.partial, report.warnings
                assert report.unit(planted).reliance["loo"] > 1.0  # the fact is in it
        hook.close()
        # only the newest `jobs_kept` links stay, so a long-lived hook does not grow forever
        small = ServiceAuditCallback(target, config=AuditConfig(methods=("attention",)),
                                     jobs_kept=1)
        second = uuid.uuid4()
        for run_id in (uuid.uuid4(), second):
            rag_chain(retriever, ["x"]).invoke(QA[0][0], config={"callbacks": [small],
                                                                 "run_id": run_id})
        assert small.flush(60) and small.stats["submitted"] == 2
        assert list(small.jobs) == [second]
        small.close()


def test_server_down_the_chain_still_answers_and_the_failure_is_counted(retriever):
    chain = rag_chain(retriever, [QA[0][2]])
    hook = ServiceAuditCallback(f"127.0.0.1:{free_port()}", sample_rate=1.0, config=AUDIT,
                                submit_timeout=5)
    answer = chain.invoke(QA[0][0], config={"callbacks": [hook]})
    assert answer == QA[0][2]
    assert hook.flush(30)
    assert hook.stats["sampled"] == 1 and hook.stats["queued"] == 1
    assert hook.stats["failed"] == 1 and hook.stats["submitted"] == 0 and hook.jobs == {}
    hook.close()


def test_sampling_rate_zero_records_nothing(retriever):
    chain = rag_chain(retriever, ["a", "b", "c"])
    hook = ServiceAuditCallback(f"127.0.0.1:{free_port()}", sample_rate=0.0)
    for question, _, _ in QA:
        chain.invoke(question, config={"callbacks": [hook]})
    assert hook.flush(5)
    assert hook.stats["runs"] == 3 and hook.stats["sampled"] == hook.stats["queued"] == 0
    assert hook.stats["failed"] == 0
    hook.close()


def test_a_full_queue_drops_and_counts_without_blocking(retriever):
    """A server that accepts the connection and never answers holds the submitting thread."""
    chain = rag_chain(retriever, ["x"] * 6)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hook = ServiceAuditCallback(f"127.0.0.1:{silent.getsockname()[1]}", sample_rate=1.0,
                                    queue_size=1, submit_timeout=3)
        started = time.perf_counter()
        for _ in range(6):
            assert chain.invoke(QA[0][0], config={"callbacks": [hook]}) == "x"
        assert time.perf_counter() - started < 3  # no run waited for the stuck submission
        assert hook.flush(30)
    stats = hook.stats
    assert stats["sampled"] == 6 and stats["queued"] + stats["dropped"] == 6
    assert stats["dropped"] >= 3 and stats["failed"] == stats["queued"]
    hook.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="sample_rate"):
        ServiceAuditCallback("127.0.0.1:1", sample_rate=1.5)
    with pytest.raises(ValueError, match="queue_size"):
        ServiceAuditCallback("127.0.0.1:1", queue_size=0)
