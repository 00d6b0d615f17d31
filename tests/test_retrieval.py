"""FAISS retriever on the real packaged embedder: build, save/load, chunking, adapters, errors."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda

from relyscope.agents import CaseRecorder
from relyscope.cli.retrieval import add_commands
from relyscope.retrievers import (
    EmbedderMismatchError,
    EmptyCorpusError,
    FaissRetriever,
    IndexNotFoundError,
    IndexSettings,
    load_documents,
)
from relyscope.retrievers.embedder import Embedder
from relyscope.retrievers.langchain import LangChainRetrieverAdapter, as_langchain_retriever

DEMO = Path(str(resources.files("relyscope") / "data" / "demo_corpus.jsonl"))
PLANTED = {
    "Who designed the Kestrel Point lighthouse?": "kestrel-lighthouse#c0",
    "Who founded the Zelk guild of glassblowers?": "zelk-guild#c0",
    "Who leads the Velmora island council now?": "council-leader#c0",
    "How long is the ferry crossing from Mirel to Hask?": "ferry-service#c0",
    "How many martens live in the Grey Hills?": "grey-hills#c0",
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo-index")
    FaissRetriever.build(DEMO, progress=False).save(out)
    return out


@pytest.fixture(scope="module")
def demo(demo_dir) -> FaissRetriever:
    return FaissRetriever.load(demo_dir)


def test_demo_corpus_is_small_with_unique_ids_and_distractors():
    docs = load_documents(DEMO)
    assert 30 <= len(docs) <= 40 and DEMO.stat().st_size < 30_000
    assert len({d.id for d in docs}) == len(docs)
    # distractors: the planted name appears in other documents too
    assert sum("Marrowby" in d.text for d in docs) >= 2
    assert sum("Anna Roth" in d.text for d in docs) >= 2


def test_planted_fact_chunk_comes_first(demo):
    for query, chunk_id in PLANTED.items():
        top = demo.retrieve(query, top_k=3)
        assert top[0].id == chunk_id, (query, [s.id for s in top])
        scores = [s.retrieval_score for s in top]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0 + 1e-5


def test_build_and_reload_give_identical_top_k(demo_dir, demo):
    fresh = FaissRetriever.build(DEMO, progress=False)
    reloaded = FaissRetriever.load(demo_dir)
    queries = [*PLANTED, "cheese aged in tunnels", "a clock that runs fast"]
    expected = fresh.retrieve_many(queries, top_k=5)
    assert reloaded.retrieve_many(queries, top_k=5) == expected
    assert demo.retrieve_many(queries, top_k=5) == expected
    assert [[s.id for s in r] for r in expected] == [[s.id for s in r] for r in
                                                    (fresh.retrieve(q, 5) for q in queries)]


def test_saved_index_has_manifest_and_sources_keep_metadata(demo_dir, demo):
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    assert manifest["embedder"]["id"] == "all-MiniLM-L6-v2"
    assert manifest["embedder"]["dims"] == 384
    assert manifest["index"] == {"type": "flat", "metric": "inner_product", "ntotal": 36}
    assert manifest["chunking"]["chunk_size"] == 200 and manifest["chunking"]["overlap"] == 30
    assert manifest["chunking"]["unit"] == "embedder tokens"
    assert sorted(p.name for p in demo_dir.iterdir()) == ["chunks.jsonl", "index.faiss",
                                                          "manifest.json"]
    (source,) = demo.retrieve("Ostry Blue cheese aging", top_k=1)
    assert source.title == "Ostry Blue cheese"
    assert source.metadata["topic"] == "food" and source.metadata["doc_id"] == "ostry-cheese"
    assert source.text.startswith("Ostry Blue is a sheep's milk cheese")


def test_folder_corpus_reads_txt_and_md(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "a.txt").write_text("The Quorl beacon burns whale oil.")
    (tmp_path / "notes" / "b.md").write_text("# Fenwick\nFenwick keeps 14 goats.")
    (tmp_path / "skip.json").write_text("{}")
    retriever = FaissRetriever.build(tmp_path, progress=True)
    assert "100%" in capsys.readouterr().err  # the tqdm progress bar of the build
    assert sorted(c.id for c in retriever.chunks) == ["a.txt#c0", "notes/b.md#c0"]
    assert retriever.retrieve("How many goats does Fenwick keep?", 1)[0].id == "notes/b.md#c0"


def test_ivf_index_matches_flat_when_probing_every_list(tmp_path, demo):
    ivf = FaissRetriever.build(DEMO, progress=False,
                               settings=IndexSettings(index="ivf", nlist=4, nprobe=4))
    assert ivf.manifest["index"]["nlist"] == 4
    ivf.save(tmp_path / "ivf")
    reloaded = FaissRetriever.load(tmp_path / "ivf")
    for query in PLANTED:
        assert [s.id for s in reloaded.retrieve(query, 3)] == \
            [s.id for s in demo.retrieve(query, 3)]


# -- bad input ----------------------------------------------------------------------------------


def test_missing_index_directory_names_the_path(tmp_path):
    missing = tmp_path / "no-such-index"
    with pytest.raises(IndexNotFoundError, match=str(missing)):
        FaissRetriever.load(missing)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "index.faiss").write_bytes(b"")
    with pytest.raises(IndexNotFoundError, match="chunks.jsonl is missing"):
        FaissRetriever.load(tmp_path / "half")


def test_empty_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(EmptyCorpusError, match="no documents"):
        FaissRetriever.build(tmp_path, progress=False)  # empty folder
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"id": "a", "text": "   "}\n\n')
    with pytest.raises(EmptyCorpusError):
        load_documents(blank)
    with pytest.raises(EmptyCorpusError):
        FaissRetriever.build([], progress=False)
    with pytest.raises(FileNotFoundError, match="corpus not found"):
        load_documents(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: id: duplicate"):
        load_documents(bad)


def test_loading_with_a_different_embedder_is_refused(tmp_path, demo_dir):
    """A real (tiny, random) sentence-transformers model that is not the index's embedder."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from relyscope.models.packaged import embedding_model_dir

    bert_dir = tmp_path / "bert"
    AutoTokenizer.from_pretrained(str(embedding_model_dir())).save_pretrained(bert_dir)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(bert_dir)
    word = models.Transformer(str(bert_dir))
    SentenceTransformer(modules=[word, models.Pooling(32)]).save(str(tmp_path / "tiny"))
    tiny = Embedder.load(str(tmp_path / "tiny"))
    assert tiny.dims == 32
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2"):
        FaissRetriever.load(demo_dir, embedder=tiny)


# -- CLI ------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="relyscope")
    add_commands(root.add_subparsers(dest="command", required=True))
    return root


def test_index_command_builds_a_loadable_index(tmp_path, capsys):
    args = parser().parse_args(["index", str(DEMO), "--out", str(tmp_path / "idx"),
                                "--chunk-size", "120", "--overlap", "20"])
    assert args.func(args) == 0
    assert "indexed 36 documents" in capsys.readouterr().err
    loaded = FaissRetriever.load(tmp_path / "idx")
    assert loaded.manifest["chunking"]["chunk_size"] == 120
    assert loaded.retrieve("Who designed the Kestrel Point lighthouse?", 1)[0].id == \
        "kestrel-lighthouse#c0"


def test_ask_command_on_a_missing_index_fails_before_loading_the_model(tmp_path):
    args = parser().parse_args(["ask", str(tmp_path / "none"), "Who?"])
    with pytest.raises(IndexNotFoundError, match="none"):
        args.func(args)


# -- LangChain adapters ---------------------------------------------------------------------------


class KeywordRetriever(BaseRetriever):
    """A third-party-style LangChain retriever: documents without ids, some repeated."""

    docs: list[LCDocument]

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        words = set(query.lower().split())
        return [d for d in self.docs if words & set(d.page_content.lower().split())]


def test_relyscope_retriever_as_langchain_and_back(demo):
    query = "Who designed the Kestrel Point lighthouse?"
    lc = as_langchain_retriever(demo, top_k=3)
    docs = lc.invoke(query)
    assert [d.id for d in docs] == [s.id for s in demo.retrieve(query, 3)]
    assert docs[0].metadata["retrieval_score"] == demo.retrieve(query, 1)[0].retrieval_score
    assert LangChainRetrieverAdapter(lc).retrieve(query, 2) == [
        s.model_copy(update={"metadata": {**s.metadata, "id": s.id,
                                          "retrieval_score": s.retrieval_score,
                                          "title": s.title}})
        for s in demo.retrieve(query, 2)]


def test_langchain_retriever_as_relyscope_retriever_gets_stable_ids():
    docs = [LCDocument("Tessa rows the mail boat.", metadata={"score": 0.9}),
            LCDocument("The mail boat leaves at dawn.", metadata={"doc_id": "boat-2"}),
            LCDocument("Tessa rows the mail boat.")]
    adapter = LangChainRetrieverAdapter(KeywordRetriever(docs=docs))
    first = adapter.retrieve("mail boat", top_k=5)
    assert [s.id for s in first][1] == "boat-2"
    assert first[0].id.startswith("doc-") and first[2].id == first[0].id + "~2"
    assert first[0].retrieval_score == 0.9
    assert adapter.retrieve("mail boat", top_k=5) == first  # stable across calls
    assert len(adapter.retrieve("mail boat", top_k=1)) == 1


def test_recorder_captures_a_langchain_rag_chain(demo):
    """A LangChain RAG chain over relyscope's index: the recorder turns it into a Case."""
    retriever = as_langchain_retriever(demo, top_k=2)
    model = GenericFakeChatModel(messages=iter(["Ilse Marrowby designed it."]))

    def prompt(inputs: dict) -> str:
        context = "\n".join(d.page_content for d in retriever.invoke(inputs["question"]))
        return f"Context:\n{context}\n\nQuestion: {inputs['question']}"

    chain = RunnableLambda(prompt) | model
    recorder = CaseRecorder()
    chain.invoke({"question": "Who designed the Kestrel Point lighthouse?"},
                 config={"callbacks": [recorder]})
    case = recorder.to_case()
    assert case.query == "Who designed the Kestrel Point lighthouse?"
    assert [s.id for s in case.sources] == [s.id for s in demo.retrieve(case.query, 2)]
    assert case.sources[0].retrieval_score is not None
    assert case.answer == "Ilse Marrowby designed it."
