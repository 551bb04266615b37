"""The web API with the real model on the real corpus: the answers issue 4 promises.

Uses the session's model and index (tests/conftest.py); nothing here writes to the index.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collab_qa.embedding_st import SentenceTransformerEmbedder
from collab_qa.settings import Settings
from tests.conftest import MakeAppClient

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
BIOBANK = "who do I contact about biobank samples"


@pytest.fixture(scope="module")
def client(real_embedder: SentenceTransformerEmbedder, corpus_index_dir: Path,
           tmp_path_factory: pytest.TempPathFactory,
           make_app_client: MakeAppClient) -> Iterator[TestClient]:
    settings = Settings(corpus_dir=CORPUS, index_dir=corpus_index_dir,
                        data_dir=tmp_path_factory.mktemp("real-data"), _env_file=None)
    with make_app_client(settings, real_embedder) as test:
        yield test


def ask(client: TestClient, question: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/ask", json={"question": question, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_contact_question_gets_a_contact_card_with_its_citation(client: TestClient) -> None:
    body = ask(client, BIOBANK)
    assert not body["abstained"]
    contact = next(c for c in body["contacts"] if c["email"] == "biobank@ki.se")
    assert contact["citation"].startswith("Support for industry collaborations")
    assert contact["url"].startswith("/documents/industry-collaboration-support.txt?chunk=")
    viewer = client.get(contact["url"])
    assert viewer.status_code == 200
    assert "biobank@ki.se" in "".join(viewer.text.split('<mark class="cited">')[1:])


def test_every_contact_shown_is_in_the_cited_text(client: TestClient) -> None:
    for question in (BIOBANK, "who is the contact person for Germany?",
                     "vem kontaktar jag om cancerforskning?", "email address for innovation"):
        body = ask(client, question)
        texts = " ".join(p["text"] for p in body["passages"])
        for contact in body["contacts"]:
            for value in (contact["email"], contact["phone"], contact["name"], contact["role"]):
                assert value is None or value in texts, (question, value)


def test_follow_up_reads_the_previous_question(client: TestClient) -> None:
    body = ask(client, "and their phone number?", history=[BIOBANK])
    assert any(c["phone"] == "08-524 820 03" for c in body["contacts"])
    alone = ask(client, "and their phone number?")
    assert not any(c["phone"] == "08-524 820 03" for c in alone["contacts"])


def test_best_sentence_is_marked_in_the_top_passage(client: TestClient) -> None:
    body = ask(client, BIOBANK)
    assert body["best_sentence"] and body["best_sentence"] in body["passages"][0]["text"]
    client.post("/", data={"question": BIOBANK})
    # A bullet line is shown as a list item, without its "- ".
    shown = body["best_sentence"].removeprefix("- ")
    assert f"<mark>{html.escape(shown, quote=False)}</mark>" in client.get("/").text


def test_unanswerable_question_abstains_with_possibly_related(client: TestClient) -> None:
    body = ask(client, "who coordinates our collaboration with Japan?")
    assert body["abstained"] and body["best_sentence"] is None and not body["contacts"]
    assert body["passages"]  # shown as "possibly related"


def test_sources_that_date_two_events_show_no_conflict(client: TestClient) -> None:
    # The signing and the start of the collaboration are two events with two dates.
    body = ask(client, "When was the MoU with Charité signed?")
    assert body["conflicts"] == []
    client.post("/", data={"question": "When was the MoU with Charité signed?"})
    assert 'class="conflict"' not in client.get("/").text
