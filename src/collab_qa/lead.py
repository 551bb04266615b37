"""The lead of an answer: the sentence of the top passage that answers best, chosen by the
question's IDF-weighted words and by what the question asks for (no model call)."""

from __future__ import annotations

import re
from collections.abc import Set

import numpy as np

from collab_qa import lang
from collab_qa.analysis import TermStats, content_tokens, text_tokens
from collab_qa.chunking import embedding_text
from collab_qa.documents import is_filler, is_placeholder
from collab_qa.facts import (
    DATE,
    EMAIL,
    YEAR,
    holds_contact,
    names_role,
    phones,
    points_to_help,
    sentence_spans,
)
from collab_qa.hits import Hit
from collab_qa.query import (
    ASKS_CONTACT,
    ASKS_DATE,
    ASKS_EMAIL,
    ASKS_NUMBER,
    ASKS_PHONE,
    ASKS_WAY,
    Query,
)

# Digits and unambiguous number words ("one" or "en" is as often an ordinary word).
_NUMBER_WORDS = [word for word in lang.numbers() if word not in lang.words("ambiguous_numbers")]
_NUMBER = re.compile(rf"\d|\b(?:{'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE)


def passage_tokens(hit: Hit, stats: TermStats) -> frozenset[str]:
    """The content words of a passage with its title and headings."""
    tokens = stats.chunk_tokens.get(hit.chunk.id)
    if tokens is None:
        tokens = frozenset(content_tokens([embedding_text(hit.title, hit.chunk)])[0])
    return tokens


def coverage(query_weights: dict[str, float], tokens: Set[str]) -> float:
    """IDF-weighted share of the query's words found in ``tokens`` (0..1)."""
    total = sum(query_weights.values())
    return sum(w for t, w in query_weights.items() if t in tokens) / total if total else 0.0


def _sentence_bonus(sentence: str, question: str, role: str | None) -> float:
    """Extra score for a sentence that holds the kind of thing the question asks for (for
    "how do I …?", where to turn; for "who is the <role>?", a person in that role, named in
    either language), and a penalty for fragments (a lead-in "… within:" or a few words
    without a verb)."""
    bonus = 0.0
    if ASKS_DATE.search(question) and (DATE.search(sentence) or re.search(YEAR, sentence)):
        bonus += 0.25
    if ASKS_NUMBER.search(question) and _NUMBER.search(sentence):
        bonus += 0.25
    if ASKS_PHONE.search(question) and phones(sentence):
        bonus += 0.4
    if ASKS_EMAIL.search(question) and EMAIL.search(sentence):
        bonus += 0.4
    if ((ASKS_CONTACT.search(question) and holds_contact(sentence))
            or (ASKS_WAY.search(question) and points_to_help(sentence))):
        bonus += 0.3
    if role is not None and names_role(sentence, role):
        bonus += 0.3
    if sentence.rstrip().endswith(":"):
        bonus -= 0.3
    elif len(sentence.split()) < 5 and not (EMAIL.search(sentence) or phones(sentence)
                                            or DATE.search(sentence)):
        bonus -= 0.15
    return bonus


def _sentence_weights(query: Query, hit: Hit, stats: TermStats) -> dict[str, float]:
    """Query word weights for choosing a sentence inside one passage: words of the question
    itself count double those of the conversation before it, and words of the passage's own
    title and headings count little (every sentence under them is about them)."""
    weights = stats.weights(text_tokens(query.text))
    own = set(text_tokens(query.question))
    context = set(text_tokens(" ".join((hit.title, *hit.chunk.heading_path))))
    return {t: w * (2.0 if t in own else 1.0) * (0.3 if t in context else 1.0)
            for t, w in weights.items()}


def best_sentence(query: Query, hit: Hit, stats: TermStats) -> tuple[str, tuple[int, int]]:
    """The sentence of ``hit`` that answers best, and its span in the document.

    Score: IDF-weighted share of the query's words in the sentence (see
    :func:`_sentence_weights`), plus a bonus when the sentence holds what the question asks
    for (date, number, phone, email, contact, where to turn). Lines that only repeat the
    passage's headings, placeholder and filler lines are skipped unless nothing else is
    left; ties go to the earlier sentence.
    """
    text = hit.text
    spans = sentence_spans(text) or [(0, len(text))]
    headings = {h.strip() for h in hit.chunk.heading_path} | {hit.title.strip()}
    body = [(a, b) for a, b in spans if text[a:b] not in headings
            and not is_placeholder(text[a:b]) and not is_filler(text[a:b], stats.fillers)
            ] or spans
    sentences = [text[a:b] for a, b in body]
    weights = _sentence_weights(query, hit, stats)
    closeness = [coverage(weights, set(tokens)) for tokens in content_tokens(sentences)]
    scores = [close + _sentence_bonus(sentence, query.question, query.role)
              for sentence, close in zip(sentences, closeness, strict=True)]
    a, b = body[int(np.argmax(scores))]
    return text[a:b], (hit.chunk.start + a, hit.chunk.start + b)
