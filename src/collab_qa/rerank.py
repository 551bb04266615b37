"""Retrieved passages -> ranked passages. Every boost and reorder is one named function over
a list of hits; a boost adds a named share of the candidates' score range to the passages
that have what it wants, and a passage moved by a reorder keeps its own retrieval scores.

- the names asked about: a name is the sharpest word of a question, yet BM25 weighs one
  that many passages share little;
- the new subject of "what about X?", which asks the previous question anew about X;
- the document the previous question was answered from, for a follow-up about "it" or
  "them" (a passage elsewhere that is clearly better still wins);
- for the answer: the passage after the top one when only it holds the date or number
  asked for, and passages holding the asked type (or naming a person in the role asked
  about) moved up a little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from collab_qa.analysis import lexical_tokens
from collab_qa.chunking import is_placeholder, is_plain_heading
from collab_qa.documents import is_filler
from collab_qa.facts import dates_event, event_kind, holds_type, names_role
from collab_qa.hits import Hit, Retrieval
from collab_qa.query import Query, asked_types
from collab_qa.store import IndexStore

# Share of the score range added to a passage holding every name the question mentions.
NAME_BOOST = 0.2
# Share of the score range added to passages that hold the new subject of "what about X?".
NEW_SUBJECT_BOOST = 0.3
# Share of the score range added to passages of the previous answer's document.
FOLLOW_UP_BOOST = 0.2
# How far a passage holding the asked type may move up, within the first passages.
ANSWER_TYPE_JUMP = 2
ANSWER_TYPE_WINDOW = 5


@dataclass(frozen=True)
class Ranking:
    """The passages of one question in the orders the answer reads.

    Attributes:
        retrieval: What search found.
        hits: The retrieval ranking: boosted, one passage per region, at most k.
        ordered: ``hits`` as the answer shows them (next passage, answer type first).
        completed: ``hits`` with the next passage for the question as asked, which the
            confidence reads to see whether the asked type is at hand.
    """

    retrieval: Retrieval
    hits: list[Hit]
    ordered: list[Hit]
    completed: list[Hit]

    @property
    def query(self) -> Query:
        return self.retrieval.query


def _boost(hits: list[Hit], weight: float, share: np.ndarray | None) -> list[Hit]:
    """Add ``weight`` of the score range times ``share`` to each hit's score."""
    if share is None or not hits:
        return hits
    scores = np.array([hit.score for hit in hits], dtype=np.float32)
    boost = weight * float(scores.max() - scores.min())
    scores = (scores + np.float32(boost) * share).astype(np.float32)
    return [replace(hit, score=float(score)) for hit, score in zip(hits, scores, strict=True)]


def _share_holding(store: IndexStore, words: Sequence[str],
                   hits: Sequence[Hit]) -> np.ndarray | None:
    """For each hit, the share of ``words`` it holds, counting only words that occur
    somewhere in the index; None when none does."""
    positions = np.array([store.position_of(hit.chunk.id) for hit in hits], dtype=np.int64)
    present = [store.lexical_scores(word, positions) > 0 for word in dict.fromkeys(words)
               if store.lexical_search(word, 1)[0].size]
    return np.mean(present, axis=0).astype(np.float32) if present else None


def boost_names(store: IndexStore, query: Query, hits: list[Hit]) -> list[Hit]:
    """Passages holding the names the question asks about (names found nowhere left out)."""
    return _boost(hits, NAME_BOOST, _share_holding(store, lexical_tokens([query.names])[0], hits))


def boost_new_subject(store: IndexStore, query: Query, hits: list[Hit]) -> list[Hit]:
    """Passages holding the new subject of "what about X?" asked after another question."""
    if query.new_subject is None:
        return hits
    words = lexical_tokens([query.new_subject])[0]
    return _boost(hits, NEW_SUBJECT_BOOST, _share_holding(store, words, hits))


def boost_topic(document: str | None, hits: list[Hit]) -> list[Hit]:
    """Passages of the document that answered the previous question."""
    if document is None:
        return hits
    return _boost(hits, FOLLOW_UP_BOOST,
                  np.array([hit.doc_id == document for hit in hits], dtype=bool))


def distinct_top(hits: list[Hit], k: int) -> list[Hit]:
    """The ``k`` best hits, overlapping windows of one region returned once."""
    order = np.argsort(-np.array([hit.score for hit in hits], dtype=np.float32), kind="stable")
    chosen: list[Hit] = []
    for position in order:
        hit = hits[int(position)]
        if any(h.doc_id == hit.doc_id and h.chunk.start < hit.chunk.end
               and hit.chunk.start < h.chunk.end for h in chosen):
            continue
        chosen.append(hit)
        if len(chosen) == k:
            break
    return chosen


def with_next_passage(store: IndexStore, retrieval: Retrieval, kinds: frozenset[str],
                      hits: list[Hit]) -> list[Hit]:
    """When the top passage lacks what the question asks for and the passage right after it
    in its document holds it, that passage comes second: a short section is often continued
    by the next. The list keeps its length."""
    if not kinds or not hits or all(holds_type(hits[0].text, kind) for kind in kinds):
        return list(hits)
    following = store.next_chunk(hits[0].chunk)
    if following is None or not all(holds_type(following.text, kind) for kind in kinds):
        return list(hits)
    found = [hit for hit in hits[1:] if hit.chunk.id == following.id]
    second = found[0] if found else retrieval.hits_for(store, [following])[0]
    rest = [hit for hit in hits[1:] if hit.chunk.id != following.id]
    return [hits[0], second, *rest][: len(hits)]


def is_placeholder_passage(hit: Hit, fillers: frozenset[str] = frozenset()) -> bool:
    """A passage whose lines are only headings and placeholders (or ``fillers``): the
    section exists but says nothing yet."""
    headings = set(hit.chunk.heading_path) | {hit.title}
    lines = [line.strip(" -") for line in hit.text.split("\n") if line.strip(" -")]

    def empty(line: str) -> bool:
        return is_placeholder(line) or is_filler(line, fillers)

    content = [line for line in lines if line not in headings and not is_plain_heading(line)
               and any(ch.isalpha() for ch in line)]  # a bare date line says nothing
    return bool(lines) and any(empty(line) for line in lines) and all(
        empty(line) for line in content)


def placeholders_last(hits: list[Hit], fillers: frozenset[str]) -> list[Hit]:
    """The passages in the same order, those that say nothing yet (only headings over
    placeholder or filler lines) moved to the end."""
    return sorted(hits, key=lambda hit: is_placeholder_passage(hit, fillers))


def by_answer_type(kinds: frozenset[str], hits: list[Hit], event: str | None = None,
                   ) -> list[Hit]:
    """Let a passage that holds what the question asks for (a date for "when…") move up to
    ``ANSWER_TYPE_JUMP`` places past passages of the first ``ANSWER_TYPE_WINDOW`` that do
    not. When the question dates an event of a kind ("when was it signed?"), only a date of
    that kind of event counts, if any passage there holds one, and it comes first."""
    if not kinds or len(hits) < 2:
        return list(hits)
    head = list(hits[:ANSWER_TYPE_WINDOW])
    holds = [all(holds_type(hit.text, kind) for kind in kinds) for hit in head]
    jump = ANSWER_TYPE_JUMP
    if event is not None and "date" in kinds:
        dated = [held and dates_event(hit.text, event) for held, hit in zip(holds, head,
                                                                            strict=True)]
        if any(dated):
            holds, jump = dated, ANSWER_TYPE_WINDOW
    return _moved_up(hits, holds, jump)


def by_role(kind: str | None, hits: list[Hit]) -> list[Hit]:
    """For "who is the <role>…?": let a passage that names a person in a role of that kind,
    in either language, move up ``ANSWER_TYPE_JUMP`` places within the first passages."""
    if kind is None or len(hits) < 2:
        return list(hits)
    return _moved_up(hits, [names_role(hit.text, kind) for hit in hits[:ANSWER_TYPE_WINDOW]],
                     ANSWER_TYPE_JUMP)


def _moved_up(hits: list[Hit], wanted: list[bool], jump: int) -> list[Hit]:
    """``hits`` with each of the first ones that is ``wanted`` moved up ``jump`` places (ties
    keep the earlier passage first); the rest after them as they were."""
    keys = [rank - (jump if want else 0) for rank, want in enumerate(wanted)]
    order = sorted(range(len(wanted)), key=lambda i: (keys[i], i))
    return [hits[i] for i in order] + list(hits[len(wanted):])


def rank(store: IndexStore, retrieval: Retrieval, k: int) -> Ranking:
    """Boost, cut to ``k`` and order the retrieved passages for the answer.

    Args:
        store: The index the passages come from.
        retrieval: The candidates search found.
        k: Passages to keep.
    """
    query = retrieval.query
    hits = boost_names(store, query, retrieval.candidates)
    hits = boost_new_subject(store, query, hits)
    hits = placeholders_last(distinct_top(boost_topic(query.topic_document, hits), k),
                             store.term_stats.fillers)
    ordered = by_answer_type(query.kinds, with_next_passage(store, retrieval, query.kinds, hits),
                             event_kind(query.question))
    ordered = by_role(query.role, ordered)
    completed = with_next_passage(store, retrieval, asked_types(query.question), hits)
    return Ranking(retrieval, hits, ordered, completed)

