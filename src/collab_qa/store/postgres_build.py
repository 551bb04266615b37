"""Build the index in Postgres, re-embedding only the documents whose sha256 changed.

A build holds an advisory lock for its whole run (a second builder waits, as on the local
folder's file lock), embeds outside any transaction, then writes the new version and
switches ``current_version`` to it in one transaction: readers see the old version or the
new one, and a build that fails or is killed leaves the old one serving. Documents and
passages of unchanged files are shared with the previous version, not copied.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Json

from collab_qa.analysis import lexical_tokens
from collab_qa.chunking import Chunk, ChunkerConfig, chunk_document, embedding_text
from collab_qa.documents import Document, load_corpus
from collab_qa.embedding import Embedder
from collab_qa.errors import BuildLockedError, UserError
from collab_qa.index import FORMAT_VERSION, BuildReport
from collab_qa.settings import Settings
from collab_qa.store.postgres import VERSION_CHANNEL, Database, describe_database

log = logging.getLogger(__name__)

# pg_advisory_lock key of the build lock (any constant; "collab" in ASCII).
BUILD_LOCK_KEY = 0x636F6C6C6162
# The current version and the one before it are kept, so a server that loaded the previous
# version just before a switch can finish its searches.
KEEP_VERSIONS = 2
# A tsvector keeps at most 256 positions per lexeme; a passage's term frequency is counted up
# to this many occurrences.
MAX_TERM_FREQUENCY = 255
LOCK_POLL_SECONDS = 0.1


def build_postgres_index(
    database: Database,
    corpus_dir: Path,
    embedder: Embedder,
    chunker: ChunkerConfig,
    *,
    full: bool = False,
    max_file_bytes: int = 20_000_000,
    lock_timeout: float = 30.0,
    progress: bool = False,
) -> BuildReport:
    """Bring the index in the database in line with the corpus.

    Args:
        database: The database.
        corpus_dir: Folder with the documents.
        embedder: The embedding model.
        chunker: Chunk size and overlap.
        full: Re-embed every document even when unchanged.
        max_file_bytes: Larger files are skipped.
        lock_timeout: Seconds to wait for another build to finish.
        progress: Show the embedding progress bar.

    Raises:
        UserError: when the corpus folder is missing.
        BuildLockedError: when another build keeps the lock longer than ``lock_timeout``.
        DatabaseError: when the database cannot be reached.
    """
    if not corpus_dir.is_dir():
        raise UserError(f"The corpus folder {corpus_dir} does not exist.")
    with database.connection() as connection:
        _lock(connection, lock_timeout, database)
        try:
            connection.execute(resources.files("collab_qa.store")
                               .joinpath("postgres_schema.sql").read_text(encoding="utf-8"))
            from pgvector.psycopg import register_vector

            register_vector(connection)
            return _build_locked(connection, corpus_dir, embedder, chunker, full,
                                 max_file_bytes, progress)
        finally:
            if not connection.closed:
                connection.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK_KEY,))


def build_postgres_index_from_settings(settings: Settings, embedder: Embedder, *,
                                       full: bool = False, progress: bool = False,
                                       ) -> BuildReport:
    """``build_postgres_index`` with the database, folders and knobs from the settings."""
    return build_postgres_index(
        Database.connect(settings.database_url), settings.corpus_dir, embedder,
        ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap_tokens),
        full=full, max_file_bytes=settings.max_file_bytes,
        lock_timeout=settings.build_lock_timeout, progress=progress,
    )


def _lock(connection: psycopg.Connection[Any], timeout: float, database: Database) -> None:
    """Take the build lock, polling so the wait has a deadline. A killed builder's session
    ends with its connection, and the lock with it."""
    deadline = time.monotonic() + timeout
    while True:
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (BUILD_LOCK_KEY,)).fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() >= deadline:
            raise BuildLockedError(
                f"Another build of the index in the {describe_database(database.url)} is "
                f"running and did not finish within {timeout:g} s; try again when it is done.")
        time.sleep(LOCK_POLL_SECONDS)


def _previous(connection: psycopg.Connection[Any]) -> tuple[dict[str, Any] | None,
                                                           dict[str, tuple[str, str]]]:
    """The current version's manifest and its documents: id -> (content id, sha256)."""
    row = connection.execute(
        "SELECT v.version_id, v.manifest FROM collab_qa.current_version cv "
        "JOIN collab_qa.versions v ON v.version_id = cv.version_id").fetchone()
    if row is None:
        return None, {}
    documents = {
        doc_id: (content_id, sha256) for doc_id, content_id, sha256 in connection.execute(
            "SELECT vd.doc_id, d.content_id, d.sha256 FROM collab_qa.version_documents vd "
            "JOIN collab_qa.documents d ON d.content_id = vd.content_id "
            "WHERE vd.version_id = %s", (row[0],))
    }
    return row[1], documents


def _build_locked(
    connection: psycopg.Connection[Any], corpus_dir: Path, embedder: Embedder,
    chunker: ChunkerConfig, full: bool, max_file_bytes: int, progress: bool,
) -> BuildReport:
    started = time.perf_counter()
    report = BuildReport()
    documents, report.skipped = load_corpus(corpus_dir, max_file_bytes)
    previous, old_docs = _previous(connection)

    reason: str | None = "no previous index"
    if full:
        reason = "--full was asked for"
    elif previous is not None:
        if previous["model"]["id"] != embedder.model_id:
            reason = f"the model changed ({previous['model']['id']} -> {embedder.model_id})"
        elif previous["chunker"] != asdict(chunker):
            reason = "the chunker settings changed"
        else:
            reason = None
    reuse = reason is None
    report.full_rebuild_reason = reason if previous is not None or full else None

    content_ids: dict[str, str] = {}
    fresh: dict[str, list[Chunk]] = {}
    for document in documents:
        old = old_docs.get(document.id)
        if reuse and old is not None and old[1] == document.sha256:
            report.unchanged.append(document.id)
            content_ids[document.id] = old[0]
            continue
        if old is None:
            report.added.append(document.id)
        else:
            (report.changed if old[1] != document.sha256 else report.unchanged).append(
                document.id)
        content_ids[document.id] = uuid.uuid4().hex
        fresh[document.id] = list(chunk_document(document, chunker, embedder.count_tokens))
    report.removed = sorted(set(old_docs) - {d.id for d in documents})

    if (reuse and previous is not None and not report.added and not report.changed
            and not report.removed
            and previous.get("skipped") == [asdict(s) for s in report.skipped]):
        report.up_to_date = True
        report.version = str(previous["version"])
        report.chunks = int(previous["totals"]["chunks"])
        report.seconds = time.perf_counter() - started
        return report

    by_id = {d.id: d for d in documents}
    texts = [embedding_text(by_id[doc_id].title, chunk)
             for doc_id, chunks in fresh.items() for chunk in chunks]
    report.embedded_chunks = len(texts)
    vectors = embedder.encode(texts, progress=progress)
    report.version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S%fZ-") + uuid.uuid4().hex[:6]
    with connection.transaction():
        _write_documents(connection, documents, content_ids, fresh, texts, vectors, embedder)
        report.chunks = _write_version(connection, report, documents, content_ids, embedder,
                                       chunker)
    _remove_old_versions(connection)
    report.seconds = time.perf_counter() - started
    return report


def _tsvector(tokens: Sequence[str]) -> str:
    """A tsvector literal of the tokens, each with one position per occurrence."""
    return " ".join(
        "'" + term.replace("\\", "\\\\").replace("'", "''") + "':"
        + ",".join(str(i) for i in range(1, min(count, MAX_TERM_FREQUENCY) + 1))
        for term, count in Counter(tokens).items())


def _write_documents(
    connection: psycopg.Connection[Any], documents: list[Document],
    content_ids: dict[str, str], fresh: dict[str, list[Chunk]], texts: list[str],
    vectors: np.ndarray, embedder: Embedder,
) -> None:
    """Insert the documents embedded by this build and their passages."""
    by_id = {d.id: d for d in documents}
    with connection.cursor() as cursor:
        with cursor.copy("COPY collab_qa.documents (content_id, doc_id, title, text, sha256, "
                         "format) FROM STDIN") as copy:
            for doc_id in fresh:
                d = by_id[doc_id]
                copy.write_row((content_ids[doc_id], d.id, d.title, d.text, d.sha256,
                                d.format))
        tokens = lexical_tokens(texts)
        rows = [(doc_id, chunk) for doc_id, chunks in fresh.items() for chunk in chunks]
        with cursor.copy("COPY collab_qa.chunks (content_id, ordinal, heading_path, "
                         "start_offset, end_offset, text, lexemes, token_count, dimension, "
                         "embedding) FROM STDIN") as copy:
            for (doc_id, chunk), words, vector in zip(rows, tokens, vectors, strict=True):
                copy.write_row((content_ids[doc_id], chunk.ordinal, list(chunk.heading_path),
                                chunk.start, chunk.end, chunk.text, _tsvector(words),
                                max(len(words), 1), embedder.dimension,
                                np.asarray(vector, dtype=np.float32)))


def _write_version(
    connection: psycopg.Connection[Any], report: BuildReport, documents: list[Document],
    content_ids: dict[str, str], embedder: Embedder, chunker: ChunkerConfig,
) -> int:
    """Write the version's rows and make it current; returns its passage count."""
    dimension = int(embedder.dimension)
    connection.execute(
        f"CREATE INDEX IF NOT EXISTS chunks_embedding_{dimension} ON collab_qa.chunks "
        f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
        f"WHERE dimension = {dimension}")
    ordered = [content_ids[d.id] for d in documents]
    chunk_ids: dict[str, list[str]] = {d.id: [] for d in documents}
    for doc_id, ordinal in connection.execute(
            "SELECT d.doc_id, c.ordinal FROM collab_qa.chunks c JOIN collab_qa.documents d "
            "ON d.content_id = c.content_id WHERE c.content_id = ANY(%s) "
            "ORDER BY d.doc_id, c.ordinal", (ordered,)):
        chunk_ids[doc_id].append(f"{doc_id}#{ordinal}")
    total = sum(len(ids) for ids in chunk_ids.values())
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": report.version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"id": embedder.model_id, "dimension": dimension},
        "chunker": asdict(chunker),
        "dense_index": "pgvector HNSW (cosine)",
        "lexical_index": "tsvector (GIN) with BM25 statistics",
        "documents": {d.id: {"sha256": d.sha256, "title": d.title, "chunk_ids": chunk_ids[d.id]}
                      for d in documents},
        "totals": {"documents": len(documents), "chunks": total},
        "skipped": [asdict(s) for s in report.skipped],
        "build": {key: value for key, value in report.to_dict().items()
                  if key in ("added", "changed", "removed", "full_rebuild_reason")},
    }
    row = connection.execute(
        "INSERT INTO collab_qa.versions (name, model_id, dimension, chunk_count, manifest) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING version_id",
        (report.version, embedder.model_id, dimension, total,
         Json(manifest))).fetchone()
    assert row is not None
    version_id = int(row[0])
    connection.execute(
        "INSERT INTO collab_qa.version_documents (version_id, doc_id, content_id, rank) "
        "SELECT %s, d.doc_id, d.content_id, o.rank "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS o(content_id, rank) "
        "JOIN collab_qa.documents d ON d.content_id = o.content_id", (version_id, ordered))
    # Positions follow the corpus order, then the passage order, as in the local folder.
    connection.execute(
        "INSERT INTO collab_qa.version_chunks (version_id, position, chunk_key) "
        "SELECT %s, row_number() OVER (ORDER BY o.rank, c.ordinal) - 1, c.chunk_key "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS o(content_id, rank) "
        "JOIN collab_qa.chunks c ON c.content_id = o.content_id", (version_id, ordered))
    connection.execute(
        "INSERT INTO collab_qa.version_terms (version_id, term, df) "
        "SELECT %s, word, ndoc FROM ts_stat(format("
        "'SELECT c.lexemes FROM collab_qa.chunks c JOIN collab_qa.version_chunks vc "
        "ON vc.chunk_key = c.chunk_key WHERE vc.version_id = %%s', %s::bigint))",
        (version_id, version_id))
    connection.execute(
        "UPDATE collab_qa.versions SET average_length = coalesce((SELECT avg(c.token_count) "
        "FROM collab_qa.version_chunks vc JOIN collab_qa.chunks c ON c.chunk_key = vc.chunk_key "
        "WHERE vc.version_id = %s), 1) WHERE version_id = %s", (version_id, version_id))
    connection.execute(
        "INSERT INTO collab_qa.current_version (only_row, version_id) VALUES (true, %s) "
        "ON CONFLICT (only_row) DO UPDATE SET version_id = excluded.version_id", (version_id,))
    connection.execute("SELECT pg_notify(%s, %s)", (VERSION_CHANNEL, report.version))
    return total


def _remove_old_versions(connection: psycopg.Connection[Any]) -> None:
    """Delete all but the ``KEEP_VERSIONS`` newest versions, and the documents and passages
    no kept version holds. A failure here leaves more rows, never a broken version."""
    try:
        with connection.transaction():
            connection.execute(
                "DELETE FROM collab_qa.versions WHERE version_id NOT IN (SELECT version_id "
                "FROM collab_qa.versions ORDER BY version_id DESC LIMIT %s) AND version_id "
                "<> (SELECT version_id FROM collab_qa.current_version)", (KEEP_VERSIONS,))
            connection.execute(
                "DELETE FROM collab_qa.documents d WHERE NOT EXISTS (SELECT 1 FROM "
                "collab_qa.version_documents vd WHERE vd.content_id = d.content_id)")
    except psycopg.Error as exc:
        log.warning("Old index versions were not removed: %s", exc)
