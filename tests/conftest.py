"""Shared fixtures: a fake embedder for fast tests, the real model and the real corpus index
for the tests that matter (loaded once per session)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import Embedder, FakeEmbedder, SentenceTransformerEmbedder
from collab_qa.index import Index, build_index, load_index
from collab_qa.search import Searcher

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def tmp_corpus(tmp_path: Path) -> Path:
    """A writable copy of the real corpus."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    return corpus


def build(corpus: Path, index_dir: Path, embedder: Embedder, **kwargs: object) -> Index:
    build_index(corpus, index_dir, embedder, ChunkerConfig(), **kwargs)  # type: ignore[arg-type]
    return load_index(index_dir, expected_model_id=embedder.model_id)


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def corpus_index_dir(
    real_embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The real corpus indexed with the real model, built once per session."""
    index_dir = tmp_path_factory.mktemp("corpus-index")
    build_index(CORPUS, index_dir, real_embedder, ChunkerConfig())
    return index_dir


@pytest.fixture(scope="session")
def real_searcher(
    corpus_index_dir: Path, real_embedder: SentenceTransformerEmbedder
) -> Iterator[Searcher]:
    index = load_index(corpus_index_dir, expected_model_id=real_embedder.model_id)
    yield Searcher(index, real_embedder)
