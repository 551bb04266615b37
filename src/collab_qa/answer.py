"""Hits -> Answer: the best sentence, contacts, conflicting dates, and abstention.

Everything here works on the passages the search returned, the question's cached vector and
word statistics of the index; no extra model call is made, so an answer costs a few
milliseconds after the query is encoded.

- **Best sentence**: the sentence of the top passage that covers most of the question's
  (IDF-weighted, stemmed) words, with a bonus when it holds what the question asks for (a
  date for "when", a number for "how many", an email for "email" …).
- **Contacts**: emails and phone numbers with the person or unit named beside them, and,
  when the question asks for a contact, people named with their role and offices one is
  told to contact. Only text of the cited passages is used, never anything else.
- **Abstention**: see :func:`confidence_signal`; the threshold is calibrated on the dev
  split of eval/questions.jsonl (eval/README.md).
- **Conflicts**: dated statements ("signed on 17 October", "initiated in 2024") from
  different documents about the same subject that give different dates.
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
from collections.abc import Sequence, Set
from dataclasses import dataclass, field

import numpy as np

from collab_qa.analysis import TermStats, content_tokens, fold_accents, text_tokens
from collab_qa.chunking import embedding_text, is_placeholder, is_plain_heading
from collab_qa.search import Hit, Searcher, compose_query
from collab_qa.store import IndexStore as Index

# Calibrated on the dev split with evaluate.calibrate_threshold (eval/README.md): the
# highest threshold that abstains on at most 3 % of the answerable dev questions, minus a
# margin of 0.1.
ABSTAIN_THRESHOLD = 0.05

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}")
PHONE = re.compile(
    r"(?<![\w+-])(?:\+\d{1,3}[ -]?(?:\(0\)[ -]?)?\d{1,4}|0\d{1,4})(?:[ -]\d{2,4}){1,4}(?![\w-])"
)
_DATE_LIKE = re.compile(r"^\d{2,4}-\d{2}-\d{2,4}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“'(\[–-]?\s?[A-ZÅÄÖÜÉ0-9])")

_ASKS_CONTACT = re.compile(
    r"\b(who|whom|contact\w*|e-?mail\w*|mail|phone\w*|call|telephone|tel|number|reach|ask|"
    r"coordinat\w*|responsible|person|delegate|representative|represents|kontakt\w*|vem|"
    r"vilka|ringa|telefon\w*|mejl\w*|ansvarig)\b",
    re.IGNORECASE,
)
_ASKS_PERSON_ONLY = re.compile(r"\b(e-?mail\w*|mail|mejl\w*)\b", re.IGNORECASE)
_ASKS_PHONE = re.compile(r"\b(phone\w*|call|telephone|tel|telefon\w*|ringa|nr)\b",
                         re.IGNORECASE)
_ASKS_DATE = re.compile(r"\b(when|date|year|since|signed|initiated|när|datum|år|vilket år)\b",
                        re.IGNORECASE)
_ASKS_NUMBER = re.compile(r"\b(how (many|much)|number of|hur (många|mycket)|antal)\b",
                          re.IGNORECASE)
_ASKS_WHO = re.compile(r"\b(who|whom|vem|vilka)\b", re.IGNORECASE)

_MONTH_NAMES = (
    ("january", "januari"), ("february", "februari"), ("march", "mars"), ("april", "april"),
    ("may", "maj"), ("june", "juni"), ("july", "juli"), ("august", "augusti"),
    ("september", "september"), ("october", "oktober"), ("november", "november"),
    ("december", "december"),
)
_MONTHS = {name: number for number, names in enumerate(_MONTH_NAMES, 1) for name in names}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_YEAR = r"(?:19|20)\d{2}"
DATE = re.compile(
    rf"\b(?P<iso>{_YEAR}-\d{{2}}-\d{{2}})\b"
    rf"|\b(?P<day>\d{{1,2}})\.?\s+(?P<dmonth>{_MONTH})(?:\s+(?P<dyear>{_YEAR}))?\b"
    rf"|\b(?P<month>{_MONTH})\s+(?:(?P<mday>\d{{1,2}}),?\s+)?(?P<myear>{_YEAR})\b"
    rf"|\b(?:in|since|from|år|sedan|i)\s+(?P<year>{_YEAR})\b",
    re.IGNORECASE,
)
_EVENT = re.compile(
    r"\b(sign\w*|initiat\w*|start\w*|establish\w*|found\w*|launch\w*|renew\w*|began|begun|"
    r"concluded|agreed|undertecknat|undertecknade|signerade\w*|inledde\w*|startade\w*|"
    r"grundade\w*|förnyade\w*|ingick\w*)\b",
    re.IGNORECASE,
)
_PUBLISHED = re.compile(
    rf"\b(?:Publicerad|Published|Publicerat):?\s*(?P<iso>{_YEAR}-\d{{2}}-\d{{2}})")

_NAME_WORD = r"[A-ZÅÄÖÜÉ][a-zåäöüéèáíóúñç'-]+"
_PARTICLE = r"(?:von|van|der|de|af|la|du)"
PERSON = rf"{_NAME_WORD}(?:\s+(?:{_PARTICLE}\s+)?{_NAME_WORD}){{1,3}}"
_ROLE_WORDS = (
    r"coordinator|delegate|officer|manager|director|head|advisor|adviser|administrator|"
    r"secretary|representative|contact person|contact|liaison|chair|dean|president|"
    r"koordinator|samordnare|handläggare|kontaktperson|ansvarig|rektor|dekan|vd|direktör|"
    r"sjukhusdirektör|chef"
)
_ROLE_COLON_NAME = re.compile(
    rf"(?P<role>[A-Z][\w -]{{2,60}}?(?:{_ROLE_WORDS}))\s*:\s*(?P<name>{PERSON})",
    re.IGNORECASE,
)
_NAME_COMMA_ROLE = re.compile(
    rf"(?P<name>{PERSON}),\s+(?P<role>(?:[\w-]+\s+){{0,3}}?(?:{_ROLE_WORDS})\b[^,.;\n]{{0,50}})"
)
_ROLE_LINE = re.compile(rf"^(?:[\w-]+\s+){{0,4}}(?:{_ROLE_WORDS})\b.{{0,40}}$", re.IGNORECASE)
_PERSON_LINE = re.compile(rf"^{PERSON}$")
_CONTACT_UNIT = re.compile(
    r"\b(?:contact|kontakta|ask|reach)\s+(?:the\s+|your\s+)?"
    r"(?P<unit>(?:[A-Z][\w&-]*\s+){0,4}(?:office|unit|department|coordinator|desk|centre|"
    r"center|team|kansli|enhet\w*)(?:\s+at\s+[A-Z]{2,})?)",
    re.IGNORECASE,
)
_PROVIDED_BY = re.compile(
    r"\b(?:provided by|responsible for|handled by)\s+(?:the\s+)?"
    r"(?P<unit>(?:[A-Z][\w&-]*\s+){1,5}(?:\([A-Z]{2,}\))?)"
)
_THEIR_UNIT = re.compile(
    r"\bTheir\s+(?P<unit>(?:[A-Z][\w-]*\s+){1,3}(?:\([^)]{1,40}\))?)"
)
_BEFORE_EMAIL = re.compile(
    r"(?:contact|kontakta|email|e-mail|mejla|write to)\s+(?:the\s+)?(?P<name>[^.,;:\n]{3,60}?)"
    r"\s+(?:at|on|via|på)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Contact:
    """Contact details found in a cited passage; never anything that is not in the text.

    Attributes:
        name: The person or unit named with the details ("biobank coordinator").
        email: An email address from the passage.
        phone: A phone number from the passage, as written.
        hit_rank: Index of the passage in ``Answer.hits``.
        citation: The passage's citation.
        role: The person's role when the text gives one ("International Coordinator").
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
class Conflict:
    """Passages of different documents that give different dates for the same thing.

    Attributes:
        topic: What the statements are about.
        statements: (citation, sentence) of each dated statement.
        note: One sentence saying that and how the sources disagree.
        dates: The date each statement gives, ISO style (``2023-10-17`` or ``2024``).
        doc_ids: The document of each statement.
    """

    topic: str
    statements: tuple[tuple[str, str], ...]
    note: str = ""
    dates: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()


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
        signals: The parts of the confidence (dense, lexical, agreement), for the eval.
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


# ---------------------------------------------------------------------------- word statistics


def _passage_tokens(hit: Hit, stats: TermStats) -> frozenset[str]:
    """The content words of a passage with its title and headings."""
    tokens = stats.chunk_tokens.get(hit.chunk.id)
    if tokens is None:
        tokens = frozenset(content_tokens([embedding_text(hit.title, hit.chunk)])[0])
    return tokens


def coverage(query_weights: dict[str, float], tokens: Set[str]) -> float:
    """IDF-weighted share of the query's words found in ``tokens`` (0..1)."""
    total = sum(query_weights.values())
    return sum(w for t, w in query_weights.items() if t in tokens) / total if total else 0.0


# ---------------------------------------------------------------------------- sentences


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences of a passage: lines, cut after . ! ? before a capital.

    Emails, decimals and abbreviations inside a sentence stay whole. A name on its own line
    followed by a role line ("Isabella Palomba Rydén" / "International Coordinator") is one
    span, so the name and the role are shown together."""
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
        if merged and _PERSON_LINE.match(text[slice(*merged[-1])]) and _ROLE_LINE.match(
                text[slice(*span)]) and "\n" in text[merged[-1][1]:span[0]]:
            merged[-1] = (merged[-1][0], span[1])
        else:
            merged.append(span)
    return merged


def _has_contact(sentence: str) -> bool:
    return bool(EMAIL.search(sentence) or _phones(sentence) or "\n" in sentence
                or (":" in sentence and _ROLE_COLON_NAME.search(sentence))
                or ("," in sentence and _NAME_COMMA_ROLE.search(sentence))
                or _CONTACT_UNIT.search(sentence) or _PROVIDED_BY.search(sentence))


def _sentence_bonus(sentence: str, question: str) -> float:
    """Extra score for a sentence that holds the kind of thing the question asks for, and a
    penalty for fragments (a lead-in "… within:" or a few words without a verb)."""
    bonus = 0.0
    if _ASKS_DATE.search(question) and (DATE.search(sentence) or re.search(_YEAR, sentence)):
        bonus += 0.25
    if _ASKS_NUMBER.search(question) and re.search(r"\d|\b(one|two|three|four|five|six|"
                                                   r"seven|eight|nine|ten)\b", sentence):
        bonus += 0.25
    if _ASKS_PHONE.search(question) and _phones(sentence):
        bonus += 0.4
    if _ASKS_PERSON_ONLY.search(question) and EMAIL.search(sentence):
        bonus += 0.4
    if _ASKS_CONTACT.search(question) and _has_contact(sentence):
        bonus += 0.3
    if sentence.rstrip().endswith(":"):
        bonus -= 0.3
    elif len(sentence.split()) < 5 and not (EMAIL.search(sentence) or _phones(sentence)
                                            or DATE.search(sentence)):
        bonus -= 0.15
    return bonus


def _sentence_weights(query: str, question: str, hit: Hit,
                      stats: TermStats) -> dict[str, float]:
    """Query word weights for choosing a sentence inside one passage: words of the question
    itself count double those of the conversation before it, and words of the passage's own
    title and headings count little (every sentence under them is about them)."""
    weights = stats.weights(text_tokens(query))
    own = set(text_tokens(question))
    context = set(text_tokens(" ".join((hit.title, *hit.chunk.heading_path))))
    return {t: w * (2.0 if t in own else 1.0) * (0.3 if t in context else 1.0)
            for t, w in weights.items()}


def best_sentence(query: str, hit: Hit, stats: TermStats,
                  question: str | None = None) -> tuple[str, tuple[int, int]]:
    """The sentence of ``hit`` that answers best (no model call).

    Args:
        query: The retrieval query (a follow-up joined with the previous question).
        hit: The top passage.
        stats: Word statistics of the index.
        question: The question as asked; defaults to ``query``.

    Score: IDF-weighted share of the query's words in the sentence (see
    :func:`_sentence_weights`), plus a bonus when the sentence holds what the question asks
    for (date, number, phone, email, contact). Lines that only repeat the passage's headings
    are skipped unless nothing else is left; ties go to the earlier sentence.
    """
    text = hit.text
    question = question or query
    spans = sentence_spans(text) or [(0, len(text))]
    headings = {h.strip() for h in hit.chunk.heading_path} | {hit.title.strip()}
    body = [(a, b) for a, b in spans if text[a:b] not in headings] or spans
    sentences = [text[a:b] for a, b in body]
    weights = _sentence_weights(query, question, hit, stats)
    scores = [coverage(weights, set(tokens)) + _sentence_bonus(sentence, question)
              for sentence, tokens in zip(sentences, content_tokens(sentences), strict=True)]
    a, b = body[int(np.argmax(scores))]
    return text[a:b], (hit.chunk.start + a, hit.chunk.start + b)


# ---------------------------------------------------------------------------- contacts


def asks_for_contact(question: str) -> bool:
    """Whether a question asks who to contact or for an email or phone number."""
    return bool(_ASKS_CONTACT.search(question))


def _phones(text: str) -> list[str]:
    found = []
    for match in PHONE.finditer(text):
        phone = match.group(0).strip()
        if sum(ch.isdigit() for ch in phone) >= 7 and not _DATE_LIKE.match(phone):
            found.append(phone)
    return found


def _clean_name(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip(" -–:,;")


def _contacts_in(hit: Hit, rank: int, people: bool) -> list[Contact]:
    """Contacts of one passage, in text order."""
    found: list[Contact] = []
    text = hit.text
    spans = sentence_spans(text)

    def add(name: str | None, email: str | None, phone: str | None, role: str | None,
            sentence: str) -> None:
        found.append(Contact(_clean_name(name) if name else None, email, phone, rank,
                             hit.citation, _clean_name(role) if role else None, hit.doc_id,
                             sentence))

    for a, b in spans:
        sentence = text[a:b]
        emails = EMAIL.findall(sentence)
        phones = _phones(sentence)
        if emails or phones:
            first = min((sentence.find(x) for x in [*emails, *phones]), default=0)
            named = _BEFORE_EMAIL.search(sentence[:first])
            name = named.group("name") if named else None
            if name is None:
                found_unit = _CONTACT_UNIT.search(sentence) or _PROVIDED_BY.search(sentence)
                name = found_unit.group("unit") if found_unit else None
            for i in range(max(len(emails), len(phones))):
                add(name, emails[i] if i < len(emails) else None,
                    phones[i] if i < len(phones) else None, None, sentence)
            continue
        if not people:
            continue
        # Cheap guards first: the patterns below backtrack and cost a millisecond a passage.
        lowered = sentence.lower()
        if ":" in sentence:
            for match in _ROLE_COLON_NAME.finditer(sentence):
                add(match.group("name"), None, None, match.group("role"), sentence)
        if "," in sentence:
            for match in _NAME_COMMA_ROLE.finditer(sentence):
                add(match.group("name"), None, None, match.group("role"), sentence)
        units = []
        if any(word in lowered for word in ("contact", "kontakta", "ask", "reach")):
            units += [m.group("unit") for m in _CONTACT_UNIT.finditer(sentence)]
        if any(word in lowered for word in ("provided by", "responsible for", "handled by")):
            units += [m.group("unit") for m in _PROVIDED_BY.finditer(sentence)]
        if "Their " in sentence:
            units += [m.group("unit") for m in _THEIR_UNIT.finditer(sentence)]
        for unit in units:
            add(unit, None, None, None, sentence)
    if people:
        # A name on its own line with the role on the next one (profile boxes).
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        for name, role in itertools.pairwise(lines):
            if _PERSON_LINE.match(name) and _ROLE_LINE.match(role):
                add(name, None, None, role, f"{name}, {role}")
    return found


def _merge_units(contacts: list[Contact]) -> list[Contact]:
    """Units named in one sentence ("HR office at KI" … "Their Negotiation Unit") become one
    card."""
    merged: list[Contact] = []
    for contact in contacts:
        previous = merged[-1] if merged else None
        if (previous is not None and contact.email is None and contact.phone is None
                and contact.role is None and previous.email is None and previous.phone is None
                and previous.role is None and previous.doc_id == contact.doc_id
                and previous.hit_rank == contact.hit_rank and contact.name and previous.name
                and contact.sentence != previous.sentence
                and contact.sentence.startswith("Their")):
            merged[-1] = Contact(f"{previous.name} – {contact.name}", None, None,
                                 previous.hit_rank, previous.citation, None, previous.doc_id,
                                 f"{previous.sentence} {contact.sentence}")
            continue
        merged.append(contact)
    return merged


def extract_contacts(hits: Sequence[Hit], question: str = "",
                     people: bool | None = None) -> list[Contact]:
    """Contacts in the passages, each with its citation, best passage first.

    Emails and phone numbers are always taken. People with their role and units one is told
    to contact are taken when ``people`` is true (by default: when the question asks for a
    contact). Duplicates keep their first, best-ranked occurrence.
    """
    if people is None:
        people = asks_for_contact(question)
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


# ---------------------------------------------------------------------------- conflicts


def _document_year(index: Index, doc_id: str) -> int | None:
    record = index.documents.get(doc_id)
    match = _PUBLISHED.search(record.text[:2000]) if record else None
    return int(match.group("iso")[:4]) if match else None


def dated_statements(hit: Hit, default_year: int | None) -> list[tuple[str, str]]:
    """(sentence, date) for the sentences of a passage that date an event ("signed in…").

    A day and month without a year take the year the document was published.
    """
    statements = []
    for a, b in sentence_spans(hit.text):
        sentence = hit.text[a:b]
        if not _EVENT.search(sentence) or _PUBLISHED.search(sentence):
            continue
        match = DATE.search(sentence)
        if not match:
            continue
        if match.group("iso"):
            date = match.group("iso")
        elif match.group("dmonth"):
            year = match.group("dyear") or (str(default_year) if default_year else None)
            month = _MONTHS[match.group("dmonth").lower()]
            date = f"{year}-{month:02d}-{int(match.group('day')):02d}" if year else ""
        elif match.group("month"):
            month = _MONTHS[match.group("month").lower()]
            date = f"{match.group('myear')}-{month:02d}"
            if match.group("mday"):
                date += f"-{int(match.group('mday')):02d}"
        else:
            date = match.group("year")
        if date:
            statements.append((sentence, date))
    return statements


def _disagree(first: str, second: str) -> bool:
    """Dates disagree when they differ at the precision both give (2023-10-17 vs 2024)."""
    common = min(len(first), len(second))
    return first[:common] != second[:common]


def _same_document_passages(index: Index, hits: Sequence[Hit],
                            per_document: int = 50) -> list[Hit]:
    """The other passages of the cited documents (a date is often a section away from the
    sentence that matched: "KI has signed an MoU…" / "…initiated in 2024")."""
    cited = {hit.chunk.id for hit in hits}
    passages = []
    for doc in dict.fromkeys(hit.doc_id for hit in hits):
        others = [i for i in index.documents[doc].chunk_ids if i not in cited][:per_document]
        passages += [Hit(chunk, index.title_of(doc), 0.0, 0.0, 0.0)
                     for chunk in map(index.chunk_by_id, others) if chunk is not None]
    return passages


def find_conflicts(index: Index, hits: Sequence[Hit], query: str,
                   stats: TermStats) -> tuple[list[Conflict], list[Hit]]:
    """Dated statements from different documents about the same subject that disagree.

    "The same subject" means both passages (with their title and headings) contain a word
    of the question that at most a quarter of all passages hold (accents ignored), e.g.
    "Charité", and each
    statement has an event word ("signed", "signerades", "initiated"). One statement must be
    in a cited passage; the other may be in another passage of a cited document.

    Returns:
        The conflicts, and the passages they quote that were not among ``hits`` (to be
        cited as well).
    """
    query_weights = stats.weights(text_tokens(query))
    if not query_weights:
        return [], []
    rare = {t for t, w in query_weights.items()
            if t in stats.idf and w >= stats.idf_of_share(0.25)}
    cited = {hit.chunk.id for hit in hits}
    found: list[tuple[Hit, str, str, set[str]]] = []
    for hit in [*hits, *_same_document_passages(index, hits)]:
        context = _passage_tokens(hit, stats)
        anchors = rare & context
        if not anchors:
            continue
        year = _document_year(index, hit.doc_id)
        for sentence, date in dated_statements(hit, year):
            found.append((hit, sentence, date, anchors))
    conflicts = []
    extra: dict[str, Hit] = {}
    used: set[int] = set()
    for i, (hit, sentence, date, anchors) in enumerate(found):
        if i in used:
            continue
        group = [(hit, sentence, date)]
        shared = set(anchors)
        for j in range(i + 1, len(found)):
            other, other_sentence, other_date, other_anchors = found[j]
            if (j not in used and other.doc_id not in {g[0].doc_id for g in group}
                    and other_anchors & anchors
                    and any(_disagree(other_date, g[2]) for g in group)):
                group.append((other, other_sentence, other_date))
                shared &= other_anchors
                used.add(j)
        if len(group) > 1 and any(g[0].chunk.id in cited for g in group):
            used.add(i)
            extra.update((g[0].chunk.id, g[0]) for g in group if g[0].chunk.id not in cited)
            words = sorted(shared, key=lambda t: -query_weights.get(t, 0))
            subject = ", ".join(words[:3])
            dates = tuple(g[2] for g in group)
            conflicts.append(Conflict(
                topic=f"date ({subject})",
                statements=tuple((g[0].citation, g[1]) for g in group),
                note="The sources disagree on the date: " + "; ".join(
                    f"{g[0].title} says {g[2]}" for g in group) + ".",
                dates=dates, doc_ids=tuple(g[0].doc_id for g in group),
            ))
    return conflicts, list(extra.values())


# ---------------------------------------------------------------------------- abstention


# A question about who holds a role wants a person's name, not a unit or an address.
_ASKS_NAMED_PERSON = re.compile(
    r"\b(?:contact person|kontaktperson|who (?:leads|heads|chairs|directs|runs|manages|"
    r"represents|coordinates)|who is (?:the )?(?:head|leader|director|chair|coordinator|"
    r"delegate|representative|rector|dean|president)|vem (?:leder|samordnar|är (?:chef|"
    r"rektor|dekan|ansvarig|koordinator|samordnare)))\b",
    re.IGNORECASE,
)
_ASKS_AMOUNT = re.compile(r"\b(how much|cost\w*|price|fee\w*|budget|salary|salar\w*|"
                          r"kosta\w*|pris|lön|budget)\b", re.IGNORECASE)
_ASKS_DEADLINE = re.compile(r"(?:^|[.?!]\s+)(?:and\s+|och\s+)?(?:when|när)\b|\b(?:deadline|"
                            r"what date|which year|datum|sista dag)\b", re.IGNORECASE)
_ALTERNATIVE = re.compile(r"\s(?:or|eller)\s", re.IGNORECASE)
_ENTITY = re.compile(r"(?<=[\w,;:] )[A-ZÅÄÖÜ][\w-]+|\b[A-ZÅÄÖ]{2,}\b")
_AMOUNT = re.compile(r"€|\$|£|\b(?:kr|kronor|SEK|EUR|USD|euro\w*|dollar\w*)\b", re.IGNORECASE)


def _is_placeholder_passage(hit: Hit) -> bool:
    """A passage whose lines are only headings and placeholders ("Komplettera med text")."""
    headings = set(hit.chunk.heading_path) | {hit.title}
    lines = [line.strip(" -") for line in hit.text.split("\n") if line.strip(" -")]
    content = [line for line in lines if line not in headings and not is_plain_heading(line)
               and any(ch.isalpha() for ch in line)]  # a bare date line says nothing
    return bool(lines) and any(is_placeholder(line) for line in lines) and all(
        is_placeholder(line) for line in content)


def missing_answer_type(question: str, hits: Sequence[Hit]) -> bool:
    """The question asks for a kind of thing the top passages do not hold: an email, a phone
    number or an amount of money (top two passages), a date (top three)."""
    best = [hit.text for hit in hits[:2]]
    if _ASKS_PERSON_ONLY.search(question) and not any(EMAIL.search(t) for t in best):
        return True
    if _ASKS_PHONE.search(question) and not any(_phones(t) for t in best):
        return True
    if _ASKS_AMOUNT.search(question) and not any(_AMOUNT.search(t) for t in best):
        return True
    return bool(_ASKS_DEADLINE.search(question) and not any(
        DATE.search(hit.text) or re.search(_YEAR, hit.text) for hit in hits[:3]))


def missing_person(question: str, hits: Sequence[Hit], passages: int = 2) -> bool:
    """The question asks who holds a role ("who leads…", "the contact person for…") and the
    top ``passages`` name nobody with a role (an office or an address is not an answer)."""
    return bool(_ASKS_NAMED_PERSON.search(question)) and not any(
        contact.role for contact in extract_contacts(hits[:passages], people=True))


def rests_on_unknown_name(query: str, stats: TermStats) -> bool:
    """Whether the question rests on a name no passage contains ("Japan", "Tokyo").

    Names offered as alternatives ("in Budapest or elsewhere in Hungary") need only one of
    them known. Names are held to a stricter typo rule: "France" must not pass for "från"."""
    cuts = [match.start() for match in _ALTERNATIVE.finditer(query)]
    alternatives: dict[int, list[str]] = {}
    for match in _ENTITY.finditer(query):
        part = bisect.bisect(cuts, match.start())
        alternatives.setdefault(part, []).extend(text_tokens(match.group()))
    named = [tokens for tokens in alternatives.values() if tokens]
    return bool(named) and all(any(not stats.known(t, min_typo_length=6) for t in tokens)
                               for tokens in named)


def confidence_signal(searcher: Searcher, query: str, hits: Sequence[Hit],
                      stats: TermStats, question: str = "") -> tuple[float, dict[str, float]]:
    """How strongly the index answers the query, from eight signals:

    - ``dense``: cosine of the query with the best passage of the whole index;
    - ``lexical``: IDF-weighted share of the query's words in the best-covering passage
      among the top five hits;
    - ``agreement``: 1 when the dense and the lexical best passage are the same, 0.5 when
      they come from the same document;
    - ``unknown``: IDF-weighted share of the query's words that no passage contains, even
      allowing for a typo ("salary", "parking"); paraphrases have some too, so it weighs
      little;
    - ``unknown_name``: 1 when a name in the question (a capitalised word inside it: "Japan",
      "Tokyo", "France") occurs in no passage; the question is then about something the
      documents do not cover (of names offered as alternatives, "Budapest or Hungary",
      one known is enough);
    - ``missing_type``: 1 when the question asks for an email, a phone number, a date or an
      amount and none of the top passages holds one;
    - ``placeholder``: 1 when the passage that best covers the query's words is a heading
      over placeholder text only ("Komplettera med text"): the section exists but says
      nothing yet;
    - ``missing_person``: 1 when the question asks who holds a role ("who leads…", "the
      contact person for…") and the top two passages name nobody with a role.

    ``confidence = 0.5 dense + 0.4 lexical + 0.1 agreement - 0.2 unknown - 0.8 unknown_name
    - 0.5 missing_type - 1.0 placeholder - 1.0 missing_person``: the last ones are near
    vetoes, the first four a
    graded score (so the confidence can be negative).
    The same signal is computed whatever the search mode, so one threshold serves all.
    """
    query_vector = searcher.embedder.encode_query(query)
    best_ids, best_scores = searcher.index.dense_search(query_vector, 1)
    dense_best = int(best_ids[0]) if len(best_ids) else -1
    dense = float(best_scores[0]) if len(best_ids) else 0.0
    weights = stats.weights(text_tokens(query))
    lexical, lexical_best = 0.0, None
    for hit in hits[:5]:
        value = coverage(weights, _passage_tokens(hit, stats))
        if value > lexical:
            lexical, lexical_best = value, hit
    agreement = 0.0
    if lexical_best is not None and 0 <= dense_best < len(searcher.index.chunks):
        chunk = searcher.index.chunks[dense_best]
        if chunk.id == lexical_best.chunk.id:
            agreement = 1.0
        elif chunk.doc_id == lexical_best.doc_id:
            agreement = 0.5
    total = sum(weights.values())
    unknown = (sum(w for t, w in weights.items() if not stats.known(t)) / total) if total else 0.0
    unknown_name = 1.0 if rests_on_unknown_name(query, stats) else 0.0
    missing = 1.0 if missing_answer_type(question or query, with_next_passage(
        searcher.index, question or query, hits)) else 0.0
    nobody = 1.0 if missing_person(question or query, hits) else 0.0
    placeholder = 1.0 if lexical_best is not None and _is_placeholder_passage(lexical_best) \
        else 0.0
    confidence = (0.5 * dense + 0.4 * lexical + 0.1 * agreement - 0.2 * unknown
                  - 0.8 * unknown_name - 0.5 * missing - 1.0 * placeholder - 1.0 * nobody)
    return confidence, {"dense": round(dense, 4), "lexical": round(lexical, 4),
                        "agreement": agreement, "unknown": round(unknown, 4),
                        "unknown_name": unknown_name, "missing_type": missing,
                        "placeholder": placeholder, "missing_person": nobody}


# ---------------------------------------------------------------------------- answer types


_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|en|ett|två|tre|"
                     r"fyra|fem|sex|sju|åtta|nio|tio)\b", re.IGNORECASE)


def asked_types(question: str) -> set[str]:
    """The kinds of thing a question asks for: ``date``, ``number``, ``phone``, ``email``."""
    kinds = set()
    if _ASKS_DEADLINE.search(question):
        kinds.add("date")
    if _ASKS_NUMBER.search(question):
        kinds.add("number")
    if _ASKS_PHONE.search(question):
        kinds.add("phone")
    if _ASKS_PERSON_ONLY.search(question):
        kinds.add("email")
    return kinds


def holds_type(text: str, kind: str) -> bool:
    """Whether a passage holds a thing of the kind (a date, a number, a phone, an email)."""
    if kind == "date":
        return bool(DATE.search(text) or re.search(rf"\b{_YEAR}\b", text))
    if kind == "number":
        return bool(_NUMBER.search(text))
    if kind == "phone":
        return bool(_phones(text))
    return bool(EMAIL.search(text))


def rerank_by_answer_type(question: str, hits: Sequence[Hit], window: int = 5,
                          jump: int = 2) -> list[Hit]:
    """Let a passage that holds what the question asks for (a date for "when…") move up to
    ``jump`` places past passages of the first ``window`` that do not."""
    kinds = asked_types(question)
    if not kinds or len(hits) < 2:
        return list(hits)
    head = list(hits[:window])
    keys = [rank - (jump if all(holds_type(hit.text, kind) for kind in kinds) else 0)
            for rank, hit in enumerate(head)]
    order = sorted(range(len(head)), key=lambda i: (keys[i], i))
    return [head[i] for i in order] + list(hits[window:])


def with_next_passage(index: Index, question: str, hits: Sequence[Hit]) -> list[Hit]:
    """When the top passage lacks what the question asks for and the passage right after it
    in its document holds it, that passage comes second: a short section is often continued
    by the next ("KI has signed an MoU with Charite." / "…The collaboration was initiated in
    2024."). The list keeps its length."""
    kinds = asked_types(question)
    if not kinds or not hits or all(holds_type(hits[0].text, kind) for kind in kinds):
        return list(hits)
    top = hits[0]
    following = index.chunk_by_id(f"{top.doc_id}#{top.chunk.ordinal + 1}")
    if following is None or not all(holds_type(following.text, kind) for kind in kinds):
        return list(hits)
    rest = [hit for hit in hits[1:] if hit.chunk.id != following.id]
    second = Hit(following, top.title, top.score, top.dense_score, top.lexical_score)
    return [top, second, *rest][: len(hits)]


# ---------------------------------------------------------------------------- answer


def answer_question(searcher: Searcher, question: str, k: int = 5, mode: str = "hybrid",
                    history: Sequence[str] = (),
                    abstain_below: float = ABSTAIN_THRESHOLD) -> Answer:
    """Search and build the answer.

    Args:
        searcher: The loaded searcher.
        question: The user's question.
        k: Passages to return (cited, or "possibly related" when abstaining).
        mode: ``hybrid``, ``dense`` or ``lexical``.
        history: Earlier questions of the conversation, oldest first.
        abstain_below: Confidence under which the answer abstains.

    Raises:
        QuestionError: for an invalid question, k or mode.
    """
    started = time.perf_counter()
    hits = searcher.search(question, k=k, mode=mode, history=history)
    query = compose_query(question.strip(), history)
    if not hits:
        return Answer(question=question, query=query, abstained=True, best_sentence=None,
                      best_span=None, hits=[], took_ms=(time.perf_counter() - started) * 1000)
    stats = searcher.index.term_stats
    # The signal reads the ranking as retrieved, before answer types reorder it.
    confidence, signals = confidence_signal(searcher, query, hits, stats, question)
    asked = question if not history else query
    hits = rerank_by_answer_type(asked, with_next_passage(searcher.index, asked, hits))
    abstained = confidence < abstain_below
    asks_contact = asks_for_contact(question) or (
        len(question.split()) <= 8 and asks_for_contact(query))
    sentence, span = (None, None) if abstained else best_sentence(
        query, hits[0], stats, question=question)
    contacts = [] if abstained else extract_contacts(hits[:3], people=asks_contact)
    # Dates are compared when the question is about one ("when…", "signed…"), so an answer
    # about something else is not cluttered with a disagreement it did not ask about.
    about_dates = "date" in asked_types(query) or bool(_EVENT.search(question))
    conflicts, quoted = ([], []) if abstained or not about_dates else find_conflicts(
        searcher.index, hits, query, stats)
    hits = [*hits, *quoted]  # a passage a conflict quotes is cited too
    return Answer(
        question=question, query=query, abstained=abstained, best_sentence=sentence,
        best_span=span, hits=hits, contacts=contacts, conflicts=conflicts,
        confidence=round(confidence, 4), took_ms=(time.perf_counter() - started) * 1000,
        signals=signals, asks_contact=asks_contact,
    )
