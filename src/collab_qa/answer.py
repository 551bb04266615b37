"""Hits -> Answer: the best sentence, contacts, conflicting dates, and abstention.

First version; the signals and thresholds are calibrated on eval/ (see eval/README.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from collab_qa.search import Hit, Searcher, compose_query

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[ -]?)?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}(?![\w-])")
_SENTENCE = re.compile(r"[^\n.!?]+(?:[.!?]+|$)", re.MULTILINE)


@dataclass(frozen=True)
class Contact:
    """Contact details found in a cited passage; never anything that is not in the text."""

    name: str | None
    email: str | None
    phone: str | None
    hit_rank: int
    citation: str


@dataclass(frozen=True)
class Conflict:
    """Passages of different documents that give different dates for the same thing."""

    topic: str
    statements: tuple[tuple[str, str], ...]  # (citation, sentence)


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
        confidence: The abstention signal, 0..1.
        took_ms: Time to answer.
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


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences of a passage, whitespace trimmed."""
    spans = []
    for match in _SENTENCE.finditer(text):
        raw = match.group(0)
        stripped = raw.strip()
        if len(stripped) > 2:
            start = match.start() + raw.index(stripped)
            spans.append((start, start + len(stripped)))
    return spans


def best_sentence(searcher: Searcher, query: str, hit: Hit) -> tuple[str, tuple[int, int]]:
    """The sentence of ``hit`` most similar to the query (dense cosine)."""
    spans = sentence_spans(hit.text) or [(0, len(hit.text))]
    sentences = [hit.text[a:b] for a, b in spans]
    query_vector = searcher.embedder.encode_query(query)
    scores = searcher.embedder.encode(sentences) @ query_vector
    a, b = spans[int(np.argmax(scores))]
    return hit.text[a:b], (hit.chunk.start + a, hit.chunk.start + b)


def extract_contacts(hits: Sequence[Hit]) -> list[Contact]:
    """Emails and phone numbers in the passages, each with its citation."""
    contacts = []
    for rank, hit in enumerate(hits):
        emails = EMAIL.findall(hit.text)
        phones = [p.strip() for p in PHONE.findall(hit.text) if sum(c.isdigit() for c in p) >= 7]
        if emails or phones:
            contacts.append(Contact(None, emails[0] if emails else None,
                                    phones[0] if phones else None, rank, hit.citation))
    return contacts


def answer_question(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                    history: Sequence[str] = (), abstain_below: float = 0.3) -> Answer:
    """Search and build the answer.

    Raises:
        QuestionError: for an invalid question, k or mode.
    """
    started = time.perf_counter()
    hits = searcher.search(question, k=k, mode=mode, history=history)
    query = compose_query(question.strip(), history)
    confidence = max((h.dense_score for h in hits[:1]), default=0.0)
    abstained = not hits or confidence < abstain_below
    sentence, span = (None, None) if abstained else best_sentence(searcher, query, hits[0])
    return Answer(
        question=question, query=query, abstained=abstained, best_sentence=sentence,
        best_span=span, hits=hits, contacts=[] if abstained else extract_contacts(hits[:3]),
        confidence=confidence, took_ms=(time.perf_counter() - started) * 1000,
    )
