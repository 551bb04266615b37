"""A corpus full of broken files builds anyway: each bad file is listed in the build report
with a reason, every good file is indexed and answers (tests/test_documents.py checks the
loaders one by one; here it is the whole build)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from collab_qa import documents
from collab_qa.answer import search_passages
from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_index, load_index
from collab_qa.search import Searcher

LATIN1 = "Samarbete i Göteborg\n\nFörskningsavtal för Malmö och Växjö, säger Åsa Ström."
UTF16 = "Zusammenarbeit in München\n\nDie Übereinkunft über Größe und Straße gilt ab März."


def pdf_bytes(text: str, password: str | None = None) -> bytes:
    from pypdf import PdfWriter
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 720, text)
    page.save()
    if password is None:
        return buffer.getvalue()
    writer = PdfWriter(clone_from=io.BytesIO(buffer.getvalue()))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def broken_corpus(tmp_corpus: Path, tmp_path: Path) -> Path:
    good = sorted(p.name for p in tmp_corpus.iterdir())
    assert len(good) == 5
    (tmp_corpus / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (tmp_corpus / "latin1.txt").write_bytes(LATIN1.encode("latin-1"))
    (tmp_corpus / "utf16-bom.txt").write_bytes(UTF16.encode("utf-16"))
    (tmp_corpus / "empty.txt").write_bytes(b"")
    (tmp_corpus / "whitespace.md").write_text(" \n\t\n \u00a0 \n", encoding="utf-8")
    with (tmp_corpus / "huge.txt").open("wb") as huge:  # 50 MB, over the 20 MB default limit
        block = b"All work and no play makes a very large file. " * 20_000
        while huge.tell() < 50_000_000:
            huge.write(block)
    (tmp_corpus / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EO")
    (tmp_corpus / "encrypted.pdf").write_bytes(pdf_bytes("Secret salaries", "s3cret"))
    (tmp_corpus / "open-encrypted.pdf").write_bytes(pdf_bytes("Zebrafish facility rules", ""))
    (tmp_corpus / "junk.docx").write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("Outside secret that must never be indexed.", encoding="utf-8")
    (tmp_corpus / "link-outside.txt").symlink_to(outside)
    (tmp_corpus / "link-dir-outside").symlink_to(tmp_path)
    (tmp_corpus / "dangling.md").symlink_to(tmp_path / "nothing-here.md")
    (tmp_corpus / "vanishing.txt").write_text("Vanishing\n\nDeleted during the build.")
    (tmp_corpus / "sub").mkdir()
    (tmp_corpus / "sub" / "copy-of-germany.txt").write_bytes(
        (tmp_corpus / "collaboration-in-germany.txt").read_bytes())
    os.mkfifo(tmp_corpus / "pipe.txt")  # reading it would block: never opened
    (tmp_corpus / "link-to-pipe.txt").symlink_to(tmp_corpus / "pipe.txt")
    (tmp_corpus / "link-to-sub.md").symlink_to(tmp_corpus / "sub")
    return tmp_corpus


def test_every_broken_file_is_skipped_with_a_reason_and_nothing_else_is_lost(
    broken_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = documents.iter_corpus_files

    def files_vanishing_midway(corpus_dir: Path) -> Iterator[Path]:
        for path in listed(corpus_dir):
            if path.name == "vanishing.txt":
                path.unlink()  # listed, then gone before it is read
            yield path

    monkeypatch.setattr(documents, "iter_corpus_files", files_vanishing_midway)
    index_dir = tmp_path / "index"
    report = build_index(broken_corpus, index_dir, FakeEmbedder(), ChunkerConfig())

    reasons = {skipped.path: skipped.reason for skipped in report.skipped}
    expected = {
        "binary.txt": "binary",
        "empty.txt": "empty file",
        "whitespace.md": "no text in the file",
        "huge.txt": "larger than the 20,000,000-byte limit",
        "corrupt.pdf": "corrupt PDF",
        "encrypted.pdf": "encrypted PDF",
        "junk.docx": "not a valid .docx",
        "link-outside.txt": "outside the corpus",
        "link-dir-outside": "unsupported file type",
        "dangling.md": "broken link or file vanished",
        "vanishing.txt": "vanished during the build",
        "sub/copy-of-germany.txt": "same content as collaboration-in-germany.txt",
        "link-to-pipe.txt": "not a regular file",
        "link-to-sub.md": "not a regular file",
    }
    for path, reason in expected.items():
        assert reason in reasons.get(path, "<not skipped>"), (path, reasons.get(path))
    assert set(reasons) == set(expected), set(reasons) ^ set(expected)

    index = load_index(index_dir)
    indexed = set(index.documents)
    assert indexed == set(report.added) == {
        "cancer-research-ki-international-collaboration.txt", "charite-mou-news-sv.txt",
        "collaboration-in-germany.txt", "cutcancer-twinning-project.txt",
        "industry-collaboration-support.txt", "latin1.txt", "utf16-bom.txt",
        "open-encrypted.pdf",
    }
    assert "Förskningsavtal för Malmö" in index.documents["latin1.txt"].text
    assert "Übereinkunft über Größe" in index.documents["utf16-bom.txt"].text
    assert "Zebrafish facility" in index.documents["open-encrypted.pdf"].text
    all_text = " ".join(record.text for record in index.documents.values())
    assert "Outside secret" not in all_text and "Secret salaries" not in all_text
    assert index.manifest["skipped"] == [
        {"path": s.path, "reason": s.reason} for s in report.skipped]

    searcher = Searcher(index, FakeEmbedder())
    for question, doc_id in [("Förskningsavtal Malmö Växjö", "latin1.txt"),
                             ("Übereinkunft Größe Straße", "utf16-bom.txt"),
                             ("Zebrafish facility rules", "open-encrypted.pdf")]:
        assert search_passages(searcher, question, k=1, mode="lexical")[0].doc_id == doc_id


def test_a_file_that_becomes_unreadable_is_skipped(tmp_corpus: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    locked = tmp_corpus / "locked.txt"
    locked.write_text("Locked\n\nNobody may read this.", encoding="utf-8")
    locked.chmod(0)
    report = build_index(tmp_corpus, tmp_path / "index", FakeEmbedder(), ChunkerConfig())
    assert any(s.path == "locked.txt" and "cannot be read" in s.reason for s in report.skipped)
    assert len(report.added) == 5
