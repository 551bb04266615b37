"""Sparse "latent terms": the matrix, how the local folder, the memory store and Postgres
keep them through full and incremental builds, and how hybrid search fuses them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from collab_qa.chunking import ChunkerConfig
from collab_qa.documents import Document
from collab_qa.embedding import FakeEmbedder, FakeSparseEmbedder
from collab_qa.errors import IndexLoadError
from collab_qa.index import BuildReport, update_index
from collab_qa.query import resolve_query
from collab_qa.search import Searcher
from collab_qa.sparse import SparseIndex, SparseTerms, SparseVector
from collab_qa.store import IndexStore, StoreBackend, WithSparseTerms
from collab_qa.store.local import SPARSE, current_version_dir, load_index
from collab_qa.store.local_build import LocalFolder
from collab_qa.store.memory import MemoryBackend
from collab_qa.store.postgres import Database
from collab_qa.store.postgres_build import PostgresBackend

CHUNKER = ChunkerConfig(max_tokens=40, overlap_tokens=0)
# A model id that gets e5's calibration, whose hybrid fusion uses sparse scores.
E5_LIKE = "fake-multilingual-e5"


def vector(pairs: dict[int, float]) -> SparseVector:
    return SparseVector(np.array(list(pairs), dtype=np.int32),
                        np.array(list(pairs.values()), dtype=np.float32))


def document(doc_id: str, text: str) -> Document:
    return Document(id=doc_id, title=doc_id.title(), text=text, sha256=f"sha-{text}",
                    format="plain")


DOCUMENTS = [
    document("printing", "Printers stand on every floor. A colour page costs three crowns."),
    document("rooms", "Study rooms are booked online for at most three hours."),
    document("cards", "A lost card is replaced at the front desk for fifty crowns."),
]


def test_sparse_terms_score_search_and_round_trip(tmp_path: Path) -> None:
    terms = SparseTerms.from_rows([vector({3: 1.0, 7: 2.0}), vector({}), vector({7: 0.5, 9: 4.0})],
                                  dimension=10)
    query = vector({7: 2.0, 9: 1.0})
    assert terms.scores(query, np.array([0, 1, 2])).tolist() == [4.0, 0.0, 5.0]
    assert terms.scores(query, np.array([2, 0])).tolist() == [5.0, 4.0]
    positions, scores = terms.search(query, 5)
    assert positions.tolist() == [2, 0] and scores.tolist() == [5.0, 4.0]  # no zero score
    assert terms.search(query, 1)[0].tolist() == [2]
    assert terms.row(2).indices.tolist() == [7, 9] and terms.row(1).indices.size == 0
    with open(tmp_path / "terms.npz", "wb") as handle:
        terms.save(handle)
    again = SparseTerms.load(tmp_path / "terms.npz")
    assert (again.size, again.dimension) == (3, 10)
    assert again.scores(query, np.arange(3)).tolist() == [4.0, 0.0, 5.0]


BACKENDS: dict[str, Callable[[Path], StoreBackend]] = {
    "local": lambda folder: LocalFolder(folder / "index"),
    "memory": lambda folder: MemoryBackend(),
}


@pytest.fixture(params=[*sorted(BACKENDS), "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    if request.param == "postgres":  # a new database on the session's server
        return PostgresBackend(Database.connect(request.getfixturevalue("database_url")))
    return BACKENDS[request.param](tmp_path)


def build(backend: StoreBackend, documents: list[Document], embedder: FakeEmbedder,
          sparse_terms: bool = True) -> BuildReport:
    with backend.building(5.0):
        return update_index(backend, documents, embedder, CHUNKER, sparse_terms=sparse_terms)


def sparse_of(store: IndexStore) -> SparseIndex | None:
    assert isinstance(store, WithSparseTerms)
    return store.sparse


def holds(terms: SparseIndex, position: int, expected: SparseVector, features: int) -> bool:
    """Whether the passage at ``position`` holds exactly ``expected``'s features (the fake
    gives every feature weight 1), asked through ``SparseIndex`` alone: scored by
    ``expected`` it counts the features both share, scored by every feature its own."""
    every = SparseVector(np.arange(features, dtype=np.int32), np.ones(features, np.float32))
    shared = terms.scores(expected, np.array([position]))[0]
    own = terms.scores(every, np.array([position]))[0]
    return bool(shared == own == len(expected.indices))


def test_builds_keep_one_sparse_vector_per_passage(backend: StoreBackend) -> None:
    embedder = FakeSparseEmbedder(model_id=E5_LIKE)
    build(backend, DOCUMENTS, embedder)
    first = backend.load(expected_model_id=E5_LIKE)
    terms = sparse_of(first)
    assert terms is not None
    assert first.manifest["model"]["sparse_dimension"] == embedder.sparse_dimension
    features = embedder.sparse_dimension
    for position, chunk in enumerate(first.chunks):
        expected = embedder.encode_sparse([f"{first.title_of(chunk.doc_id)}\n{chunk.text}"])[0]
        assert holds(terms, position, expected, features)
    assert not holds(terms, 0, embedder.encode_query_sparse("zebrafish"), features)

    changed = [DOCUMENTS[0], document("rooms", "Study rooms close at nine."), DOCUMENTS[2]]
    report = build(backend, changed, embedder)
    assert report.changed == ["rooms"] and report.unchanged == ["printing", "cards"]
    second = backend.load()
    again = sparse_of(second)
    assert again is not None
    kept = [c for c in first.chunks if c.doc_id == "cards"]
    for chunk in kept:  # a kept passage keeps its own vector, at its new position
        new = second.position_of(chunk.id)
        assert new is not None
        expected = embedder.encode_sparse([f"{first.title_of(chunk.doc_id)}\n{chunk.text}"])[0]
        assert holds(again, new, expected, features)


class CountingSparseEmbedder(FakeSparseEmbedder):
    """Counts the texts it encodes, dense and sparse."""

    def __init__(self) -> None:
        super().__init__(model_id=E5_LIKE)
        self.dense_texts = 0
        self.sparse_texts = 0

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.dense_texts += len(texts)
        return super().encode(texts, progress=progress)

    def encode_sparse(self, texts: Sequence[str], *,
                      progress: bool = False) -> list[SparseVector]:
        self.sparse_texts += len(texts)
        return super().encode_sparse(texts, progress=progress)


def test_turning_sparse_terms_on_and_off_keeps_the_vectors(backend: StoreBackend) -> None:
    embedder = CountingSparseEmbedder()
    build(backend, DOCUMENTS, embedder, sparse_terms=False)
    plain = backend.load()
    assert sparse_of(plain) is None and plain.manifest["model"]["sparse_dimension"] == 0
    passages = len(plain.chunks)
    assert (embedder.dense_texts, embedder.sparse_texts) == (passages, 0)

    report = build(backend, DOCUMENTS, embedder)  # on: only the sparse terms are encoded
    assert not report.up_to_date and report.full_rebuild_reason is None
    assert (embedder.dense_texts, embedder.sparse_texts) == (passages, passages)
    assert (report.embedded_chunks, report.sparse_added_chunks) == (0, passages)
    with_terms = backend.load()
    terms = sparse_of(with_terms)
    assert terms is not None
    for position, chunk in enumerate(with_terms.chunks):
        expected = embedder._sparse(f"{with_terms.title_of(chunk.doc_id)}\n{chunk.text}")
        assert holds(terms, position, expected, embedder.sparse_dimension)
    assert build(backend, DOCUMENTS, embedder).up_to_date

    build(backend, DOCUMENTS, embedder, sparse_terms=False)  # off: dropped, nothing encoded
    assert (embedder.dense_texts, embedder.sparse_texts) == (passages, passages)
    store = backend.load()
    assert sparse_of(store) is None and store.manifest["model"]["sparse_dimension"] == 0
    # A model without a sparse head builds no sparse terms either.
    build(backend, DOCUMENTS, FakeEmbedder(model_id="plain"))
    assert sparse_of(backend.load()) is None


def test_a_format_5_index_is_read_and_gets_its_sparse_terms(tmp_path: Path) -> None:
    folder = LocalFolder(tmp_path / "index")
    embedder = CountingSparseEmbedder()
    build(folder, DOCUMENTS, embedder, sparse_terms=False)
    version = current_version_dir(tmp_path / "index")
    assert version is not None
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["format_version"] = 5  # before sparse terms: no sparse_dimension either
    del manifest["model"]["sparse_dimension"]
    (version / "manifest.json").write_text(json.dumps(manifest))
    assert load_index(tmp_path / "index").sparse is None
    build(folder, DOCUMENTS, embedder)
    store = load_index(tmp_path / "index")
    assert store.manifest["format_version"] == 6 and store.sparse is not None
    assert embedder.dense_texts == len(store.chunks)  # the vectors were reused


def test_a_sparse_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    build(LocalFolder(tmp_path / "index"), DOCUMENTS, FakeSparseEmbedder(model_id=E5_LIKE))
    version = current_version_dir(tmp_path / "index")
    assert version is not None
    with open(version / SPARSE, "wb") as handle:
        SparseTerms.from_rows([vector({1: 1.0})], dimension=4096).save(handle)
    with pytest.raises(IndexLoadError, match=rf"{SPARSE} has shape \(1, 4096\), expected"):
        load_index(tmp_path / "index")
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["format_version"] == 6


def test_hybrid_fusion_weighs_the_sparse_score(backend: StoreBackend) -> None:
    embedder = FakeSparseEmbedder(model_id=E5_LIKE)
    build(backend, DOCUMENTS, embedder)
    store = backend.load()
    searcher = Searcher(store, embedder)
    assert searcher.sparse is not None and 0 < searcher.sparse_weight < 1
    query = resolve_query("How many crowns for a colour page?", (), store.term_stats)
    retrieval = searcher.retrieve(query, 3, "hybrid")
    assert retrieval.fusion.sparse_weight == searcher.sparse_weight
    hits = retrieval.candidates
    dense = np.array([h.dense_score for h in hits])
    lexical = np.array([h.lexical_score for h in hits])
    positions = np.array([store.position_of(h.chunk.id) for h in hits])
    sparse = searcher.sparse.scores(embedder.encode_query_sparse(query.text), positions)

    def scaled(values: np.ndarray) -> np.ndarray:  # search's min-max, its floor at 0 or below
        low = min(values.min(), 0.0)
        return (values - low) / (values.max() - low)

    lexical_weight = 1 - searcher.dense_weight - searcher.sparse_weight
    expected = (searcher.dense_weight * scaled(dense) + lexical_weight * scaled(lexical)
                + searcher.sparse_weight * scaled(sparse))
    assert np.allclose([h.score for h in hits], expected, atol=1e-6)
    # A passage scored after retrieval lands on the same scale as the candidates.
    again = retrieval.hits_for(store, [hits[0].chunk])[0]
    assert again.score == pytest.approx(hits[0].score, abs=1e-6)
    # Dense and lexical modes, and an index without sparse terms, fuse as before.
    assert retrieval.sparse_query is not None
    assert searcher.retrieve(query, 3, "dense").fusion.sparse_weight == 0.0
    plain = Searcher(store, FakeEmbedder(model_id=E5_LIKE))
    assert plain.sparse is None and plain.sparse_weight == 0.0 and plain.dense_weight == 0.85
    off = Searcher(store, embedder, sparse_terms=False)  # COLLAB_QA_SPARSE_TERMS=false
    assert off.sparse is None and off.sparse_weight == 0.0 and off.dense_weight == 0.85
    assert off.retrieve(query, 3, "hybrid").sparse_query is None


def test_a_hand_set_dense_weight_keeps_the_weights_summing_to_one(
        backend: StoreBackend) -> None:
    embedder = FakeSparseEmbedder(model_id=E5_LIKE)
    build(backend, DOCUMENTS, embedder)
    searcher = Searcher(backend.load(), embedder, dense_weight=0.95)
    assert searcher.dense_weight == 0.95
    assert searcher.sparse_weight == pytest.approx(0.05)
