"""Document -> heading-aware chunks that fit the embedding model.

A document is read line by line. Heading lines open sections (Markdown ``#`` lines, or in
plain text the short title-like lines web pages leave behind); body lines are cut into
sentences. Each section is packed into windows of whole sentences up to ``max_tokens``
wordpieces, and the next window repeats up to ``overlap_tokens`` of trailing sentences.
Once a window holds ``paragraph_fill`` of its budget, it ends at the next paragraph break
(a blank line, or where a list starts or ends) rather than mixing unrelated paragraphs; a
window that ends at a break repeats nothing. A chunk's ``start``/``end`` slice the document
text to exactly the chunk's text.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from collab_qa import lang
from collab_qa.documents import Document

# Bump when the chunking rules change: the index then rebuilds every document.
CHUNKER_VERSION = 4

TokenCounter = Callable[[str], int]

_PLACEHOLDER = re.compile(lang.alternation("placeholders"), re.IGNORECASE)
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(\S.*)$")
_LABEL_VALUE = re.compile(r"^(\S+\s){0,2}\S+:\s")
_NUMBERED_HEADING = re.compile(r"^\d{1,2}\.\s")
_BULLET = re.compile(r"^[-*+]\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“'(\[]?[A-ZÅÄÖÜÉ0-9])")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkerConfig:
    """How documents are cut; stored in the manifest so a change forces a full rebuild."""

    max_tokens: int = 200
    overlap_tokens: int = 40
    # Share of max_tokens after which a window ends at the next paragraph break.
    paragraph_fill: float = 0.3
    version: int = CHUNKER_VERSION


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of one document.

    Attributes:
        doc_id: The document's id.
        ordinal: Position of the chunk in its document, from 0.
        heading_path: The headings above the passage, outermost first.
        start: Offset of the first character in the document text.
        end: Offset just past the last character.
        text: ``document.text[start:end]``.
    """

    doc_id: str
    ordinal: int
    heading_path: tuple[str, ...]
    start: int
    end: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


def is_placeholder(line: str) -> bool:
    """Lines that stand in for content not written yet ("lorem ipsum", "TBD")."""
    return bool(_PLACEHOLDER.search(line))


def is_plain_heading(line: str) -> bool:
    """A short, title-like line of a plain-text page: no end punctuation, few words."""
    line = line.strip()
    if not (1 <= len(line) <= 90) or not any(ch.isalpha() for ch in line):
        return False
    if line[-1] in ".!?:;,…" or line.startswith("- ") or " | " in line:
        return False
    if not (line[0].isupper() or line[0].isdigit()):
        return False
    if is_placeholder(line) or _LABEL_VALUE.match(line):
        return False
    return len(line.split()) <= 9


def embedding_text(title: str, chunk: Chunk) -> str:
    """The text that is embedded and lexically indexed: title and headings, then the passage."""
    context = " › ".join(part for part in (title, *chunk.heading_path) if part)
    return f"{context}\n{chunk.text}" if context else chunk.text


def word_count_tokens(text: str) -> int:
    """A proxy for wordpieces when no tokenizer is at hand: 1.3 per whitespace word."""
    return int(len(_WORD.findall(text)) * 1.3) + 1


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    is_heading: bool = False
    starts_paragraph: bool = False


@dataclass
class _Section:
    heading_path: tuple[str, ...]
    units: list[_Unit] = field(default_factory=list)

    @property
    def has_body(self) -> bool:
        return any(not unit.is_heading for unit in self.units)


def _lines(text: str) -> Iterator[tuple[int, int, str]]:
    offset = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            start = offset + line.index(stripped[0])
            yield start, start + len(stripped), stripped
        offset += len(line) + 1


def _sentence_spans(line: str, start: int) -> Iterator[tuple[int, int]]:
    position = 0
    for match in _SENTENCE_END.finditer(line):
        yield start + position, start + match.start()
        position = match.end()
    yield start + position, start + len(line)


def _blank_before(lines: list[tuple[int, int, str]], i: int, text: str) -> bool:
    """Whether a blank line separates line ``i`` from the line before it."""
    return i > 0 and text.count("\n", lines[i - 1][1], lines[i][0]) >= 2


def _list_items(lines: list[tuple[int, int, str]], text: str) -> set[int]:
    """Indexes of the lines that are list items: bullets ("- "), and lines of one
    block (between blank lines) that start with the same word three or more times."""
    items = {i for i, (_, _, line) in enumerate(lines) if _BULLET.match(line)}
    block: list[int] = []
    for i in range(len(lines) + 1):
        if block and (i == len(lines) or _blank_before(lines, i, text)):
            first_words = Counter(lines[j][2].split()[0].lower() for j in block)
            items.update(j for j in block if first_words[lines[j][2].split()[0].lower()] >= 3)
            block = []
        block.append(i)
    return items


def _heading_levels(
    lines: list[tuple[int, int, str]], document: Document
) -> dict[int, tuple[int, str]]:
    """Map line index -> (level, heading text); level 0 is the document's own title."""
    headings: dict[int, tuple[int, str]] = {}
    if document.format == "markdown":
        for i, (_, _, line) in enumerate(lines):
            match = _MARKDOWN_HEADING.match(line)
            if match:
                headings[i] = (len(match.group(1)), match.group(2).strip())
    else:
        # Lines of a list ("To improve…", "To advance…") are not headings.
        items = _list_items(lines, document.text)
        candidates = [is_plain_heading(line) and i not in items
                      for i, (_, _, line) in enumerate(lines)]
        content = [i for i, (_, _, line) in enumerate(lines) if not is_placeholder(line)]
        following = {a: b for a, b in itertools.pairwise(content)}
        for i, (_, _, line) in enumerate(lines):
            if not candidates[i]:
                continue
            next_is_heading = i in following and candidates[following[i]]
            level = 1 if next_is_heading or _NUMBERED_HEADING.match(line) else 2
            headings[i] = (level, line)
    # The first heading that repeats the title is the document's own, not a section.
    for i in sorted(headings)[:1]:
        if headings[i][1] == document.title:
            headings[i] = (0, headings[i][1])
    return headings


def _sections(document: Document, count_tokens: TokenCounter) -> list[_Section]:
    lines = list(_lines(document.text))
    headings = _heading_levels(lines, document)
    items = _list_items(lines, document.text)
    path: list[tuple[int, str]] = []
    sections: list[_Section] = [_Section(())]
    for i, (start, end, line) in enumerate(lines):
        if i in headings:
            level, heading = headings[i]
            if level > 0 and (not path or path[-1][1] != heading):
                path = [(lvl, text) for lvl, text in path if lvl < level] + [(level, heading)]
            if sections[-1].has_body:
                sections.append(_Section(()))
            sections[-1].heading_path = tuple(text for _, text in path)
            sections[-1].units.append(_Unit(start, end, count_tokens(line), is_heading=True))
        elif not is_placeholder(line):
            # A paragraph starts after a blank line, and where a list starts or ends.
            paragraph = _blank_before(lines, i, document.text) or (
                i > 0 and (i in items) != (i - 1 in items))
            for s_start, s_end in _sentence_spans(line, start):
                sentence = document.text[s_start:s_end]
                sections[-1].units.append(_Unit(s_start, s_end, count_tokens(sentence),
                                                starts_paragraph=paragraph))
                paragraph = False
    # Headings with nothing under them at the very end belong to the section before.
    if len(sections) > 1 and not sections[-1].has_body:
        sections[-2].units.extend(sections.pop().units)
    return [section for section in sections if section.units]


def _split_long_unit(unit: _Unit, text: str, max_tokens: int) -> list[_Unit]:
    """Cut a sentence longer than the budget at word boundaries."""
    words = list(_WORD.finditer(text[unit.start : unit.end]))
    per_word = unit.tokens / max(len(words), 1)
    size = max(int(max_tokens / max(per_word, 1e-9)), 1)
    pieces: list[_Unit] = []
    for i in range(0, len(words), size):
        group = words[i : i + size]
        start, end = unit.start + group[0].start(), unit.start + group[-1].end()
        pieces.append(_Unit(start, end, int(len(group) * per_word) + 1, unit.is_heading,
                            unit.starts_paragraph and not pieces))
    return pieces


def _windows(units: list[_Unit], config: ChunkerConfig) -> Iterator[list[_Unit]]:
    window: list[_Unit] = []
    tokens = 0
    for unit in units:
        has_body = any(not u.is_heading for u in window)
        full = tokens + unit.tokens > config.max_tokens
        at_break = unit.starts_paragraph and tokens >= config.paragraph_fill * config.max_tokens
        if window and has_body and (full or at_break):
            yield window
            overlap: list[_Unit] = []
            for previous in [] if unit.starts_paragraph else reversed(window):
                if previous.is_heading or sum(u.tokens for u in overlap) + previous.tokens > (
                    config.overlap_tokens
                ):
                    break
                overlap.insert(0, previous)
            if len(overlap) == len(window):
                overlap = overlap[1:]
            window, tokens = overlap, sum(u.tokens for u in overlap)
        window.append(unit)
        tokens += unit.tokens
    if window:
        yield window


def chunk_document(
    document: Document, config: ChunkerConfig, count_tokens: TokenCounter = word_count_tokens
) -> list[Chunk]:
    """Cut a document into chunks.

    Args:
        document: The normalised document.
        config: Window size and overlap, in wordpieces.
        count_tokens: Counts wordpieces of a text; use the embedding model's tokenizer.

    Returns:
        Chunks in document order; none is empty and none holds only placeholder text.
    """
    chunks: list[Chunk] = []
    for section in _sections(document, count_tokens):
        units: list[_Unit] = []
        for unit in section.units:
            if unit.tokens > config.max_tokens:
                units.extend(_split_long_unit(unit, document.text, config.max_tokens))
            else:
                units.append(unit)
        for window in _windows(units, config):
            start, end = window[0].start, window[-1].end
            chunks.append(
                Chunk(
                    doc_id=document.id,
                    ordinal=len(chunks),
                    heading_path=section.heading_path,
                    start=start,
                    end=end,
                    text=document.text[start:end],
                )
            )
    return chunks
