"""An index kept in memory: exact dense search with numpy and BM25 in plain numpy over the
analyser's tokens. The fast tests use it; that it serves search and answer as the local
folder does shows the store protocol is not FAISS-shaped."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from collab_qa.analysis import TermStats, lexical_tokens, query_tokens
from collab_qa.chunking import Chunk, embedding_text
from collab_qa.errors import BuildLockedError, IndexLoadError
from collab_qa.sparse import SparseTerms
from collab_qa.store import DocumentRecord, IndexStore
from collab_qa.store.shared import ChunkTable, DraftWriter, TableLookups, passage_stats


class MemoryBM25:
    """Okapi BM25 as Lucene scores it (k1 = 1.5, b = 0.75), the variant bm25s computes."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75) -> None:
        # A passage without indexable words counts as one empty word, as in the local index.
        tokens = [tokens or [""] for tokens in lexical_tokens(texts)]
        self._counts = [Counter(words) for words in tokens]
        lengths = np.array([len(words) for words in tokens], dtype=np.float64)
        average = float(lengths.mean()) if len(tokens) else 1.0
        self._norm = k1 * (1 - b + b * lengths / average)
        frequency = Counter(word for counts in self._counts for word in counts)
        size = len(tokens)
        self._idf = {word: math.log(1 + (size - df + 0.5) / (df + 0.5))
                     for word, df in frequency.items()}

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every passage (0 where no query word occurs)."""
        total = np.zeros(len(self._counts), dtype=np.float64)
        for word in query_tokens(query):
            idf = self._idf.get(word)
            if idf is None:
                continue
            tf = np.array([counts.get(word, 0) for counts in self._counts], dtype=np.float64)
            total += idf * tf / (tf + self._norm)
        return total.astype(np.float32)


@dataclass
class MemoryStore(TableLookups):
    """One version held in memory (implements ``IndexStore``); ``sparse`` holds the passages'
    sparse vectors when the build made them."""

    manifest: dict[str, Any]
    documents: dict[str, DocumentRecord]
    chunks: list[Chunk]
    vectors: np.ndarray
    sparse: SparseTerms | None = None
    term_stats: TermStats = field(init=False)
    _table: ChunkTable = field(init=False, repr=False)
    _lexical: MemoryBM25 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = ChunkTable(self.chunks, self.documents, self.manifest)
        self._lexical = MemoryBM25(
            [embedding_text(self.title_of(chunk.doc_id), chunk) for chunk in self.chunks])
        self.term_stats = passage_stats(self.chunks, self.documents)

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(self.vectors @ vector, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return order.astype(np.int64), scores[order]

    def dense_scores(self, vector: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[positions] @ vector, dtype=np.float32)

    def lexical_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self._lexical.scores(query)
        found = np.flatnonzero(scores > 0)
        top = found[np.argsort(-scores[found], kind="stable")[:k]]
        return top.astype(np.int64), scores[top]

    def lexical_scores(self, query: str, positions: np.ndarray) -> np.ndarray:
        return self._lexical.scores(query)[positions]


class MemoryWriter(DraftWriter):
    """The next version of a ``MemoryBackend`` (``IndexWriter``)."""

    def __init__(self, backend: MemoryBackend, base: MemoryStore | None) -> None:
        super().__init__(base)
        self._backend = backend

    def commit(self, facts: Mapping[str, Any]) -> str:
        version = f"m{len(self._backend.versions) + 1}"
        manifest = {"version": version, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    **facts, **self.manifest_facts()}
        self._backend.versions.append(MemoryStore(
            manifest, {r.id: r for r in self.records}, list(self.chunks),
            self.matrix(int(facts["model"]["dimension"])),
            self.sparse_terms(int(facts["model"].get("sparse_dimension", 0)))))
        return version


class MemoryBackend:
    """Versions kept in a list, the last one live (``StoreBackend``)."""

    keeps_sparse_terms = True

    def __init__(self) -> None:
        self.versions: list[MemoryStore] = []
        self._lock = threading.Lock()

    @contextmanager
    def building(self, timeout: float) -> Iterator[None]:
        if not self._lock.acquire(timeout=timeout):
            raise BuildLockedError(f"Another build is running and did not finish within "
                                   f"{timeout:g} s; try again when it is done.")
        try:
            yield
        finally:
            self._lock.release()

    def load(self, *, expected_model_id: str | None = None) -> MemoryStore:
        if not self.versions:
            raise IndexLoadError("No index in memory; build one first.")
        live = self.versions[-1]
        if expected_model_id is not None and live.model_id != expected_model_id:
            raise IndexLoadError(f"The index was built with model {live.model_id}, but the "
                                 f"configured model is {expected_model_id}; rebuild it.")
        return live

    def base(self) -> tuple[MemoryStore | None, str | None]:
        return (self.versions[-1], None) if self.versions else (None, "no previous index")

    def writer(self, base: IndexStore | None) -> MemoryWriter:
        if base is not None and not isinstance(base, MemoryStore):
            raise TypeError(f"A memory index builds on a memory version, not {type(base)}.")
        return MemoryWriter(self, base)
