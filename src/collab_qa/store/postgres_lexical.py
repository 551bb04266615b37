"""The lexical top k from impact-ordered postings (the threshold algorithm).

Each version keeps, per token, its passages' BM25 contributions in descending order, cut into
blocks (``collab_qa.version_postings``). A search reads the first blocks of its tokens; a
passage seen there scores at least the sum of the contributions seen and at most that plus,
for each token whose list is not read to the end, the last contribution read. Passages are
scored exactly, highest upper bound first, until no passage seen and unseen can beat the k-th
exact score; more blocks are read while an unseen passage still could. So the top k is the
exact BM25 top k, found without scoring every passage that holds a query word.

In a large version (``budgeted``) the search keeps to a budget instead: it reads blocks as
above, but at most MAX_POSTING_BLOCKS per token, then scores exactly only the BUDGET_PER_K * k
passages whose bounds (the contributions read, and the most the rest can add) are highest on
average, and returns the best k of those: most of the exact top k (bench/README.md has the
recall), at a bounded cost instead of scoring every passage that holds a query word.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

# Postings per block; a search reads whole blocks.
POSTING_BLOCK = 128
# Blocks per token read at most; past that every passage holding a query token is scored.
MAX_POSTING_BLOCKS = 64
# Postings per token read first, per passage asked for.
INITIAL_POSTINGS = 32
# Passages scored exactly per round trip, per passage asked for.
SCORE_BATCH = 8
# Contributions are kept as float4; bounds are widened by this fraction.
BOUND_SLACK = 1e-5
# Passages scored exactly per passage asked for, in a budgeted search.
BUDGET_PER_K = 4

# (token, its document frequency, block number, positions, contributions)
PostingRow = tuple[str, int, int, Sequence[int], Sequence[float]]


class _Postings:
    """The postings of a query's tokens read so far, and what they bound."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts
        self.df: dict[str, int] = {}
        self.read: Counter[str] = Counter()
        self.floor: dict[str, float] = {}
        self.blocks: list[tuple[str, np.ndarray, np.ndarray]] = []
        self.bound: dict[str, float] = {}
        self.positions: np.ndarray = np.zeros(0, dtype=np.int64)
        self.partial: np.ndarray = np.zeros(0)  # per passage seen: its contributions seen, summed
        self.upper: np.ndarray = np.zeros(0)  # per passage seen: the most it can score

    def add(self, rows: Sequence[PostingRow]) -> None:
        for term, df, _, positions, contributions in rows:
            self.df[term] = df
            self.read[term] += len(positions)
            self.floor[term] = contributions[-1]
            self.blocks.append((term, np.asarray(positions, dtype=np.int64),
                                self.counts[term] * np.asarray(contributions, dtype=np.float64)))
        # The most a passage can gain from each token whose list is not read to its end.
        self.bound = {term: self.counts[term] * self.floor[term] * (1 + BOUND_SLACK)
                      for term in self.df if self.read[term] < self.df[term]}
        if not self.blocks:
            return
        every = np.concatenate([positions for _, positions, _ in self.blocks])
        self.positions, inverse = np.unique(every, return_inverse=True)
        self.partial = np.bincount(inverse, weights=np.concatenate(
            [contributions for _, _, contributions in self.blocks]))
        gained = np.bincount(inverse, weights=np.concatenate(
            [np.full(len(positions), self.bound.get(term, 0.0))
             for term, positions, _ in self.blocks]))
        self.upper = self.partial * (1 + BOUND_SLACK) + self.unseen - gained

    @property
    def unseen(self) -> float:
        """The most a passage not seen yet can score."""
        return sum(self.bound.values())


def any_of(terms: Sequence[str]) -> str:
    """A tsquery matching any of the exact lexemes (no parsing, no stemming: they are
    analysed already)."""
    return " | ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "'"
                      for term in terms)


def _kth(scores: np.ndarray, k: int) -> float:
    if len(scores) < k:
        return float("-inf")
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def top_k(counts: Mapping[str, int], k: int,
          read_blocks: Callable[[int, int], Sequence[PostingRow]],
          score: Callable[[list[int]], Sequence[tuple[int, float]]], *,
          budgeted: bool = False) -> list[tuple[int, float]] | None:
    """The ``k`` passages with the highest BM25 scores, best first; None when more than
    MAX_POSTING_BLOCKS blocks per token would have to be read (score every match then).

    Args:
        counts: The query's tokens and how often each occurs in it.
        k: How many passages.
        read_blocks: The postings rows of the query's tokens in blocks [first, last).
        score: The exact BM25 scores of passages (all of them hold a query token).
        budgeted: Keep to the budget (see the module's docstring); never None then.
    """
    postings = _Postings(counts)
    read, wanted = 0, min(MAX_POSTING_BLOCKS, -(-INITIAL_POSTINGS * k // POSTING_BLOCK))
    while True:  # read blocks until no unseen passage can beat the k-th lower bound
        postings.add(read_blocks(read, wanted))
        read = wanted
        if not postings.bound or _kth(postings.partial, k) >= postings.unseen:
            break
        if read >= MAX_POSTING_BLOCKS:
            if budgeted:
                break
            return None
        wanted = min(MAX_POSTING_BLOCKS, read * 2)
    if budgeted:
        best = np.argsort(-(postings.partial + postings.upper), kind="stable")[:BUDGET_PER_K * k]
        scored = score(postings.positions[best].tolist()) if len(best) else []
        return sorted(scored, key=lambda item: (-item[1], item[0]))[:k]
    # Score the passages seen, highest upper bound first, while one could beat the k-th.
    exact: dict[int, float] = {}
    order = np.argsort(-postings.upper, kind="stable")
    batch = max(SCORE_BATCH * k, 64)
    for start in range(0, len(order), batch):
        if postings.upper[order[start]] <= _kth(np.fromiter(exact.values(), float), k):
            break
        exact.update(score(postings.positions[order[start:start + batch]].tolist()))
    return sorted(exact.items(), key=lambda item: (-item[1], item[0]))[:k]
