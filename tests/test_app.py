"""Every route and every error of the web app, through TestClient, on a fake-embedder index.

Answer quality is tested with the real model in test_app_real.py; here only behaviour counts.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from typer.testing import CliRunner

from collab_qa.answer import Answer, Conflict, Contact, search_passages
from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import CURRENT_FILE, build_index
from collab_qa.settings import Settings
from collab_qa.web import routes_ask
from collab_qa.web.conversations import CONVERSATION_COOKIE
from collab_qa.web.live_index import LiveIndex
from collab_qa.web.pages import ASSETS
from collab_qa.web.routes_ask import CHAT_HEADER, TURN_HEADER
from tests.conftest import REMOTE, MakeAppClient

API_KEYS = {"question", "abstained", "best_sentence", "contacts", "passages", "conflicts",
            "index_version", "took_ms"}
PASSAGE_KEYS = {"doc_id", "title", "heading", "text", "score", "start", "end", "url"}


@pytest.fixture
def settings(tmp_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Settings:
    (tmp_corpus / "broken.txt").write_bytes(b"\x00\x01\x02 binary \xff\xfe" * 50)
    (tmp_corpus / "hostile.md").write_text(
        "# Hostile page\n\nThis page says <script>alert(1)</script> about zebrafish.\n",
        encoding="utf-8",
    )
    index_dir = tmp_path / "index"
    build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    return Settings(corpus_dir=tmp_corpus, index_dir=index_dir, data_dir=tmp_path / "data",
                    _env_file=None)


@pytest.fixture
def client(settings: Settings, make_app_client: MakeAppClient) -> Iterator[TestClient]:
    with make_app_client(settings) as test_client:
        yield test_client


def ask(client: TestClient, question: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/ask", json={"question": question, **body})
    assert response.status_code == 200, response.text
    return response.json()


def rebuild(settings: Settings, embedder: FakeEmbedder) -> str:
    return build_index(settings.corpus_dir, settings.index_dir, embedder, ChunkerConfig()).version


# ---------------------------------------------------------------------------- health


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_summarises_the_manifest(client: TestClient, settings: Settings) -> None:
    body = client.get("/readyz").json()
    assert body["ready"] is True
    assert body["index_version"] == (settings.index_dir / CURRENT_FILE).read_text().strip()
    assert body["documents"] == 6 and body["chunks"] > 10 and body["skipped"] == 1
    assert body["model"] == "fake-embedder" and body["reload_error"] is None


def test_not_ready_without_an_index_then_ready_once_built(
    tmp_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder,
    make_app_client: MakeAppClient,
) -> None:
    settings = Settings(corpus_dir=tmp_corpus, index_dir=tmp_path / "none",
                        data_dir=tmp_path / "data", _env_file=None)
    with make_app_client(settings) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "collab-qa index" in ready.json()["detail"]
        refused = client.post("/api/ask", json={"question": "biobank"})
        assert refused.status_code == 503 and refused.json()["detail"].startswith("No index")
        rebuild(settings, fake_embedder)
        assert client.get("/readyz").status_code == 200
        assert ask(client, "biobank")["passages"]


# ---------------------------------------------------------------------------- /api/ask


def test_ask_returns_the_documented_shape(client: TestClient) -> None:
    body = ask(client, "who do I contact about biobank samples", k=3, mode="hybrid")
    assert set(body) == API_KEYS
    assert body["question"] == "who do I contact about biobank samples"
    assert 1 <= len(body["passages"]) <= 3
    for passage in body["passages"]:
        assert set(passage) == PASSAGE_KEYS
        assert passage["url"].startswith("/documents/" + passage["doc_id"])
        assert passage["end"] > passage["start"]
    assert body["index_version"] == client.get("/readyz").json()["index_version"]
    assert body["took_ms"] >= 0


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_ask_in_every_mode(client: TestClient, mode: str) -> None:
    assert ask(client, "biobank samples coordinator", mode=mode)["passages"]


def test_ask_uses_the_default_k(client: TestClient, settings: Settings) -> None:
    assert len(ask(client, "collaboration")["passages"]) == settings.default_k


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"question": ""}, 422, "empty"),
        ({"question": "   \n "}, 422, "empty"),
        ({"question": "x" * 1001}, 422, "limit"),
        ({"question": "biobank\x00"}, 422, "NUL"),
        ({"question": "biobank", "k": 0}, 422, "k must be between"),
        ({"question": "biobank", "k": -1}, 422, "k must be between"),
        ({"question": "biobank", "k": 10**9}, 422, "k must be between"),
        ({"question": "biobank", "k": "many"}, 422, "k:"),
        ({"question": "biobank", "mode": "fuzzy"}, 422, "mode:"),
        ({"question": 5}, 422, "question:"),
        ({"question": "biobank", "history": "previous"}, 422, "history:"),
        ({"question": "biobank", "history": ["q"] * 21}, 422, "history:"),
        ({"question": "biobank", "history": ["x" * 1001]}, 422, "earlier question"),
        ({"question": "biobank", "surprise": 1}, 422, "surprise:"),
        ({}, 422, "question:"),
        ([1, 2], 422, "JSON object"),
    ],
)
def test_ask_errors_are_one_sentence(client: TestClient, body: Any, status: int,
                                     words: str) -> None:
    response = client.post("/api/ask", json=body)
    assert response.status_code == status
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail
    assert "Traceback" not in response.text


def test_ask_refuses_bad_json_and_no_body(client: TestClient) -> None:
    bad = client.post("/api/ask", content=b'{"question": ',
                      headers={"content-type": "application/json"})
    assert bad.status_code == 422
    assert bad.json() == {"detail": "The request body is not valid JSON."}
    empty = client.post("/api/ask")
    assert empty.status_code == 422 and "JSON object" in empty.json()["detail"]


def test_unknown_route_and_method_are_json_errors(client: TestClient) -> None:
    assert client.get("/api/nothing").json() == {"detail": "Not Found"}
    assert client.get("/api/ask").status_code == 405


# ---------------------------------------------------------------------------- documents API


def test_api_documents_lists_documents_and_skipped_files(client: TestClient) -> None:
    body = client.get("/api/documents").json()
    ids = [d["doc_id"] for d in body["documents"]]
    assert "industry-collaboration-support.txt" in ids and "hostile.md" in ids
    assert all(d["chunks"] >= 1 and d["url"] == f"/documents/{d['doc_id']}"
               for d in body["documents"])
    assert [s["path"] for s in body["skipped"]] == ["broken.txt"]
    assert body["skipped"][0]["reason"]


def test_api_document_returns_text_and_chunks(client: TestClient) -> None:
    body = client.get("/api/documents/collaboration-in-germany.txt").json()
    assert body["title"] == "Collaboration in Germany"
    assert [c["ordinal"] for c in body["chunks"]] == list(range(len(body["chunks"])))
    for chunk in body["chunks"]:
        assert body["text"][chunk["start"]:chunk["end"]]


@pytest.mark.parametrize("doc_id", [
    "missing.txt", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd", "broken.txt", "corpus/collaboration-in-germany.txt", "%2e%2e",
    "collaboration-in-germany.txt%2f..",
])
def test_unknown_document_ids_are_404(client: TestClient, doc_id: str,
                                      opened: list[str]) -> None:
    api = client.get(f"/api/documents/{doc_id}")
    page = client.get(f"/documents/{doc_id}", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.json()["detail"]
    assert page.status_code in (404, 405) and "passwd" not in page.text.replace(doc_id, "")
    assert not any("passwd" in path for path in opened)


# ---------------------------------------------------------------------------- viewer


def chunk_of(url: str) -> str:
    """The chunk id a viewer link cites."""
    return parse_qs(urlsplit(url).query)["chunk"][0]


def anchor(chunk_id: str) -> str:
    return f'id="{escape("chunk-" + chunk_id)}"'


def cited_text(page: str) -> str:
    """The highlighted text of a viewer page, without spaces and hyphens."""
    cited = "".join(re.findall(r'<mark class="cited">(.*?)</mark>', page, re.DOTALL))
    return flat(html.unescape(cited))


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text).replace("-", "")


def test_viewer_shows_the_whole_document_with_the_cited_chunk(client: TestClient) -> None:
    passage = ask(client, "biobank samples coordinator", k=1)["passages"][0]
    page = client.get(passage["url"])
    assert page.status_code == 200
    document = client.get(f"/api/documents/{passage['doc_id']}").json()
    cited = next(c for c in document["chunks"] if c["id"] == chunk_of(passage["url"]))
    assert passage["url"] == cited["url"] and passage["url"].endswith(
        "#" + quote("chunk-" + cited["id"], safe=""))
    assert cited_text(page.text) == flat(passage["text"])
    for chunk in document["chunks"]:
        assert anchor(chunk["id"]) in page.text


def test_old_position_links_redirect_to_the_chunk_id(client: TestClient) -> None:
    doc_id = "collaboration-in-germany.txt"
    document = client.get(f"/api/documents/{doc_id}").json()
    assert len(document["chunks"]) > 2
    for chunk in document["chunks"]:
        old = client.get(f"/documents/{doc_id}?chunk={chunk['ordinal']}",
                         follow_redirects=False)
        assert old.status_code == 302 and old.headers["location"] == chunk["url"]
        assert chunk_of(chunk["url"]) == chunk["id"]
        page = client.get(chunk["url"])
        assert cited_text(page.text) == flat(document["text"][chunk["start"]:chunk["end"]])
    # a position past the end, or an id of another document: the page, nothing highlighted
    other = client.get("/api/documents/hostile.md").json()["chunks"][0]["id"]
    for missing in ("999", other):
        page = client.get(f"/documents/{doc_id}", params={"chunk": missing})
        assert page.status_code == 200 and "mark" not in page.text.split("<main", 1)[1]
        assert "no longer in this document" in page.text


def test_viewer_without_a_chunk_highlights_nothing(client: TestClient) -> None:
    page = client.get("/documents/collaboration-in-germany.txt")
    assert page.status_code == 200 and '<h1 lang="en">Collaboration in Germany</h1>' in page.text
    assert "mark" not in page.text.split("<main", 1)[1]


def test_viewer_escapes_document_text(client: TestClient) -> None:
    page = client.get("/documents/hostile.md?chunk=0")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '<h1 lang="en">Hostile page</h1>' in page.text


def test_viewer_unknown_or_overlong_chunk_parameter(client: TestClient) -> None:
    unknown = client.get("/documents/hostile.md?chunk=abc")
    assert unknown.status_code == 200 and "no longer in this document" in unknown.text
    assert client.get("/documents/hostile.md?chunk=-1").status_code == 200
    assert client.get("/documents/hostile.md?chunk=" + "9" * 1001).status_code == 422


def test_missing_document_page_is_html_for_browsers(client: TestClient) -> None:
    page = client.get("/documents/nope.txt", headers={"accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "no document with that id" in page.text


# ---------------------------------------------------------------------------- chat page


def test_chat_page_renders_without_inline_script(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'aria-live="polite"' in page.text and '<label for="question">' in page.text
    assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []
    assert re.findall(r"\son[a-z]+\s*=", page.text) == []
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/static/chat.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_assets_come_from_the_installed_package() -> None:
    assert (ASSETS / "templates" / "chat.html").is_file()
    assert (ASSETS / "static" / "chat.js").is_file()


def test_form_post_answers_without_javascript_and_keeps_the_conversation(
    client: TestClient,
) -> None:
    first = client.post("/", data={"question": "who do I contact about biobank samples"},
                        follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/#turn-")
    client.post("/", data={"question": "and their phone number?"})
    page = client.get("/")  # a refresh
    assert page.text.count('class="turn"') == 2
    assert "who do I contact about biobank samples" in page.text
    assert 'class="card' in page.text and "Answered in" in page.text
    conversation = client.cookies.get(CONVERSATION_COOKIE)
    turns = client.app.state.conversations.turns(conversation)  # type: ignore[attr-defined]
    assert turns[1].history == ["who do I contact about biobank samples"]


def test_form_post_errors_render_the_page(client: TestClient) -> None:
    page = client.post("/", data={"question": "  "})
    assert page.status_code == 422 and "The question is empty" in page.text
    bad_k = client.post("/", data={"question": "biobank", "k": "lots"})
    assert bad_k.status_code == 422 and "whole number" in bad_k.text


def test_form_post_from_another_site_is_refused(client: TestClient) -> None:
    response = client.post("/", data={"question": "biobank"},
                           headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    same_site = client.post("/", data={"question": "biobank"},
                            headers={"sec-fetch-site": "same-site", "origin": "null"})
    assert same_site.status_code == 403  # another port of this host is another site
    assert client.get("/").text.count('class="turn"') == 0
    fine = client.post("/", data={"question": "biobank"},
                       headers={"sec-fetch-site": "same-origin", "origin": "null"})
    assert fine.status_code == 200 and client.get("/").text.count('class="turn"') == 1


def test_question_is_escaped_on_the_page(client: TestClient) -> None:
    client.post("/", data={"question": "<script>alert(1)</script>"})
    client.post("/", data={"question": '"><img src=x onerror=alert(1)>'})
    page = client.get("/")
    assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_api_turns_from_the_chat_script_survive_a_refresh(client: TestClient) -> None:
    response = client.post("/api/ask", json={"question": "biobank samples"},
                           headers={CHAT_HEADER: "1"})
    assert response.headers[TURN_HEADER]
    assert "biobank samples" in client.get("/").text
    plain = client.post("/api/ask", json={"question": "plain api call"})
    assert TURN_HEADER.lower() not in plain.headers
    assert "plain api call" not in client.get("/").text


def test_chat_script_gets_the_turn_the_page_renders(client: TestClient) -> None:
    first = client.post("/", data={"question": "who do I contact about biobank samples"},
                        headers={CHAT_HEADER: "1"})
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    fragment = first.text.strip()
    assert fragment.startswith(f'<article class="turn" id="turn-{first.headers[TURN_HEADER]}"')
    assert fragment.endswith("</article>") and "<html" not in fragment
    assert fragment in client.get("/").text  # the same card as after a refresh
    follow_up = client.post("/", data={"question": "and their phone number?"},
                            headers={CHAT_HEADER: "1"})
    assert follow_up.status_code == 200
    turns = client.app.state.conversations.turns(  # type: ignore[attr-defined]
        client.cookies.get(CONVERSATION_COOKIE))
    assert turns[1].history == ["who do I contact about biobank samples"]
    empty = client.post("/", data={"question": " "}, headers={CHAT_HEADER: "1"})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    elsewhere = client.post("/", data={"question": "biobank"},
                            headers={CHAT_HEADER: "1", "origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "another site" in elsewhere.json()["detail"]


def test_clear_starts_a_new_conversation(client: TestClient) -> None:
    client.post("/", data={"question": "biobank samples"})
    assert client.post("/clear", follow_redirects=False).status_code == 303
    page = client.get("/").text
    assert 'class="turn"' not in page
    assert 'id="clear-form" method="post" action="/clear" hidden' in page


def test_answer_card_renders_contacts_conflicts_and_abstention(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_answer(searcher: Any, question: str, k: int, mode: str, history: Any) -> Answer:
        hits = search_passages(searcher, "biobank coordinator", k=3, mode="lexical")
        abstained = question.startswith("unanswerable")
        return Answer(
            question=question, query=question, abstained=abstained,
            best_sentence=None if abstained else max(hits[0].text.split("\n"), key=len),
            best_span=None, hits=hits,
            contacts=[] if abstained else [
                Contact("Biobank <coordinator>", "biobank@ki.se", "08-524 820 03", 0,
                        hits[0].citation)],
            conflicts=[] if abstained else [Conflict("the Charité MoU", (
                ("News › Charité", "signed 17 October 2023"),
                ("Germany › Charité", "initiated in 2024")))],
        )

    monkeypatch.setattr(routes_ask, "answer_question", fake_answer)
    client.post("/", data={"question": "who runs the biobank"})
    client.post("/", data={"question": "unanswerable: Japan"})
    page = client.get("/").text
    assert '<a href="mailto:biobank@ki.se">biobank@ki.se</a>' in page
    assert '<a href="tel:0852482003">08-524 820 03</a>' in page
    assert "Biobank &lt;coordinator&gt;" in page
    assert "The sources disagree about the Charité MoU" in page
    assert "signed 17 October 2023" in page and "initiated in 2024" in page
    assert "<mark>" in page and re.search(r"More sources \(\d\)", page)
    assert "The documents don't answer this." in page and "Possibly related" in page
    body = ask(client, "who runs the biobank")
    assert body["contacts"][0]["email"] == "biobank@ki.se"
    assert body["contacts"][0]["url"] == body["passages"][0]["url"]
    assert body["conflicts"][0]["statements"][1] == {
        "citation": "Germany › Charité", "sentence": "initiated in 2024", "date": None,
        "url": None}
    assert body["contacts"][0]["role"] is None and body["conflicts"][0]["note"] is None


# ---------------------------------------------------------------------------- feedback


def test_feedback_form_and_export(client: TestClient, settings: Settings,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client.post("/", data={"question": "biobank samples coordinator"})
    turn = client.app.state.conversations.turns(  # type: ignore[attr-defined]
        client.cookies.get(CONVERSATION_COOKIE))[0]
    response = client.post("/feedback", data={"turn_id": turn.id, "rating": "up"},
                           follow_redirects=False)
    assert response.status_code == 303
    assert "Thanks for the feedback" in client.get("/").text
    assert client.post("/feedback", data={"turn_id": "nope", "rating": "up"}).status_code == 404
    assert client.post("/feedback", data={"turn_id": turn.id, "rating": "meh"}).status_code == 404
    scripted = client.post("/feedback", data={"turn_id": turn.id, "rating": "down"},
                           headers={CHAT_HEADER: "1"})
    assert scripted.status_code == 204
    api = client.post("/api/feedback", json={
        "rating": "up", "question": "Who coordinates Japan?", "abstained": True})
    assert api.status_code == 204
    assert client.post("/api/feedback", json={"rating": "meh", "question": "q"}).status_code == 422

    lines = (settings.data_dir / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    from collab_qa.cli import app as cli

    monkeypatch.setenv("COLLAB_QA_DATA_DIR", str(settings.data_dir))
    exported = CliRunner().invoke(cli, ["feedback", "export", "--include-down"])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in exported.output.splitlines()]
    by_question = {row["question"]: row for row in rows}
    assert by_question["Who coordinates Japan?"]["answers"] == []
    review = by_question["biobank samples coordinator"]  # the later 👎 replaced the 👍
    assert review["id"].startswith("review-") and review["answers"] == []
    only_up = CliRunner().invoke(cli, ["feedback", "export"])
    assert [json.loads(line)["question"] for line in only_up.output.splitlines()] == [
        "Who coordinates Japan?"]


# ---------------------------------------------------------------------------- reindex


def test_documents_page_lists_documents_and_skipped_files(client: TestClient) -> None:
    page = client.get("/documents")
    assert page.status_code == 200
    assert "Support for industry collaborations" in page.text and "broken.txt" in page.text
    assert 'action="/documents/reindex"' in page.text and 'name="token"' not in page.text


def test_reindex_from_loopback_switches_the_index(client: TestClient, settings: Settings) -> None:
    before = client.get("/readyz").json()["index_version"]
    (settings.corpus_dir / "new.md").write_text("# Okapi\n\nThe okapi unit is in Solna.\n",
                                                encoding="utf-8")
    body = client.post("/api/reindex").json()
    assert body["added"] == ["new.md"] and body["index_version"] != before
    assert body["embedded_chunks"] >= 1 and body["lexical_rebuilt"] is False
    assert body["sparse_added_chunks"] == 0
    assert client.get("/readyz").json()["index_version"] == body["index_version"]
    assert ask(client, "okapi unit", mode="lexical")["passages"][0]["doc_id"] == "new.md"
    form = client.post("/documents/reindex", follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"].startswith("/documents?rebuilt=")
    assert "The index was rebuilt" in client.get(form.headers["location"]).text


def test_reindex_from_another_machine_needs_the_token(
    settings: Settings, make_app_client: MakeAppClient
) -> None:
    with make_app_client(settings, client=REMOTE) as remote:
        assert remote.post("/api/reindex").status_code == 403
        assert "Rebuild index" not in remote.get("/documents").text  # it would be refused
    guarded = settings.model_copy(update={"admin_token": "s3cret-token"})
    with make_app_client(guarded, client=REMOTE) as remote:
        assert remote.post("/api/reindex").status_code == 403
        assert 'name="token"' in remote.get("/documents").text
        wrong = remote.post("/api/reindex", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403 and "COLLAB_QA_ADMIN_TOKEN" in wrong.json()["detail"]
        right = remote.post("/api/reindex", headers={"authorization": "Bearer s3cret-token"})
        assert right.status_code == 200 and right.json()["up_to_date"] is True
        form = remote.post("/documents/reindex", data={"token": "s3cret-token"},
                           follow_redirects=False)
        assert form.status_code == 303


def test_reindex_form_from_another_site_is_refused(client: TestClient) -> None:
    response = client.post("/documents/reindex", headers={"origin": "http://evil.example"})
    assert response.status_code == 403


def test_reindex_while_another_build_holds_the_lock_is_409(
    settings: Settings, make_app_client: MakeAppClient
) -> None:
    from filelock import FileLock

    from collab_qa.index import LOCK_FILE

    patient = settings.model_copy(update={"build_lock_timeout": 0.0})
    with make_app_client(patient) as client, FileLock(
        str(settings.index_dir / LOCK_FILE)
    ):
        response = client.post("/api/reindex")
    assert response.status_code == 409 and "Another build" in response.json()["detail"]


def test_reindex_with_a_missing_corpus_is_400(
    settings: Settings, make_app_client: MakeAppClient, tmp_path: Path
) -> None:
    gone = settings.model_copy(update={"corpus_dir": tmp_path / "gone"})
    with make_app_client(gone) as client:
        response = client.post("/api/reindex")
    assert response.status_code == 400 and "does not exist" in response.json()["detail"]


# ---------------------------------------------------------------------------- live index


def test_server_follows_an_index_built_elsewhere(client: TestClient, settings: Settings,
                                                 fake_embedder: FakeEmbedder) -> None:
    before = ask(client, "biobank")["index_version"]
    (settings.corpus_dir / "extra.md").write_text("# Lemur\n\nLemur grants open in May.\n",
                                                  encoding="utf-8")
    version = rebuild(settings, fake_embedder)  # what `collab-qa index` does
    after = ask(client, "lemur grants", mode="lexical")
    assert after["index_version"] == version != before
    assert after["passages"][0]["doc_id"] == "extra.md"


def test_a_broken_new_index_keeps_the_old_one(client: TestClient, settings: Settings,
                                              fake_embedder: FakeEmbedder) -> None:
    good = ask(client, "biobank")["index_version"]
    broken = settings.index_dir / "v99990101T000000000000Z-broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    (settings.index_dir / CURRENT_FILE).write_text(broken.name + "\n", encoding="utf-8")
    assert ask(client, "biobank")["index_version"] == good
    ready = client.get("/readyz").json()
    assert ready["index_version"] == good and "manifest.json" in ready["reload_error"]
    assert "could not be loaded" in client.get("/documents").text
    (settings.index_dir / CURRENT_FILE).write_text(good + "\n", encoding="utf-8")
    (settings.corpus_dir / "fix.md").write_text("# Fixed\n\nAll good.\n", encoding="utf-8")
    fixed = rebuild(settings, fake_embedder)
    assert ask(client, "biobank")["index_version"] == fixed
    assert client.get("/readyz").json()["reload_error"] is None


def test_a_request_in_flight_keeps_its_index(settings: Settings,
                                             fake_embedder: FakeEmbedder) -> None:
    live = LiveIndex(settings, fake_embedder)
    in_flight = live.current()
    for name in ("a.md", "b.md", "c.md"):  # older versions get deleted by later builds
        (settings.corpus_dir / name).write_text(f"# {name}\n\nText of {name}.\n", "utf-8")
        rebuild(settings, fake_embedder)
    assert live.current().version != in_flight.version
    hits = search_passages(in_flight.searcher, "biobank coordinator", k=3)
    assert hits and all(h.doc_id in in_flight.searcher.index.documents for h in hits)


def test_watch_reindexes_changed_corpus_files(settings: Settings,
                                              make_app_client: MakeAppClient) -> None:
    with make_app_client(settings, watch=True) as client:
        before = client.get("/readyz").json()["index_version"]
        time.sleep(0.5)  # let the watcher start before the change
        (settings.corpus_dir / "watched.md").write_text("# Tapir\n\nTapir day is Friday.\n",
                                                        encoding="utf-8")
        deadline = time.monotonic() + 30
        version = before
        while version == before and time.monotonic() < deadline:
            time.sleep(0.2)
            version = client.get("/readyz").json()["index_version"]
        assert version != before, "the watcher did not re-index within 30 s"
        assert ask(client, "tapir day", mode="lexical")["passages"][0]["doc_id"] == "watched.md"


# ---------------------------------------------------------------------------- OpenAPI


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/api/ask", "/api/documents", "/api/documents/{doc_id}", "/api/reindex",
            "/api/feedback", "/healthz", "/readyz"} <= set(schema["paths"])
    assert "/" not in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_feedback_that_cannot_be_saved_is_503(settings: Settings, tmp_path: Path,
                                              make_app_client: MakeAppClient) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder should be", encoding="utf-8")
    broken = settings.model_copy(update={"data_dir": blocker})
    with make_app_client(broken) as client:
        response = client.post("/api/feedback", json={"rating": "up", "question": "q"})
    assert response.status_code == 503 and "could not be saved" in response.json()["detail"]
