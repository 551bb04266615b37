"""Sparse "latent terms" in Postgres, against a real throwaway server (pgserver): hybrid
search ranks as over the local folder, a copied folder brings its sparse terms along, and a
database written before them (format 5) still loads and gets them on its next build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from collab_qa.answer import search_passages
from collab_qa.beir import copy_into, load_beir, open_beir_index
from collab_qa.chunking import ChunkerConfig, embedding_text
from collab_qa.embedding import FakeSparseEmbedder
from collab_qa.errors import IndexLoadError
from collab_qa.index import build_index, build_into, copy_index, load_index
from collab_qa.query import resolve_query
from collab_qa.search import Searcher
from collab_qa.store import IndexStore, WithSparseTerms, postgres_sparse
from collab_qa.store.postgres import Database, PostgresStore
from collab_qa.store.postgres_build import PostgresBackend
from collab_qa.store.postgres_sparse import sparse_literal
from tests.test_eval_gate import write_beir
from tests.test_sparse import E5_LIKE, CountingSparseEmbedder, holds, vector

QUESTIONS = ["Who is the contact for the agreement?", "Charité MoU signed", "fyra campus",
             "twinning project budget", "När undertecknades avtalet?", "zzzqx unknownword"]


def ranking(store: IndexStore, embedder: FakeSparseEmbedder, question: str,
            ) -> list[tuple[str, float]]:
    hits = search_passages(Searcher(store, embedder), question, k=8, mode="hybrid")
    return [(hit.chunk.id, round(hit.score, 4)) for hit in hits]


def assert_same_sparse_terms(store: IndexStore, local: IndexStore,
                             embedder: FakeSparseEmbedder) -> None:
    """The same sparse scores and sparse search, and the same hybrid ranking, as the folder."""
    assert isinstance(store, WithSparseTerms) and isinstance(local, WithSparseTerms)
    ours, theirs = store.sparse, local.sparse
    assert ours is not None and theirs is not None
    everywhere = np.arange(len(local.chunks))
    for question in QUESTIONS:
        query = embedder.encode_query_sparse(question)
        assert np.allclose(ours.scores(query, everywhere), theirs.scores(query, everywhere))
        found, expected = ours.search(query, 5), theirs.search(query, 5)
        assert np.allclose(found[1], expected[1])
        assert set(found[0]) == set(expected[0]) or len(set(expected[1])) < len(expected[1])
        assert ranking(store, embedder, question) == ranking(local, embedder, question), question


def test_hybrid_search_over_postgres_ranks_as_over_the_local_folder(
        tmp_corpus: Path, tmp_path: Path, database_url: str) -> None:
    embedder = FakeSparseEmbedder(model_id=E5_LIKE)
    database = Database.connect(database_url)
    build_into(PostgresBackend(database), tmp_corpus, embedder, ChunkerConfig())
    build_index(tmp_corpus, tmp_path / "index", embedder, ChunkerConfig())
    store, local = PostgresStore.load(database), load_index(tmp_path / "index")
    assert store.manifest["model"]["sparse_dimension"] == embedder.sparse_dimension
    assert Searcher(store, embedder).sparse_weight == Searcher(local, embedder).sparse_weight > 0
    assert_same_sparse_terms(store, local, embedder)
    assert store.sparse is not None and store.sparse.search(vector({}), 5)[0].size == 0


def test_a_copied_folder_brings_its_sparse_terms(tmp_corpus: Path, tmp_path: Path,
                                                 database_url: str) -> None:
    embedder = CountingSparseEmbedder()
    build_index(tmp_corpus, tmp_path / "index", embedder, ChunkerConfig())
    local = load_index(tmp_path / "index")
    database = Database.connect(database_url)
    copy_index(local, PostgresBackend(database))
    store = PostgresStore.load(database, expected_model_id=E5_LIKE)
    assert_same_sparse_terms(store, local, embedder)
    encoded = (embedder.dense_texts, embedder.sparse_texts)
    assert build_into(PostgresBackend(database), tmp_corpus, embedder, ChunkerConfig()).up_to_date
    assert (embedder.dense_texts, embedder.sparse_texts) == encoded

    build_index(tmp_corpus, tmp_path / "plain", embedder, ChunkerConfig(), sparse_terms=False)
    copy_index(load_index(tmp_path / "plain"), PostgresBackend(database))
    plain = PostgresStore.load(database)
    assert plain.sparse is None and plain.manifest["model"]["sparse_dimension"] == 0


def test_past_the_exact_limit_sparse_search_finds_nothing_and_fusion_goes_on(
        tmp_corpus: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = FakeSparseEmbedder(model_id=E5_LIKE)
    database = Database.connect(database_url)
    build_into(PostgresBackend(database), tmp_corpus, embedder, ChunkerConfig())
    store = PostgresStore.load(database)
    assert store.sparse is not None
    question = "twinning project budget"
    query = embedder.encode_query_sparse(question)
    assert store.sparse.search(query, 5)[0].size == 5
    monkeypatch.setattr(postgres_sparse, "EXACT_SEARCH_LIMIT", len(store.chunks) - 1)
    assert store.sparse.search(query, 5)[0].size == 0
    searcher = Searcher(store, embedder)
    retrieval = searcher.retrieve(resolve_query(question, (), store.term_stats), 5, "hybrid")
    assert retrieval.fusion.sparse_weight == searcher.sparse_weight > 0 and retrieval.candidates


def _make_format_5(database_url: str) -> None:
    """Turn the current version into one written before sparse terms: no sparse column, and
    a manifest of format 5 that (as a copy of a folder did) names the folder's sparse terms."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("ALTER TABLE collab_qa.chunks DROP COLUMN sparse")
        connection.execute(
            "UPDATE collab_qa.versions SET manifest = (manifest::jsonb || jsonb_build_object("
            "'format_version', 5, 'model', (manifest::jsonb -> 'model') "
            "|| jsonb_build_object('sparse_dimension', 4096)))::json")


def test_a_format_5_database_loads_and_its_next_build_adds_only_sparse_terms(
        tmp_corpus: Path, database_url: str) -> None:
    embedder = CountingSparseEmbedder()
    database = Database.connect(database_url)
    build_into(PostgresBackend(database), tmp_corpus, embedder, ChunkerConfig(),
               sparse_terms=False)
    passages = embedder.dense_texts
    _make_format_5(database_url)
    old = PostgresStore.load(database, expected_model_id=E5_LIKE)
    assert old.manifest["format_version"] == 5
    assert old.sparse is None and old.manifest["model"]["sparse_dimension"] == 0
    assert Searcher(old, embedder).sparse is None  # two-way fusion, as before

    report = build_into(PostgresBackend(database), tmp_corpus, embedder, ChunkerConfig())
    assert not report.up_to_date and report.full_rebuild_reason is None
    assert (embedder.dense_texts, embedder.sparse_texts) == (passages, passages)
    store = PostgresStore.load(database)
    assert store.manifest["format_version"] == 6 and store.sparse is not None
    for position, chunk in enumerate(store.chunks):
        expected = embedder._sparse(embedding_text(store.title_of(chunk.doc_id), chunk))
        assert holds(store.sparse, position, expected, embedder.sparse_dimension)
    assert old.dense_search(embedder.encode_query("campus"), 3)[0].size  # still readable
    assert build_into(PostgresBackend(database), tmp_corpus, embedder, ChunkerConfig()).up_to_date


def test_a_database_of_an_unknown_format_is_refused_with_the_rebuild_hint(
        tmp_corpus: Path, database_url: str) -> None:
    database = Database.connect(database_url)
    build_into(PostgresBackend(database), tmp_corpus, FakeSparseEmbedder(), ChunkerConfig())
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("UPDATE collab_qa.versions SET manifest = (manifest::jsonb "
                           "|| jsonb_build_object('format_version', 4))::json")
    with pytest.raises(IndexLoadError, match=r"has format 4, .* reads format 6; rebuild it "
                                             r"with `collab-qa index --full`"):
        PostgresStore.load(database)


def test_sparse_literals_are_one_based_sorted_and_cut_to_the_dimension() -> None:
    assert sparse_literal(vector({9: 0.5, 0: 2.0, 12: 1.0}), 10) == "{1:2,10:0.5}/10"
    assert sparse_literal(vector({}), 16384) == "{}/16384"


def test_a_benchmark_copied_without_sparse_terms_is_copied_again_with_them(
        tmp_path: Path, database_url: str) -> None:
    write_beir(tmp_path / "tiny")
    dataset = load_beir(tmp_path / "tiny")
    embedder = FakeSparseEmbedder(model_id=E5_LIKE)
    cached = open_beir_index(dataset, embedder, tmp_path / "data", ChunkerConfig())
    assert cached.sparse is not None
    without = PostgresBackend(Database.connect(database_url))
    without.keeps_sparse_terms = False  # a copy made before the database kept them
    copy_index(cached, without)
    old = PostgresStore.load(without.database)
    assert old.sparse is None and old.manifest["build"]["copied_from"] == cached.version

    store = copy_into(dataset, cached, PostgresBackend(without.database))
    assert isinstance(store, PostgresStore) and store.version != old.version
    assert store.sparse is not None
    assert copy_into(dataset, cached, PostgresBackend(without.database)).version == store.version
