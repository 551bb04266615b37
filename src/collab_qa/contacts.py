"""Contact cards: emails and phone numbers with the person or unit named beside them, and,
when the question asks for a contact, people named with their role and units one is told
to contact. Only text of the cited passages is used, never anything else."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from collab_qa import lang
from collab_qa.analysis import fold_accents
from collab_qa.facts import (
    CONTACT_UNIT,
    EMAIL,
    NAME_COMMA_ROLE,
    PERSON_LINE,
    PROVIDED_BY,
    ROLE_KINDS,
    ROLE_LINE,
    phones,
    role_colon_names,
    sentence_spans,
)
from collab_qa.hits import Hit
from collab_qa.rerank import Ranking

_CARRY_ON = tuple(lang.words("carry_on_pronouns"))
# "Their <Name> Unit …": a unit named in a sentence that carries on from the last one.
_CARRIED_UNIT = re.compile(
    rf"\b(?:{'|'.join(_CARRY_ON) or '(?!)'})\s+(?P<unit>(?:[A-Z][\w-]*\s+){{1,3}}"
    r"(?:\([^)]{1,40}\))?)"
)
_BEFORE_ADDRESS = re.compile(
    rf"(?:{lang.alternation('before_address')})\s+(?:the\s+)?(?P<name>[^.,;:\n]{{3,60}}?)"
    rf"\s+(?:{lang.alternation('address_prepositions')})\s*$",
    re.IGNORECASE,
)
_CONTACT_VERBS = tuple(lang.words("contact_verbs"))
_PROVIDED_BY = tuple(lang.words("provided_by"))


@dataclass(frozen=True)
class Contact:
    """Contact details found in a cited passage; never anything that is not in the text.

    Attributes:
        name: The person or unit named with the details.
        email: An email address from the passage.
        phone: A phone number from the passage, as written.
        hit_rank: Index of the passage in ``Answer.hits``.
        citation: The passage's citation.
        role: The person's role when the text gives one.
        doc_id: The document the details come from.
        sentence: The text the details were read from.
    """

    name: str | None
    email: str | None
    phone: str | None
    hit_rank: int
    citation: str
    role: str | None = None
    doc_id: str = ""
    sentence: str = ""


@dataclass(frozen=True)
class Contacts:
    """What the contact stage found for one question.

    Attributes:
        cards: The contact cards of the first passages, as the answer shows them.
        role_named: Whether the first passages of the retrieval name a person with a role.
    """

    cards: list[Contact]
    role_named: bool


def _clean_name(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip(" -–:,;")


def _details_in(sentence: str) -> list[tuple[str | None, str | None, str | None]]:
    """(name, email, phone) for the emails and phones of one sentence."""
    emails = EMAIL.findall(sentence)
    numbers = phones(sentence)
    if not (emails or numbers):
        return []
    first = min((sentence.find(x) for x in [*emails, *numbers]), default=0)
    named = _BEFORE_ADDRESS.search(sentence[:first])
    name = named.group("name") if named else None
    if name is None:
        found_unit = CONTACT_UNIT.search(sentence) or PROVIDED_BY.search(sentence)
        name = found_unit.group("unit") if found_unit else None
    return [(name, emails[i] if i < len(emails) else None,
             numbers[i] if i < len(numbers) else None)
            for i in range(max(len(emails), len(numbers)))]


def _people_in(sentence: str) -> list[tuple[str, str | None]]:
    """(name, role) of people with a role, and units one is told to contact."""
    found: list[tuple[str, str | None]] = []
    # Cheap guards first: the patterns below backtrack and cost a millisecond a passage.
    lowered = sentence.lower()
    found += [(m.group("name"), m.group("role")) for m in role_colon_names(sentence)]
    if "," in sentence:
        found += [(m.group("name"), m.group("role")) for m in NAME_COMMA_ROLE.finditer(sentence)]
    units = []
    if any(word in lowered for word in _CONTACT_VERBS):
        units += [m.group("unit") for m in CONTACT_UNIT.finditer(sentence)]
    if any(word in lowered for word in _PROVIDED_BY):
        units += [m.group("unit") for m in PROVIDED_BY.finditer(sentence)]
    if any(f"{word} " in sentence for word in _CARRY_ON):
        units += [m.group("unit") for m in _CARRIED_UNIT.finditer(sentence)]
    return found + [(unit, None) for unit in units]


# (name, email, phone, role, sentence) of one contact found in a passage's text.
_Found = tuple[str | None, str | None, str | None, str | None, str]


def _contacts_in(hit: Hit, rank: int, people: bool) -> list[Contact]:
    """Contacts of one passage, in text order."""
    return [Contact(name, email, phone, rank, hit.citation, role, hit.doc_id, sentence)
            for name, email, phone, role, sentence in _found_in(hit.text, people)]


@lru_cache(maxsize=4096)
def _found_in(text: str, people: bool) -> tuple[_Found, ...]:
    """The contacts a passage's text holds, in text order (cached: the patterns cost up to
    a millisecond a passage, and the first passages recur from question to question)."""
    found: list[_Found] = []

    def add(name: str | None, email: str | None, phone: str | None, role: str | None,
            sentence: str) -> None:
        found.append((_clean_name(name) if name else None, email, phone,
                      _clean_name(role) if role else None, sentence))

    for a, b in sentence_spans(text):
        sentence = text[a:b]
        details = _details_in(sentence)
        for name, email, phone in details:
            add(name, email, phone, None, sentence)
        if people and not details:
            for name, role in _people_in(sentence):
                add(name, None, None, role, sentence)
    if people:
        # A name on its own line with the role on the next one (profile boxes).
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        for name, role in itertools.pairwise(lines):
            if PERSON_LINE.match(name) and ROLE_LINE.match(role):
                add(name, None, None, role, f"{name}, {role}")
    return tuple(found)


def _merge_units(contacts: list[Contact]) -> list[Contact]:
    """A unit named in one sentence and the unit of the sentence that carries on from it
    ("… the X office." / "Their Y unit …") become one card."""
    merged: list[Contact] = []
    for contact in contacts:
        previous = merged[-1] if merged else None
        if (previous is not None and contact.email is None and contact.phone is None
                and contact.role is None and previous.email is None and previous.phone is None
                and previous.role is None and previous.doc_id == contact.doc_id
                and previous.hit_rank == contact.hit_rank and contact.name and previous.name
                and contact.sentence != previous.sentence
                and contact.sentence.startswith(_CARRY_ON)):
            merged[-1] = Contact(f"{previous.name} – {contact.name}", None, None,
                                 previous.hit_rank, previous.citation, None, previous.doc_id,
                                 f"{previous.sentence} {contact.sentence}")
            continue
        merged.append(contact)
    return merged


def extract_contacts(hits: Sequence[Hit], people: bool) -> list[Contact]:
    """Contacts in the passages, each with its citation, best passage first.

    Emails and phone numbers are always taken; people with their role and units one is
    told to contact when ``people`` is true. Duplicates keep their first, best-ranked
    occurrence.
    """
    contacts: list[Contact] = []
    seen: set[tuple[str, ...]] = set()
    for rank, hit in enumerate(hits):
        for contact in _merge_units(_contacts_in(hit, rank, people)):
            key = tuple(fold_accents(x) for x in (contact.email or "", contact.phone or "",
                                            "" if (contact.email or contact.phone)
                                            else contact.name or ""))
            if key in seen:
                continue
            seen.add(key)
            contacts.append(contact)
    return contacts


def role_first(cards: list[Contact], kind: str | None) -> list[Contact]:
    """The cards with a role of the kind asked about ("who is the dean?") first, in either
    language; the others keep their order after them."""
    if kind is None:
        return cards
    pattern = ROLE_KINDS[kind]
    return sorted(cards, key=lambda card: not (card.role and pattern.search(card.role)))


def find_contacts(ranking: Ranking) -> Contacts:
    """The contact cards of the answer's first three passages (a person in the role asked
    about first), and whether the first two retrieved passages name anybody with a role."""
    return Contacts(
        cards=role_first(extract_contacts(ranking.ordered[:3], people=ranking.query.asks_contact),
                         ranking.query.role),
        role_named=any(contact.role for contact in extract_contacts(ranking.hits[:2],
                                                                     people=True)),
    )
