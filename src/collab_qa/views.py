"""Answers and documents -> the plain data the JSON API returns and the templates render.

Pure functions, no web framework: the chat page, the JavaScript and the API all show the same
payload, and the document viewer's layout is computed here so it can be tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import quote

from collab_qa.answer import Answer, Conflict, Contact
from collab_qa.chunking import Chunk, is_plain_heading
from collab_qa.index import DocumentRecord
from collab_qa.search import Hit

_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+")


def document_url(doc_id: str, chunk: int | None = None) -> str:
    """The viewer's address of a document, optionally pointing at one of its chunks."""
    path = "/documents/" + quote(doc_id, safe="/")
    return path if chunk is None else f"{path}?chunk={chunk}#chunk-{chunk}"


def heading_text(chunk: Chunk) -> str:
    """The chunk's headings as one line, outermost first ("" when it has none)."""
    return " › ".join(chunk.heading_path)


def passage_payload(hit: Hit) -> dict[str, Any]:
    """One passage as the API returns it."""
    return {
        "doc_id": hit.doc_id,
        "title": hit.title,
        "heading": heading_text(hit.chunk),
        "text": hit.text,
        "score": round(float(hit.score), 4),
        "start": hit.chunk.start,
        "end": hit.chunk.end,
        "url": document_url(hit.doc_id, hit.chunk.ordinal),
    }


def _contact_payload(contact: Contact, hits: Sequence[Hit]) -> dict[str, Any]:
    hit = hits[contact.hit_rank] if 0 <= contact.hit_rank < len(hits) else None
    return {
        "name": contact.name,
        "role": contact.role or None,
        "email": contact.email,
        "phone": contact.phone,
        "citation": contact.citation,
        "url": document_url(hit.doc_id, hit.chunk.ordinal) if hit else None,
    }


def _conflict_payload(conflict: Conflict, hits: Sequence[Hit]) -> dict[str, Any]:
    by_citation = {hit.citation: hit for hit in hits}
    statements = []
    for position, (citation, sentence) in enumerate(conflict.statements):
        hit = by_citation.get(citation)
        doc_id = conflict.doc_ids[position] if position < len(conflict.doc_ids) else None
        if hit is None and doc_id:
            hit = next((h for h in hits if h.doc_id == doc_id), None)
        url = (document_url(hit.doc_id, hit.chunk.ordinal) if hit
               else document_url(doc_id) if doc_id else None)
        date = conflict.dates[position] if position < len(conflict.dates) else None
        statements.append({"citation": citation, "sentence": sentence, "date": date, "url": url})
    return {"topic": conflict.topic, "note": conflict.note or None, "statements": statements}


def answer_payload(answer: Answer, index_version: str) -> dict[str, Any]:
    """The answer as the API returns it and the chat page renders it."""
    hits = list(answer.hits)
    return {
        "question": answer.question,
        "abstained": answer.abstained,
        "best_sentence": answer.best_sentence,
        "contacts": [_contact_payload(c, hits) for c in answer.contacts],
        "passages": [passage_payload(hit) for hit in hits],
        "conflicts": [_conflict_payload(c, hits) for c in answer.conflicts],
        "index_version": index_version,
        "took_ms": round(answer.took_ms, 1),
    }


def mark_sentence(text: str, sentence: str | None) -> list[tuple[str, bool]]:
    """Split ``text`` into pieces, the first occurrence of ``sentence`` flagged True."""
    position = text.find(sentence) if sentence else -1
    if not sentence or position < 0:
        return [(text, False)]
    end = position + len(sentence)
    pieces = [(text[:position], False), (sentence, True), (text[end:], False)]
    return [piece for piece in pieces if piece[0]]


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
    """A run of text in the viewer; ``anchors`` are chunk ordinals starting right here."""

    text: str
    anchors: list[int] = field(default_factory=list)
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
    pending = sorted((chunk.start, chunk.ordinal) for chunk in chunks)
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
        anchors: dict[int, list[int]] = {}
        while pending and pending[0][0] < line_end:
            position, ordinal = pending.pop(0)
            anchors.setdefault(min(max(position, start), end), []).append(ordinal)
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
        blocks.append(Block("p", [Piece("", [ordinal for _, ordinal in pending])]))
    return blocks
