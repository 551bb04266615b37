from __future__ import annotations

import io
from pathlib import Path

import pytest

from collab_qa.documents import (
    UnreadableFile,
    decode_bytes,
    document_from_bytes,
    load_corpus,
    normalise_text,
)


def test_normalise_text_unifies_bullets_spaces_and_blank_lines() -> None:
    raw = "Title\r\n\r\n\r\n\r\n  • first\titem \u00a0here\n◦ second\nCafe\u0301"
    assert normalise_text(raw) == "Title\n\n- first item here\n- second\nCafé"


def test_decode_bytes_detects_latin1_and_utf16() -> None:
    text = "Samarbete med Charité och Göteborg, för forskning och utbildning i Sverige."
    assert decode_bytes(text.encode("utf-16")) == text
    assert decode_bytes(text.encode("latin-1")) == text
    with pytest.raises(UnreadableFile, match="binary"):
        decode_bytes(b"\x00\x01\x02binary\x00")


def test_plain_text_title_skips_metadata_line() -> None:
    doc = document_from_bytes(
        "news.txt", ".txt",
        "Publicerad: 2023-10-17 13:17\n\nKI stärker samarbetet\n\nBrödtext här.".encode(),
    )
    assert doc.title == "KI stärker samarbetet"
    assert doc.format == "plain"
    assert len(doc.sha256) == 64


def test_markdown_and_html_headings_become_markdown() -> None:
    md = document_from_bytes("a.md", ".md", b"# Guide\n\n## Contacts\n\nMail us.")
    assert md.title == "Guide" and md.format == "markdown"
    html = document_from_bytes(
        "b.html", ".html",
        b"<html><head><title>T</title><script>alert(1)</script></head><body>"
        b"<h1>Biobank</h1><p>Contact <b>biobank@ki.se</b>.</p><ul><li>One</li></ul></body></html>",
    )
    assert html.title == "Biobank"
    assert html.text == "# Biobank\n\nContact biobank@ki.se .\n\n- One"
    assert "alert" not in html.text


def test_docx_headings(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Agreements", level=1)
    document.add_paragraph("A Data Transfer Agreement is needed for personal data.")
    buffer = io.BytesIO()
    document.save(buffer)
    doc = document_from_bytes("c.docx", ".docx", buffer.getvalue())
    assert doc.text == "## Agreements\n\nA Data Transfer Agreement is needed for personal data."
    assert doc.title == "Agreements"


def test_pdf_text_is_extracted() -> None:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.drawString(72, 720, "Biobank contact: biobank@ki.se")
    pdf.save()
    doc = document_from_bytes("d.pdf", ".pdf", buffer.getvalue())
    assert "biobank@ki.se" in doc.text


def test_broken_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("Good title\n\nSome real text here.", encoding="utf-8")
    (corpus / "copy.txt").write_text("Good title\n\nSome real text here.", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"\x00\xff\x00\xfe" * 100)
    (corpus / "empty.txt").write_text("   \n\n", encoding="utf-8")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "junk.docx").write_bytes(b"PK junk")
    (corpus / "big.txt").write_text("word " * 400, encoding="utf-8")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret outside the corpus", encoding="utf-8")
    (corpus / "link.txt").symlink_to(outside)

    documents, skipped = load_corpus(corpus, max_file_bytes=1000)

    assert [d.id for d in documents] == ["copy.txt"]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["good.txt"] == "same content as copy.txt"
    assert "binary" in reasons["binary.txt"]
    assert reasons["empty.txt"] == "empty file"
    assert "PDF" in reasons["broken.pdf"]
    assert ".docx" in reasons["junk.docx"]
    assert "limit" in reasons["big.txt"]
    assert "unsupported" in reasons["image.png"]
    assert "outside" in reasons["link.txt"]
