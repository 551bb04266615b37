"""Where an index lives. ``IndexStore`` is what search and answer read; the local folder
(FAISS + BM25, the embedded default) is one implementation, an in-memory store for fast
tests another. Nothing here names FAISS or bm25s: positions are plain integers and scores
plain float32 arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from collab_qa.analysis import TermStats
from collab_qa.chunking import Chunk


@dataclass(frozen=True)
class DocumentRecord:
    """What the index keeps of a document."""

    id: str
    title: str
    text: str
    sha256: str
    format: str
    chunk_ids: tuple[str, ...]


class IndexStore(Protocol):
    """One loaded, consistent index version.

    Positions number the passages from 0 to ``len(chunks) - 1``; every method that takes or
    returns positions means the same passages.
    """

    @property
    def version(self) -> str:
        """The version's name; changes with every build."""
        ...

    @property
    def model_id(self) -> str:
        """The embedding model the vectors were made with."""
        ...

    @property
    def manifest(self) -> Mapping[str, Any]:
        """Facts of the build: format, model, chunker settings, documents, totals, time."""
        ...

    @property
    def documents(self) -> Mapping[str, DocumentRecord]:
        """Every indexed document by id."""
        ...

    @property
    def chunks(self) -> Sequence[Chunk]:
        """Every passage, by position."""
        ...

    @property
    def term_stats(self) -> TermStats:
        """Word statistics of the passages, computed once per version."""
        ...

    def title_of(self, doc_id: str) -> str:
        """The title of an indexed document."""
        ...

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        """The passage with this id, or None."""
        ...

    def position_of(self, chunk_id: str) -> int | None:
        """The position of the passage with this id, or None."""
        ...

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        """The passage that follows ``chunk`` in its document, or None."""
        ...

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` passages nearest a unit query vector: (positions, cosine scores),
        best first."""
        ...

    def dense_scores(self, vector: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Exact cosine of the query vector with each passage at ``positions``."""
        ...

    def lexical_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` passages with a positive BM25 score for ``query``: (positions,
        scores), in no particular order."""
        ...

    def lexical_scores(self, query: str, positions: np.ndarray) -> np.ndarray:
        """BM25 score of each passage at ``positions`` for ``query`` (0: no word shared)."""
        ...
