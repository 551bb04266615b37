"""The threshold algorithm over impact-ordered postings finds the exact BM25 top k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from collab_qa.store import postgres_lexical
from collab_qa.store.postgres_lexical import PostingRow, top_k


def _index(seed: int, passages: int = 400, terms: int = 5) -> dict[str, dict[int, float]]:
    """Per token: its passages and their contributions (common tokens weigh less)."""
    rng = np.random.default_rng(seed)
    index = {}
    for t in range(terms):
        df = int(rng.integers(1, passages))
        holders = rng.choice(passages, size=df, replace=False)
        idf = np.log(1 + passages / df)
        index[f"t{t}"] = {int(p): float(np.float32(idf * rng.uniform(0.2, 1.0)))
                          for p in holders}
    return index


def _search(index: dict[str, dict[int, float]], counts: dict[str, int], k: int,
            block: int, budgeted: bool = False,
            scored: list[int] | None = None) -> list[tuple[int, float]] | None:
    lists = {term: sorted(index[term].items(), key=lambda item: (-item[1], item[0]))
             for term in counts if term in index}
    reads: list[tuple[int, int]] = []

    def read_blocks(first: int, last: int) -> Sequence[PostingRow]:
        reads.append((first, last))
        rows: list[PostingRow] = []
        for term, postings in lists.items():
            for b in range(first, last):
                part = postings[b * block:(b + 1) * block]
                if part:
                    rows.append((term, len(postings), b, [p for p, _ in part],
                                 [c for _, c in part]))
        return rows

    def score(positions: list[int]) -> list[tuple[int, float]]:
        if scored is not None:
            scored.extend(positions)
        return [(p, sum(counts[t] * index[t].get(p, 0.0) for t in lists)) for p in positions]

    found = top_k(counts, k, read_blocks, score, budgeted=budgeted)
    assert all(last > first for first, last in reads)
    assert max(last for _, last in reads) <= postgres_lexical.MAX_POSTING_BLOCKS
    assert budgeted or not found or (max(last for _, last in reads) * block
                                     < max(map(len, lists.values())))
    return found


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 10, 40])
def test_top_k_is_the_exact_top_k(seed: int, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small blocks read a few at a time, so the search stops long before the lists' ends.
    monkeypatch.setattr(postgres_lexical, "POSTING_BLOCK", 8)
    monkeypatch.setattr(postgres_lexical, "INITIAL_POSTINGS", 1)
    monkeypatch.setattr(postgres_lexical, "MAX_POSTING_BLOCKS", 1000)
    index = _index(seed)
    counts = {"t0": 1, "t1": 2, "t3": 1, "t4": 1, "absent": 1}
    every: dict[int, float] = {}
    for term in ("t0", "t1", "t3", "t4"):
        for position, contribution in index[term].items():
            every[position] = every.get(position, 0.0) + counts[term] * contribution
    expected = sorted(every.values(), reverse=True)[:k]
    found = _search(index, counts, k, 8)
    assert found is not None
    assert [score for _, score in found] == pytest.approx(expected)
    assert all(every[p] == pytest.approx(s) for p, s in found)


def test_top_k_gives_up_past_the_block_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_lexical, "POSTING_BLOCK", 2)
    monkeypatch.setattr(postgres_lexical, "MAX_POSTING_BLOCKS", 2)
    index = _index(1, passages=400, terms=3)
    assert _search(index, {"t0": 1, "t1": 1, "t2": 1}, 40, 2) is None


def test_top_k_of_no_known_token_is_empty() -> None:
    assert _search(_index(2), {"absent": 1}, 10, 8) == []
    assert _search(_index(2), {"absent": 1}, 10, 8, budgeted=True) == []


def _exact(index: dict[str, dict[int, float]], counts: dict[str, int]) -> dict[int, float]:
    every: dict[int, float] = {}
    for term, count in counts.items():
        for position, contribution in index.get(term, {}).items():
            every[position] = every.get(position, 0.0) + count * contribution
    return every


@pytest.mark.parametrize("limit", [2, 1000])
def test_a_budgeted_search_keeps_to_its_budget_and_finds_most_of_the_top_k(
        limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_lexical, "POSTING_BLOCK", 8)
    monkeypatch.setattr(postgres_lexical, "INITIAL_POSTINGS", 1)
    monkeypatch.setattr(postgres_lexical, "MAX_POSTING_BLOCKS", limit)
    counts = {"t0": 1, "t1": 2, "t2": 1, "t3": 1}
    recalls = []
    for seed in range(8):
        index = _index(seed, passages=2000)
        scored: list[int] = []
        found = _search(index, counts, 10, 8, budgeted=True, scored=scored)
        assert found is not None and len(found) == 10
        assert len(scored) <= postgres_lexical.BUDGET_PER_K * 10
        every = _exact(index, counts)
        assert all(every[p] == pytest.approx(s) for p, s in found)  # the scores are exact
        tenth = sorted(every.values(), reverse=True)[9]
        recalls.append(sum(s >= tenth - 1e-6 for _, s in found) / 10)
    if limit > 2:  # with the postings read to a decision, the budget finds most of the top k
        assert np.mean(recalls) >= 0.9, recalls
