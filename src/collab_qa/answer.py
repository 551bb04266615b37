"""Question -> Answer: runs the stages in order, query -> search -> rerank -> contacts ->
confidence -> lead -> conflicts, each reading what the one before produced. After the query
is encoded, the model is called only to read a top passage in the other language than the
question's, sentence by sentence, once per passage."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from collab_qa.analysis import passage_language
from collab_qa.confidence import confidence_signal
from collab_qa.conflicts import Conflict, find_conflicts
from collab_qa.contacts import Contact, find_contacts
from collab_qa.hits import Hit
from collab_qa.lead import SentenceMeaning, best_sentence
from collab_qa.query import resolve_query
from collab_qa.rerank import Ranking, rank
from collab_qa.search import Searcher


@dataclass
class Answer:
    """What the chat, the API, the CLI and the eval show for one question: the question and
    the text retrieval used, whether the documents answer it, the lead sentence and its span
    in the top passage's document, the cited passages ("possibly related" when abstained),
    contact cards, conflicts, the confidence with its parts (``signals``), the time taken
    and whether a contact was asked for."""

    question: str
    query: str
    abstained: bool
    best_sentence: str | None
    best_span: tuple[int, int] | None
    hits: list[Hit]
    contacts: list[Contact] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    confidence: float = 0.0
    took_ms: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)
    asks_contact: bool = False


def rank_question(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                  history: Sequence[str] = ()) -> Ranking:
    """Resolve, retrieve and rank the passages for a question.

    A follow-up about the previous answer's subject ("and when was it renewed?") favours
    the document the previous question is answered from.

    Raises:
        QuestionError: for an empty or too long question, a bad k or an unknown mode.
    """
    query = resolve_query(searcher.validate(question, k, mode), history,
                          searcher.index.term_stats)
    if query.topic_follow_up and query.previous is not None:
        previous = rank_question(searcher, query.previous, k=1, mode=mode).hits
        query = replace(query, topic_document=previous[0].doc_id if previous else None)
    return rank(searcher.index, searcher.retrieve(query, k, mode), k)


def search_passages(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                    history: Sequence[str] = ()) -> list[Hit]:
    """The ranked passages for a question, without building the answer."""
    return rank_question(searcher, question, k, mode, history).hits


def _meaning_across_languages(searcher: Searcher, ranking: Ranking,
                              top: Hit) -> SentenceMeaning | None:
    """How to read the top passage's sentences by meaning, when it is in the other language
    than the question's and the model reads both; otherwise None (shared words decide)."""
    language = ranking.query.language
    if (not searcher.cross_language_dense or not language
            or passage_language(top.text) in ("", language)):
        return None
    return partial(searcher.sentence_similarity, ranking.retrieval.vector, top.chunk.id)


def answer_question(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                    history: Sequence[str] = (),
                    abstain_below: float | None = None) -> Answer:
    """Search and build the answer from ``k`` passages, the question read with ``history``
    (earlier questions, oldest first); abstain under ``abstain_below`` (default: the
    model's calibrated threshold).

    Raises:
        QuestionError: for an invalid question, k or mode.
    """
    started = time.perf_counter()
    ranking = rank_question(searcher, question, k=k, mode=mode, history=history)
    query = ranking.query
    if not ranking.hits:
        return Answer(question=question, query=query.text, abstained=True, best_sentence=None,
                      best_span=None, hits=[], took_ms=(time.perf_counter() - started) * 1000)
    stats = searcher.index.term_stats
    contacts = find_contacts(ranking)
    confidence, signals = confidence_signal(ranking, stats, contacts.role_named)
    abstained = confidence < (searcher.abstain_below if abstain_below is None else abstain_below)
    hits = ranking.ordered
    sentence, span = (None, None) if abstained else best_sentence(
        query, hits[0], stats, _meaning_across_languages(searcher, ranking, hits[0]))
    # Dates are compared when the question is about one ("when…", "signed…"), so an answer
    # about something else is not cluttered with a disagreement it did not ask about.
    conflicts, quoted = ([], []) if abstained or not query.about_dates else find_conflicts(
        searcher.index, ranking, stats)
    return Answer(
        question=question, query=query.text, abstained=abstained, best_sentence=sentence,
        best_span=span, hits=[*hits, *quoted],  # a passage a conflict quotes is cited too
        contacts=[] if abstained else contacts.cards, conflicts=conflicts,
        confidence=round(confidence, 4), took_ms=(time.perf_counter() - started) * 1000,
        signals=signals, asks_contact=query.asks_contact,
    )
