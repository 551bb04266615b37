"""The storage protocol's contract, run against every implementation: the local folder
(FAISS + bm25s), the in-memory store (numpy) and Postgres (pgvector, on a throwaway
server). All are built the same way, through ``update_index``, from a few small documents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from collab_qa.analysis import text_tokens
from collab_qa.answer import search_passages
from collab_qa.chunking import ChunkerConfig, chunk_id
from collab_qa.documents import Document
from collab_qa.embedding import FakeEmbedder
from collab_qa.errors import BuildLockedError, IndexLoadError
from collab_qa.index import BuildReport, update_index
from collab_qa.search import Searcher
from collab_qa.store import IndexStore, StoreBackend
from collab_qa.store.local_build import LocalFolder
from collab_qa.store.memory import MemoryBackend
from collab_qa.store.postgres import Database
from collab_qa.store.postgres_build import PostgresBackend

CHUNKER = ChunkerConfig(max_tokens=40, overlap_tokens=0)


def document(doc_id: str, title: str, text: str) -> Document:
    return Document(id=doc_id, title=title, text=text, sha256=f"sha-{hash(text)}",
                    format="markdown")


LIBRARY = document("library.md", "Library", "\n\n".join([
    "# Library",
    "## Opening hours",
    "The library opens at eight and closes at six. Borrowed books are due in four weeks.",
    "## Printing",
    "Printers stand on every floor. A page costs one crown; colour pages cost three crowns.",
    "## Study rooms",
    "Study rooms are booked online for at most three hours. Groups of two or more may book.",
    "## Lost cards",
    "A lost card is replaced at the front desk for fifty crowns.",
]))
LAB = document("lab/safety.md", "Lab safety", "\n\n".join([
    "# Lab safety",
    "Goggles are worn at all times. Spills are reported to the lab manager at once.",
    "Chemical waste goes in the yellow bins by the door.",
]))
SYMBOLS = document("symbols.md", "", "— … —")  # a passage without a single indexable word
DOCUMENTS = [LIBRARY, LAB, SYMBOLS]

Backend = Callable[[Path], StoreBackend]
BACKENDS: dict[str, Backend] = {
    "local": lambda folder: LocalFolder(folder / "index"),
    "memory": lambda folder: MemoryBackend(),
}


@pytest.fixture(params=[*sorted(BACKENDS), "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    if request.param == "postgres":  # a new database on the session's server
        url = request.getfixturevalue("database_url")
        return PostgresBackend(Database.connect(url))
    return BACKENDS[request.param](tmp_path)


def build(backend: StoreBackend, documents: list[Document]) -> BuildReport:
    with backend.building(5.0):
        return update_index(backend, documents, FakeEmbedder(), CHUNKER)


@pytest.fixture
def store(backend: StoreBackend) -> IndexStore:
    build(backend, DOCUMENTS)
    return backend.load(expected_model_id="fake-embedder")


def test_an_empty_backend_has_no_version(backend: StoreBackend) -> None:
    assert backend.base() == (None, "no previous index")
    with pytest.raises(IndexLoadError):
        backend.load()


def test_documents_chunks_and_manifest(backend: StoreBackend, store: IndexStore) -> None:
    report = build(backend, DOCUMENTS)  # nothing changed: the same version stays live
    assert report.up_to_date and report.version == store.version
    assert store.model_id == "fake-embedder"
    assert list(store.documents) == [d.id for d in DOCUMENTS]
    assert store.title_of("lab/safety.md") == "Lab safety"
    assert store.documents["library.md"].text == LIBRARY.text
    assert [c.doc_id for c in store.chunks] == [
        d.id for d in DOCUMENTS for c in store.chunks if c.doc_id == d.id]
    for record in store.documents.values():
        assert record.chunk_ids == tuple(c.id for c in store.chunks if c.doc_id == record.id)
    assert len(store.documents["library.md"].chunk_ids) > 2
    assert store.manifest["totals"] == {"documents": 3, "chunks": len(store.chunks)}
    assert store.manifest["chunker"]["max_tokens"] == 40


def test_chunks_by_id_and_next_chunk(store: IndexStore) -> None:
    for position, chunk in enumerate(store.chunks):
        assert chunk.id == chunk_id(chunk.doc_id, chunk.text)
        assert store.position_of(chunk.id) == position
        assert store.chunk_by_id(chunk.id) == chunk
        assert store.chunk_by_id(f"{chunk.doc_id}#{chunk.ordinal}") == chunk  # an old link
    library = [c for c in store.chunks if c.doc_id == "library.md"]
    assert [store.next_chunk(c) for c in library] == [*library[1:], None]
    assert store.chunk_by_id("0123456789abcdef") is None
    assert store.position_of("0123456789abcdef") is None
    assert store.chunk_by_id("library.md#99") is None


def test_dense_search_is_exact_and_agrees_with_dense_scores(store: IndexStore) -> None:
    vector = FakeEmbedder().encode_query("printing pages in colour")
    every = store.dense_scores(vector, np.arange(len(store.chunks)))
    positions, scores = store.dense_search(vector, 3)
    assert positions.dtype == np.int64 and scores.dtype == np.float32
    assert list(positions) == list(np.argsort(-every, kind="stable")[:3])
    assert np.allclose(scores, store.dense_scores(vector, positions), atol=1e-5)
    assert list(scores) == sorted(scores, reverse=True)
    assert len(store.dense_search(vector, 1000)[0]) == len(store.chunks)


def test_lexical_search_agrees_with_lexical_scores(store: IndexStore) -> None:
    query = "How many crowns for a colour page or a lost card?"
    every = store.lexical_scores(query, np.arange(len(store.chunks)))
    positions, scores = store.lexical_search(query, 2)
    assert len(positions) == 2 and (scores > 0).all()
    assert np.allclose(scores, every[positions])
    assert set(positions) == set(np.argsort(-every, kind="stable")[:2])
    found, _ = store.lexical_search(query, 1000)
    assert set(found) == set(np.flatnonzero(every > 0))
    assert all("crowns" in store.chunks[int(i)].text for i in positions)
    assert store.lexical_search("zebrafish", 5)[0].size == 0
    assert not store.lexical_scores("zebrafish", np.arange(len(store.chunks))).any()


def test_term_statistics_are_ready(store: IndexStore) -> None:
    stats = store.term_stats
    assert set(stats.chunk_tokens) == {c.id for c in store.chunks}
    assert stats.size == len(store.chunks)
    [goggles], [library] = text_tokens("goggles"), text_tokens("library")
    assert stats.idf[goggles] > stats.idf[library]  # one passage against many
    assert stats.weights(["zebrafish"])["zebrafish"] == stats.unknown_idf


def test_a_new_version_embeds_only_what_changed(backend: StoreBackend,
                                                store: IndexStore) -> None:
    edited = document("lab/safety.md", "Lab safety",
                      LAB.text.replace("yellow bins", "red bins"))
    added = document("canteen.md", "Canteen", "# Canteen\n\nLunch is served from eleven.")
    report = build(backend, [LIBRARY, edited, added])
    assert (report.added, report.changed, report.removed) == (
        ["canteen.md"], ["lab/safety.md"], ["symbols.md"])
    assert report.unchanged == ["library.md"]
    assert report.embedded_chunks == report.chunks - len(store.documents["library.md"].chunk_ids)
    new = backend.load()
    assert new.version == report.version != store.version
    assert list(new.documents) == ["library.md", "lab/safety.md", "canteen.md"]
    assert new.documents["library.md"].chunk_ids == store.documents["library.md"].chunk_ids
    kept = np.array([i for i, c in enumerate(new.chunks) if c.doc_id == "library.md"])
    before = np.array([i for i, c in enumerate(store.chunks) if c.doc_id == "library.md"])
    vector = FakeEmbedder().encode_query("study rooms")
    assert np.allclose(new.dense_scores(vector, kept), store.dense_scores(vector, before))
    assert new.lexical_search("red bins", 5)[0].size
    assert not [c for c in new.chunks if "yellow" in c.text]
    assert store.documents.keys() == {d.id for d in DOCUMENTS}  # the old version is unchanged


def test_an_empty_version(backend: StoreBackend) -> None:
    build(backend, [])
    store = backend.load()
    assert not store.chunks and not store.documents
    assert store.dense_search(FakeEmbedder().encode_query("anything"), 5)[0].size == 0
    assert store.lexical_search("anything", 5)[0].size == 0
    assert search_passages(Searcher(store, FakeEmbedder()), "anything", k=3) == []


def test_one_builder_at_a_time(backend: StoreBackend) -> None:
    with backend.building(5.0), pytest.raises(BuildLockedError), backend.building(0.1):
        pass


def test_both_stores_rank_alike(tmp_path: Path) -> None:
    """The same BM25 and the same exact cosine: the searcher ranks alike over either."""
    stores = []
    for name, make in BACKENDS.items():
        backend = make(tmp_path / name)
        build(backend, DOCUMENTS)
        stores.append(backend.load())
    local, memory = stores
    positions = np.arange(len(local.chunks))
    for question in ("when does the library close", "yellow bins", "book a study room"):
        assert np.allclose(local.lexical_scores(question, positions),
                           memory.lexical_scores(question, positions), atol=1e-4)
        for mode in ("dense", "lexical", "hybrid"):
            ranked = [[hit.chunk.id for hit in search_passages(Searcher(store, FakeEmbedder()),
                question, k=5, mode=mode)] for store in stores]
            assert ranked[0] == ranked[1], (question, mode)
