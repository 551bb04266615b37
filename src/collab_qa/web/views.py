"""Answers and documents -> the API payload (the models of ``schema``) and the viewer layout.

Pure functions, no web framework: the chat page and the API show the same payload, and the
document viewer's layout is computed here so it can be tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import quote

from collab_qa.answer import Answer, Conflict, Contact
from collab_qa.chunking import Chunk, is_plain_heading
from collab_qa.search import Hit
from collab_qa.store import DocumentRecord, IndexStore
from collab_qa.web.schema import (
    AskResponse,
    ChunkOut,
    ConflictOut,
    ContactOut,
    DocumentOut,
    DocumentsOut,
    DocumentSummaryOut,
    PassageOut,
    SkippedOut,
    StatementOut,
)

_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+")


def chunk_anchor(chunk_id: str) -> str:
    """The viewer's element id of a passage (ids from content stay valid across edits)."""
    return f"chunk-{chunk_id}"


def document_url(doc_id: str, chunk_id: str | None = None) -> str:
    """The viewer's address of a document, optionally citing one of its passages by id."""
    path = "/documents/" + quote(doc_id, safe="/")
    if chunk_id is None:
        return path
    quoted = quote(chunk_id, safe="")
    return f"{path}?chunk={quoted}#{quote(chunk_anchor(chunk_id), safe='')}"


def heading_text(chunk: Chunk) -> str:
    """The chunk's headings as one line, outermost first ("" when it has none)."""
    return " › ".join(chunk.heading_path)


def passage_payload(hit: Hit) -> PassageOut:
    """One passage as the API returns it."""
    return PassageOut(
        doc_id=hit.doc_id,
        title=hit.title,
        heading=heading_text(hit.chunk),
        text=hit.text,
        score=round(float(hit.score), 4),
        start=hit.chunk.start,
        end=hit.chunk.end,
        url=document_url(hit.doc_id, hit.chunk.id),
    )


def _contact_payload(contact: Contact, hits: Sequence[Hit]) -> ContactOut:
    hit = hits[contact.hit_rank] if 0 <= contact.hit_rank < len(hits) else None
    return ContactOut(
        name=contact.name,
        role=contact.role or None,
        email=contact.email,
        phone=contact.phone,
        citation=contact.citation,
        url=document_url(hit.doc_id, hit.chunk.id) if hit else None,
    )


def _conflict_payload(conflict: Conflict, hits: Sequence[Hit]) -> ConflictOut:
    by_citation = {hit.citation: hit for hit in hits}
    statements = []
    for position, (citation, sentence) in enumerate(conflict.statements):
        hit = by_citation.get(citation)
        doc_id = conflict.doc_ids[position] if position < len(conflict.doc_ids) else None
        if hit is None and doc_id:
            hit = next((h for h in hits if h.doc_id == doc_id), None)
        url = (document_url(hit.doc_id, hit.chunk.id) if hit
               else document_url(doc_id) if doc_id else None)
        date = conflict.dates[position] if position < len(conflict.dates) else None
        statements.append(StatementOut(citation=citation, sentence=sentence, date=date, url=url))
    return ConflictOut(topic=conflict.topic, note=conflict.note or None, statements=statements)


def answer_payload(answer: Answer, index_version: str) -> AskResponse:
    """The answer as the API returns it and the chat page renders it."""
    hits = list(answer.hits)
    return AskResponse(
        question=answer.question,
        abstained=answer.abstained,
        best_sentence=answer.best_sentence,
        contacts=[_contact_payload(c, hits) for c in answer.contacts],
        passages=[passage_payload(hit) for hit in hits],
        conflicts=[_conflict_payload(c, hits) for c in answer.conflicts],
        index_version=index_version,
        took_ms=round(answer.took_ms, 1),
    )


def _skipped(manifest: Mapping[str, Any]) -> list[SkippedOut]:
    return [SkippedOut(path=str(s["path"]), reason=str(s["reason"]))
            for s in manifest.get("skipped", [])]


def documents_payload(store: IndexStore) -> DocumentsOut:
    """The indexed documents with passage counts, and the files the build skipped."""
    return DocumentsOut(
        index_version=store.version,
        created=store.manifest.get("created"),
        documents=[
            DocumentSummaryOut(doc_id=record.id, title=record.title,
                               chunks=len(record.chunk_ids), sha256=record.sha256,
                               url=document_url(record.id))
            for record in sorted(store.documents.values(), key=lambda r: r.id)
        ],
        skipped=_skipped(store.manifest),
    )


@dataclass(frozen=True)
class Covered:
    """What the chat's first screen says about the index: the documents, the largest first,
    and when the index was built."""

    documents: list[DocumentRecord]
    created: str | None


def covered_documents(store: IndexStore) -> Covered:
    """The documents of the index, the ones with the most passages first."""
    records = sorted(store.documents.values(), key=lambda r: (-len(r.chunk_ids), r.title, r.id))
    return Covered(records, store.manifest.get("created"))


def example_questions(covered: Covered, configured: Sequence[str],
                      about: Callable[[str], str], count: int = 3) -> list[str]:
    """The questions the first screen offers: the configured ones, or ``about(title)`` for
    the ``count`` largest documents (the index's own words, never a list kept in code)."""
    if configured:
        return [question for question in configured if question.strip()]
    return [about(record.title) for record in covered.documents[:count]]


def document_payload(record: DocumentRecord, chunks: Sequence[Chunk],
                     index_version: str) -> DocumentOut:
    """One document's normalised text and its passages."""
    return DocumentOut(
        doc_id=record.id, title=record.title, format=record.format, sha256=record.sha256,
        text=record.text, index_version=index_version,
        chunks=[ChunkOut(id=c.id, ordinal=c.ordinal, heading=heading_text(c), start=c.start,
                         end=c.end, url=document_url(c.doc_id, c.id)) for c in chunks],
    )


def cited_chunk(chunks: Sequence[Chunk],
                requested: str | None) -> tuple[Chunk | None, Chunk | None]:
    """The passage of a document a viewer link cites: ``(by id, by old position)``.

    ``?chunk=<id>`` is the link the app writes. A link from before ids came from content
    holds the passage's position in its document (``?chunk=3``); that passage is returned
    second, for a redirect to its id. An id is tried first, so an id of digits still works.
    """
    if not requested:
        return None, None
    by_id = next((chunk for chunk in chunks if chunk.id == requested), None)
    if by_id is not None:
        return by_id, None
    if requested.isascii() and requested.isdigit() and len(requested) <= 9:
        ordinal = int(requested)
        return None, next((chunk for chunk in chunks if chunk.ordinal == ordinal), None)
    return None, None


def mark_sentence(text: str, sentence: str | None) -> list[tuple[str, bool]]:
    """Split ``text`` into pieces, the first occurrence of ``sentence`` flagged True."""
    position = text.find(sentence) if sentence else -1
    if not sentence or position < 0:
        return [(text, False)]
    end = position + len(sentence)
    pieces = [(text[:position], False), (sentence, True), (text[end:], False)]
    return [piece for piece in pieces if piece[0]]


@dataclass(frozen=True)
class PassageBlock:
    """A paragraph (``p``) or a bulleted list (``ul``) of a passage in an answer card; each
    line is split into pieces, the answer's lead sentence flagged True."""

    kind: str
    lines: list[list[tuple[str, bool]]]


def _stray_heading(lines: list[str], position: int) -> bool:
    """A heading line the passage carries over (its heading is shown with the citation):
    a title-like line standing alone, or a Markdown heading."""
    line = lines[position].strip()
    if _MARKDOWN_HEADING.match(line):
        return True
    alone = position + 1 == len(lines) or not lines[position + 1].strip()
    return alone and is_plain_heading(line)


def plain_sentence(sentence: str) -> str:
    """A sentence as the answer's direct line: without a list item's ``- `` marker."""
    sentence = sentence.strip()
    return sentence[2:].strip() if sentence.startswith("- ") else sentence


def passage_blocks(text: str, sentence: str | None) -> list[PassageBlock]:
    """A passage as paragraphs and lists: stray heading lines dropped, ``- `` lines as bullets,
    the first occurrence of ``sentence`` flagged for highlighting."""
    lines = text.split("\n")
    blocks: list[PassageBlock] = []
    sentence = plain_sentence(sentence) if sentence else None
    marked = False
    for position, raw in enumerate(lines):
        line = raw.strip()
        if not line or _stray_heading(lines, position):
            continue
        bullet = line.startswith("- ")
        body = line[2:].strip() if bullet else line
        pieces = [(body, False)] if marked else mark_sentence(body, sentence)
        marked = marked or any(hot for _, hot in pieces)
        if bullet and blocks and blocks[-1].kind == "ul":
            blocks[-1].lines.append(pieces)
        else:
            blocks.append(PassageBlock("ul" if bullet else "p", [pieces]))
    return blocks


def readable_time(iso: str | None) -> str:
    """``2026-11-23T11:22:37+00:00`` -> ``2026-11-23 11:22 UTC`` (unchanged if not ISO)."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso or "")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo else "")


def tel_href(phone: str) -> str:
    """A ``tel:`` link target: the digits of the number, with its leading + if any."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return "tel:" + ("+" if phone.strip().startswith("+") else "") + digits


# ---------------------------------------------------------------------------- viewer


@dataclass
class Piece:
    """A run of text in the viewer; ``anchors`` are the ids of the chunks starting here."""

    text: str
    anchors: list[str] = field(default_factory=list)
    cited: bool = False


@dataclass
class Block:
    """A heading, paragraph or list item of the document; ``kind`` is h2..h4, p or li."""

    kind: str
    pieces: list[Piece]


def document_blocks(record: DocumentRecord, chunks: Sequence[Chunk],
                    cited: Chunk | None = None) -> list[Block]:
    """Lay the whole document out as headings and paragraphs.

    Each chunk gets an anchor where it starts; the text of ``cited`` is flagged so the
    template can highlight it.
    """
    text = record.text
    pending = [(chunk.start, chunk.id) for chunk in
               sorted(chunks, key=lambda c: (c.start, c.ordinal))]
    blocks: list[Block] = []
    offset = 0
    for line in text.split("\n"):
        line_start, line_end = offset, offset + len(line)
        offset = line_end + 1
        stripped = line.strip()
        if not stripped:
            continue
        start = line_start + line.index(stripped[0])
        end = start + len(stripped)
        kind = "p"
        heading = _MARKDOWN_HEADING.match(stripped) if record.format == "markdown" else None
        if heading:
            kind = f"h{min(len(heading.group(1)) + 1, 4)}"
            start += heading.end()
        elif stripped.startswith("- "):
            kind = "li"
            start += 2
        elif record.format == "plain" and is_plain_heading(stripped):
            kind = "h2"
        anchors: dict[int, list[str]] = {}
        while pending and pending[0][0] < line_end:
            position, chunk_id = pending.pop(0)
            anchors.setdefault(min(max(position, start), end), []).append(chunk_id)
        cuts = {start, end, *anchors}
        if cited is not None:
            cuts |= {p for p in (cited.start, cited.end) if start < p < end}
        bounds = sorted(p for p in cuts if start <= p <= end)
        pieces = [
            Piece(text[a:b], anchors.get(a, []),
                  cited is not None and cited.start <= a < cited.end)
            for a, b in pairwise(bounds)
        ]
        if end in anchors:  # a chunk starting on the line's last character
            pieces.append(Piece("", anchors[end]))
        blocks.append(Block(kind, pieces or [Piece("")]))
    if pending:  # chunks past the last line still get their anchors
        blocks.append(Block("p", [Piece("", [chunk_id for _, chunk_id in pending])]))
    return blocks
