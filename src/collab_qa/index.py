"""Build and update an index, whatever store keeps it: documents -> chunks -> embed only
the documents that changed -> write a new version through the store's ``IndexWriter``.

``build_index`` does this for a corpus folder and the local index folder (``store.local``);
``copy_index`` copies a local folder's live version into another store without embedding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from collab_qa.chunking import Chunk, ChunkerConfig, chunk_document, embedding_text
from collab_qa.documents import Document, SkippedFile, load_corpus
from collab_qa.embedding import Embedder, SparseEmbedder, sparse_dimension
from collab_qa.errors import UserError
from collab_qa.settings import Settings
from collab_qa.sparse import SparseVector
from collab_qa.store import DocumentRecord, IndexStore, StoreBackend
from collab_qa.store.local import (
    CURRENT_FILE,
    LOCK_FILE,
    TMP_PREFIX,
    LocalStore,
    current_version_dir,
    load_index,
)
from collab_qa.store.local_build import LocalFolder

# Read from here by the web app and the server tests.
__all__ = [
    "CURRENT_FILE", "LOCK_FILE", "TMP_PREFIX", "BuildReport", "DocumentRecord", "build_index",
    "build_index_from_settings", "copy_index", "current_version_dir", "load_index", "update_index",
]


@dataclass
class BuildReport:
    """What a build did, for the CLI summary and the documents page.

    ``embedded_chunks`` counts the passages of new and changed documents (encoded whole);
    ``sparse_added_chunks`` the kept passages that only got sparse vectors; and
    ``lexical_rebuilt`` says the previous version's BM25 index was an older text analyser's,
    rebuilt here with the vectors kept.
    """

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks: int = 0
    embedded_chunks: int = 0
    sparse_added_chunks: int = 0
    lexical_rebuilt: bool = False
    seconds: float = 0.0
    full_rebuild_reason: str | None = None
    version: str = ""
    up_to_date: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: ChunkerConfig,
    *,
    full: bool = False,
    max_file_bytes: int = 20_000_000,
    approximate_threshold: int = 50_000,
    lock_timeout: float = 30.0,
    progress: bool = False,
    sparse_terms: bool = True,
) -> BuildReport:
    """Bring the index folder in line with the corpus, re-embedding only what changed.

    Args:
        corpus_dir: Folder with the documents.
        index_dir: Index folder; created when missing.
        embedder: The embedding model.
        chunker: Chunk size and overlap.
        full: Re-embed every document even when unchanged.
        max_file_bytes: Larger files are skipped.
        approximate_threshold: Chunk count from which the dense index is approximate.
        lock_timeout: Seconds to wait for another build to finish.
        progress: Show the embedding progress bar.
        sparse_terms: Also keep the passages' sparse vectors, when the model has them.

    Raises:
        UserError: when the corpus folder is missing.
        BuildLockedError: when another build keeps the lock longer than ``lock_timeout``.
    """
    return build_into(LocalFolder(index_dir, approximate_threshold=approximate_threshold),
                      corpus_dir, embedder, chunker, full=full, max_file_bytes=max_file_bytes,
                      lock_timeout=lock_timeout, progress=progress, sparse_terms=sparse_terms)


def build_into(backend: StoreBackend, corpus_dir: Path, embedder: Embedder,
               chunker: ChunkerConfig, *, full: bool = False, max_file_bytes: int = 20_000_000,
               lock_timeout: float = 30.0, progress: bool = False,
               sparse_terms: bool = True) -> BuildReport:
    """Read the corpus and bring ``backend``'s index in line with it, under its build lock.

    Raises:
        UserError: when the corpus folder is missing.
        BuildLockedError: when another build keeps the lock longer than ``lock_timeout``.
    """
    if not corpus_dir.is_dir():
        raise UserError(f"The corpus folder {corpus_dir} does not exist.")
    with backend.building(lock_timeout):
        started = time.perf_counter()
        documents, skipped = load_corpus(corpus_dir, max_file_bytes)
        report = update_index(backend, documents, embedder, chunker, skipped=skipped,
                              full=full, progress=progress, sparse_terms=sparse_terms)
        report.seconds = time.perf_counter() - started
        return report


def build_index_from_settings(settings: Settings, embedder: Embedder, *, full: bool = False,
                              progress: bool = False) -> BuildReport:
    """``build_index`` with every folder, limit and chunker knob taken from the settings."""
    return build_index(
        settings.corpus_dir, settings.index_dir, embedder,
        ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap_tokens),
        full=full, max_file_bytes=settings.max_file_bytes,
        approximate_threshold=settings.approximate_threshold,
        lock_timeout=settings.build_lock_timeout, progress=progress,
        sparse_terms=settings.sparse_terms,
    )


def _full_rebuild_reason(previous: IndexStore | None, reason: str | None, embedder: Embedder,
                         chunker: ChunkerConfig, full: bool) -> str | None:
    """Why no vector of the previous version can be reused (None: they can)."""
    if full:
        return "--full was asked for"
    if previous is None:
        return reason
    if previous.model_id != embedder.model_id:
        return f"the model changed ({previous.model_id} -> {embedder.model_id})"
    if previous.manifest["chunker"] != asdict(chunker):
        return "the chunker settings changed"
    return None


def _sparse_for_kept(reuse: IndexStore | None, features: int,
                     plan: Sequence[tuple[Document, list[Chunk] | None]],
                     embedder: Embedder, progress: bool) -> dict[str, list[SparseVector]]:
    """The sparse vectors of the kept documents' passages when the build keeps sparse terms
    and the previous version has none (sparse terms just turned on, or an older format):
    only they are encoded, the dense vectors are reused."""
    if (reuse is None or not features or not isinstance(embedder, SparseEmbedder)
            or int(reuse.manifest["model"].get("sparse_dimension", 0)) == features):
        return {}
    kept: dict[str, list[str]] = {}
    for document, chunks in plan:
        if chunks is None:
            passages = [reuse.chunk_by_id(chunk_id)
                        for chunk_id in reuse.documents[document.id].chunk_ids]
            kept[document.id] = [embedding_text(reuse.title_of(document.id), passage)
                                 for passage in passages if passage is not None]
    encoded = iter(embedder.encode_sparse([t for texts in kept.values() for t in texts],
                                          progress=progress))
    return {doc_id: [next(encoded) for _ in texts] for doc_id, texts in kept.items()}


def update_index(
    backend: StoreBackend, documents: Sequence[Document], embedder: Embedder,
    chunker: ChunkerConfig, *, skipped: Sequence[SkippedFile] = (), full: bool = False,
    progress: bool = False, sparse_terms: bool = True,
) -> BuildReport:
    """Write a new version holding ``documents``, embedding only the new and changed ones.

    Call it inside ``backend.building(...)``. Nothing is written when the live version
    already holds exactly these documents (``report.up_to_date``).

    Args:
        backend: Where the index is kept.
        documents: Every document of the new version, in order.
        embedder: The embedding model.
        chunker: Chunk size and overlap.
        skipped: Files the corpus reader left out, kept in the manifest.
        full: Re-embed every document even when unchanged.
        progress: Show the embedding progress bar.
        sparse_terms: Also keep the passages' sparse vectors, when the model has them and the
            store can keep them.
    """
    started = time.perf_counter()
    report = BuildReport(skipped=list(skipped))
    features = (sparse_dimension(embedder)
                if sparse_terms and backend.keeps_sparse_terms else 0)
    previous, reason = backend.base()
    reason = _full_rebuild_reason(previous, reason, embedder, chunker, full)
    reuse = previous if reason is None else None
    report.full_rebuild_reason = reason if previous is not None or full else None

    old_docs = previous.documents if previous else {}
    plan: list[tuple[Document, list[Chunk] | None]] = []  # None: keep the previous passages
    texts: list[str] = []
    for document in documents:
        old = old_docs.get(document.id)
        if reuse is not None and old is not None and old.sha256 == document.sha256:
            report.unchanged.append(document.id)
            report.chunks += len(old.chunk_ids)
            plan.append((document, None))
            continue
        if old is None:
            report.added.append(document.id)
        else:
            (report.changed if old.sha256 != document.sha256 else report.unchanged).append(
                document.id)
        new_chunks = chunk_document(document, chunker, embedder.count_tokens)
        texts.extend(embedding_text(document.title, chunk) for chunk in new_chunks)
        report.chunks += len(new_chunks)
        plan.append((document, new_chunks))
    report.removed = sorted(set(old_docs) - {d.id for d in documents})

    skipped_rows = [asdict(s) for s in report.skipped]
    # The local folder's BM25 index is rebuilt with every version it writes.
    report.lexical_rebuilt = isinstance(reuse, LocalStore) and reuse.lexical_outdated
    if (reuse is not None and not report.added and not report.changed and not report.removed
            and reuse.manifest.get("skipped") == skipped_rows and not report.lexical_rebuilt
            and int(reuse.manifest["model"].get("sparse_dimension", 0)) == features):
        report.up_to_date = True
        report.version = reuse.version
        report.seconds = time.perf_counter() - started
        return report

    report.embedded_chunks = len(texts)
    fresh = (embedder.encode(texts, progress=progress) if texts
             else np.zeros((0, embedder.dimension), dtype=np.float32))
    fresh_sparse = (embedder.encode_sparse(texts, progress=progress)
                    if features and isinstance(embedder, SparseEmbedder) else None)
    kept_sparse = _sparse_for_kept(reuse, features, plan, embedder, progress)
    report.sparse_added_chunks = sum(len(vectors) for vectors in kept_sparse.values())
    writer = backend.writer(reuse)
    offset = 0
    for document, chunks in plan:
        if chunks is None:
            writer.keep(document.id, kept_sparse.get(document.id))
            continue
        record = DocumentRecord(document.id, document.title, document.text, document.sha256,
                                document.format, tuple(chunk.id for chunk in chunks))
        writer.add(record, chunks, fresh[offset:offset + len(chunks)],
                   None if fresh_sparse is None else fresh_sparse[offset:offset + len(chunks)])
        offset += len(chunks)
    report.version = writer.commit({
        "model": {"id": embedder.model_id, "dimension": embedder.dimension,
                  "sparse_dimension": features},
        "chunker": asdict(chunker),
        "skipped": skipped_rows,
        "build": {key: value for key, value in report.to_dict().items()
                  if key in ("added", "changed", "removed", "full_rebuild_reason")},
    })
    report.seconds = time.perf_counter() - started
    return report


def copy_index(source: LocalStore, backend: StoreBackend, *,
               lock_timeout: float = 30.0) -> BuildReport:
    """Write ``source`` (a local folder's version) into ``backend`` as its next version:
    documents, passages and their vectors (and sparse vectors, when the folder has them and
    the backend keeps them) as they are, nothing embedded again.

    The new version holds exactly the source's documents; its manifest keeps the source's
    model, chunker settings and skipped files, and names the version it was copied from
    (``build.copied_from``), so later builds from the same corpus reuse every vector.

    Args:
        source: The loaded version to copy.
        backend: Where it goes (e.g. the database).
        lock_timeout: Seconds to wait for another build of ``backend``.

    Raises:
        BuildLockedError: when another build keeps the lock longer than ``lock_timeout``.
    """
    started = time.perf_counter()
    skipped = [SkippedFile(**row) for row in source.manifest.get("skipped", [])]
    report = BuildReport(added=list(source.documents), skipped=skipped,
                         chunks=len(source.chunks))
    positions = {chunk.id: position for position, chunk in enumerate(source.chunks)}
    with backend.building(lock_timeout):
        previous, _ = backend.base()
        report.removed = sorted(set(previous.documents) - set(source.documents)
                                if previous else ())
        writer = backend.writer(None)
        terms = source.sparse if backend.keeps_sparse_terms else None
        for record in source.documents.values():
            rows = [positions[chunk_id] for chunk_id in record.chunk_ids]
            writer.add(record, [source.chunks[row] for row in rows],
                       np.asarray(source.vectors[rows], dtype=np.float32),
                       None if terms is None else [terms.row(row) for row in rows])
        report.version = writer.commit({
            "model": {**source.manifest["model"],
                      "sparse_dimension": 0 if terms is None else terms.dimension},
            "chunker": source.manifest["chunker"],
            "skipped": source.manifest.get("skipped", []),
            "build": {"added": report.added, "changed": [], "removed": report.removed,
                      "full_rebuild_reason": None, "copied_from": source.version},
        })
    report.seconds = time.perf_counter() - started
    return report
