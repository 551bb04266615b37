"""What a passage's text holds: emails, phone numbers, dates, numbers, people with roles, and
its sentences. Pure functions over strings, shared by the answer parts."""

from __future__ import annotations

import re

from collab_qa import lang

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
PHONE = re.compile(
    r"(?<![\w+-])(?:\+\d{1,3}[ -]?(?:\(0\)[ -]?)?\d{1,4}|0\d{1,4})(?:[ -]\d{2,4}){1,4}(?![\w-])"
)
_DATE_LIKE = re.compile(r"^\d{2,4}-\d{2}-\d{2,4}")
# A stop before a capital ends a sentence, except after an initial ("Anna K. Berg").
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\b[A-ZÅÄÖÜÉ]\.)\s+(?=[\"“'(\[–-]?\s?[A-ZÅÄÖÜÉ0-9])")

MONTHS = {name: number for language in lang.LANGUAGES
          for number, name in enumerate(lang.words("months", (language,)), 1)}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
YEAR = r"(?:19|20)\d{2}"
DATE = re.compile(
    rf"\b(?P<iso>{YEAR}-\d{{2}}-\d{{2}})\b"
    rf"|\b(?P<day>\d{{1,2}})\.?\s+(?P<dmonth>{_MONTH})(?:\s+(?P<dyear>{YEAR}))?\b"
    rf"|\b(?P<month>{_MONTH})\s+(?:(?P<mday>\d{{1,2}}),?\s+)?(?P<myear>{YEAR})\b"
    rf"|\b(?:{lang.alternation('year_prepositions')})\s+(?P<year>{YEAR})\b",
    re.IGNORECASE,
)
EVENT_KINDS = {kind: re.compile(rf"\b(?:{'|'.join(verbs)})\b", re.IGNORECASE)
               for kind, verbs in lang.events().items()}
EVENT = re.compile("|".join(pattern.pattern for pattern in EVENT_KINDS.values()), re.IGNORECASE)


def event_kind(sentence: str) -> str | None:
    """The kind of event a sentence dates ("signed", "started", …), by its first event verb."""
    found = [(match.start(), kind) for kind, pattern in EVENT_KINDS.items()
             if (match := pattern.search(sentence))]
    return min(found)[1] if found else None
_NUMBER = re.compile(rf"\d|\b({'|'.join(lang.numbers())})\b", re.IGNORECASE)
AMOUNT = re.compile(rf"€|\$|£|\b(?:{lang.alternation('currency')})\b", re.IGNORECASE)

_NAME_WORD = r"[A-ZÅÄÖÜÉ][a-zåäöüéèáíóúñç'-]+"
_PARTICLE = rf"(?:{lang.alternation('name_particles')})"
PERSON = rf"{_NAME_WORD}(?:\s+(?:{_PARTICLE}\s+)?{_NAME_WORD}){{1,3}}"
ROLE_WORDS = lang.alternation("role_words")
ROLE_KINDS = {kind: re.compile(rf"\b(?:{'|'.join(words)})\b", re.IGNORECASE)
              for kind, words in lang.roles().items()}
ROLE_LINE = re.compile(rf"^(?:[\w-]+\s+){{0,4}}(?:{ROLE_WORDS})\b.{{0,40}}$", re.IGNORECASE)
PERSON_LINE = re.compile(rf"^{PERSON}$")


def phones(text: str) -> list[str]:
    """Phone numbers in the text, as written (seven digits or more; dates left out)."""
    found = []
    for match in PHONE.finditer(text):
        phone = match.group(0).strip()
        if sum(ch.isdigit() for ch in phone) >= 7 and not _DATE_LIKE.match(phone):
            found.append(phone)
    return found


def holds_date(text: str) -> bool:
    """Whether the text holds a date or a year."""
    return bool(DATE.search(text) or re.search(rf"\b{YEAR}\b", text))


def role_kind(question: str) -> str | None:
    """The kind of role a question names ("rector" for "who is the president…?"), by its
    first role word in either language."""
    found = [(match.start(), kind) for kind, pattern in ROLE_KINDS.items()
             if (match := pattern.search(question))]
    return min(found)[1] if found else None


def names_role(text: str, kind: str) -> bool:
    """Whether a sentence of the text names a person together with a role of this kind, in
    any language ("Anna Berg, rektor för …" for a question about the president)."""
    pattern = ROLE_KINDS[kind]
    return any(pattern.search(sentence) and re.search(PERSON, sentence)
               for sentence in sentences(text))


def dates_event(text: str, kind: str) -> bool:
    """Whether a sentence of the text dates an event of this kind ("signed on …")."""
    return any(holds_date(sentence) and event_kind(sentence) == kind
               for sentence in sentences(text))


def holds_type(text: str, kind: str) -> bool:
    """Whether a passage holds a thing of the kind (a date, a number, a phone, an email)."""
    if kind == "date":
        return holds_date(text)
    if kind == "number":
        return bool(_NUMBER.search(text))
    if kind == "phone":
        return bool(phones(text))
    if kind == "way":
        return points_to_help(text)
    return bool(EMAIL.search(text))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences of a passage: lines, cut after . ! ? before a capital.

    Emails, decimals, abbreviations and initials inside a sentence stay whole. A sentence broken
    across lines (the next line starts in lower case) is one span, and so is a name on its
    own line followed by a role line (a profile box: the name, then "International
    Coordinator"), so the name and the role are shown together."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        position = 0
        for match in [*_SENTENCE_END.finditer(line), None]:
            end = match.start() if match else len(line)
            piece = line[position:end]
            stripped = piece.strip()
            if len(stripped) > 2:
                start = offset + position + piece.index(stripped)
                spans.append((start, start + len(stripped)))
            if match:
                position = match.end()
        offset += len(line) + 1
    merged: list[tuple[int, int]] = []
    for span in spans:
        if merged and "\n" in text[merged[-1][1]:span[0]] and (
                _continues(text[slice(*merged[-1])], text[slice(*span)])
                or (PERSON_LINE.match(text[slice(*merged[-1])])
                    and ROLE_LINE.match(text[slice(*span)]))):
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def sentences(text: str) -> list[str]:
    """The sentences of a passage (see ``sentence_spans``)."""
    return [text[a:b] for a, b in sentence_spans(text)]


def _continues(previous: str, line: str) -> bool:
    """A line that starts in lower case after one that ends without a stop carries on its
    sentence (a sentence broken across lines or paragraphs)."""
    return line[:1].islower() and previous[-1:] not in ".!?:;"


ROLE_COLON_NAME = re.compile(
    rf"(?P<role>[A-Z][\w -]{{2,60}}?(?:{ROLE_WORDS}))\s*:\s*(?P<name>{PERSON})",
    re.IGNORECASE,
)
# Every match of ROLE_COLON_NAME has a role word right before its colon. Looking for that
# alone is much cheaper than the pattern, which tries up to 60 characters from each letter.
_ROLE_BEFORE_COLON = re.compile(rf"(?:{ROLE_WORDS})\s*:", re.IGNORECASE)


def role_colon_names(sentence: str) -> list[re.Match[str]]:
    """The matches of ``ROLE_COLON_NAME`` in a sentence ("Head of unit: Anna Berg")."""
    if ":" not in sentence or not _ROLE_BEFORE_COLON.search(sentence):
        return []
    return list(ROLE_COLON_NAME.finditer(sentence))


NAME_COMMA_ROLE = re.compile(
    rf"(?P<name>{PERSON}),\s+(?P<role>(?:[\w-]+\s+){{0,3}}?(?:{ROLE_WORDS})\b[^,.;\n]{{0,50}})"
)
CONTACT_UNIT = re.compile(
    rf"\b(?:{lang.alternation('contact_verbs')})\s+(?:the\s+|your\s+)?"
    rf"(?P<unit>(?:[A-Z][\w&-]*\s+){{0,4}}(?:{lang.alternation('unit_nouns')})"
    r"(?:\s+at\s+[A-Z]{2,})?)",
    re.IGNORECASE,
)
PROVIDED_BY = re.compile(
    rf"\b(?:{lang.alternation('provided_by')})\s+(?:the\s+)?"
    r"(?P<unit>(?:[A-Z][\w&-]*\s+){1,5}(?:\([A-Z]{2,}\))?)"
)


def points_to_help(text: str) -> bool:
    """Whether a text names where to turn: a unit to contact or that provides the support,
    an email or a phone number."""
    return bool(CONTACT_UNIT.search(text) or PROVIDED_BY.search(text) or EMAIL.search(text)
                or phones(text))


def holds_contact(sentence: str) -> bool:
    """Whether a sentence gives contact details: an email, a phone, a person with a role, a
    unit to contact, or several lines (a profile box)."""
    return bool(EMAIL.search(sentence) or phones(sentence) or "\n" in sentence
                or bool(role_colon_names(sentence))
                or ("," in sentence and NAME_COMMA_ROLE.search(sentence))
                or CONTACT_UNIT.search(sentence) or PROVIDED_BY.search(sentence))
