"""Question + history -> Query, resolved once: the text to search, whether it follows up on
the previous question, the names it asks about and the kinds of thing it asks for. Every
later stage reads the Query; nobody recomposes it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from collab_qa import lang
from collab_qa.analysis import TermStats, detect_language, text_tokens
from collab_qa.facts import EVENT, role_kind


def _any_of(key: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """A whole word or phrase of the language lists under ``key``."""
    return re.compile(rf"\b(?:{lang.alternation(key)})\b", flags)


_FOLLOW_UP_START = re.compile(rf"^(?:{lang.alternation('follow_up_starts')})\b", re.IGNORECASE)
_TOPIC_SHIFT = re.compile(rf"^(?:{lang.alternation('topic_shift_starts')})\b", re.IGNORECASE)
_REFERRING_WORD = _any_of("referring_words")
# A capitalised word inside a sentence: a place, an organisation, a project (acronyms such
# as "EU" are left out: passages often spell them out).
NAME = re.compile(r"(?<=[\w,;:] )[A-ZÅÄÖÜ][a-zåäöüéèáíóúñç][\w-]*")

ASKS_CONTACT = _any_of("asks_contact")
ASKS_EMAIL = _any_of("asks_email")
ASKS_PHONE = _any_of("asks_phone")
ASKS_DATE = _any_of("asks_date")
ASKS_NUMBER = _any_of("asks_number")
# A question about who holds a role wants a person's name, not a unit or an address.
ASKS_NAMED_PERSON = _any_of("asks_named_person")
ASKS_AMOUNT = _any_of("asks_amount")
ASKS_WAY = _any_of("asks_way")
ASKS_DEADLINE = re.compile(
    rf"(?:^|[.?!]\s+)(?:(?:{lang.alternation('and_words')})\s+)?"
    rf"(?:{lang.alternation('asks_deadline_start')})\b"
    rf"|\b(?:{lang.alternation('asks_deadline')})\b", re.IGNORECASE)


# A term: a word of at least TERM_LETTERS letters held by at most TERM_SHARE of the
# passages, or one no passage holds (a short common word, "help" or "signed", names nothing).
TERM_SHARE = 0.03
TERM_LETTERS = 9


def _names_something(question: str) -> bool:
    words = question.split()
    return any(word[:1].isupper() and word != "I" for word in words[1:]) or any(
        ch.isdigit() for ch in question)


def has_own_subject(question: str, stats: TermStats | None = None) -> bool:
    """Whether a question names what it is about: a name (a capitalised word inside it), a
    number, or, given the index's statistics, a term (see ``TERM_SHARE``)."""
    if _names_something(question):
        return True
    if stats is None:
        return False
    rare = stats.idf_of_share(TERM_SHARE)
    return any((len(token) >= 5 and not stats.known(token))
               or (len(token) >= TERM_LETTERS and stats.idf.get(token, 0.0) >= rare)
               for token in text_tokens(question))


def is_follow_up(question: str, stats: TermStats | None = None) -> bool:
    """Whether a question leans on the previous one: it starts like a continuation ("and
    their phone number?", "what about X?", "och …?"), refers back with a pronoun without
    naming anything ("what else do they do?"), or is five words or fewer with no subject of
    its own ("which partners are involved?"). A question with its own subject stands alone,
    whatever was asked before it."""
    stripped = question.strip()
    return refers_back(stripped) or (
        len(stripped.split()) <= 5 and not has_own_subject(stripped, stats))


def refers_back(question: str) -> bool:
    """Whether a question starts like a continuation ("and …?", "och …?") or refers back
    with a pronoun without naming anything: it cannot be read without an earlier one."""
    stripped = question.strip()
    return bool(_FOLLOW_UP_START.match(stripped)
                or (_REFERRING_WORD.search(stripped) and not _names_something(stripped)))


def compose_query(question: str, history: Sequence[str] = (),
                  stats: TermStats | None = None) -> str:
    """The text to retrieve with: a follow-up is read together with the previous question."""
    previous = [turn.strip() for turn in history if turn and turn.strip()]
    if previous and is_follow_up(question, stats):
        return f"{previous[-1]} {question.strip()}"
    return question.strip()


def asked_types(question: str) -> frozenset[str]:
    """The kinds of thing a question asks for: ``date``, ``number``, ``phone``, ``email``."""
    kinds = set()
    if ASKS_DEADLINE.search(question):
        kinds.add("date")
    if ASKS_NUMBER.search(question):
        kinds.add("number")
    if ASKS_PHONE.search(question):
        kinds.add("phone")
    if ASKS_EMAIL.search(question):
        kinds.add("email")
    return frozenset(kinds)


def asks_for_contact(question: str) -> bool:
    """Whether a question asks who to contact or for an email or phone number."""
    return bool(ASKS_CONTACT.search(question))


def asked_role(question: str) -> str | None:
    """The kind of role a question asks who holds ("who is the dean…?"), if any."""
    return role_kind(question) if asks_for_contact(question) else None


@dataclass(frozen=True)
class Query:
    """A question resolved against its conversation.

    Attributes:
        question: The question as asked, stripped.
        text: The text to retrieve with (a follow-up joined with the previous question).
        previous: The previous question of the conversation, if any.
        follows_up: The question leans on the previous one ("and when was it signed?").
        new_subject: For "what about X?" after an earlier question: X; else None.
        names_text: The text whose names a passage should hold.
        asked: The text whose answer types count: the question alone without history,
            else ``text``.
        kinds: What ``asked`` asks for (date, number, phone, email).
        asks_contact: The question asks for a contact (person, unit, email, phone).
        topic_document: For a follow-up about the previous answer's subject, the document
            that answered the previous question.
        language: ``sv`` or ``en`` when the question shows it, else empty.
        dangling: The question refers back ("and their phone number?") but nothing was
            asked before it, and it names nothing (no name, no number).
        role: The kind of role the question asks who holds ("rector" for "who is the
            president…?"), else None.
    """

    question: str
    text: str
    previous: str | None
    follows_up: bool
    new_subject: str | None
    names_text: str
    asked: str
    kinds: frozenset[str]
    asks_contact: bool
    topic_document: str | None = None
    language: str = ""
    dangling: bool = False
    role: str | None = None

    @property
    def topic_follow_up(self) -> bool:
        """A follow-up about the previous answer's subject ("and when was it renewed?"),
        not a move to a new one ("what about the other office?")."""
        return self.follows_up and not _TOPIC_SHIFT.match(self.question)

    @property
    def about_dates(self) -> bool:
        """Whether the question is about when something happened ("when…", "signed…")."""
        return "date" in asked_types(self.text) or bool(EVENT.search(self.question))

    @property
    def names(self) -> str:
        """The names in ``names_text``, space-separated."""
        return " ".join(NAME.findall(self.names_text))


def resolve_query(question: str, history: Sequence[str] = (),
                  stats: TermStats | None = None) -> Query:
    """Read a (validated) question with the earlier questions of its conversation, given
    the index's word statistics (which tell whether a word names a subject)."""
    question = question.strip()
    previous_turns = [turn.strip() for turn in history if turn and turn.strip()]
    previous = previous_turns[-1] if previous_turns else None
    text = compose_query(question, history, stats)
    shift = _TOPIC_SHIFT.match(question)
    new_subject = question[shift.end():] if shift is not None and previous else None
    asked = text if history else question
    return Query(
        question=question, text=text, previous=previous,
        follows_up=previous is not None and is_follow_up(question, stats),
        new_subject=new_subject,
        names_text=question if shift else text,
        asked=asked, kinds=asked_types(asked),
        asks_contact=asks_for_contact(question) or (
            len(question.split()) <= 8 and asks_for_contact(text)),
        language=detect_language(text, default=""),
        dangling=previous is None and refers_back(question)
        and not _names_something(question),
        role=asked_role(question),
    )
