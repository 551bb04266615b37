"""How strongly the index answers a question, and so whether the answer abstains.

The signal is computed the same way whatever the search mode, so one threshold serves all;
the threshold is calibrated per model on the dev split (``calibration``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from collab_qa import lang
from collab_qa.analysis import TermStats, text_tokens
from collab_qa.facts import AMOUNT, DATE, EMAIL, YEAR, phones
from collab_qa.hits import Hit
from collab_qa.lead import coverage, passage_tokens
from collab_qa.query import ASKS_AMOUNT, ASKS_DEADLINE, ASKS_EMAIL, ASKS_NAMED_PERSON, ASKS_PHONE
from collab_qa.rerank import Ranking, is_placeholder_passage

_ALTERNATIVE = re.compile(rf"\s(?:{lang.alternation('alternative')})\s", re.IGNORECASE)
_ENTITY = re.compile(r"(?<=[\w,;:] )[A-ZÅÄÖÜ][\w-]+|\b[A-ZÅÄÖ]{2,}\b")


def missing_answer_type(question: str, hits: Sequence[Hit]) -> bool:
    """The question asks for a kind of thing the top passages do not hold: an email, a phone
    number or an amount of money (top two passages), a date (top three)."""
    best = [hit.text for hit in hits[:2]]
    if ASKS_EMAIL.search(question) and not any(EMAIL.search(t) for t in best):
        return True
    if ASKS_PHONE.search(question) and not any(phones(t) for t in best):
        return True
    if ASKS_AMOUNT.search(question) and not any(AMOUNT.search(t) for t in best):
        return True
    return bool(ASKS_DEADLINE.search(question) and not any(
        DATE.search(hit.text) or re.search(YEAR, hit.text) for hit in hits[:3]))


def asks_named_person(question: str) -> bool:
    """Whether the question asks who holds a role ("who leads…", "the contact person…")."""
    return bool(ASKS_NAMED_PERSON.search(question))


def rests_on_unknown_name(query: str, stats: TermStats) -> bool:
    """Whether the question rests on a name no passage contains.

    Names offered as alternatives ("in A or elsewhere in B") need only one of them known.
    Names are held to a stricter typo rule, so a short common word does not pass for one."""
    cuts = [match.start() for match in _ALTERNATIVE.finditer(query)]
    alternatives: dict[int, list[str]] = {}
    for match in _ENTITY.finditer(query):
        part = bisect.bisect(cuts, match.start())
        alternatives.setdefault(part, []).extend(text_tokens(match.group()))
    named = [tokens for tokens in alternatives.values() if tokens]
    # A name joined to a common word ("X-project", "X-konferensen") is known by its name.
    return bool(named) and all(not any(stats.known(t, min_typo_length=6) for t in tokens)
                               for tokens in named)


def confidence_signal(ranking: Ranking, stats: TermStats,
                      role_named: bool) -> tuple[float, dict[str, float]]:
    """How strongly the index answers the query, from eight signals:

    - ``dense``: cosine of the query with the best passage of the whole index;
    - ``lexical``: IDF-weighted share of the query's words in the best-covering passage
      among the top five hits;
    - ``agreement``: 1 when the dense and the lexical best passage are the same, 0.5 when
      they come from the same document;
    - ``unknown``: IDF-weighted share of the query's words that no passage contains, even
      allowing for a typo; paraphrases have some too, so it weighs little;
    - ``unknown_name``: 1 when a name in the question (a capitalised word inside it) occurs
      in no passage; the question is then about something the documents do not cover (of
      names offered as alternatives, one known is enough);
    - ``missing_type``: 1 when the question asks for an email, a phone number, a date or an
      amount and none of the top passages holds one;
    - ``placeholder``: 1 when the passage that best covers the query's words is a heading
      over placeholder text only: the section exists but says nothing yet;
    - ``missing_person``: 1 when the question asks who holds a role and the top two
      passages name nobody with a role (``role_named`` false);
    - ``dangling``: 1 when the question refers back to an earlier one ("and their phone
      number?") that was never asked, and names no subject: there is nothing to answer.

    ``confidence = 0.5 dense + 0.4 lexical + 0.1 agreement - 0.2 unknown - 0.8 unknown_name
    - 0.5 missing_type - 1.0 placeholder - 1.0 missing_person - 1.0 dangling``: the last
    ones are near vetoes, the first four a graded score (so the confidence can be
    negative).
    """
    query = ranking.query
    hits = ranking.hits
    dense_best, dense = ranking.retrieval.best_dense
    weights = stats.weights(text_tokens(query.text))
    lexical, lexical_best = 0.0, None
    for hit in hits[:5]:
        value = coverage(weights, passage_tokens(hit, stats))
        if value > lexical:
            lexical, lexical_best = value, hit
    agreement = 0.0
    if lexical_best is not None and dense_best is not None:
        if dense_best.id == lexical_best.chunk.id:
            agreement = 1.0
        elif dense_best.doc_id == lexical_best.doc_id:
            agreement = 0.5
    total = sum(weights.values())
    unknown = (sum(w for t, w in weights.items() if not stats.known(t)) / total) if total else 0.0
    unknown_name = 1.0 if rests_on_unknown_name(query.text, stats) else 0.0
    missing = 1.0 if missing_answer_type(query.question, ranking.completed) else 0.0
    nobody = 1.0 if asks_named_person(query.question) and not role_named else 0.0
    dangling = 1.0 if query.dangling else 0.0
    placeholder = 1.0 if lexical_best is not None and is_placeholder_passage(
        lexical_best, stats.fillers) else 0.0
    confidence = (0.5 * dense + 0.4 * lexical + 0.1 * agreement - 0.2 * unknown
                  - 0.8 * unknown_name - 0.5 * missing - 1.0 * placeholder - 1.0 * nobody
                  - 1.0 * dangling)
    return confidence, {"dense": round(dense, 4), "lexical": round(lexical, 4),
                        "agreement": agreement, "unknown": round(unknown, 4),
                        "unknown_name": unknown_name, "missing_type": missing,
                        "placeholder": placeholder, "missing_person": nobody,
                        "dangling": dangling}
