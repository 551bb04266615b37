"""Copying a local index folder into Postgres without embedding again, against a real
throwaway server (pgserver): ``index --from-folder`` and a BEIR benchmark through the
database. The copy answers as the folder does and later builds reuse its vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collab_qa.beir import copy_into, load_beir, open_beir_index, rank_documents
from collab_qa.chunking import Chunk, ChunkerConfig
from collab_qa.cli import app
from collab_qa.embedding import FakeEmbedder
from collab_qa.errors import UserError
from collab_qa.index import build_index, build_into, copy_index, load_index
from collab_qa.search import Searcher
from collab_qa.store import DocumentRecord
from collab_qa.store.postgres import Database, PostgresStore
from collab_qa.store.postgres_build import PostgresBackend
from tests.test_eval_gate import write_beir
from tests.test_postgres_store import QUERIES, assert_same_index, pg_build


class CountingEmbedder(FakeEmbedder):
    """Counts the passages it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded = 0

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        return super().encode(texts, progress=progress)


def test_a_copied_folder_answers_alike_and_later_builds_reuse_its_vectors(
        tmp_corpus: Path, tmp_path: Path, database_url: str) -> None:
    build_index(tmp_corpus, tmp_path / "index", FakeEmbedder(), ChunkerConfig())
    local = load_index(tmp_path / "index")
    database = Database.connect(database_url)
    pg_build(database_url, tmp_corpus, FakeEmbedder(32, "other"))  # an older index, replaced

    report = copy_index(local, PostgresBackend(database))

    store = PostgresStore.load(database, expected_model_id=local.model_id)
    assert store.version == report.version and report.chunks == len(local.chunks)
    assert store.manifest["build"]["copied_from"] == local.version
    assert store.manifest["chunker"] == local.manifest["chunker"]
    assert_same_index(store, local, QUERIES)
    counting = CountingEmbedder()
    again = build_into(PostgresBackend(database), tmp_corpus, counting, ChunkerConfig())
    assert again.up_to_date and counting.encoded == 0


def test_index_from_folder_copies_into_the_database(tmp_corpus: Path, tmp_path: Path,
                                                    database_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    build_index(tmp_corpus, tmp_path / "index", FakeEmbedder(), ChunkerConfig())
    runner = CliRunner()
    monkeypatch.delenv("COLLAB_QA_DATABASE_URL", raising=False)
    result = runner.invoke(app, ["index", "--from-folder", str(tmp_path / "index")])
    assert result.exit_code == 2
    assert "set COLLAB_QA_DATABASE_URL" in " ".join(result.output.split())

    monkeypatch.setenv("COLLAB_QA_DATABASE_URL", database_url)
    result = runner.invoke(app, ["index", "--from-folder", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "No index in" in " ".join(result.output.split())
    result = runner.invoke(app, ["index", "--from-folder", str(tmp_path / "index")])
    assert result.exit_code == 0, result.output
    local = load_index(tmp_path / "index")
    assert f"Copying version {local.version}" in " ".join(result.output.split())
    store = PostgresStore.load(Database.connect(database_url))
    assert list(store.chunks) == list(local.chunks)


def test_a_benchmark_is_copied_into_the_database_once(tmp_path: Path, tmp_corpus: Path,
                                                      database_url: str) -> None:
    write_beir(tmp_path / "tiny")
    dataset = load_beir(tmp_path / "tiny")
    embedder = FakeEmbedder()
    cached = open_beir_index(dataset, embedder, tmp_path / "data", ChunkerConfig())
    backend = PostgresBackend(Database.connect(database_url))

    store = copy_into(dataset, cached, backend)
    again = copy_into(dataset, cached, backend)

    assert again.version == store.version and list(store.documents) == ["d1", "d2", "d3"]
    for query in ("aspirin heart attack", "sleep obesity children"):
        for mode in ("dense", "lexical", "hybrid"):
            assert (rank_documents(Searcher(store, embedder, max_k=1000), query, mode)
                    == rank_documents(Searcher(cached, embedder, max_k=1000), query, mode))
    other = pg_build(database_url, tmp_corpus)
    with pytest.raises(UserError, match="index of other documents than tiny"):
        copy_into(dataset, cached, backend)
    assert PostgresStore.load(backend.database).version == other.version


def test_dense_search_deeper_than_the_graph_limit(database_url: str) -> None:
    """k past pgvector's ef_search limit (1000) still returns k passages, nearest first."""
    count, dimension = 1100, 8
    vectors = np.random.default_rng(7).normal(size=(count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk("doc", i, (), i * 10, i * 10 + 9, f"passage {i}") for i in range(count)]
    backend = PostgresBackend(Database.connect(database_url))
    with backend.building(10):
        writer = backend.writer(None)
        writer.add(DocumentRecord("doc", "Doc", "", "sha", "txt", ()), chunks, vectors)
        writer.commit({"model": {"id": "random", "dimension": dimension}, "chunker": {},
                       "skipped": [], "build": {}})
    store = backend.load()
    for query in range(3):  # pgvector checks the setting once its library is loaded
        positions, scores = store.dense_search(vectors[query], 1050)
        assert len(positions) == 1050 and positions[0] == query
        assert np.all(np.diff(scores) <= 1e-6)
