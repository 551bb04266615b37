"""Choosing a collection's own dense weight from its own questions.

The calibrated weights (``calibration``) were tuned on this project's dev questions; another
collection may want another one (on SciFact, tuned on its train claims, a higher dense
weight; eval/README.md). ``calibrate_dense_weight`` runs the hybrid eval of a questions file
split at every weight of a grid and picks the weight whose neighbourhood scores best, so
one lucky point does not decide. The user then sets ``COLLAB_QA_DENSE_WEIGHT``; questions
used here should not be the ones the collection is later judged on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from collab_qa.evaluate import EvalQuestion, run_eval
from collab_qa.search import Searcher

DENSE_WEIGHTS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class WeightScore:
    """Hybrid metrics of one dense weight."""

    dense_weight: float
    hit_at_1: float
    mrr_at_10: float


def plateau_choice(scores: Mapping[float, float]) -> float:
    """The weight whose score averaged with its grid neighbours' is highest (the first on a
    tie), so a single high point between low ones loses to a plateau.

    Raises:
        ValueError: for an empty grid.
    """
    if not scores:
        raise ValueError("no weights to choose from")
    weights = sorted(scores)

    def smoothed(index: int) -> float:
        around = [scores[weights[i]] for i in range(max(index - 1, 0),
                                                    min(index + 2, len(weights)))]
        return sum(around) / len(around)

    return weights[max(range(len(weights)), key=lambda i: (smoothed(i), -i))]


def calibrate_dense_weight(
    make_searcher: Callable[[float], Searcher], questions: Sequence[EvalQuestion],
    weights: Sequence[float] = DENSE_WEIGHTS, k: int = 10,
) -> tuple[float, list[WeightScore]]:
    """Run the hybrid eval at every dense weight and choose one by MRR@10 (``plateau_choice``).

    Args:
        make_searcher: A searcher over the collection's index with the given dense weight.
        questions: The tuning questions (answerable ones count; unanswerable ones are
            ignored by the ranking metrics).
        weights: The grid.
        k: Passages retrieved per question.

    Returns:
        The chosen weight and the metrics of every weight, in grid order.
    """
    table = []
    for weight in weights:
        metrics = run_eval(make_searcher(weight), questions, ["hybrid"], k=k).modes[0].metrics
        table.append(WeightScore(weight, float(metrics["hit@1"] or 0.0),
                                 float(metrics["mrr@10"] or 0.0)))
    chosen = plateau_choice({row.dense_weight: row.mrr_at_10 for row in table})
    return chosen, table
