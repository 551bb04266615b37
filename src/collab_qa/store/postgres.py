"""The index in Postgres: any number of servers given one database URL read the same index.

Vectors sit in a pgvector column behind an HNSW or IVFFlat index (``postgres_vectors.py``);
the lexical side keeps the analyser's tokens of each passage in a ``tsvector`` (GIN index)
and the BM25 statistics in tables, so lexical scores are the local folder's BM25 scores.
Schema: ``postgres_schema.sql``; builds: ``postgres_build.py``.

A ``PostgresStore`` is one loaded version, like the local ``Index``: its passages are held in
memory, its searches run in the database and name that version, so a build switching to a
new version never mixes two. ``refresh()`` returns the store of the version now current.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from collab_qa.analysis import TermStats, analyser_version, query_tokens
from collab_qa.chunking import Chunk
from collab_qa.errors import DatabaseError, DatabaseUnavailable, IndexLoadError
from collab_qa.store import DocumentRecord
from collab_qa.store.local import ANALYSER
from collab_qa.store.local import DATABASE_FORMAT_VERSION as FORMAT_VERSION
from collab_qa.store.local import DATABASE_READABLE_FORMATS as READABLE_FORMATS
from collab_qa.store.postgres_lexical import PostingRow, any_of, top_k
from collab_qa.store.postgres_sparse import sparse_terms_of
from collab_qa.store.postgres_url import check_database_url, describe_database
from collab_qa.store.postgres_vectors import SEARCH_SETTINGS_SQL, search_settings
from collab_qa.store.shared import ChunkTable, TableLookups, passage_stats

# bm25s' defaults, which the local folder's BM25 uses.
BM25_K1 = 1.5
BM25_B = 0.75
# Past this many passages, lexical search keeps to a budget (postgres_lexical).
EXHAUSTIVE_LEXICAL_LIMIT = 200_000
CONNECT_TIMEOUT_SECONDS = 5
# How long a search waits for a free pooled connection (or for a new one while the database
# is down) before it fails with a sentence.
POOL_WAIT_SECONDS = 5.0
VERSION_CHANNEL = "collab_qa_version"
BUILD_HINT = "build it with `collab-qa index`"

log = logging.getLogger(__name__)

def _configure(connection: psycopg.Connection[Any]) -> None:
    from pgvector.psycopg import register_vector

    register_vector(connection)
    connection.execute("SET hnsw.iterative_scan = strict_order")
    connection.execute("SET ivfflat.iterative_scan = relaxed_order")
    # psycopg prepares a statement run five times; a generic plan, blind to the query's
    # words and positions, made lexical scoring 50x slower than a plan for its values.
    connection.execute("SET plan_cache_mode = force_custom_plan")


class Database:
    """One Postgres database: a small pool for searches, single connections for builds.

    Args:
        url: A ``postgresql://`` URL.
        pool_size: Most connections the pool opens.
    """

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        check_database_url(url)
        self.url = url
        self.pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()  # the first requests arrive together

    @classmethod
    def connect(cls, url: str, **kwargs: Any) -> Database:
        """A checked database: raises DatabaseError when it cannot be reached."""
        database = cls(url, **kwargs)
        with database.connection():
            pass
        return database

    @contextmanager
    def connection(self, *, vectors: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A new autocommit connection of its own (builds hold their lock on it)."""
        try:
            connection = psycopg.connect(self.url, autocommit=True,
                                         connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from None
        with connection:
            if vectors:
                _configure(connection)
            yield connection

    def _unreachable(self, exc: Exception) -> DatabaseError:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = lines[0] if lines else type(exc).__name__
        return DatabaseError(
            f"Could not connect to the {describe_database(self.url)} ({why}); check "
            "COLLAB_QA_DATABASE_URL and that the database is running."
        )

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """The shared pool, opened on first use (the schema must exist by then)."""
        with self._pool_lock:
            return self._pool or self._open_pool()

    def _open_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False,
            configure=_configure, name="collab-qa", timeout=POOL_WAIT_SECONDS,
            # A connection the database dropped (a restart) is replaced before use.
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS * 2)
        except Exception as exc:
            pool.close()
            raise self._unreachable(exc) from None
        self._pool = pool
        return pool

    @contextmanager
    def pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the shared pool for one search or one small write.

        Raises:
            DatabaseUnavailable: when the database cannot be reached now, or the connection
                was lost mid-statement; the pool reconnects by itself once it is back.
        """
        try:
            with self.pool.connection() as connection:
                yield connection
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc) from None
        except DatabaseError as exc:  # the pool could not be opened
            raise DatabaseUnavailable(str(exc)) from None

    def unavailable(self, exc: Exception) -> DatabaseUnavailable:
        """The sentence for a database that went away while serving."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = lines[0] if lines else type(exc).__name__
        return DatabaseUnavailable(
            f"The {describe_database(self.url)} cannot be reached right now ({why}); "
            "try again in a moment.")

    def close(self) -> None:
        """Close the pool; the object can open a new one later."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def describe(self) -> str:
        """"database NAME on HOST", for messages."""
        return describe_database(self.url)

    def current_version_id(self) -> int | None:
        """The id of the version servers should serve, or None before the first build."""
        with self.connection() as connection:
            return read_current_version(connection)


def read_current_version(connection: psycopg.Connection[Any]) -> int | None:
    exists = connection.execute("SELECT to_regclass('collab_qa.current_version')").fetchone()
    if exists is None or exists[0] is None:
        return None
    row = connection.execute("SELECT version_id FROM collab_qa.current_version").fetchone()
    return None if row is None else int(row[0])


def _has_postings(connection: psycopg.Connection[Any], version_id: int) -> bool:
    table = connection.execute("SELECT to_regclass('collab_qa.version_postings')").fetchone()
    if table is None or table[0] is None:
        return False
    return connection.execute("SELECT EXISTS (SELECT 1 FROM collab_qa.version_postings "
                              "WHERE version_id = %s)", (version_id,)).fetchone() == (True,)


_LEXICAL_SQL = """
WITH query AS (
    SELECT t.term, q.count * ln(1 + (%(n)s - t.df + 0.5) / (t.df + 0.5)) AS weight
    FROM unnest(%(terms)s::text[], %(counts)s::int[]) AS q(term, count)
    JOIN collab_qa.version_terms t ON t.version_id = %(version)s AND t.term = q.term
)
SELECT vc.position,
       sum(query.weight * cardinality(u.positions)
           / (cardinality(u.positions)
              + %(k1)s * (1 - %(b)s + %(b)s * c.token_count / %(average)s))) AS score
FROM collab_qa.chunks c
JOIN collab_qa.version_chunks vc ON vc.chunk_key = c.chunk_key AND vc.version_id = %(version)s
CROSS JOIN LATERAL unnest(c.lexemes) AS u(lexeme, positions, weights)
JOIN query ON query.term = u.lexeme
WHERE c.lexemes @@ %(match)s::tsquery {where}
GROUP BY vc.position
ORDER BY score DESC
{limit}
"""

_POSTINGS_SQL = """
SELECT p.term, t.df, p.block, p.positions, p.contributions
FROM collab_qa.version_postings p
JOIN collab_qa.version_terms t ON t.version_id = p.version_id AND t.term = p.term
WHERE p.version_id = %(version)s AND p.term = ANY(%(terms)s)
  AND p.block >= %(first)s AND p.block < %(last)s
ORDER BY p.term, p.block
"""

_DENSE_SQL = """
SELECT vc.position, 1 - (c.embedding::vector({d}) <=> %(vector)s) AS score
FROM collab_qa.chunks c
JOIN collab_qa.version_chunks vc ON vc.chunk_key = c.chunk_key AND vc.version_id = %(version)s
WHERE c.dimension = {d}
ORDER BY c.embedding::vector({d}) <=> %(vector)s
LIMIT %(k)s
"""

_DENSE_SCORES_SQL = """
SELECT vc.position, 1 - (c.embedding <=> %(vector)s) AS score
FROM collab_qa.version_chunks vc JOIN collab_qa.chunks c ON c.chunk_key = vc.chunk_key
WHERE vc.version_id = %(version)s AND vc.position = ANY(%(positions)s)
"""


class PostgresStore(TableLookups):
    """One loaded, consistent index version in Postgres (implements ``IndexStore``)."""

    def __init__(self, database: Database, version_id: int, manifest: dict[str, Any],
                 documents: dict[str, DocumentRecord], chunks: list[Chunk],
                 average_length: float) -> None:
        self.database = database
        self.version_id = version_id
        self._manifest = manifest
        self._documents = documents
        self._chunks = chunks
        self.average_length = average_length
        self.dimension = int(manifest["model"]["dimension"])
        # The rows of documents each document's text and passages are kept in.
        self.content_ids: dict[str, str] = {}
        # False for a version built before the postings existed: its lexical search scores
        # every matching passage.
        self.has_postings = True
        self.sparse = sparse_terms_of(database, version_id, manifest)  # None: none kept
        self._table = ChunkTable(chunks, documents, manifest)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, database: Database, *,
             expected_model_id: str | None = None) -> PostgresStore:
        """Load the current version.

        Raises:
            IndexLoadError: when nothing was built yet, or with another model.
            DatabaseError: when the database cannot be reached.
        """
        with database.connection() as connection:
            version_id = read_current_version(connection)
            if version_id is None:
                raise IndexLoadError(
                    f"No index in the {describe_database(database.url)}; {BUILD_HINT}.")
            with connection.transaction():
                # One snapshot: a clean-up after a newer build cannot delete rows mid-read.
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return cls._load_version(database, connection, version_id, expected_model_id)

    @classmethod
    def _load_version(cls, database: Database, connection: psycopg.Connection[Any],
                      version_id: int, expected_model_id: str | None) -> PostgresStore:
        row = connection.execute(
            "SELECT manifest, chunk_count, average_length FROM collab_qa.versions "
            "WHERE version_id = %s", (version_id,)).fetchone()
        if row is None:
            raise IndexLoadError(f"The current index version was deleted; {BUILD_HINT}.")
        manifest, chunk_count, average_length = row
        if manifest.get("format_version") not in READABLE_FORMATS:
            raise IndexLoadError(
                f"The index in the {describe_database(database.url)} has format "
                f"{manifest.get('format_version')!r}, this collab-qa reads format "
                f"{FORMAT_VERSION}; rebuild it with `collab-qa index --full`.")
        model_id = manifest["model"]["id"]
        if expected_model_id is not None and model_id != expected_model_id:
            raise IndexLoadError(
                f"The index in the {describe_database(database.url)} was built with model "
                f"{model_id}, but the configured model is {expected_model_id}; rebuild it "
                "with `collab-qa index --full`.")
        if manifest.get(ANALYSER) != analyser_version():
            log.warning("Passages of the index in the %s were tokenised by an older text "
                        "analyser, so word matches may be off; `collab-qa index --full` "
                        "tokenises them again (and encodes them again).",
                        describe_database(database.url))
        chunks = [
            Chunk(doc_id, ordinal, tuple(headings), start, end, text, chunk_id)
            for doc_id, ordinal, headings, start, end, text, chunk_id in connection.execute(
                "SELECT d.doc_id, c.ordinal, c.heading_path, c.start_offset, c.end_offset, "
                "c.text, c.chunk_id FROM collab_qa.version_chunks vc "
                "JOIN collab_qa.chunks c ON c.chunk_key = vc.chunk_key "
                "JOIN collab_qa.documents d ON d.content_id = c.content_id "
                "WHERE vc.version_id = %s ORDER BY vc.position", (version_id,))
        ]
        if len(chunks) != chunk_count:
            raise IndexLoadError(
                f"Index version {manifest['version']} holds {len(chunks)} passages, its "
                f"manifest says {chunk_count}; rebuild it with `collab-qa index --full`.")
        chunk_ids: dict[str, list[str]] = {}
        for chunk in chunks:
            chunk_ids.setdefault(chunk.doc_id, []).append(chunk.id)
        rows = connection.execute(
            "SELECT vd.doc_id, d.title, d.text, d.sha256, d.format, d.content_id "
            "FROM collab_qa.version_documents vd "
            "JOIN collab_qa.documents d ON d.content_id = vd.content_id "
            "WHERE vd.version_id = %s ORDER BY vd.rank", (version_id,)).fetchall()
        documents = {
            doc_id: DocumentRecord(id=doc_id, title=title, text=text, sha256=sha256,
                                   format=format_, chunk_ids=tuple(chunk_ids.get(doc_id, ())))
            for doc_id, title, text, sha256, format_, _ in rows
        }
        store = cls(database, version_id, manifest, documents, chunks, float(average_length))
        store.content_ids = {row[0]: row[5] for row in rows}
        store.has_postings = _has_postings(connection, version_id)
        return store

    def refresh(self) -> PostgresStore:
        """The store of the version now current: this one when no build switched since."""
        current = self.database.current_version_id()
        if current is None or current == self.version_id:
            return self
        return PostgresStore.load(self.database)

    # ------------------------------------------------------------------ IndexStore

    @property
    def manifest(self) -> Mapping[str, Any]:
        return self._manifest

    @property
    def documents(self) -> Mapping[str, DocumentRecord]:
        return self._documents

    @property
    def chunks(self) -> Sequence[Chunk]:
        return self._chunks

    @cached_property
    def term_stats(self) -> TermStats:
        return passage_stats(self._chunks, self._documents)

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0 or not self._chunks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = {"vector": np.asarray(vector, dtype=np.float32), "version": self.version_id,
                  "k": k}
        with self.database.pooled() as connection, connection.transaction():
            connection.execute(SEARCH_SETTINGS_SQL,
                               search_settings(self._manifest.get("vector_index"), k))
            rows = connection.execute(_DENSE_SQL.format(d=self.dimension), params).fetchall()
        return _arrays(sorted(rows, key=lambda row: -row[1]))  # IVF's relaxed order

    def dense_scores(self, vector: np.ndarray, positions: np.ndarray) -> np.ndarray:
        params = {"vector": np.asarray(vector, dtype=np.float32), "version": self.version_id,
                  "positions": [int(p) for p in positions]}
        with self.database.pooled() as connection:
            rows = connection.execute(_DENSE_SCORES_SQL, params).fetchall()
        return _scatter(rows, positions)

    def _lexical(self, query: str, positions: np.ndarray | None,
                 k: int | None) -> list[tuple[int, float]]:
        counts = Counter(query_tokens(query))
        if not counts or not self._chunks:
            return []
        terms = list(counts)
        params: dict[str, Any] = {
            "terms": terms, "counts": [counts[t] for t in terms], "match": any_of(terms),
            "version": self.version_id, "n": float(len(self._chunks)), "k1": BM25_K1,
            "b": BM25_B, "average": self.average_length, "k": k,
            "positions": None if positions is None else [int(p) for p in positions],
        }
        sql = _LEXICAL_SQL.format(
            where="" if positions is None else "AND vc.position = ANY(%(positions)s)",
            limit="" if k is None else "LIMIT %(k)s")
        with self.database.pooled() as connection:
            return connection.execute(sql, params).fetchall()

    def lexical_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        counts = Counter(query_tokens(query))
        rows = None if not self.has_postings else top_k(
            counts, k, lambda first, last: self._postings(counts, first, last),
            lambda ids: self._lexical(query, np.array(ids), None),
            budgeted=len(self._chunks) > EXHAUSTIVE_LEXICAL_LIMIT)
        if rows is None:
            rows = self._lexical(query, None, k)
        positions, scores = _arrays(rows)
        keep = scores > 0
        return positions[keep], scores[keep]

    def _postings(self, counts: Counter[str], first: int, last: int) -> list[PostingRow]:
        if not counts:
            return []
        with self.database.pooled() as connection:
            return connection.execute(_POSTINGS_SQL, {
                "version": self.version_id, "terms": list(counts), "first": first,
                "last": last}).fetchall()

    def lexical_scores(self, query: str, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros(0, dtype=np.float32)
        return _scatter(self._lexical(query, positions, None), positions)


def _arrays(rows: Sequence[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((row[1] for row in rows), dtype=np.float32, count=len(rows)))


def _scatter(rows: Sequence[tuple[int, float]], positions: np.ndarray) -> np.ndarray:
    """Scores in the order of ``positions`` (0 where the database returned none)."""
    by_position = {int(position): float(score) for position, score in rows}
    return np.fromiter((by_position.get(int(p), 0.0) for p in positions), dtype=np.float32,
                       count=len(positions))
