"""Conflicts: dated statements from different documents about the same subject that give
different dates ("signed on 3 May" in one, "in 2021" in another)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from collab_qa import lang
from collab_qa.analysis import TermStats, text_tokens
from collab_qa.facts import DATE, EVENT, MONTHS, YEAR, sentence_spans
from collab_qa.hits import Hit
from collab_qa.lead import passage_tokens
from collab_qa.rerank import Ranking
from collab_qa.store import IndexStore

_PUBLISHED = re.compile(
    rf"\b(?:{lang.alternation('published')}):?\s*(?P<iso>{YEAR}-\d{{2}}-\d{{2}})")


@dataclass(frozen=True)
class Conflict:
    """Passages of different documents that give different dates for the same thing.

    Attributes:
        topic: What the statements are about.
        statements: (citation, sentence) of each dated statement.
        note: One sentence saying that and how the sources disagree.
        dates: The date each statement gives, ISO style (``2023-10-17`` or ``2024``).
        doc_ids: The document of each statement.
    """

    topic: str
    statements: tuple[tuple[str, str], ...]
    note: str = ""
    dates: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()


def _document_year(store: IndexStore, doc_id: str) -> int | None:
    record = store.documents.get(doc_id)
    match = _PUBLISHED.search(record.text[:2000]) if record else None
    return int(match.group("iso")[:4]) if match else None


def _date_of(match: re.Match[str], default_year: int | None) -> str:
    """The ISO-style date a DATE match gives ("" for a day and month of unknown year)."""
    if match.group("iso"):
        return match.group("iso")
    if match.group("dmonth"):
        year = match.group("dyear") or (str(default_year) if default_year else None)
        month = MONTHS[match.group("dmonth").lower()]
        return f"{year}-{month:02d}-{int(match.group('day')):02d}" if year else ""
    if match.group("month"):
        month = MONTHS[match.group("month").lower()]
        date = f"{match.group('myear')}-{month:02d}"
        return date + (f"-{int(match.group('mday')):02d}" if match.group("mday") else "")
    return match.group("year")


def dated_statements(hit: Hit, default_year: int | None) -> list[tuple[str, str]]:
    """(sentence, date) for the sentences of a passage that date an event ("signed in…").

    A day and month without a year take the year the document was published.
    """
    statements = []
    for a, b in sentence_spans(hit.text):
        sentence = hit.text[a:b]
        if not EVENT.search(sentence) or _PUBLISHED.search(sentence):
            continue
        match = DATE.search(sentence)
        date = _date_of(match, default_year) if match else ""
        if date:
            statements.append((sentence, date))
    return statements


def _disagree(first: str, second: str) -> bool:
    """Dates disagree when they differ at the precision both give (2023-10-17 vs 2024)."""
    common = min(len(first), len(second))
    return first[:common] != second[:common]


def _same_document_passages(store: IndexStore, ranking: Ranking,
                            per_document: int = 50) -> list[Hit]:
    """The other passages of the cited documents (a date is often a section away from the
    sentence that matched), each with its own retrieval scores."""
    hits = ranking.ordered
    cited = {hit.chunk.id for hit in hits}
    passages = []
    for doc in dict.fromkeys(hit.doc_id for hit in hits):
        others = [i for i in store.documents[doc].chunk_ids if i not in cited][:per_document]
        chunks = [chunk for chunk in map(store.chunk_by_id, others) if chunk is not None]
        passages += ranking.retrieval.hits_for(store, chunks)
    return passages


Statement = tuple[Hit, str, str, set[str]]


def _group(found: Sequence[Statement], i: int, used: set[int]) -> tuple[list[Statement], set[str]]:
    """Statement ``i`` with the later statements of other documents that share one of its
    subject words and disagree with the group on the date."""
    group = [found[i]]
    shared = set(found[i][3])
    for j in range(i + 1, len(found)):
        other = found[j]
        if (j not in used and other[0].doc_id not in {g[0].doc_id for g in group}
                and other[3] & found[i][3] and any(_disagree(other[2], g[2]) for g in group)):
            group.append(other)
            shared &= other[3]
            used.add(j)
    return group, shared


def find_conflicts(store: IndexStore, ranking: Ranking,
                   stats: TermStats) -> tuple[list[Conflict], list[Hit]]:
    """Dated statements from different documents about the same subject that disagree.

    "The same subject" means both passages (with their title and headings) contain a word
    of the question that at most a quarter of all passages hold (accents ignored), and each
    statement has an event word ("signed", "initiated"). One statement must be in a cited
    passage; the other may be in another passage of a cited document.

    Returns:
        The conflicts, and the passages they quote that were not cited (to be cited too).
    """
    query_weights = stats.weights(text_tokens(ranking.query.text))
    if not query_weights:
        return [], []
    rare = {t for t, w in query_weights.items()
            if t in stats.idf and w >= stats.idf_of_share(0.25)}
    cited = {hit.chunk.id for hit in ranking.ordered}
    found: list[Statement] = []
    for hit in [*ranking.ordered, *_same_document_passages(store, ranking)]:
        anchors = rare & passage_tokens(hit, stats)
        if anchors:
            year = _document_year(store, hit.doc_id)
            found += [(hit, sentence, date, anchors)
                      for sentence, date in dated_statements(hit, year)]
    conflicts = []
    extra: dict[str, Hit] = {}
    used: set[int] = set()
    for i in range(len(found)):
        if i in used:
            continue
        group, shared = _group(found, i, used)
        if len(group) > 1 and any(g[0].chunk.id in cited for g in group):
            used.add(i)
            extra.update((g[0].chunk.id, g[0]) for g in group if g[0].chunk.id not in cited)
            words = sorted(shared, key=lambda t: (-query_weights.get(t, 0), t))
            conflicts.append(Conflict(
                topic=f"date ({', '.join(words[:3])})",
                statements=tuple((g[0].citation, g[1]) for g in group),
                note="The sources disagree on the date: " + "; ".join(
                    f"{g[0].title} says {g[2]}" for g in group) + ".",
                dates=tuple(g[2] for g in group), doc_ids=tuple(g[0].doc_id for g in group),
            ))
    return conflicts, list(extra.values())
