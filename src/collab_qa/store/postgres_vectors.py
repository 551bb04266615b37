"""The vector index of the Postgres store: which kind, when it is built, how it is searched.

pgvector has two approximate indexes (cosine), and a build picks one by the collection's size:

- **HNSW** (a graph) below ``IVF_FROM_PASSAGES`` passages. It needs no training, so it is
  created once and new passages are simply inserted into it.
- **IVFFlat** (inverted lists) from ``IVF_FROM_PASSAGES`` passages on. Its lists are k-means
  centres trained when the index is created: ``4·sqrt(passages)`` of them, the local folder's
  rule (and the low end of FAISS's guideline), and a search probes 32, as there; it scans
  further lists when the version filter leaves fewer than k passages
  (``ivfflat.iterative_scan``). pgvector's own starting point, ``passages / 1000`` lists,
  measured far worse on clustered data: at 100,000 passages 100 lists found 90 % of the exact
  top 10 probing 32 of them in 37 ms, 1,265 lists all of it in 4 ms (bench/notes.md). On the
  same data IVFFlat kept recall where HNSW lost it at a million passages, and builds faster.

When the index is built. The first build of a dimension creates it inside its write
transaction, after its passages are in, so IVF lists are trained on the data. Later builds
insert into it: pgvector files a new vector under its nearest trained centre. Once the
collection has about doubled since the lists were trained (or, with HNSW, passed
``IVF_FROM_PASSAGES``), the build replaces the index after it has switched to its new version:
``CREATE INDEX CONCURRENTLY`` under a second name, then ``DROP INDEX CONCURRENTLY`` of the old
one and a rename. Neither blocks searches. What a version holds is said by the version
tables, not by the index, so readers see the old version or the new one whichever index
answers them. A build killed while replacing leaves the old index serving; the next build
drops the unfinished one (or finishes the rename) and tries again. At ``MAX_TRAINED_LISTS``
lists the index is not trained again: later passages lengthen the trained lists.

The version's manifest names the index the build means to leave (``dense_index``) and its search
settings (``vector_index``), which every server reads with the version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

# Candidates the HNSW graph keeps while searching; raised to k for larger k, to a limit.
EF_SEARCH = 100
EF_SEARCH_LIMIT = 1000  # pgvector's limit; past it the iterative scan goes on to k passages
# From this many passages on, a build chooses IVFFlat (bench/notes.md).
IVF_FROM_PASSAGES = 100_000
LISTS_PER_SQRT = 4.0  # lists = 4·sqrt(passages), as the local folder's IVF index
# pgvector's k-means keeps a bound per sample and list (50 samples a list): 4,000 lists need
# 3.4 GB of maintenance_work_mem, 2,000 lists 1 GB. More passages than 250,000 get longer lists.
MAX_TRAINED_LISTS = 2000
PROBES = 32  # lists a search probes, as the local folder's IVF index
# The lists are trained again once a collection would get this many times as many lists
# (1.4 = sqrt(2): the collection has about doubled since they were trained).
RETRAIN_GROWTH = 1.4
# k-means samples 50 vectors per list (at least 10,000) while the index is built.
SAMPLES_PER_LIST = 50
MIN_SAMPLES = 10_000

# Sets both for one search (in its transaction); the index that is not there ignores its own.
SEARCH_SETTINGS_SQL = ("SELECT set_config('hnsw.ef_search', %s, true), "
                       "set_config('ivfflat.probes', %s, true)")

Kind = Literal["auto", "hnsw", "ivfflat"]


@dataclass(frozen=True)
class VectorIndex:
    """One vector index: its kind and, for IVFFlat, its lists and the lists a search probes
    before its iterative scan (a search setting, not part of the index)."""

    kind: Literal["hnsw", "ivfflat"]
    lists: int = 0
    probes: int = field(default=1, compare=False)

    def describe(self) -> str:
        """The manifest's ``dense_index``."""
        if self.kind == "hnsw":
            return "pgvector HNSW (cosine)"
        return f"pgvector IVFFlat (cosine, {self.lists} lists, {self.probes} probes)"

    def facts(self) -> dict[str, Any]:
        """The manifest's ``vector_index``: what searches need to know."""
        return {"kind": self.kind, "lists": self.lists, "probes": self.probes}

    def using(self, dimension: int) -> str:
        """The ``USING`` clause of ``CREATE INDEX``."""
        if self.kind == "hnsw":
            return f"hnsw ((embedding::vector({dimension})) vector_cosine_ops)"
        return (f"ivfflat ((embedding::vector({dimension})) vector_cosine_ops) "
                f"WITH (lists = {self.lists})")


@dataclass(frozen=True)
class VectorIndexChoice:
    """How a build chooses its vector index.

    Args:
        kind: ``auto`` (by size), ``hnsw`` or ``ivfflat``.
        lists_per_sqrt: IVF lists per square root of the passages.
        probes: IVF lists a search probes.
    """

    kind: Kind = "auto"
    lists_per_sqrt: float = LISTS_PER_SQRT
    probes: int = PROBES

    def lists(self, passages: int) -> int:
        """IVF lists for a collection of ``passages``."""
        return max(1, min(MAX_TRAINED_LISTS, round(self.lists_per_sqrt * math.sqrt(passages))))

    def wanted(self, passages: int, current: VectorIndex | None) -> VectorIndex:
        """The index a version of ``passages`` passages should be served by."""
        ivf = self.kind == "ivfflat" or (self.kind == "auto" and (
            passages >= IVF_FROM_PASSAGES or (current is not None and current.kind == "ivfflat")))
        if not ivf:
            return VectorIndex("hnsw")
        lists = self.lists(passages)
        if current is not None and current.kind == "ivfflat" and (
                lists < RETRAIN_GROWTH * current.lists):
            lists = current.lists  # not grown enough to be worth training again
        return VectorIndex("ivfflat", lists, min(lists, self.probes))


BY_SIZE = VectorIndexChoice()


def search_settings(facts: dict[str, Any] | None, k: int) -> tuple[str, str]:
    """(``hnsw.ef_search``, ``ivfflat.probes``) for a search of k passages of a version
    whose manifest says ``facts`` (``vector_index``; None before it was recorded)."""
    probes = int((facts or {}).get("probes") or 1)
    return str(min(max(EF_SEARCH, k), EF_SEARCH_LIMIT)), str(probes)


def index_name(dimension: int, *, spare: bool = False) -> str:
    return f"chunks_embedding_{dimension}" + ("_next" if spare else "")


def current_index(connection: psycopg.Connection[Any], dimension: int) -> VectorIndex | None:
    """The valid vector index of this dimension, after finishing or dropping what a killed
    build left. Runs outside a transaction (``DROP INDEX CONCURRENTLY``)."""
    rows = {name: (method, options or [], valid) for name, method, options, valid in
            connection.execute(
                "SELECT c.relname, am.amname, c.reloptions, i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
                "WHERE c.relnamespace = 'collab_qa'::regnamespace AND c.relname IN (%s, %s)",
                (index_name(dimension), index_name(dimension, spare=True))).fetchall()}
    main, spare = index_name(dimension), index_name(dimension, spare=True)
    if spare in rows:
        if main not in rows and rows[spare][2]:  # killed between the drop and the rename
            connection.execute(f"ALTER INDEX collab_qa.{spare} RENAME TO {main}")
            rows[main] = rows.pop(spare)
        else:
            connection.execute(f"DROP INDEX CONCURRENTLY IF EXISTS collab_qa.{spare}")
    if main not in rows:
        return None
    method, options, _ = rows[main]
    if method == "hnsw":
        return VectorIndex("hnsw")
    lists = next((int(o.split("=", 1)[1]) for o in options if o.startswith("lists=")), 100)
    return VectorIndex("ivfflat", lists)


def _memory_for(connection: psycopg.Connection[Any], index: VectorIndex, dimension: int) -> None:
    """Raise this session's maintenance_work_mem to what k-means needs, if it is lower."""
    if index.kind != "ivfflat":
        return
    samples, lists, vector = (max(MIN_SAMPLES, index.lists * SAMPLES_PER_LIST), index.lists,
                              dimension * 4 + 8)
    # pgvector's own sum: samples, centres, a lower bound per sample and centre, and the
    # distances between centres; a tenth more for what it adds besides.
    needed = samples * (vector + 4 * lists + 8) + lists * (3 * vector + 4 * lists + 16)
    needed_mb = math.ceil(needed * 1.1 / 2**20) + 16
    row = connection.execute("SELECT setting::bigint / 1024 FROM pg_settings "
                             "WHERE name = 'maintenance_work_mem'").fetchone()
    if row is not None and int(row[0]) < needed_mb:
        connection.execute(f"SET maintenance_work_mem = '{needed_mb}MB'")


def create_index(connection: psycopg.Connection[Any], dimension: int,
                 index: VectorIndex) -> None:
    """Create the index of a dimension that has none (inside the write transaction)."""
    _memory_for(connection, index, dimension)
    connection.execute(
        f"CREATE INDEX IF NOT EXISTS {index_name(dimension)} ON collab_qa.chunks "
        f"USING {index.using(dimension)} WHERE dimension = {dimension}")


def replace_index(connection: psycopg.Connection[Any], dimension: int,
                  index: VectorIndex) -> None:
    """Build ``index`` beside the current one and swap them, without blocking searches
    (outside a transaction)."""
    main, spare = index_name(dimension), index_name(dimension, spare=True)
    _memory_for(connection, index, dimension)
    connection.execute(
        f"CREATE INDEX CONCURRENTLY {spare} ON collab_qa.chunks "
        f"USING {index.using(dimension)} WHERE dimension = {dimension}")
    connection.execute(f"DROP INDEX CONCURRENTLY IF EXISTS collab_qa.{main}")
    connection.execute(f"ALTER INDEX collab_qa.{spare} RENAME TO {main}")
