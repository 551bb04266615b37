"""Where an index lives.

``IndexStore`` is one loaded index version, what search and answer read. ``StoreBackend``
is where versions are kept and how a build writes the next one (``IndexWriter``). The
local folder (FAISS + BM25, ``store.local``, the embedded default) is one implementation,
the in-memory store of the fast tests (``store.memory``) another. Nothing here names FAISS
or bm25s: positions are plain integers, scores and vectors plain float32 arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from collab_qa.analysis import TermStats
from collab_qa.chunking import Chunk
from collab_qa.sparse import SparseIndex, SparseVector


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
        """The passage with this id, or None; an old ``doc#ordinal`` id still finds it."""
        ...

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        """The passage after ``chunk`` in its document, or None at the document's end."""
        ...

    def position_of(self, chunk_id: str) -> int | None:
        """The position of the passage with this id, or None."""
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


class IndexWriter(Protocol):
    """The next index version, being written on top of the live one (its base).

    The new version holds exactly the documents kept or added, in that order; the base's
    other documents are gone from it. Readers see nothing of it before ``commit``.
    """

    def keep(self, doc_id: str, sparse: Sequence[SparseVector] | None = None) -> None:
        """Carry a document of the base over unchanged, with its passages and vectors (and
        ``sparse``, its passages' sparse vectors, when the base has none)."""
        ...

    def add(self, document: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray,
            sparse: Sequence[SparseVector] | None = None) -> None:
        """Add a new or changed document: its passages in order, one unit vector each, and
        one sparse vector each when the build makes them (a store that keeps none ignores
        them)."""
        ...

    def commit(self, facts: Mapping[str, Any]) -> str:
        """Make the version live in one step and return its name.

        Args:
            facts: Manifest facts of the build (model, chunker settings, skipped files, what
                the build did); the store adds the format, version, documents and totals.

        Raises:
            UserError: when the version cannot be written; the live one is then unchanged.
        """
        ...


@runtime_checkable
class WithSparseTerms(Protocol):
    """A loaded version that may hold the passages' sparse vectors (``collab_qa.sparse``)."""

    @property
    def sparse(self) -> SparseIndex | None:
        """The sparse vectors by passage position, or None when the build made none."""
        ...


class StoreBackend(Protocol):
    """Where the versions of one index are kept."""

    @property
    def keeps_sparse_terms(self) -> bool:
        """Whether a version can hold the passages' sparse vectors."""
        ...

    def building(self, timeout: float) -> AbstractContextManager[None]:
        """Hold the build lock (one builder at a time) and clear what crashed builds left.

        Raises:
            BuildLockedError: when another build keeps the lock longer than ``timeout`` s.
        """
        ...

    def load(self, *, expected_model_id: str | None = None) -> IndexStore:
        """The live version, ready to serve: validated, word statistics computed.

        Raises:
            IndexLoadError: when there is none, or it is corrupt or of another model.
        """
        ...

    def base(self) -> tuple[IndexStore | None, str | None]:
        """The live version to build on, or None and why ("no previous index", or why it
        could not be read)."""
        ...

    def writer(self, base: IndexStore | None) -> IndexWriter:
        """Start the next version on top of ``base`` (what ``base()`` returned)."""
        ...
