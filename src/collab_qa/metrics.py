"""The eval's metrics: pure functions over plain lists and numbers, so each can be tested
on hand-computed cases (``coverage[i]`` is the set of expected answers the passage at rank
``i`` is evidence for)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def hit_at_k(coverage: Sequence[set[int]], k: int) -> float:
    """1.0 when one of the first k passages is relevant."""
    return 1.0 if any(coverage[:k]) else 0.0


def recall_at_k(coverage: Sequence[set[int]], n_answers: int, k: int) -> float:
    """Share of the expected answers that some passage of the first k is evidence for."""
    if n_answers == 0:
        return 0.0
    return len(set().union(*coverage[:k])) / n_answers


def mrr_at_k(coverage: Sequence[set[int]], k: int) -> float:
    """1 / rank of the first relevant passage within the first k, else 0."""
    for rank, covered in enumerate(coverage[:k], 1):
        if covered:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(coverage: Sequence[set[int]], n_answers: int, k: int) -> float:
    """Binary nDCG: a passage gains 1 when it is evidence for an answer not yet credited, so
    two passages holding the same evidence count once; the ideal ranks one passage per
    answer first."""
    credited: set[int] = set()
    dcg = 0.0
    for rank, covered in enumerate(coverage[:k], 1):
        new = covered - credited
        if new:
            credited |= new
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(n_answers, k) + 1))
    return dcg / ideal if ideal else 0.0


def rate(flags: Sequence[bool]) -> float | None:
    """Share of True values; None for no values."""
    return sum(flags) / len(flags) if flags else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ndcg_from_ranking(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Graded nDCG@k of a document ranking against qrels (doc id -> relevance), as BEIR."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1)
              for rank, doc in enumerate(ranking[:k], 1))
    gains = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, 1))
    return dcg / ideal if ideal else 0.0


def recall_from_ranking(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents in the first k."""
    wanted = {doc for doc, g in relevant.items() if g > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def mrr_from_ranking(ranking: Sequence[str], relevant: dict[str, int], k: int) -> float:
    for rank, doc in enumerate(ranking[:k], 1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def calibrate_threshold(answerable: Sequence[float], max_wrong_rate: float = 0.03,
                        margin: float = 0.1) -> float:
    """The abstention threshold: as high as possible while at most ``max_wrong_rate`` of the
    answerable questions fall under it, then lowered by ``margin`` (or half the gap to the
    confidence below, if smaller) so that it does not sit right on a question.

    Args:
        answerable: Confidences of the answerable questions (the dev split).
        max_wrong_rate: Largest share of answerable questions that may be abstained.
        margin: Safety distance under the lowest confidence that must stay answered.
    """
    if not answerable:
        raise ValueError("calibration needs at least one answerable question")
    ordered = sorted(answerable)
    allowed = math.floor(max_wrong_rate * len(ordered) + 1e-9)
    if allowed >= len(ordered):
        return ordered[-1] + 1e-6
    upper = ordered[allowed]
    lower = ordered[allowed - 1] if allowed > 0 else upper - 2 * margin
    return upper - min((upper - lower) / 2, margin)


# ---------------------------------------------------------------------------- runner
