"""The passages' sparse "latent terms" (``collab_qa.sparse``) in Postgres.

Each passage's sparse vector sits in ``collab_qa.chunks.sparse``, a pgvector ``sparsevec``
of the model's sparse dimension (NULL when the build kept none). A version holds them when
its manifest's ``model.sparse_dimension`` is set; a version written before the database
kept them (format 5) reads as one without, and the next build adds them to its passages.

``PostgresSparseTerms`` is the ``SparseIndex`` of one version: the dot products run in the
database (``<#>`` is pgvector's negative inner product), on the version's own rows. Scoring
the fused candidates there beat fetching their vectors and scoring in numpy (8 against 35 ms
for 120 candidates at 100,000 passages). Sparse search is exact, and kept to small versions:
past ``EXACT_SEARCH_LIMIT`` passages it finds nothing, and the candidates are the dense and
lexical ones (SCALING.md has the measurements behind both choices).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from collab_qa.sparse import SparseVector

if TYPE_CHECKING:  # postgres.py imports this module
    from collab_qa.store.postgres import Database

# The first database format whose versions can hold sparse vectors.
FIRST_SPARSE_FORMAT = 6
# Largest version whose sparse search scores every passage (about 15 us a passage here: 30 ms
# at 2,000, 2 s at 100,000). Past it the search finds nothing: on SciFact and the eval set the
# dense and lexical candidates alone gave the same Hit@1, MRR@10 and recall, and an HNSW index
# on the sparse vectors built too slowly to keep (SCALING.md).
EXACT_SEARCH_LIMIT = 2_000

_SCORES_SQL = """
SELECT vc.position, coalesce(-(c.sparse <#> %(query)s::sparsevec), 0) AS score
FROM collab_qa.version_chunks vc JOIN collab_qa.chunks c ON c.chunk_key = vc.chunk_key
WHERE vc.version_id = %(version)s AND vc.position = ANY(%(positions)s)
"""

# Exact: every passage of the version is scored (see ``PostgresSparseTerms.search``).
_SEARCH_SQL = """
SELECT vc.position, -(c.sparse <#> %(query)s::sparsevec) AS score
FROM collab_qa.version_chunks vc JOIN collab_qa.chunks c ON c.chunk_key = vc.chunk_key
WHERE vc.version_id = %(version)s
ORDER BY c.sparse <#> %(query)s::sparsevec
LIMIT %(k)s
"""


def sparse_literal(vector: SparseVector, dimension: int) -> str:
    """pgvector's text form of ``vector``: ``{i:v,...}/dimension``, indices from 1, in
    order; features past ``dimension`` are left out."""
    keep = vector.indices < dimension
    indices, values = vector.indices[keep], vector.values[keep]
    order = np.argsort(indices, kind="stable")
    return "{" + ",".join(f"{int(i) + 1}:{float(v):.9g}" for i, v in
                          zip(indices[order], values[order], strict=True)) + f"}}/{dimension}"


class PostgresSparseTerms:
    """The sparse vectors of one version in the database (implements ``SparseIndex``).

    Args:
        database: The database.
        version_id: The version's row.
        dimension: The model's sparse dimension, as the vectors were stored.
        size: The version's number of passages.
    """

    def __init__(self, database: Database, version_id: int, dimension: int,
                 size: int) -> None:
        self.database = database
        self.version_id = version_id
        self.dimension = dimension
        self.size = size

    def scores(self, query: SparseVector, positions: np.ndarray) -> np.ndarray:
        """Dot product of the query with each passage at ``positions``."""
        if len(positions) == 0:
            return np.zeros(0, dtype=np.float32)
        params = {"query": sparse_literal(query, self.dimension), "version": self.version_id,
                  "positions": [int(p) for p in positions]}
        with self.database.pooled() as connection:
            rows = connection.execute(_SCORES_SQL, params).fetchall()
        by_position = {int(position): float(score) for position, score in rows}
        return np.fromiter((by_position.get(int(p), 0.0) for p in positions),
                           dtype=np.float32, count=len(positions))

    def search(self, query: SparseVector, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` passages with a positive score: (positions, scores), best first.

        Exact, by scoring every passage of the version, up to ``EXACT_SEARCH_LIMIT``
        passages; past it none (the dense and lexical candidates bring them in)."""
        if k <= 0 or len(query.indices) == 0 or self.size > EXACT_SEARCH_LIMIT:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = {"query": sparse_literal(query, self.dimension), "version": self.version_id,
                  "k": k}
        with self.database.pooled() as connection:
            rows = connection.execute(_SEARCH_SQL, params).fetchall()
        kept = [(int(position), float(score)) for position, score in rows
                if score is not None and score > 0]
        return (np.fromiter((p for p, _ in kept), dtype=np.int64, count=len(kept)),
                np.fromiter((s for _, s in kept), dtype=np.float32, count=len(kept)))


def sparse_terms_of(database: Database, version_id: int,
                    manifest: dict[str, Any]) -> PostgresSparseTerms | None:
    """The sparse vectors of a loaded version, or None when it holds none.

    A version of an older format holds none, whatever its manifest says (a copy of a local
    folder kept the folder's sparse dimension): its manifest is set to say so, and the next
    build then adds them to the passages it keeps.
    """
    model = manifest["model"]
    if int(manifest.get("format_version", 0)) < FIRST_SPARSE_FORMAT:
        model["sparse_dimension"] = 0
    dimension = int(model.get("sparse_dimension", 0))
    if not dimension:
        return None
    return PostgresSparseTerms(database, version_id, dimension,
                               int(manifest["totals"]["chunks"]))


def sparse_column(vectors: Sequence[SparseVector] | None, count: int,
                  dimension: int) -> list[str | None]:
    """The ``sparse`` column of a document's ``count`` passages: their literals, or NULLs
    when the build keeps none."""
    if vectors is None or not dimension:
        return [None] * count
    return [sparse_literal(vector, dimension) for vector in vectors]


def write_kept_sparse(connection: psycopg.Connection[Any],
                      rows: Sequence[tuple[str, int, SparseVector]], dimension: int) -> None:
    """Add sparse vectors to kept passages whose rows hold none yet (a base built without
    them). ``rows``: (content id, ordinal, vector) of each. The rows are shared with older
    versions, whose manifests name no sparse terms, so those versions read on unchanged."""
    if not dimension or not rows:
        return
    connection.execute("CREATE TEMPORARY TABLE kept_sparse (content_id text, ordinal integer, "
                       "sparse sparsevec) ON COMMIT DROP")
    with connection.cursor() as cursor, cursor.copy(
            "COPY kept_sparse (content_id, ordinal, sparse) FROM STDIN") as copy:
        for content_id, ordinal, vector in rows:
            copy.write_row((content_id, ordinal, sparse_literal(vector, dimension)))
    connection.execute(
        "UPDATE collab_qa.chunks c SET sparse = k.sparse FROM kept_sparse k "
        "WHERE c.content_id = k.content_id AND c.ordinal = k.ordinal")
