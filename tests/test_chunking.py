"""Structure-aware chunking on real documents: Python's own language reference pages.

`pydoc_data.topics` ships with every CPython: multi-paragraph reference text (wrapped lines,
blank lines between paragraphs, indented grammar and code) that nobody here wrote.
"""

from __future__ import annotations

import re
from pydoc_data.topics import topics

import pytest

from relyscope.retrievers import Chunk, Document, FaissRetriever, IndexSettings, chunk_documents
from relyscope.retrievers.documents import token_counter
from relyscope.retrievers.embedder import default_embedder

TOPICS = ("compound", "try", "specialnames", "import")


@pytest.fixture(scope="module")
def count():
    return token_counter(default_embedder().model.tokenizer)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [Document(id=f"python/{name}", text=topics[name], title=name,
                     metadata={"source": "pydoc_data"}) for name in TOPICS]


def paragraphs(text: str) -> list[tuple[int, int]]:
    """Char spans of the blank-line separated paragraphs, stripped."""
    spans = []
    for match in re.finditer(r"(?:(?!\n\n).)+", text, flags=re.DOTALL):
        piece = match.group()
        if piece.strip():
            start = match.start() + len(piece) - len(piece.lstrip())
            spans.append((start, match.end() - (len(piece) - len(piece.rstrip()))))
    return spans


def test_documents_are_long_and_multi_paragraph(docs, count):
    for doc in docs:
        assert len(paragraphs(doc.text)) >= 15 and count(doc.text) > 1500


@pytest.mark.parametrize(("size", "overlap"), [(200, 30), (80, 10)])
def test_chunks_round_trip_and_never_cut_a_word(docs, count, size, overlap):
    chunks = chunk_documents(docs, size, overlap, count)
    for doc in docs:
        mine = [c for c in chunks if c.doc_id == doc.id]
        assert [c.id for c in mine] == [f"{doc.id}#c{i}" for i in range(len(mine))]
        assert len(mine) >= 3
        text = doc.text
        covered = bytearray(len(text))
        for chunk in mine:
            assert chunk.text == text[chunk.start:chunk.end] and chunk.text == chunk.text.strip()
            assert chunk.start == 0 or text[chunk.start - 1].isspace(), chunk.id
            assert chunk.end == len(text) or text[chunk.end].isspace(), chunk.id
            assert count(chunk.text) <= size, chunk.id
            covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
            assert Chunk.from_dict(chunk.to_dict()) == chunk
            assert chunk.to_source().metadata == {"source": "pydoc_data", "doc_id": doc.id,
                                                  "chunk": chunk.position,
                                                  "char_start": chunk.start,
                                                  "char_end": chunk.end}
        # nothing but whitespace is left out
        assert all(covered[i] or text[i].isspace() for i in range(len(text)))
        for a, b in zip(mine, mine[1:], strict=False):
            assert a.start < b.start and a.end < b.end
            if b.start < a.end:  # the overlap is whole pieces of at most `overlap` tokens
                assert count(text[b.start:a.end]) <= overlap
    assert chunk_documents(docs, size, overlap, count) == chunks  # stable


@pytest.mark.parametrize("size", [200, 80])
def test_a_paragraph_that_fits_is_never_split(docs, count, size):
    chunks = chunk_documents(docs, size, 0, count)
    fitting = 0
    for doc in docs:
        spans = [(c.start, c.end) for c in chunks if c.doc_id == doc.id]
        for start, end in paragraphs(doc.text):
            if count(doc.text[start:end]) <= size:
                fitting += 1
                assert any(s <= start and end <= e for s, e in spans), \
                    (doc.id, doc.text[start:end][:80])
    assert fitting >= 100


def test_long_paragraphs_are_cut_at_lines_or_sentences_first(docs, count):
    """A paragraph over the size is cut at a line end or a sentence end, not mid-sentence,
    unless one of its lines or sentences is itself too long."""
    chunks = chunk_documents(docs, 80, 0, count)
    cut_at_structure = cut_mid_sentence = 0
    for chunk in chunks:
        text = next(d.text for d in docs if d.id == chunk.doc_id)
        after = text[chunk.end:chunk.end + 2]
        if chunk.end == len(text) or after.startswith("\n") or text[chunk.end - 1] in ".?!;":
            cut_at_structure += 1
        else:
            cut_mid_sentence += 1
    assert cut_at_structure >= 0.9 * len(chunks), (cut_at_structure, cut_mid_sentence)


def test_a_word_longer_than_the_chunk_stays_whole(count):
    word = "-".join(f"part{i}" for i in range(40))  # no space, about 120 tokens
    doc = Document(id="w", text=f"short start.\n\n{word}\n\nshort end.")
    chunks = chunk_documents([doc], 20, 0, count)
    assert count(word) > 20
    assert word in [c.text for c in chunks]
    assert all(c.text == doc.text[c.start:c.end] for c in chunks)


def test_bad_settings_name_the_setting(docs, count):
    with pytest.raises(ValueError, match="overlap"):
        chunk_documents(docs, 50, 50, count)
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_documents(docs, 0, 0, count)
    with pytest.raises(ValueError, match="chunk_size: 300 tokens do not fit"):
        FaissRetriever.build(docs, progress=False, settings=IndexSettings(chunk_size=300))


def test_saved_index_keeps_ids_and_offsets(tmp_path, docs, count):
    chosen = [docs[1], docs[3]]  # try, import
    built = FaissRetriever.build(chosen, progress=False)
    assert built.manifest["chunking"]["unit"] == "embedder tokens"
    built.save(tmp_path / "idx")
    loaded = FaissRetriever.load(tmp_path / "idx")
    assert loaded.chunks == built.chunks == chunk_documents(chosen, count_tokens=count)
    by_id = {d.id: d.text for d in docs}
    for chunk in loaded.chunks:
        assert by_id[chunk.doc_id][chunk.start:chunk.end] == chunk.text
    # the embedder reads every chunk whole: its window (with [CLS] and [SEP]) is not exceeded
    tokenizer = default_embedder().model.tokenizer
    window = default_embedder().model.max_seq_length
    assert max(len(tokenizer(c.text)["input_ids"]) for c in loaded.chunks) <= window
    (top,) = loaded.retrieve("What is the else clause of a try statement for?", 1)
    assert top.metadata["doc_id"] == "python/try" and "else" in top.text
