"""Hybrid score fusion: the one formula that turns a passage's dense, BM25 and sparse scores
into its hybrid score, for the retrieved candidates and for passages scored after them.

Each score is min-max normalised over the candidates (its floor at 0 or below) and the
three are weighted. BM25 cannot match across languages, so a passage in the other language
than the question's takes, in BM25's place, its sparse score or, without one, its dense
score spread over 0..1 of the candidates as BM25's scores are: it is not buried for lacking
shared words, nor lifted over every passage that shares them (one question's cosines sit
close together, near the top of the scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collab_qa.analysis import passage_language
from collab_qa.chunking import Chunk

Bounds = tuple[float, float]


def score_bounds(values: np.ndarray) -> Bounds:
    """Lowest and highest of ``values``, the lowest at 0 or below (BM25's floor)."""
    return float(values.min(initial=0.0)), float(values.max(initial=0.0))


def _spread_bounds(values: np.ndarray) -> Bounds:
    """Lowest and highest of ``values`` themselves (0, 0 when there are none)."""
    return (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)


def _scaled(values: np.ndarray, bounds: Bounds, *, flat_high: bool) -> np.ndarray:
    """``values`` mapped onto 0..1 by ``bounds`` (clipped: a passage scored after the
    candidates may fall outside them). When the bounds meet, every value maps to 1 if
    ``flat_high`` and the bound is above 0, else to 0."""
    low, high = bounds
    if high - low < 1e-9:
        return np.ones_like(values) if flat_high and high > 0 else np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


@dataclass(frozen=True)
class Fusion:
    """The weights and the candidates' scales of one query's hybrid fusion.

    Attributes:
        dense_weight: Weight of the normalised dense score.
        sparse_weight: Weight of the normalised sparse score (0: no sparse scores).
        cross_language: Whether other-language passages take BM25's place as above.
        dense_bounds: The candidates' dense scores' bounds (floor at 0 or below).
        lexical_bounds: The candidates' BM25 scores' bounds (floor at 0 or below).
        sparse_bounds: The candidates' sparse scores' bounds (floor at 0 or below).
        dense_spread: The candidates' lowest and highest dense score.
    """

    dense_weight: float
    sparse_weight: float = 0.0
    cross_language: bool = False
    dense_bounds: Bounds = (0.0, 0.0)
    lexical_bounds: Bounds = (0.0, 0.0)
    sparse_bounds: Bounds = (0.0, 0.0)
    dense_spread: Bounds = (0.0, 0.0)

    @classmethod
    def over(cls, dense: np.ndarray, lexical: np.ndarray, sparse: np.ndarray | None, *,
             dense_weight: float, sparse_weight: float, cross_language: bool) -> Fusion:
        """The fusion of one query, scaled by its candidates' scores (``sparse`` None: the
        sparse weight is 0)."""
        return cls(dense_weight, 0.0 if sparse is None else sparse_weight, cross_language,
                   score_bounds(dense), score_bounds(lexical),
                   (0.0, 0.0) if sparse is None else score_bounds(sparse),
                   _spread_bounds(dense))

    @property
    def lexical_weight(self) -> float:
        """BM25's weight: what the dense and sparse weights leave."""
        return 1 - self.dense_weight - self.sparse_weight

    def scores(self, question_language: str, chunks: Sequence[Chunk], dense: np.ndarray,
               lexical: np.ndarray, sparse: np.ndarray | None = None) -> np.ndarray:
        """The hybrid scores of ``chunks`` from their own dense, BM25 and sparse scores.

        Args:
            question_language: The question's language code ("" when unknown).
            chunks: The passages, in the order of the score arrays.
            dense: Their cosine similarities to the question.
            lexical: Their BM25 scores.
            sparse: Their sparse scores (None, or ignored, when the sparse weight is 0).

        Returns:
            One float32 score per passage.
        """
        dense_part = _scaled(dense, self.dense_bounds, flat_high=True)
        lexical_part = _scaled(lexical, self.lexical_bounds, flat_high=True)
        use_sparse = sparse is not None and self.sparse_weight > 0
        sparse_part = (_scaled(sparse, self.sparse_bounds, flat_high=True)
                       if use_sparse and sparse is not None else None)
        if self.cross_language and question_language:
            other = np.array([passage_language(chunk.text) not in ("", question_language)
                              for chunk in chunks], dtype=bool)
            in_place = (_scaled(dense, self.dense_spread, flat_high=False)
                        if sparse_part is None else sparse_part)
            lexical_part = np.where(other, in_place, lexical_part)
        fused = self.dense_weight * dense_part + self.lexical_weight * lexical_part
        if sparse_part is not None:
            fused = fused + self.sparse_weight * sparse_part
        return np.asarray(fused, dtype=np.float32)
