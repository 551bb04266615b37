"""The benchmark's own copy of corpus/ and its index, so bench runs never touch index/."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.common import CACHE, CORPUS
from collab_qa.embedding import Embedder
from collab_qa.index import BuildReport, build_index_from_settings
from collab_qa.settings import Settings


def bench_settings(name: str = "corpus") -> Settings:
    """Settings pointing at ``bench/cache/<name>/{corpus,index,data}``."""
    base = CACHE / name
    return Settings(corpus_dir=base / "corpus", index_dir=base / "index", data_dir=base / "data")


def fresh_corpus(settings: Settings, source: Path = CORPUS) -> None:
    """Replace the bench corpus copy with ``source`` (the index is left alone)."""
    shutil.rmtree(settings.corpus_dir, ignore_errors=True)
    shutil.copytree(source, settings.corpus_dir)


def build(settings: Settings, embedder: Embedder, *, full: bool = False) -> BuildReport:
    """Build or update the bench index with the product's build_index."""
    return build_index_from_settings(settings, embedder, full=full)
