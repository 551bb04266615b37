from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from collab_qa.analysis import analyser_version
from collab_qa.answer import search_passages
from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder, FakeSparseEmbedder
from collab_qa.errors import BuildLockedError, IndexLoadError
from collab_qa.index import (
    CURRENT_FILE,
    LOCK_FILE,
    build_index,
    current_version_dir,
    load_index,
)
from collab_qa.search import Searcher
from collab_qa.store.local import FORMAT_VERSION, LEXICAL, LexicalIndex, make_vector_index
from tests.conftest import DAMAGES, build, damage_index


def test_build_writes_a_versioned_index(tmp_corpus: Path, tmp_path: Path,
                                        fake_embedder: FakeEmbedder) -> None:
    index_dir = tmp_path / "index"
    report = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    assert sorted(report.added) == sorted(p.name for p in tmp_corpus.iterdir())
    version = current_version_dir(index_dir)
    assert version is not None and version.name == report.version
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["model"] == {"id": "fake-embedder", "dimension": 64, "sparse_dimension": 0}
    assert manifest["totals"]["chunks"] == report.chunks > 5
    assert manifest["chunker"]["max_tokens"] == 200
    index = load_index(index_dir)
    assert len(index.chunks) == report.chunks
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    assert index.stats is not None  # word statistics are computed while loading, not later
    assert set(index.stats.chunk_tokens) == {c.id for c in index.chunks}


def test_an_index_of_an_older_format_asks_for_a_rebuild(tmp_corpus: Path, tmp_path: Path,
                                                        fake_embedder: FakeEmbedder) -> None:
    index_dir = tmp_path / "index"
    build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    version = current_version_dir(index_dir)
    assert version is not None
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION - 2  # stemmed otherwise then
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match=rf"has format {FORMAT_VERSION - 2}, this collab-qa "
                                             rf"reads format {FORMAT_VERSION} \(and 5\); "
                                             r"rebuild it with `collab-qa index --full`"):
        load_index(index_dir)
    report = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    assert report.embedded_chunks == report.chunks  # nothing of the old format is reused
    assert load_index(index_dir).manifest["format_version"] == FORMAT_VERSION


def test_a_corpus_with_no_documents_builds_an_empty_index(tmp_path: Path,
                                                          fake_embedder: FakeEmbedder) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "empty.txt").write_bytes(b"")
    report = build_index(tmp_path / "corpus", tmp_path / "index", fake_embedder, ChunkerConfig())
    assert report.chunks == 0 and [s.path for s in report.skipped] == ["empty.txt"]
    index = load_index(tmp_path / "index")
    assert not index.chunks
    assert search_passages(Searcher(index, fake_embedder), "anything", k=3) == []


def test_incremental_rebuild_reembeds_only_changes(tmp_corpus: Path, tmp_path: Path,
                                                   fake_embedder: FakeEmbedder) -> None:
    index_dir = tmp_path / "index"
    first = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    germany = tmp_corpus / "collaboration-in-germany.txt"
    germany.write_text(germany.read_text().replace(
        "KI has no central post doc agreements", "KI has a zebrafish agreement"), encoding="utf-8")
    (tmp_corpus / "cutcancer-twinning-project.txt").unlink()

    report = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())

    assert report.changed == ["collaboration-in-germany.txt"]
    assert report.removed == ["cutcancer-twinning-project.txt"]
    assert len(report.unchanged) == 3 and not report.full_rebuild_reason
    assert 0 < report.embedded_chunks < first.embedded_chunks
    index = load_index(index_dir)
    texts = " ".join(c.text for c in index.chunks)
    assert "zebrafish" in texts
    assert "no central post doc agreements" not in texts
    assert "Cutcancer" not in texts and "cutcancer-twinning-project.txt" not in index.documents
    searcher = Searcher(index, fake_embedder)
    for mode in ("dense", "lexical", "hybrid"):
        hits = search_passages(searcher, "Cutcancer twinning NIB Swansea", k=10, mode=mode)
        assert all(h.doc_id != "cutcancer-twinning-project.txt" for h in hits)
    assert search_passages(searcher, "zebrafish agreement", k=1, mode="lexical")[0].doc_id == \
        "collaboration-in-germany.txt"


def test_unchanged_corpus_is_up_to_date(tmp_corpus: Path, tmp_path: Path,
                                        fake_embedder: FakeEmbedder) -> None:
    index_dir = tmp_path / "index"
    first = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    again = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    assert again.up_to_date and again.version == first.version and again.embedded_chunks == 0


def test_an_older_analysers_bm25_index_is_rebuilt_without_encoding(
        tmp_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder,
        caplog: pytest.LogCaptureFixture) -> None:
    index_dir = tmp_path / "index"
    build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    fresh = load_index(index_dir)
    assert fresh.manifest["analyser"] == analyser_version() and not fresh.lexical_outdated
    question = "agreement signed with the partner"
    # A folder an older analyser wrote: other BM25 statistics, and no analyser (or another).
    version = current_version_dir(index_dir)
    assert version is not None
    shutil.rmtree(version / LEXICAL)
    LexicalIndex.build([chunk.text[::-1] for chunk in fresh.chunks]).save(version / LEXICAL)
    manifest = json.loads((version / "manifest.json").read_text())
    del manifest["analyser"]
    (version / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="collab_qa"):
        stale = load_index(index_dir)
    assert stale.lexical_outdated
    assert not np.allclose(stale.lexical.scores(question), fresh.lexical.scores(question))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "run `collab-qa index` to rebuild it" in warnings[0]
    assert "\n" not in warnings[0]

    report = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    assert report.lexical_rebuilt and not report.up_to_date
    assert report.embedded_chunks == 0 and not report.added and not report.changed
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="collab_qa"):
        rebuilt = load_index(index_dir)
    assert not caplog.records and not rebuilt.lexical_outdated
    assert np.array_equal(rebuilt.vectors, fresh.vectors)  # reused, not encoded again
    assert np.allclose(rebuilt.lexical.scores(question), fresh.lexical.scores(question))
    again = build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    assert again.up_to_date and not again.lexical_rebuilt


def test_the_index_command_says_what_a_build_did(tmp_corpus: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from collab_qa.cli import app

    monkeypatch.setattr("collab_qa.embedding.load_embedder",
                        lambda model="": FakeSparseEmbedder())
    monkeypatch.delenv("COLLAB_QA_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("COLLAB_QA_CORPUS_DIR", str(tmp_corpus))

    def summary(sparse_terms: bool) -> str:
        monkeypatch.setenv("COLLAB_QA_SPARSE_TERMS", str(sparse_terms).lower())
        result = CliRunner().invoke(app, ["index"], terminal_width=200)
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    first = summary(sparse_terms=False)
    passages = len(load_index(tmp_path / "index").chunks)
    assert f"{passages} embedded" in first
    added = summary(sparse_terms=True)  # only the sparse terms are encoded
    assert f"sparse terms added for {passages} passages" in added and "embedded" not in added
    version = current_version_dir(tmp_path / "index")
    assert version is not None
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["analyser"] = "0-older"
    (version / "manifest.json").write_text(json.dumps(manifest))
    rebuilt = summary(sparse_terms=True)
    assert "BM25 index rebuilt" in rebuilt and "embedded" not in rebuilt
    assert "already up to date" in summary(sparse_terms=True)


def test_model_or_chunker_change_forces_full_rebuild(tmp_corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    build_index(tmp_corpus, index_dir, FakeEmbedder(), ChunkerConfig())
    other_model = build_index(tmp_corpus, index_dir, FakeEmbedder(model_id="other"),
                              ChunkerConfig())
    assert "model changed" in (other_model.full_rebuild_reason or "")
    assert other_model.embedded_chunks == other_model.chunks
    other_chunks = build_index(tmp_corpus, index_dir, FakeEmbedder(model_id="other"),
                               ChunkerConfig(max_tokens=100))
    assert "chunker" in (other_chunks.full_rebuild_reason or "")
    with pytest.raises(IndexLoadError, match="built with model other"):
        load_index(index_dir, expected_model_id="fake-embedder")


def test_old_versions_and_leftovers_are_cleaned(tmp_corpus: Path, tmp_path: Path,
                                                fake_embedder: FakeEmbedder) -> None:
    index_dir = tmp_path / "index"
    for i in range(4):
        (tmp_corpus / "extra.txt").write_text(f"Extra document number {i}.", encoding="utf-8")
        build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    (index_dir / ".tmp-crashed").mkdir()
    (tmp_corpus / "extra.txt").unlink()
    build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    versions = [p for p in index_dir.iterdir() if p.is_dir()]
    assert len(versions) == 2 and not (index_dir / ".tmp-crashed").exists()


def test_a_second_build_waits_for_the_lock(tmp_corpus: Path, tmp_path: Path,
                                           fake_embedder: FakeEmbedder) -> None:
    from filelock import FileLock

    index_dir = tmp_path / "index"
    index_dir.mkdir()
    lock = FileLock(str(index_dir / LOCK_FILE))
    with lock:
        errors: list[Exception] = []

        def second_build() -> None:
            try:
                build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig(),
                            lock_timeout=0.2)
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=second_build)
        thread.start()
        thread.join()
    assert isinstance(errors[0], BuildLockedError)
    assert "Another build" in str(errors[0])
    assert not (index_dir / CURRENT_FILE).exists()


@pytest.mark.parametrize("damage", DAMAGES)
def test_corrupt_index_is_refused_with_the_file_and_the_fix(
    damage: str, tmp_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    index_dir = tmp_path / "index"
    build(tmp_corpus, index_dir, fake_embedder)
    named = damage_index(index_dir, damage)
    with pytest.raises(IndexLoadError) as caught:
        load_index(index_dir, expected_model_id=fake_embedder.model_id)
    assert named in str(caught.value) and "collab-qa index --full" in str(caught.value)


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match="collab-qa index"):
        load_index(tmp_path / "nothing")


def test_approximate_index_above_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = make_vector_index(vectors, approximate_threshold=10_000)
    approximate = make_vector_index(vectors, approximate_threshold=100)
    assert type(exact).__name__ == "IndexFlatIP"
    assert type(approximate).__name__ == "IndexIVFScalarQuantizer"
    faiss.write_index(approximate, str(tmp_path / "dense.faiss"))
    approximate = faiss.read_index(str(tmp_path / "dense.faiss"))  # nprobe is saved with it
    _, exact_ids = exact.search(vectors[:20], 10)
    _, approx_ids = approximate.search(vectors[:20], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_ids, approx_ids,
                                                                 strict=True)])
    assert recall >= 0.9
