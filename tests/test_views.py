"""Pure pieces of the web app: the viewer layout, answer marking, links, feedback export,
and the `collab-qa serve` / `feedback export` commands."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from collab_qa.chunking import Chunk
from collab_qa.cli import app as cli
from collab_qa.embedding import FakeEmbedder
from collab_qa.feedback import Feedback, FeedbackStore, eval_lines
from collab_qa.store import DocumentRecord
from collab_qa.web.conversations import ConversationStore, MemoryConversations, new_turn
from collab_qa.web.schema import AskResponse
from collab_qa.web.views import (
    cited_chunk,
    document_blocks,
    document_url,
    mark_sentence,
    readable_time,
    tel_href,
)

TEXT = "# Title\n\nIntro line one. Intro two.\n\n## Contacts\n\n- Mail a@b.se\n- Call 08-1\n\nEnd."


def record(text: str = TEXT, format: str = "markdown") -> DocumentRecord:
    return DocumentRecord(id="d.md", title="Title", text=text, sha256="x", format=format,
                          chunk_ids=())


def chunk(ordinal: int, start: int, end: int, text: str = TEXT) -> Chunk:
    return Chunk("d.md", ordinal, (), start, end, text[start:end])


def test_blocks_keep_headings_paragraphs_and_list_items() -> None:
    blocks = document_blocks(record(), [])
    assert [(b.kind, "".join(p.text for p in b.pieces)) for b in blocks] == [
        ("h2", "Title"), ("p", "Intro line one. Intro two."), ("h3", "Contacts"),
        ("li", "Mail a@b.se"), ("li", "Call 08-1"), ("p", "End."),
    ]


def test_every_chunk_gets_an_anchor_and_the_cited_one_is_flagged() -> None:
    second = TEXT.index("Intro two.")
    contacts = TEXT.index("## Contacts")
    chunks = [chunk(0, 0, second), chunk(1, second, contacts - 2),
              chunk(2, contacts, len(TEXT))]
    blocks = document_blocks(record(), chunks, cited=chunks[1])
    anchors = [n for b in blocks for p in b.pieces for n in p.anchors]
    assert anchors == [c.id for c in chunks]
    cited = "".join(p.text for b in blocks for p in b.pieces if p.cited)
    assert cited == "Intro two."
    paragraph = blocks[1]
    assert [(p.text, p.anchors, p.cited) for p in paragraph.pieces] == [
        ("Intro line one. ", [], False), ("Intro two.", [chunks[1].id], True)]


def test_plain_text_headings_are_recognised() -> None:
    text = "Support for industry\n\nKI helps researchers. It has offices.\n"
    only = chunk(0, 0, len(text) - 1, text)
    blocks = document_blocks(record(text, "plain"), [only])
    assert [b.kind for b in blocks] == ["h2", "p"]
    assert blocks[0].pieces[0].anchors == [only.id]


def test_cited_chunk_by_id_or_by_an_old_position() -> None:
    chunks = [chunk(0, 0, 7), chunk(1, 9, 35), chunk(2, 37, 48)]
    assert cited_chunk(chunks, chunks[1].id) == (chunks[1], None)
    assert cited_chunk(chunks, "2") == (None, chunks[2])  # an old link: redirect to the id
    for nothing in (None, "", "3", "-1", "abc", "²", "9" * 30):
        assert cited_chunk(chunks, nothing) == (None, None)
    digits = cast(Chunk, SimpleNamespace(id="1", ordinal=0))  # an id that looks like a position
    assert cited_chunk([digits, *chunks], "1") == (digits, None)


def test_mark_sentence() -> None:
    assert mark_sentence("A b. C d.", "C d.") == [("A b. ", False), ("C d.", True)]
    assert mark_sentence("A b.", "missing") == [("A b.", False)]
    assert mark_sentence("A b.", None) == [("A b.", False)]


def test_links() -> None:
    assert document_url("sub dir/a#b.md", "c0ffee") == (
        "/documents/sub%20dir/a%23b.md?chunk=c0ffee#chunk-c0ffee")
    assert document_url("a.txt", "a.txt#3") == "/documents/a.txt?chunk=a.txt%233#chunk-a.txt%233"
    assert document_url("a.txt") == "/documents/a.txt"
    assert tel_href("08-524 820 03") == "tel:0852482003"
    assert tel_href("+46 8 524 800 00") == "tel:+46852480000"
    assert readable_time("2026-11-23T11:22:37+00:00") == "2026-11-23 11:22 UTC"
    assert readable_time("soon") == "soon"


def test_feedback_export_lines(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "data")
    store.record(Feedback("up", "Who runs the biobank?", (), False, "a.txt", "biobank@ki.se"))
    store.record(Feedback("up", "and their phone?", ("Who runs the biobank?",), False, "a.txt",
                          "08-524 820 03"))
    store.record(Feedback("up", "Japan?", (), True))
    store.record(Feedback("down", "Germany contact?", (), False, "b.txt", "wrong"))
    (store.path).open("a", encoding="utf-8").write("{damaged\n")
    entries = list(store.read())
    assert len(entries) == 4
    lines = eval_lines(entries)
    assert [line["question"] for line in lines] == ["Who runs the biobank?", "and their phone?",
                                                    "Japan?"]
    assert lines[0]["answers"] == [{"doc": "a.txt", "contains": "biobank@ki.se"}]
    assert lines[1]["history"] == ["Who runs the biobank?"] and "history" not in lines[0]
    assert lines[2]["answers"] == []
    assert len({line["id"] for line in lines}) == 3
    review = eval_lines(entries, include_down=True)[-1]
    assert review["id"].startswith("review-") and review["answers"] == []


@pytest.fixture
def cli_env(tmp_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("COLLAB_QA_CORPUS_DIR", str(tmp_corpus))
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("COLLAB_QA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("collab_qa.embedding.load_embedder", lambda model="": FakeEmbedder())
    app_log = logging.getLogger("collab_qa")
    handlers, level = list(app_log.handlers), app_log.level
    yield tmp_path
    app_log.handlers[:] = handlers  # serve adds a handler bound to CliRunner's stderr
    app_log.setLevel(level)


def test_serve_builds_a_missing_index_and_prints_the_url(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(cli, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "building it" in result.output and "http://127.0.0.1:8123/" in result.output
    assert (cli_env / "index" / "CURRENT").is_file()
    assert calls and calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8123


def test_serve_refuses_a_corrupt_index_with_one_sentence(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: pytest.fail("must not serve"))
    assert CliRunner().invoke(cli, ["index"]).exit_code == 0
    current = (cli_env / "index" / "CURRENT").read_text().strip()
    (cli_env / "index" / current / "manifest.json").write_text("{oops", encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    flat = "".join(result.output.split())  # rich wraps long lines
    assert "manifest.json" in flat and "collab-qaindex--full" in flat


def test_serve_on_a_busy_port_is_one_sentence(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: pytest.fail("must not serve"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(cli, ["serve", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2 and "--port" in result.output


def test_memory_conversations_keep_recent_turns_and_ratings() -> None:
    store: ConversationStore = MemoryConversations(max_turns=2, max_conversations=2)
    answer = AskResponse(question="q", abstained=True, best_sentence=None, contacts=[],
                         passages=[], conflicts=[], index_version="v1", took_ms=1.0)
    turns = [new_turn(f" question {n} ", [], answer) for n in range(3)]
    for turn in turns:
        store.add("a", turn)
    assert [t.question for t in store.turns("a")] == ["question 1", "question 2"]
    store.rate("a", turns[2].id, "up")
    assert store.find("a", turns[2].id).rating == "up"  # type: ignore[union-attr]
    assert store.find("b", turns[2].id) is None and store.turns(None) == []
    store.add("b", turns[0])
    store.add("c", turns[0])  # the least recently used conversation goes
    assert store.turns("a") == [] and len(store.turns("c")) == 1
    store.clear("c")
    assert store.turns("c") == []
