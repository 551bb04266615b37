"""The index in Postgres, against a real throwaway server (pgserver): the same answers as the
local folder, incremental builds, a killed build, two builders, a second server seeing a new
version, the errors a user can cause, and the eval's test split through the database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from collab_qa.chunking import ChunkerConfig
from collab_qa.cli import app
from collab_qa.embedding import Embedder, FakeEmbedder
from collab_qa.errors import BuildLockedError, DatabaseError, IndexLoadError
from collab_qa.evaluate import EvalReport, load_questions, run_eval
from collab_qa.index import BuildReport, build_index, build_into, load_index
from collab_qa.search import Searcher
from collab_qa.store import IndexStore
from collab_qa.store.postgres import Database, PostgresStore
from collab_qa.store.postgres_build import PostgresBackend

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "eval" / "questions.jsonl"
QUERIES = ["Who is the contact for the agreement?", "Charité MoU signed", "fyra campus",
           "twinning project budget", "zzzqx unknownword"]


def pg_build(url: str, corpus: Path, embedder: FakeEmbedder | None = None,
             **kwargs: object) -> PostgresStore:
    embedder = embedder or FakeEmbedder()
    database = Database.connect(url)
    build_into(PostgresBackend(database), corpus, embedder, ChunkerConfig(), **kwargs)  # type: ignore[arg-type]
    return PostgresStore.load(database, expected_model_id=embedder.model_id)


def assert_same_index(store: IndexStore, local: IndexStore, queries: Sequence[str]) -> None:
    """The contract of IndexStore, checked by answering like the local folder does."""
    assert list(store.chunks) == list(local.chunks)
    assert dict(store.documents) == dict(local.documents)
    assert list(store.documents) == list(local.documents)
    assert store.model_id == local.model_id
    assert store.manifest["totals"] == local.manifest["totals"]
    assert store.manifest["documents"] == local.manifest["documents"]
    assert store.term_stats.idf == pytest.approx(local.term_stats.idf)
    first = local.chunks[0]
    assert store.chunk_by_id(first.id) == first and store.chunk_by_id("nope#0") is None
    assert store.title_of(first.doc_id) == local.title_of(first.doc_id)
    everywhere = np.arange(len(local.chunks))
    embedder = FakeEmbedder()
    for query in queries:
        vector = embedder.encode_query(query)
        ours, theirs = store.dense_search(vector, 10), local.dense_search(vector, 10)
        assert ours[0].tolist() == theirs[0].tolist(), query
        assert np.allclose(ours[1], theirs[1], atol=1e-5)
        assert np.allclose(store.dense_scores(vector, everywhere),
                           local.dense_scores(vector, everywhere), atol=1e-5)
        ours, theirs = store.lexical_search(query, 10), local.lexical_search(query, 10)
        assert dict(zip(ours[0].tolist(), ours[1].tolist(), strict=True)) == pytest.approx(
            dict(zip(theirs[0].tolist(), theirs[1].tolist(), strict=True)), abs=1e-4), query
        assert np.allclose(store.lexical_scores(query, everywhere),
                           local.lexical_scores(query, everywhere), atol=1e-4)


def test_the_store_answers_as_the_local_folder_does(tmp_corpus: Path, tmp_path: Path,
                                                    database_url: str) -> None:
    store = pg_build(database_url, tmp_corpus)
    build_index(tmp_corpus, tmp_path / "index", FakeEmbedder(), ChunkerConfig())
    local = load_index(tmp_path / "index")
    assert_same_index(store, local, QUERIES)
    assert store.lexical_search(QUERIES[-1], 10)[0].size == 0
    assert store.lexical_scores("agreement", np.array([], dtype=np.int64)).size == 0
    chunk = store.chunks[0]
    following = store.next_chunk(chunk)
    assert following is not None and (following.doc_id, following.ordinal) == (
        chunk.doc_id, chunk.ordinal + 1)
    last = store.chunks[len(store.chunks) - 1]
    assert store.next_chunk(last) is None


def test_incremental_build_embeds_only_what_changed(tmp_corpus: Path, tmp_path: Path,
                                                    database_url: str) -> None:
    database = Database.connect(database_url)
    first = build_into(PostgresBackend(database), tmp_corpus, FakeEmbedder(), ChunkerConfig())
    again = build_into(PostgresBackend(database), tmp_corpus, FakeEmbedder(), ChunkerConfig())
    assert again.up_to_date and again.version == first.version and again.embedded_chunks == 0

    germany = tmp_corpus / "collaboration-in-germany.txt"
    germany.write_text(germany.read_text().replace(
        "KI has no central post doc agreements", "KI has a zebrafish agreement"), encoding="utf-8")
    (tmp_corpus / "cutcancer-twinning-project.txt").unlink()
    (tmp_corpus / "new.md").write_text("# New unit\n\nThe new unit writes zebrafish notes.\n",
                                       encoding="utf-8")
    report = build_into(PostgresBackend(database), tmp_corpus, FakeEmbedder(), ChunkerConfig())

    assert report.changed == ["collaboration-in-germany.txt"] and report.added == ["new.md"]
    assert report.removed == ["cutcancer-twinning-project.txt"]
    assert 0 < report.embedded_chunks < first.embedded_chunks
    store = PostgresStore.load(database)
    assert store.version == report.version != first.version
    build_index(tmp_corpus, tmp_path / "index", FakeEmbedder(), ChunkerConfig())
    assert_same_index(store, load_index(tmp_path / "index"), [*QUERIES, "zebrafish"])
    # Unchanged documents share their rows with the previous version.
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM collab_qa.chunks").fetchone()
    assert row is not None and row[0] == first.chunks + report.embedded_chunks


def test_model_change_rebuilds_everything_and_old_versions_go(tmp_corpus: Path,
                                                             database_url: str) -> None:
    database = Database.connect(database_url)
    build_into(PostgresBackend(database), tmp_corpus, FakeEmbedder(), ChunkerConfig())
    other = build_into(PostgresBackend(database), tmp_corpus, FakeEmbedder(32, "other"),
                                 ChunkerConfig())
    assert "model changed" in (other.full_rebuild_reason or "")
    assert other.embedded_chunks == other.chunks
    with pytest.raises(IndexLoadError, match="built with model other"):
        PostgresStore.load(database, expected_model_id="fake-embedder")
    store = PostgresStore.load(database, expected_model_id="other")
    assert store.dense_search(FakeEmbedder(32).encode_query("agreement"), 3)[0].size == 3
    for i in range(3):
        (tmp_corpus / "extra.txt").write_text(f"Extra document {i}.", encoding="utf-8")
        build_into(PostgresBackend(database), tmp_corpus, FakeEmbedder(32, "other"),
                   ChunkerConfig())
    with psycopg.connect(database_url) as connection:
        versions = connection.execute("SELECT count(*) FROM collab_qa.versions").fetchone()
        documents = connection.execute("SELECT count(*) FROM collab_qa.documents").fetchone()
    assert versions == (2,) and documents == (7,)  # 5 shared, and extra.txt twice


def test_a_killed_build_leaves_the_old_version_serving(tmp_corpus: Path,
                                                       database_url: str) -> None:
    before = pg_build(database_url, tmp_corpus)
    germany = tmp_corpus / "collaboration-in-germany.txt"
    germany.write_text(germany.read_text() + "\nA zebrafish paragraph.\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}

    def run(kill_at: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "tests" / "_pg_crash_worker.py"), database_url,
             str(tmp_corpus), str(kill_at)], env=env, capture_output=True, text=True,
            timeout=120, check=False)

    def versions() -> int:
        with psycopg.connect(database_url) as connection:
            row = connection.execute("SELECT count(*) FROM collab_qa.versions").fetchone()
        return row[0] if row else 0

    # Kill the build before its 1st, 3rd, 5th... database call: until it commits, the old
    # version serves and the new one left no row; from the commit on, the new one serves.
    kill_at, killed_before_commit = 1, 0
    while (result := run(kill_at)).returncode == -9:
        store = PostgresStore.load(Database.connect(database_url))
        if store.version != before.version:
            break
        killed_before_commit += 1
        assert list(store.chunks) == list(before.chunks)
        assert store.lexical_search("zebrafish", 5)[0].size == 0
        assert versions() == 1, f"killed before call {kill_at}"
        kill_at += 2
    assert killed_before_commit >= 8, result.stderr
    after = PostgresStore.load(Database.connect(database_url))
    assert after.version != before.version and after.lexical_search("zebrafish", 5)[0].size
    assert build_into(PostgresBackend(Database.connect(database_url)), tmp_corpus, FakeEmbedder(),
                                ChunkerConfig(), lock_timeout=2).up_to_date


class GatedEmbedder(FakeEmbedder):
    """Waits for the test before it encodes, so the test knows a build is inside its lock."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(30)
        return super().encode(texts, progress=progress)


def test_two_builders_one_waits(tmp_corpus: Path, database_url: str) -> None:
    database = Database.connect(database_url)
    gated = GatedEmbedder()
    reports: dict[str, BuildReport | Exception] = {}

    def build(name: str, embedder: FakeEmbedder, timeout: float) -> None:
        try:
            reports[name] = build_into(PostgresBackend(database), tmp_corpus, embedder,
                                                 ChunkerConfig(), lock_timeout=timeout)
        except Exception as exc:
            reports[name] = exc

    first = threading.Thread(target=build, args=("first", gated, 5))
    first.start()
    assert gated.entered.wait(10)
    build("impatient", FakeEmbedder(), 0.2)
    assert isinstance(reports["impatient"], BuildLockedError)
    assert "Another build" in str(reports["impatient"])
    second = threading.Thread(target=build, args=("second", FakeEmbedder(), 30))
    second.start()
    time.sleep(0.5)
    assert second.is_alive(), "the second builder did not wait for the first"
    gated.release.set()
    first.join(30)
    second.join(30)
    first_report, second_report = reports["first"], reports["second"]
    assert isinstance(first_report, BuildReport) and not first_report.up_to_date
    assert isinstance(second_report, BuildReport) and second_report.up_to_date
    assert second_report.version == first_report.version


def test_a_new_version_reaches_another_server_within_two_seconds(
        tmp_corpus: Path, database_url: str) -> None:
    old = pg_build(database_url, tmp_corpus)
    other_server = PostgresStore.load(Database.connect(database_url))
    assert other_server.refresh() is other_server
    (tmp_corpus / "new.md").write_text("# Zebrafish\n\nZebrafish facility contact.\n",
                                       encoding="utf-8")
    report = build_into(PostgresBackend(Database.connect(database_url)), tmp_corpus, FakeEmbedder(),
                                  ChunkerConfig())
    started = time.monotonic()
    while (seen := other_server.refresh()).version != report.version:
        assert time.monotonic() - started < 2.0
        time.sleep(0.05)
    assert "new.md" in seen.documents and seen.lexical_search("zebrafish", 3)[0].size
    # The store loaded before the switch still answers from its own version.
    assert "new.md" not in old.documents
    positions, _ = old.lexical_search("contact", 5)
    assert positions.size and int(positions.max()) < len(old.chunks)


def test_database_errors_are_one_sentence(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="must start with postgresql://"):
        Database("mysql://somewhere/db")
    with pytest.raises(DatabaseError, match="not a valid database URL"):
        Database("postgresql://%zz")
    unreachable = "postgresql://someone:secret@127.0.0.1:1/nothing"
    with pytest.raises(DatabaseError, match="Could not connect to the database nothing") as info:
        Database.connect(unreachable)
    assert "secret" not in str(info.value)
    with pytest.raises(IndexLoadError, match="No index in the database"):
        PostgresStore.load(Database.connect(database_url))
    runner = CliRunner()
    for url in ("mysql://somewhere/db", unreachable):
        for command in (["index"], ["ask", "who?"]):
            result = runner.invoke(app, command, env={
                "COLLAB_QA_DATABASE_URL": url, "COLLAB_QA_INDEX_DIR": str(tmp_path / "index")})
            assert result.exit_code == 2, result.output
            assert "COLLAB_QA_DATABASE_URL" in result.output
    assert not (tmp_path / "index").exists()


@pytest.fixture(scope="module")
def real_postgres_store(postgres_server: Any, real_embedder: Embedder,
                        ) -> PostgresStore:
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as connection:
        connection.execute("CREATE DATABASE real_corpus")
    database = Database.connect(postgres_server.get_uri("real_corpus"))
    build_into(PostgresBackend(database), ROOT / "corpus", real_embedder, ChunkerConfig())
    return PostgresStore.load(database, expected_model_id=real_embedder.model_id)


def _test_split(searcher: Searcher) -> EvalReport:
    questions = load_questions(QUESTIONS, searcher.index.documents, split="test")
    return run_eval(searcher, questions, ["hybrid", "lexical", "dense"], k=10, split="test")


@pytest.mark.slow
def test_the_eval_test_split_through_postgres_matches_the_local_folder(
        real_postgres_store: PostgresStore, real_searcher: Searcher,
        real_embedder: Embedder) -> None:
    searcher = Searcher(real_postgres_store, real_embedder)
    # Like with like: both fuse the same signals (three with sparse terms, for e5).
    assert (searcher.sparse is None) == (real_searcher.sparse is None)
    assert searcher.sparse_weight == real_searcher.sparse_weight
    through_postgres = _test_split(searcher)
    local = _test_split(real_searcher)
    for ours, theirs in zip(through_postgres.modes, local.modes, strict=True):
        print(f"\n{ours.mode}: postgres " + ", ".join(
            f"{name} {ours.metrics[name]:.3f}" for name in ("hit@1", "recall@5", "mrr@10"))
            + f", p50 {ours.metrics['latency_p50_ms']:.1f} ms; local " + ", ".join(
            f"{name} {theirs.metrics[name]:.3f}" for name in ("hit@1", "recall@5", "mrr@10"))
            + f", p50 {theirs.metrics['latency_p50_ms']:.1f} ms")
        for name in ("hit@1", "recall@5"):
            assert abs((ours.metrics[name] or 0) - (theirs.metrics[name] or 0)) <= 0.03, (
                ours.mode, name)


def test_a_database_without_a_recent_pgvector_is_refused_with_a_sentence() -> None:
    from collab_qa.errors import DatabaseError
    from collab_qa.store.postgres_build import require_pgvector

    require_pgvector("0.8.0")
    require_pgvector("0.7")
    with pytest.raises(DatabaseError, match="no pgvector extension"):
        require_pgvector(None)
    with pytest.raises(DatabaseError, match=r"pgvector 0\.5\.1; collab-qa needs 0\.7"):
        require_pgvector("0.5.1")


def test_passages_tokenised_by_an_older_analyser_are_named_until_a_full_build(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from collab_qa.chunking import Chunk
    from collab_qa.store import DocumentRecord
    from collab_qa.store.postgres import Database
    from collab_qa.store.postgres_build import PostgresBackend

    backend = PostgresBackend(Database.connect(database_url))

    def build(documents: Sequence[str], keep: Sequence[str] = ()) -> Any:
        with backend.building(10):
            writer = backend.writer(backend.load() if keep else None)
            for doc_id in keep:
                writer.keep(doc_id)
            for doc_id in documents:
                chunk = Chunk(doc_id, 0, (), 0, 20, f"the {doc_id} office helps")
                writer.add(DocumentRecord(doc_id, doc_id, "", f"sha-{doc_id}", "txt", ()),
                           [chunk], np.ones((1, 8), dtype=np.float32))
            writer.commit({"model": {"id": "fake", "dimension": 8}, "chunker": {},
                           "skipped": [], "build": {}})
        return backend.load()

    outdated = "older text analyser"
    with caplog.at_level("WARNING", logger="collab_qa.store.postgres"):
        build(["alpha"])
        assert outdated not in caplog.text
        with psycopg.connect(database_url) as connection:  # as an older release left it
            connection.execute("UPDATE collab_qa.versions "
                               "SET manifest = (manifest::jsonb - 'analyser')::json")
        caplog.clear()
        backend.load()
        assert outdated in caplog.text
        caplog.clear()
        kept = build(["beta"], keep=["alpha"])  # alpha's tokens are still the old ones
        assert kept.manifest.get("analyser") is None and outdated in caplog.text
        caplog.clear()
        build(["alpha", "beta"])  # every passage tokenised again
        assert outdated not in caplog.text
