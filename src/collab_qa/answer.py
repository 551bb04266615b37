"""Question -> Answer: the one place that runs the stages in order.

query (resolve) -> search (retrieve) -> rerank -> contacts -> confidence -> lead ->
conflicts. Each stage reads the ``Query``, the ranked hits and the store's word statistics;
no stage calls back into an earlier one, and no extra model call is made after the query is
encoded, so an answer costs a few milliseconds more than the search.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from collab_qa.confidence import confidence_signal
from collab_qa.conflicts import Conflict, find_conflicts
from collab_qa.contacts import Contact, find_contacts
from collab_qa.hits import Hit
from collab_qa.lead import best_sentence
from collab_qa.query import resolve_query
from collab_qa.rerank import Ranking, rank
from collab_qa.search import Searcher


@dataclass
class Answer:
    """What the chat, the API, the CLI and the eval show for one question.

    Attributes:
        question: The question as asked.
        query: The text retrieval used (a follow-up is read with the previous question).
        abstained: True when the documents do not answer the question.
        best_sentence: The sentence of the top passage that answers best (None if abstained).
        best_span: (start, end) of ``best_sentence`` in the top passage's document.
        hits: Ranked passages; "possibly related" ones when abstained.
        contacts: Contact cards from the cited passages.
        conflicts: Disagreements between the cited documents.
        confidence: The abstention signal.
        took_ms: Time to answer.
        signals: The parts of the confidence, for the eval.
        asks_contact: Whether the question asks for a contact.
    """

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
    query = resolve_query(searcher.validate(question, k, mode), history)
    if query.topic_follow_up and query.previous is not None:
        previous = rank_question(searcher, query.previous, k=1, mode=mode).hits
        query = replace(query, topic_document=previous[0].doc_id if previous else None)
    return rank(searcher.index, searcher.retrieve(query, k, mode), k)


def search_passages(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                    history: Sequence[str] = ()) -> list[Hit]:
    """The ranked passages for a question, without building the answer."""
    return rank_question(searcher, question, k, mode, history).hits


def answer_question(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                    history: Sequence[str] = (),
                    abstain_below: float | None = None) -> Answer:
    """Search and build the answer.

    Args:
        searcher: The loaded searcher.
        question: The user's question.
        k: Passages to return (cited, or "possibly related" when abstaining).
        mode: ``hybrid``, ``dense`` or ``lexical``.
        history: Earlier questions of the conversation, oldest first.
        abstain_below: Confidence under which the answer abstains (default: the model's
            calibrated threshold).

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
    sentence, span = (None, None) if abstained else best_sentence(query, hits[0], stats)
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
