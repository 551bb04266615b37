"""The vector index of the Postgres store: the choice by size, and an IVFFlat index against a
real throwaway server (pgserver): it finds what exact search finds, and incremental builds
keep it serving and train it again once the collection has doubled."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest

from collab_qa.chunking import Chunk
from collab_qa.store import DocumentRecord
from collab_qa.store.postgres import Database, PostgresStore
from collab_qa.store.postgres_build import PostgresBackend
from collab_qa.store.postgres_vectors import (
    IVF_FROM_PASSAGES,
    VectorIndex,
    VectorIndexChoice,
    current_index,
)

DIMENSION = 16
CENTRES = np.random.default_rng(3).normal(size=(40, DIMENSION))
FEW_LISTS = VectorIndexChoice("ivfflat", lists_per_sqrt=0.5, probes=8)
SPREAD = 0.9  # topics overlap: one probed list finds too few of the nearest passages


def clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around a few topic centres, like passages of a collection."""
    rng = np.random.default_rng(seed)
    rows = CENTRES[rng.integers(0, len(CENTRES), count)] + SPREAD * rng.normal(
        size=(count, DIMENSION))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def build(backend: PostgresBackend, documents: dict[str, np.ndarray],
          keep: tuple[str, ...] = ()) -> PostgresStore:
    """One version: the ``keep`` documents of the current one, plus ``documents``."""
    with backend.building(10):
        writer = backend.writer(backend.load() if keep else None)
        for doc_id in keep:
            writer.keep(doc_id)
        for doc_id, vectors in documents.items():
            chunks = [Chunk(doc_id, i, (), i * 10, i * 10 + 9, f"passage {i}")
                      for i in range(len(vectors))]
            writer.add(DocumentRecord(doc_id, doc_id, "", f"sha-{doc_id}", "txt", ()),
                       chunks, vectors)
        writer.commit({"model": {"id": "clustered", "dimension": DIMENSION}, "chunker": {},
                       "skipped": [], "build": {}})
    return backend.load()


def recall_at_10(store: PostgresStore, vectors: np.ndarray, queries: np.ndarray) -> float:
    """Dense recall@10 of the store against exact search over ``vectors`` (in position
    order)."""
    found = []
    for query in queries:
        exact = set(np.argsort(-(vectors @ query), kind="stable")[:10].tolist())
        positions, _ = store.dense_search(query, 10)
        found.append(len(exact & set(positions.tolist())) / 10)
    return float(np.mean(found))


def index_facts(url: str) -> tuple[str, list[str], int]:
    """(access method, options, oid) of the store's vector index."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT am.amname, c.reloptions, c.oid::int FROM pg_class c "
            "JOIN pg_am am ON am.oid = c.relam WHERE c.relname = %s",
            (f"chunks_embedding_{DIMENSION}",)).fetchone()
    assert row is not None
    return row[0], list(row[1] or []), row[2]


def uses_vector_index(url: str, store: PostgresStore, query: np.ndarray) -> bool:
    from collab_qa.store.postgres import _DENSE_SQL

    database = Database.connect(url)
    with database.connection(vectors=True) as connection:
        plan = "\n".join(row[0] for row in connection.execute(
            "EXPLAIN " + _DENSE_SQL.format(d=DIMENSION),
            {"vector": query, "version": store.version_id, "k": 10}).fetchall())
    return f"chunks_embedding_{DIMENSION}" in plan


def test_the_index_kind_follows_the_collection_size() -> None:
    by_size = VectorIndexChoice()
    assert by_size.wanted(1000, None) == VectorIndex("hnsw")
    assert by_size.wanted(IVF_FROM_PASSAGES, None) == VectorIndex("ivfflat", 1265)
    assert by_size.wanted(IVF_FROM_PASSAGES, VectorIndex("hnsw")).kind == "ivfflat"
    assert by_size.wanted(10**6, None) == VectorIndex("ivfflat", 2000)  # k-means' memory
    trained = VectorIndex("ivfflat", 1265)
    assert by_size.wanted(150_000, trained) == trained  # grown, but not doubled
    assert by_size.wanted(200_000, trained) == VectorIndex("ivfflat", 1789)
    assert by_size.wanted(1000, trained) == trained  # an IVF index stays IVF
    assert by_size.wanted(10**6, trained).probes == 32
    assert VectorIndexChoice("hnsw").wanted(10**7, trained) == VectorIndex("hnsw")
    assert VectorIndexChoice("ivfflat").wanted(100, None) == VectorIndex("ivfflat", 40, 32)
    assert VectorIndexChoice("ivfflat").wanted(25, None).probes == 20  # at most the lists


def test_an_ivf_store_finds_what_exact_search_finds(database_url: str) -> None:
    vectors = clustered(3000, seed=1)
    backend = PostgresBackend(Database.connect(database_url), FEW_LISTS)
    store = build(backend, {"doc1": vectors})
    assert store.manifest["dense_index"] == "pgvector IVFFlat (cosine, 27 lists, 8 probes)"
    assert index_facts(database_url)[:2] == ("ivfflat", ["lists=27"])
    queries = clustered(60, seed=2)
    assert uses_vector_index(database_url, store, queries[0])
    assert recall_at_10(store, vectors, queries) >= 0.95
    # Deeper than the probed lists hold: the iterative scan goes on, nearest first.
    positions, scores = store.dense_search(queries[0], 2000)
    assert len(positions) == 2000 and np.all(np.diff(scores) <= 1e-6)


def test_incremental_builds_keep_the_ivf_index_serving_and_train_it_again(
        database_url: str) -> None:
    first, second, third = clustered(3000, seed=1), clustered(3200, seed=4), clustered(50, 5)
    backend = PostgresBackend(Database.connect(database_url), FEW_LISTS)
    old = build(backend, {"doc1": first})
    trained = index_facts(database_url)
    # About doubled: the new version is written, then the index is trained again on all of it.
    grown = build(backend, {"doc2": second}, keep=("doc1",))
    assert index_facts(database_url)[:2] == ("ivfflat", ["lists=39"])
    assert index_facts(database_url)[2] != trained[2]
    assert grown.manifest["vector_index"] == {"kind": "ivfflat", "lists": 39, "probes": 8}
    both = np.concatenate([first, second])
    queries = clustered(60, seed=6)
    assert recall_at_10(grown, both, queries) >= 0.95
    assert recall_at_10(old, first, queries) >= 0.95  # the version before still answers
    # A few more passages: filed under the trained lists, no training.
    retrained = index_facts(database_url)
    latest = build(backend, {"doc3": third}, keep=("doc1", "doc2"))
    assert index_facts(database_url) == retrained
    all_vectors = np.concatenate([both, third])
    assert recall_at_10(latest, all_vectors, third[:20]) >= 0.95
    positions, _ = latest.dense_search(third[7], 1)
    assert positions.tolist() == [len(both) + 7]


def test_what_a_killed_rebuild_left_is_finished_or_dropped(database_url: str) -> None:
    vectors = clustered(1000, seed=1)
    backend = PostgresBackend(Database.connect(database_url), FEW_LISTS)
    build(backend, {"doc1": vectors})
    main, spare = f"chunks_embedding_{DIMENSION}", f"chunks_embedding_{DIMENSION}_next"
    create = (f"CREATE INDEX {spare} ON collab_qa.chunks USING ivfflat "
              f"((embedding::vector({DIMENSION})) vector_cosine_ops) WITH (lists = 5) "
              f"WHERE dimension = {DIMENSION}")

    def indexes(connection: psycopg.Connection[Any]) -> set[str]:
        return {row[0] for row in connection.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'chunks_embedding_%'")}

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(create)  # killed before the old index was dropped
        assert current_index(connection, DIMENSION) == VectorIndex("ivfflat", 16)
        assert indexes(connection) == {main}
        connection.execute(create)  # killed between the drop and the rename
        connection.execute(f"DROP INDEX collab_qa.{main}")
        assert current_index(connection, DIMENSION) == VectorIndex("ivfflat", 5)
        assert indexes(connection) == {main}
    store = backend.load()
    assert recall_at_10(store, vectors, vectors[:20]) >= 0.9


@pytest.mark.parametrize("kind", ["hnsw", "auto"])
def test_small_collections_keep_hnsw(database_url: str, kind: str) -> None:
    vectors = clustered(500, seed=1)
    backend = PostgresBackend(Database.connect(database_url), VectorIndexChoice(kind))  # type: ignore[arg-type]
    store = build(backend, {"doc1": vectors})
    assert store.manifest["dense_index"] == "pgvector HNSW (cosine)"
    assert index_facts(database_url)[0] == "hnsw"
    assert recall_at_10(store, vectors, vectors[:20]) >= 0.95


def test_the_setting_chooses_the_kind_and_a_change_reaches_the_next_build(
        database_url: str) -> None:
    from pydantic import ValidationError

    from collab_qa.settings import Settings
    from collab_qa.store.postgres_build import backend_for

    with pytest.raises(ValidationError, match="database_vector_index"):
        Settings(database_url=database_url, database_vector_index="flat")
    vectors = clustered(500, seed=4)
    ivf = backend_for(Settings(database_url=database_url, database_vector_index="ivfflat"))
    store = build(ivf, {"doc1": vectors})
    assert index_facts(database_url)[0] == "ivfflat"
    assert "IVFFlat" in store.manifest["dense_index"]
    hnsw = backend_for(Settings(database_url=database_url, database_vector_index="hnsw"))
    store = build(hnsw, {"doc2": clustered(20, seed=5)}, keep=("doc1",))
    assert index_facts(database_url)[0] == "hnsw"
    assert store.manifest["dense_index"] == "pgvector HNSW (cosine)"
    assert recall_at_10(store, np.vstack([vectors, clustered(20, seed=5)]),
                        vectors[:20]) >= 0.9
