"""Question + history -> Query, resolved once: the text to search, whether it follows up on
the previous question, the names it asks about and the kinds of thing it asks for. Every
later stage reads the Query; nobody recomposes it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from collab_qa.facts import EVENT

_FOLLOW_UP_START = re.compile(
    r"^(and|or|but|also|what about|how about|same for|och|men|än|vad gäller)\b", re.IGNORECASE
)
_TOPIC_SHIFT = re.compile(r"^(and |but )?(what|how) about\b|^vad gäller\b|^same for\b",
                          re.IGNORECASE)
_REFERRING_WORD = re.compile(
    r"\b(they|them|their|theirs|it|its|this|that|those|these|there|he|she|his|her|"
    r"de|dem|deras|den|det|dess|hen|hans|hennes)\b",
    re.IGNORECASE,
)
# A capitalised word inside a sentence: a place, an organisation, a project (acronyms such
# as "EU" are left out: passages often spell them out, "European Union").
NAME = re.compile(r"(?<=[\w,;:] )[A-ZÅÄÖÜ][a-zåäöüéèáíóúñç][\w-]*")

ASKS_CONTACT = re.compile(
    r"\b(who|whom|contact\w*|e-?mail\w*|mail|phone\w*|call|telephone|tel|number|reach|ask|"
    r"coordinat\w*|responsible|person|delegate|representative|represents|kontakt\w*|vem|"
    r"vilka|ringa|telefon\w*|mejl\w*|ansvarig)\b",
    re.IGNORECASE,
)
ASKS_EMAIL = re.compile(r"\b(e-?mail\w*|mail|mejl\w*)\b", re.IGNORECASE)
ASKS_PHONE = re.compile(r"\b(phone\w*|call|telephone|tel|telefon\w*|ringa|nr)\b",
                        re.IGNORECASE)
ASKS_DATE = re.compile(r"\b(when|date|year|since|signed|initiated|när|datum|år|vilket år)\b",
                       re.IGNORECASE)
ASKS_NUMBER = re.compile(r"\b(how (many|much)|number of|hur (många|mycket)|antal)\b",
                         re.IGNORECASE)
# A question about who holds a role wants a person's name, not a unit or an address.
ASKS_NAMED_PERSON = re.compile(
    r"\b(?:contact person|kontaktperson|who (?:leads|heads|chairs|directs|runs|manages|"
    r"represents|coordinates)|who is (?:the )?(?:head|leader|director|chair|coordinator|"
    r"delegate|representative|rector|dean|president)|vem (?:leder|samordnar|är (?:chef|"
    r"rektor|dekan|ansvarig|koordinator|samordnare)))\b",
    re.IGNORECASE,
)
ASKS_AMOUNT = re.compile(r"\b(how much|cost\w*|price|fee\w*|budget|salary|salar\w*|"
                         r"kosta\w*|pris|lön|budget)\b", re.IGNORECASE)
ASKS_DEADLINE = re.compile(r"(?:^|[.?!]\s+)(?:and\s+|och\s+)?(?:when|när)\b|\b(?:deadline|"
                           r"what date|which year|datum|sista dag)\b", re.IGNORECASE)


def is_follow_up(question: str) -> bool:
    """A short question that leans on the previous one ("and their phone number?", "which
    partners are involved?"): it starts like a continuation, refers back with a pronoun, or
    is five words or fewer without a name of its own."""
    words = question.split()
    names = [w for w in words[1:] if w[:1].isupper() and w != "I"]
    return bool(
        _FOLLOW_UP_START.match(question.strip())
        or (len(words) <= 8 and _REFERRING_WORD.search(question))
        or len(words) <= 3
        or (len(words) <= 5 and not names and not any(ch.isdigit() for ch in question))
    )


def compose_query(question: str, history: Sequence[str] = ()) -> str:
    """The text to retrieve with: a follow-up is read together with the previous question."""
    previous = [turn.strip() for turn in history if turn and turn.strip()]
    if previous and is_follow_up(question):
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

    @property
    def topic_follow_up(self) -> bool:
        """A follow-up about the previous answer's subject ("and when was it renewed?"),
        not a move to a new one ("what about Germany?")."""
        return self.follows_up and not _TOPIC_SHIFT.match(self.question)

    @property
    def about_dates(self) -> bool:
        """Whether the question is about when something happened ("when…", "signed…")."""
        return "date" in asked_types(self.text) or bool(EVENT.search(self.question))

    @property
    def names(self) -> str:
        """The names in ``names_text``, space-separated."""
        return " ".join(NAME.findall(self.names_text))


def resolve_query(question: str, history: Sequence[str] = ()) -> Query:
    """Read a (validated) question with the earlier questions of its conversation."""
    question = question.strip()
    previous_turns = [turn.strip() for turn in history if turn and turn.strip()]
    previous = previous_turns[-1] if previous_turns else None
    text = compose_query(question, history)
    shift = _TOPIC_SHIFT.match(question)
    new_subject = question[shift.end():] if shift is not None and previous else None
    asked = text if history else question
    return Query(
        question=question, text=text, previous=previous,
        follows_up=previous is not None and is_follow_up(question),
        new_subject=new_subject,
        names_text=question if shift else text,
        asked=asked, kinds=asked_types(asked),
        asks_contact=asks_for_contact(question) or (
            len(question.split()) <= 8 and asks_for_contact(text)),
    )
