"""Pieces every store implementation uses: the passage lookup, the word statistics and the
draft of a new version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from collab_qa.analysis import TermStats
from collab_qa.chunking import Chunk, embedding_text
from collab_qa.documents import filler_lines
from collab_qa.store import DocumentRecord


def passage_stats(chunks: Sequence[Chunk], documents: Mapping[str, DocumentRecord]) -> TermStats:
    """The word statistics of a version's passages, over the text BM25 indexes, with the
    filler lines of its documents."""
    stats = TermStats.from_passages(
        (chunk.id, embedding_text(documents[chunk.doc_id].title, chunk)) for chunk in chunks)
    stats.fillers = filler_lines(_document_lines(chunks))
    return stats


def _document_lines(chunks: Sequence[Chunk]) -> list[str]:
    """Every line of the passages, once per place in its document (passages overlap)."""
    seen: dict[tuple[str, int], str] = {}
    for chunk in chunks:
        offset = chunk.start
        for line in chunk.text.split("\n"):
            seen.setdefault((chunk.doc_id, offset), line)
            offset += len(line) + 1
    return list(seen.values())


class ChunkTable:
    """The passages of one version, found by id or by their place in a document.

    An id of the form ``doc#ordinal`` (before ids came from content) still finds its
    passage, so citations made then keep working.
    """

    def __init__(self, chunks: Sequence[Chunk], documents: Mapping[str, DocumentRecord],
                 manifest: Mapping[str, Any]) -> None:
        self.documents = documents
        self.manifest = manifest
        self._by_id = {chunk.id: chunk for chunk in chunks}
        self._positions = {chunk.id: position for position, chunk in enumerate(chunks)}
        self._by_place = {(chunk.doc_id, chunk.ordinal): chunk for chunk in chunks}

    def by_id(self, chunk_id: str) -> Chunk | None:
        """The passage with this id (or old ``doc#ordinal`` id), or None."""
        found = self._by_id.get(chunk_id)
        if found is None and "#" in chunk_id:
            doc_id, _, ordinal = chunk_id.rpartition("#")
            if ordinal.isdigit():
                found = self._by_place.get((doc_id, int(ordinal)))
        return found

    def position_of(self, chunk_id: str) -> int | None:
        """The position of the passage with this id, or None."""
        return self._positions.get(chunk_id)

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        """The passage after ``chunk`` in its document, or None."""
        return self._by_place.get((chunk.doc_id, chunk.ordinal + 1))


class TableLookups:
    """The lookups every store answers alike from its ``ChunkTable``."""

    _table: ChunkTable

    @property
    def version(self) -> str:
        return str(self._table.manifest["version"])

    @property
    def model_id(self) -> str:
        return str(self._table.manifest["model"]["id"])

    def title_of(self, doc_id: str) -> str:
        return self._table.documents[doc_id].title

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        return self._table.by_id(chunk_id)

    def position_of(self, chunk_id: str) -> int | None:
        return self._table.position_of(chunk_id)

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        return self._table.next_chunk(chunk)


class VersionWithVectors(Protocol):
    """A loaded version whose vectors can be read back, one row per passage position."""

    @property
    def documents(self) -> Mapping[str, DocumentRecord]: ...

    @property
    def chunks(self) -> Sequence[Chunk]: ...

    @property
    def vectors(self) -> np.ndarray: ...


class DraftWriter:
    """The ``keep`` and ``add`` of an ``IndexWriter``: gathers the new version's documents,
    passages and vectors in order. A store's writer adds ``commit``.

    Args:
        base: The version built on, None for a first build.
    """

    def __init__(self, base: VersionWithVectors | None) -> None:
        self._base = base
        self._positions = {c.id: i for i, c in enumerate(base.chunks)} if base else {}
        self.records: list[DocumentRecord] = []
        self.chunks: list[Chunk] = []
        self._vectors: list[np.ndarray] = []

    def keep(self, doc_id: str) -> None:
        if self._base is None:
            raise KeyError(f"{doc_id} cannot be kept: there is no previous version")
        record = self._base.documents[doc_id]
        rows = [self._positions[chunk_id] for chunk_id in record.chunk_ids]
        self.add(record, [self._base.chunks[i] for i in rows], self._base.vectors[rows])

    def add(self, document: DocumentRecord, chunks: Sequence[Chunk],
            vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} passages of {document.id} but {len(vectors)} vectors")
        self.records.append(replace(document, chunk_ids=tuple(c.id for c in chunks)))
        self.chunks.extend(chunks)
        self._vectors.append(np.asarray(vectors, dtype=np.float32))

    def matrix(self, dimension: int) -> np.ndarray:
        """The vectors of every passage, one row each, in order."""
        if not self.chunks:
            return np.zeros((0, dimension), dtype=np.float32)
        return np.concatenate(self._vectors).astype(np.float32)

    def manifest_facts(self) -> dict[str, Any]:
        """The manifest's ``documents`` (sha256, title, chunk ids) and ``totals``."""
        return {
            "documents": {r.id: {"sha256": r.sha256, "title": r.title,
                                 "chunk_ids": list(r.chunk_ids)} for r in self.records},
            "totals": {"documents": len(self.records), "chunks": len(self.chunks)},
        }
