"""Writing the index in Postgres: ``PostgresBackend`` is its ``StoreBackend``,
``PostgresWriter`` writes one version; ``index.update_index`` decides what to embed.

A build holds an advisory lock for its whole run (a second builder waits, as on the local
folder's file lock), embeds outside any transaction, then writes the new version and
switches ``current_version`` to it in one transaction: readers see the old version or the
new one, and a build that fails or is killed leaves the old one serving. Documents and
passages a version keeps are shared with the version before, not copied. The vector index
(HNSW or IVFFlat, by size) is created in the first build's transaction; a build after which
the collection has outgrown it rebuilds it once it has switched, without blocking searches
(``postgres_vectors.py``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Json

from collab_qa.analysis import analyser_version, lexical_tokens
from collab_qa.chunking import Chunk, ChunkerConfig, embedding_text
from collab_qa.embedding import Embedder
from collab_qa.errors import BuildLockedError, DatabaseError, IndexLoadError
from collab_qa.index import BuildReport, build_into
from collab_qa.settings import Settings
from collab_qa.sparse import SparseVector
from collab_qa.store import DocumentRecord, IndexStore
from collab_qa.store.local import ANALYSER
from collab_qa.store.local import DATABASE_FORMAT_VERSION as FORMAT_VERSION
from collab_qa.store.postgres import (
    BM25_B,
    BM25_K1,
    VERSION_CHANNEL,
    Database,
    PostgresStore,
)
from collab_qa.store.postgres_lexical import POSTING_BLOCK
from collab_qa.store.postgres_sparse import sparse_column, write_kept_sparse
from collab_qa.store.postgres_url import describe_database
from collab_qa.store.postgres_vectors import (
    BY_SIZE,
    VectorIndex,
    VectorIndexChoice,
    create_index,
    current_index,
    replace_index,
)

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
# Memory for sorting a version's postings by contribution in one go.
POSTINGS_WORK_MEM = "256MB"


class PostgresBackend:
    """The index in one database (``StoreBackend``).

    Args:
        database: The database.
        vectors: How builds choose the vector index (by size unless told).
    """

    keeps_sparse_terms = True  # in a sparsevec column (postgres_sparse)

    def __init__(self, database: Database,
                 vectors: VectorIndexChoice = BY_SIZE) -> None:
        self.database = database
        self.vectors = vectors

    @contextmanager
    def building(self, timeout: float) -> Iterator[None]:
        with self.database.connection() as connection:
            _lock(connection, timeout, self.database)
            try:
                require_pgvector(_pgvector_version(connection))
                connection.execute(resources.files("collab_qa.store")
                                   .joinpath("postgres_schema.sql").read_text(encoding="utf-8"))
                _remove_old_versions(connection)
                yield
            finally:
                if not connection.closed:
                    connection.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK_KEY,))

    def load(self, *, expected_model_id: str | None = None) -> PostgresStore:
        return PostgresStore.load(self.database, expected_model_id=expected_model_id)

    def base(self) -> tuple[PostgresStore | None, str | None]:
        try:
            return PostgresStore.load(self.database), None
        except IndexLoadError as exc:
            if self.database.current_version_id() is None:
                return None, "no previous index"
            return None, f"the previous index could not be read ({exc})"

    def writer(self, base: IndexStore | None) -> PostgresWriter:
        if base is not None and not isinstance(base, PostgresStore):
            raise TypeError(f"A database index builds on a database version, not {type(base)}.")
        return PostgresWriter(self.database, base, self.vectors)


class PostgresWriter:
    """One new version in the database (``IndexWriter``): kept documents are referenced,
    added ones are held in memory until ``commit`` writes everything in one transaction."""

    def __init__(self, database: Database, base: PostgresStore | None,
                 vectors: VectorIndexChoice = BY_SIZE) -> None:
        self._database = database
        self._base = base
        self._vectors = vectors
        self.records: list[DocumentRecord] = []
        self.content_ids: dict[str, str] = {}
        self.added: list[tuple[DocumentRecord, Sequence[Chunk], np.ndarray]] = []
        # Sparse vectors of added documents by id, and of kept passages whose rows hold none.
        self.sparse: dict[str, Sequence[SparseVector]] = {}
        self.kept_sparse: list[tuple[str, int, SparseVector]] = []
        self._without_sparse = 0  # passages of this version that will hold no sparse vector
        self._kept = False  # whether any passage (and so its stored tokens) comes from base

    def keep(self, doc_id: str, sparse: Sequence[SparseVector] | None = None) -> None:
        if self._base is None:
            raise KeyError(f"{doc_id} cannot be kept: there is no previous version")
        record = self._base.documents[doc_id]
        self._kept = True
        self.records.append(record)
        self.content_ids[doc_id] = self._base.content_ids[doc_id]
        if sparse is not None:
            passages = [self._base.chunk_by_id(chunk_id) for chunk_id in record.chunk_ids]
            self.kept_sparse.extend(
                (self.content_ids[doc_id], chunk.ordinal, vector) for chunk, vector in
                zip([p for p in passages if p is not None], sparse, strict=True))
        elif self._base.sparse is None:
            self._without_sparse += len(record.chunk_ids)

    def add(self, document: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray,
            sparse: Sequence[SparseVector] | None = None) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} passages of {document.id} but {len(vectors)} vectors")
        if sparse is not None and len(sparse) != len(chunks):
            raise ValueError(f"{len(chunks)} passages of {document.id} but {len(sparse)} "
                             "sparse vectors")
        record = replace(document, chunk_ids=tuple(c.id for c in chunks))
        self.records.append(record)
        self.content_ids[document.id] = uuid.uuid4().hex
        self.added.append((record, chunks, np.asarray(vectors, dtype=np.float32)))
        if sparse is None:
            self._without_sparse += len(chunks)
        else:
            self.sparse[document.id] = sparse

    def _analyser(self) -> str | None:
        """The text analyser that tokenised every passage of the new version: this code's,
        unless passages kept from the previous version were tokenised by another (or by one
        never recorded), whose tokens they keep: their rows are shared between versions."""
        current = analyser_version()
        if self._base is None or not self._kept:
            return current
        previous = self._base.manifest.get(ANALYSER)
        return current if previous == current else previous

    def commit(self, facts: Mapping[str, Any]) -> str:
        version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S%fZ-") + uuid.uuid4().hex[:6]
        # A version holds sparse vectors only when every passage of it has one.
        sparse_dimension = (0 if self._without_sparse
                            else int(facts["model"].get("sparse_dimension", 0)))
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **facts,
            "model": {**facts["model"], "sparse_dimension": sparse_dimension},
            "lexical_index": "tsvector (GIN) with BM25 statistics and impact-ordered postings",
            ANALYSER: self._analyser(),
            "documents": {r.id: {"sha256": r.sha256, "title": r.title,
                                 "chunk_ids": list(r.chunk_ids)} for r in self.records},
            "totals": {"documents": len(self.records),
                       "chunks": sum(len(r.chunk_ids) for r in self.records)},
        }
        dimension = int(facts["model"]["dimension"])
        with self._database.connection(vectors=True) as connection:
            current = current_index(connection, dimension)
            vectors = self._vectors.wanted(manifest["totals"]["chunks"], current)
            manifest |= {"dense_index": vectors.describe(), "vector_index": vectors.facts()}
            with connection.transaction():
                _write_documents(connection, self.added, self.content_ids, dimension,
                                 self.sparse, sparse_dimension)
                write_kept_sparse(connection, self.kept_sparse, sparse_dimension)
                if current is None:
                    create_index(connection, dimension, vectors)
                _write_version(connection, manifest, [self.content_ids[r.id]
                                                      for r in self.records])
            _remove_old_versions(connection)
            if current is not None and current != vectors:
                _replace_vector_index(connection, dimension, vectors)
        return version


def backend_for(settings: Settings, database: Database | None = None) -> PostgresBackend:
    """The database of ``settings`` (or ``database``, already connected) as a build target,
    with the vector index the settings ask for."""
    return PostgresBackend(database or Database.connect(settings.database_url),
                           VectorIndexChoice(kind=settings.database_vector_index))


def build_postgres_index_from_settings(settings: Settings, embedder: Embedder, *,
                                       full: bool = False, progress: bool = False,
                                       ) -> BuildReport:
    """Bring the index in the database in line with the corpus, embedding only what changed,
    with the database, folders and knobs from the settings.

    Raises:
        UserError: when the corpus folder is missing.
        BuildLockedError: when another build keeps the lock longer than the settings allow.
        DatabaseError: when the database cannot be reached.
    """
    return build_into(
        backend_for(settings), settings.corpus_dir, embedder,
        ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap_tokens),
        full=full, max_file_bytes=settings.max_file_bytes,
        lock_timeout=settings.build_lock_timeout, progress=progress,
        sparse_terms=settings.sparse_terms,
    )


# sparsevec (the passages' sparse terms) arrived in pgvector 0.7.
PGVECTOR_MINIMUM = (0, 7)


def _pgvector_version(connection: psycopg.Connection[Any]) -> str | None:
    """The pgvector version the database has installed, or else would install."""
    row = connection.execute(
        "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
        "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))"
    ).fetchone()
    return row[0] if row else None


def require_pgvector(version: str | None) -> None:
    """Refuse, with one sentence, a database without pgvector or with one too old.

    Raises:
        DatabaseError: when ``version`` is None or older than ``PGVECTOR_MINIMUM``.
    """
    wanted = ".".join(map(str, PGVECTOR_MINIMUM))
    if version is None:
        raise DatabaseError(f"The database has no pgvector extension; install pgvector {wanted} "
                            "or later on the server.")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < PGVECTOR_MINIMUM:
        raise DatabaseError(f"The database has pgvector {version}; collab-qa needs {wanted} or "
                            "later (ALTER EXTENSION vector UPDATE after installing it).")


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


def _tsvector(tokens: Sequence[str]) -> str:
    """A tsvector literal of the tokens, each with one position per occurrence."""
    return " ".join(
        "'" + term.replace("\\", "\\\\").replace("'", "''") + "':"
        + ",".join(str(i) for i in range(1, min(count, MAX_TERM_FREQUENCY) + 1))
        for term, count in Counter(tokens).items())


def _write_documents(
    connection: psycopg.Connection[Any],
    added: Sequence[tuple[DocumentRecord, Sequence[Chunk], np.ndarray]],
    content_ids: Mapping[str, str], dimension: int,
    sparse: Mapping[str, Sequence[SparseVector]], sparse_dimension: int,
) -> None:
    """Insert the documents this version adds, and their passages (with their sparse
    vectors when the version keeps them)."""
    with connection.cursor() as cursor:
        with cursor.copy("COPY collab_qa.documents (content_id, doc_id, title, text, sha256, "
                         "format) FROM STDIN") as copy:
            for d, _, _ in added:
                copy.write_row((content_ids[d.id], d.id, d.title, d.text, d.sha256, d.format))
        with cursor.copy("COPY collab_qa.chunks (content_id, chunk_id, ordinal, heading_path, "
                         "start_offset, end_offset, text, lexemes, token_count, dimension, "
                         "embedding, sparse) FROM STDIN") as copy:
            for d, chunks, vectors in added:
                tokens = lexical_tokens([embedding_text(d.title, chunk) for chunk in chunks])
                terms = sparse_column(sparse.get(d.id), len(chunks), sparse_dimension)
                for chunk, words, vector, term in zip(chunks, tokens, vectors, terms,
                                                      strict=True):
                    copy.write_row((content_ids[d.id], chunk.id, chunk.ordinal,
                                    list(chunk.heading_path), chunk.start, chunk.end,
                                    chunk.text, _tsvector(words), max(len(words), 1),
                                    dimension, vector, term))


def _write_version(connection: psycopg.Connection[Any], manifest: dict[str, Any],
                   ordered: list[str]) -> None:
    """Write the version's rows and make it current. ``ordered``: its documents' content
    ids, in corpus order."""
    dimension = int(manifest["model"]["dimension"])
    row = connection.execute(
        "INSERT INTO collab_qa.versions (name, model_id, dimension, chunk_count, manifest) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING version_id",
        (manifest["version"], manifest["model"]["id"], dimension,
         manifest["totals"]["chunks"], Json(manifest))).fetchone()
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
    _write_postings(connection, version_id)
    connection.execute(
        "INSERT INTO collab_qa.current_version (only_row, version_id) VALUES (true, %s) "
        "ON CONFLICT (only_row) DO UPDATE SET version_id = excluded.version_id", (version_id,))
    connection.execute("SELECT pg_notify(%s, %s)", (VERSION_CHANNEL, manifest["version"]))


_POSTINGS_SQL = """
INSERT INTO collab_qa.version_postings (version_id, term, block, positions, contributions)
SELECT %(version)s, term, (rank - 1) / %(block)s, array_agg(position ORDER BY rank),
       array_agg(contribution ORDER BY rank)
FROM (
    SELECT term, position, contribution,
           row_number() OVER (PARTITION BY term ORDER BY contribution DESC, position) AS rank
    FROM (
        SELECT u.lexeme AS term, vc.position,
               (ln(1 + (v.chunk_count - t.df + 0.5) / (t.df + 0.5)) * cardinality(u.positions)
                / (cardinality(u.positions) + %(k1)s * (1 - %(b)s + %(b)s * c.token_count
                                                         / v.average_length)))::real
               AS contribution
        FROM collab_qa.versions v
        JOIN collab_qa.version_chunks vc ON vc.version_id = v.version_id
        JOIN collab_qa.chunks c ON c.chunk_key = vc.chunk_key
        CROSS JOIN LATERAL unnest(c.lexemes) AS u(lexeme, positions, weights)
        JOIN collab_qa.version_terms t ON t.version_id = v.version_id AND t.term = u.lexeme
        WHERE v.version_id = %(version)s
    ) scored
) ranked
GROUP BY term, (rank - 1) / %(block)s
"""


def _write_postings(connection: psycopg.Connection[Any], version_id: int) -> None:
    """Write the version's impact-ordered postings (after its statistics)."""
    # The planner must see this transaction's rows: planned as empty, the join of a large
    # version runs for many minutes.
    connection.execute("ANALYZE collab_qa.version_chunks, collab_qa.version_terms")
    connection.execute(f"SET LOCAL work_mem = '{POSTINGS_WORK_MEM}'")
    connection.execute(_POSTINGS_SQL, {"version": version_id, "block": POSTING_BLOCK,
                                       "k1": BM25_K1, "b": BM25_B})


def _replace_vector_index(connection: psycopg.Connection[Any], dimension: int,
                          vectors: VectorIndex) -> None:
    """Train the vector index again (the new version is already served by the old one). A
    failure leaves the old index serving; the next build tries again."""
    started = time.monotonic()
    try:
        replace_index(connection, dimension, vectors)
    except psycopg.Error as exc:
        log.warning("The vector index was not rebuilt as %s: %s", vectors.describe(), exc)
        return
    log.info("Vector index rebuilt as %s in %.0f s", vectors.describe(),
             time.monotonic() - started)


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
