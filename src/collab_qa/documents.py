"""Files in the corpus folder -> normalised ``Document`` objects.

Every supported format becomes plain text with one paragraph or heading per line block.
Markup formats (Markdown, HTML, DOCX) mark headings with Markdown ``#`` so the chunker sees
them; plain text and PDF keep their lines as they are and the chunker recognises the short
title-like lines such pages use as headings.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import charset_normalizer

from collab_qa import lang

TextFormat = Literal["markdown", "plain"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")

BULLET_GLYPHS = "•◦▪▫●○■□‣⁃∙·–—"
_BULLET_LINE = re.compile(rf"^[ \t]*[{BULLET_GLYPHS}*][ \t]+")
_HEADING_PREFIX = re.compile(r"^(#{1,6})\s+(.*)$")
_PLACEHOLDER = re.compile(lang.alternation("placeholders"), re.IGNORECASE)
_LABEL_VALUE = re.compile(r"^(\S+\s){0,2}\S+:\s")


@dataclass(frozen=True)
class Document:
    """One source document, normalised.

    Attributes:
        id: Stable id: the path relative to the corpus folder, with forward slashes.
        title: First heading, or the first line.
        text: Normalised text; chunk offsets point into it.
        sha256: Hash of the file's bytes, so an unchanged file is never re-embedded.
        format: ``markdown`` when headings are marked with ``#``, else ``plain``.
    """

    id: str
    title: str
    text: str
    sha256: str
    format: TextFormat


@dataclass(frozen=True)
class SkippedFile:
    """A file the build left out, with a one-line reason."""

    path: str
    reason: str


class UnreadableFile(Exception):
    """Raised by a loader when a file cannot become a document; the message is the reason."""


def normalise_text(text: str) -> str:
    """NFC, unified line ends and spaces, bullets as ``- ``, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\ufeff", "").replace("\u200b", "")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    lines = []
    for line in text.split("\n"):
        line = _BULLET_LINE.sub("- ", line)
        line = re.sub(r"[ \t]+", " ", line).strip()
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def decode_bytes(data: bytes) -> str:
    """Decode text of unknown encoding: BOMs first, then UTF-8, then charset detection."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise UnreadableFile("not text in any encoding that could be detected")
    return str(best)


def _load_text(data: bytes) -> tuple[str, TextFormat]:
    return decode_bytes(data), "plain"


def _load_markdown(data: bytes) -> tuple[str, TextFormat]:
    return decode_bytes(data), "markdown"


_HTML_BLOCKS = "h1,h2,h3,h4,h5,h6,p,li,pre,blockquote,td,th,dt,dd,figcaption"
_HTML_BLOCK_TAGS = frozenset(_HTML_BLOCKS.split(","))


def _load_html(data: bytes) -> tuple[str, TextFormat]:
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(decode_bytes(data))
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "nav", "footer"])
    parts: list[str] = []
    for node in tree.css(_HTML_BLOCKS):
        parent, nested = node.parent, False
        while parent is not None:
            if parent.tag in _HTML_BLOCK_TAGS:
                nested = True
                break
            parent = parent.parent
        if nested:
            continue
        text = " ".join(node.text(separator=" ").split())
        if not text:
            continue
        tag = node.tag or ""
        if tag[0] == "h" and tag[1:].isdigit():
            parts.append("#" * int(tag[1:]) + " " + text)
        elif tag == "li":
            parts.append("- " + text)
        else:
            parts.append(text)
    if not parts and tree.body is not None:
        parts.append(tree.body.text(separator="\n"))
    title_node = tree.css_first("title")
    title = title_node.text().strip() if title_node is not None else ""
    if title and not any(p.startswith("#") for p in parts):
        parts.insert(0, "# " + title)
    return "\n\n".join(parts), "markdown"


def _load_pdf(data: bytes) -> tuple[str, TextFormat]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableFile(f"corrupt PDF ({exc})") from exc
    except Exception as exc:  # pypdf raises many kinds of errors on broken files
        if "encrypt" in str(exc).lower() or "crypt" in type(exc).__name__.lower():
            raise UnreadableFile("encrypted PDF that cannot be opened") from exc
        raise UnreadableFile(f"corrupt PDF ({type(exc).__name__})") from exc
    return "\n\n".join(pages), "plain"


def _load_docx(data: bytes) -> tuple[str, TextFormat]:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises zipfile/KeyError/ValueError on junk
        raise UnreadableFile(f"not a valid .docx file ({type(exc).__name__})") from exc
    parts = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style == "Title":
            parts.append("# " + text)
        elif style.startswith("Heading") and style[-1:].isdigit():
            parts.append("#" * min(int(style.split()[-1]) + 1, 6) + " " + text)
        elif style.startswith("List"):
            parts.append("- " + text)
        else:
            parts.append(text)
    return "\n\n".join(parts), "markdown"


LOADERS: dict[str, Callable[[bytes], tuple[str, TextFormat]]] = {
    ".txt": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}


def is_placeholder(line: str) -> bool:
    """Lines that stand in for content not written yet ("lorem ipsum", "TBD")."""
    return bool(_PLACEHOLDER.search(line))


#: A short line found this often on a line of its own is a template's filler.
FILLER_REPEATS = 3
FILLER_MAX_WORDS = 5


def _line_key(line: str) -> str:
    return line.strip(" -\t").casefold()


def filler_lines(lines: Iterable[str]) -> frozenset[str]:
    """The short lines that occur at least ``FILLER_REPEATS`` times in ``lines`` (each line
    of the documents once): a template's stand-in text or a link label, not content. Lines
    with a digit (a date, a number) are never filler."""
    counts = Counter(_line_key(line) for line in lines)
    return frozenset(line for line, count in counts.items()
                     if count >= FILLER_REPEATS and any(c.isalpha() for c in line)
                     and not any(c.isdigit() for c in line)
                     and len(line.split()) <= FILLER_MAX_WORDS)


def is_filler(line: str, fillers: frozenset[str]) -> bool:
    """``line`` is a filler line, alone or after a short label ("B - <filler>")."""
    key = _line_key(line)
    return key in fillers or key.rpartition(" - ")[2] in fillers


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


def _title_of(text: str, text_format: TextFormat) -> str:
    lines = [line for line in text.split("\n") if line.strip()]
    if text_format == "markdown":
        for line in lines:
            match = _HEADING_PREFIX.match(line)
            if match:
                return match.group(2).strip()
    else:
        for line in lines[:5]:
            if is_plain_heading(line):
                return line
    first = lines[0] if lines else ""
    return first.lstrip("#- ").strip()[:120]


def document_from_bytes(doc_id: str, suffix: str, data: bytes) -> Document:
    """Build a document from a file's bytes.

    Raises:
        UnreadableFile: with the reason, when the bytes are not a usable document.
    """
    loader = LOADERS.get(suffix.lower())
    if loader is None:
        raise UnreadableFile(f"unsupported file type '{suffix}'")
    raw_text, text_format = loader(data)
    text = normalise_text(raw_text)
    if not text:
        raise UnreadableFile("no text in the file")
    return Document(
        id=doc_id,
        title=_title_of(text, text_format),
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        format=text_format,
    )


def iter_corpus_files(corpus_dir: Path) -> Iterator[Path]:
    """All files under the corpus folder, in a stable order, hidden files left out."""
    for path in sorted(corpus_dir.rglob("*")):
        relative = path.relative_to(corpus_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() or path.is_symlink():
            yield path


def load_corpus(corpus_dir: Path, max_file_bytes: int) -> tuple[list[Document], list[SkippedFile]]:
    """Read every supported file under ``corpus_dir``.

    Nothing here aborts: a file that cannot become a document is reported in the skipped
    list with a one-line reason.

    Args:
        corpus_dir: The corpus folder.
        max_file_bytes: Larger files are skipped.

    Returns:
        The documents (sorted by id) and the skipped files.
    """
    root = corpus_dir.resolve()
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    seen_hashes: dict[str, str] = {}
    for path in iter_corpus_files(corpus_dir):
        doc_id = path.relative_to(corpus_dir).as_posix()
        if path.suffix.lower() not in LOADERS:
            kind = path.suffix or path.name
            skipped.append(SkippedFile(doc_id, f"unsupported file type '{kind}'"))
            continue
        try:
            document = read_document(path, doc_id, root, max_file_bytes)
        except UnreadableFile as exc:
            skipped.append(SkippedFile(doc_id, str(exc)))
            continue
        if document.sha256 in seen_hashes:
            skipped.append(SkippedFile(doc_id, f"same content as {seen_hashes[document.sha256]}"))
            continue
        seen_hashes[document.sha256] = doc_id
        documents.append(document)
    return documents, skipped


def read_document(path: Path, doc_id: str, root: Path, max_file_bytes: int) -> Document:
    """Read one corpus file, refusing what is unsafe or unusable.

    Raises:
        UnreadableFile: with the reason.
    """
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise UnreadableFile("broken link or file vanished during the build") from exc
    if not resolved.is_relative_to(root):
        raise UnreadableFile("symlink pointing outside the corpus folder")
    if not resolved.is_file():  # a link to a folder, pipe or device: reading could block
        raise UnreadableFile("not a regular file")
    try:
        size = resolved.stat().st_size
        if size > max_file_bytes:
            raise UnreadableFile(f"larger than the {max_file_bytes:,}-byte limit ({size:,} bytes)")
        data = resolved.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot be read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise UnreadableFile("empty file")
    return document_from_bytes(doc_id, path.suffix, data)
