"""The chat in a real Chromium (Playwright) against a real uvicorn server with the real model.

Debian's Chromium is used (Playwright's own browser download does not work here); where it is
missing these tests skip with the reason. Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collab_qa.embedding import SentenceTransformerEmbedder
from collab_qa.settings import Settings
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, record_and_dismiss
from tests.conftest import MakeAppClient

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CORPUS = Path(__file__).resolve().parent.parent / "corpus"
BIOBANK = "who do I contact about biobank samples"
WAIT_MS = 30_000

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def server(real_embedder: SentenceTransformerEmbedder, corpus_index_dir: Path,
           tmp_path_factory: pytest.TempPathFactory,
           make_app_client: MakeAppClient) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, answering from the real corpus index."""
    settings = Settings(corpus_dir=CORPUS, index_dir=corpus_index_dir,
                        data_dir=tmp_path_factory.mktemp("browser-data"), _env_file=None)
    with make_app_client(settings, real_embedder, server=True) as http:
        yield str(http.base_url).rstrip("/")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.skip("the playwright package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (CI installs it with apt-get)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_page(browser: Browser, **context: Any) -> Page:
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def ask(page: Page, question: str) -> None:
    before = page.locator(".turn").count()
    page.fill("#question", question)
    page.press("#question", "Enter")  # the keyboard, not the mouse
    expect(page.locator(".turn")).to_have_count(before + 1, timeout=WAIT_MS)


def shot(page: Page, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def test_contact_card_links_to_the_highlighted_passage(browser: Browser, server: str) -> None:
    page = new_page(browser, viewport={"width": 1000, "height": 800})
    page.goto(server)
    ask(page, BIOBANK)
    card = page.locator(".turn").last
    contact = card.locator(".contact", has_text="biobank@ki.se").first
    expect(contact.locator('a[href="mailto:biobank@ki.se"]')).to_be_visible()
    citation = card.locator("blockquote + .cite a")  # the contact's passage, cited once
    cited_url = re.compile(r"^/documents/[^?#]+\?chunk=[^#&]+#chunk-\S+$")
    expect(citation).to_have_attribute("href", cited_url)
    expect(card.locator("mark")).to_have_count(1)
    expect(card.locator("details.more")).not_to_have_attribute("open", "")
    expect(card.locator(".took")).to_contain_text("ms")
    inserted = card.evaluate("turn => turn.outerHTML")
    page.reload()  # the card chat.js inserted is the one the server renders
    assert page.locator(".turn").last.evaluate("turn => turn.outerHTML") == inserted
    shot(page, "chat-contact-card.png")

    with page.context.expect_page() as opened:  # citations open in a new tab
        citation.click()
    viewer = opened.value
    viewer.wait_for_url(re.compile(r"/documents/industry-collaboration-support\.txt\?chunk="))
    cited = viewer.locator("mark.cited", has_text="biobank@ki.se")
    expect(cited).to_be_visible()
    expect(cited).to_be_in_viewport()
    expect(viewer.locator("h1")).to_have_text("Support for industry collaborations")
    shot(viewer, "viewer-cited-passage.png", full_page=False)


def test_follow_up_feedback_and_refresh(browser: Browser, server: str) -> None:
    page = new_page(browser)
    page.goto(server)
    ask(page, BIOBANK)
    with page.expect_request(lambda sent: sent.method == "POST") as request:
        ask(page, "and their phone number?")
    assert request.value.headers.get("x-collab-qa-chat") == "1"  # the script, not a reload
    assert request.value.url.rstrip("/") == server
    follow_up = page.locator(".turn").last
    expect(follow_up.locator('a[href^="tel:"]').first).to_be_visible()
    expect(follow_up).to_contain_text("08-524 820 03")

    follow_up.locator('button[value="up"]').click()
    expect(follow_up.locator(".thanks")).to_have_text("Thanks for the feedback.")
    shot(page, "chat-follow-up.png")

    page.reload()
    expect(page.locator(".turn")).to_have_count(2)
    expect(page.locator(".turn").last.locator(".thanks")).to_be_visible()
    page.get_by_role("button", name="Start a new conversation").click()
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.locator("#clear-form")).to_be_hidden()


def test_hostile_questions_are_shown_as_text(browser: Browser, server: str) -> None:
    page = new_page(browser)
    dialogs: list[str] = []
    page.on("dialog", record_and_dismiss(dialogs))
    page.goto(server)
    hostile = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
    for question in hostile:
        ask(page, question)
    questions = page.locator(".turn .question")
    for position, question in enumerate(hostile):
        expect(questions.nth(position)).to_contain_text(question)
    page.reload()  # now rendered by the server
    for position, question in enumerate(hostile):
        expect(questions.nth(position)).to_contain_text(question)
    shot(page, "chat-hostile-input.png")
    assert dialogs == []
    assert page.locator('img[src="x"]').count() == 0


def test_the_page_answers_with_javascript_disabled(browser: Browser, server: str) -> None:
    page = new_page(browser, java_script_enabled=False)
    page.goto(server)
    page.fill("#question", BIOBANK)
    with page.expect_navigation():
        page.click("#ask-button")
    expect(page.locator(".turn")).to_have_count(1)
    expect(page.locator(".contact", has_text="biobank@ki.se").first).to_be_visible()
    page.locator(".more summary").click()  # <details> opens without JavaScript
    expect(page.locator(".more .source").first).to_be_visible()
    shot(page, "chat-no-javascript.png")


def test_readable_on_a_360_px_screen(browser: Browser, server: str) -> None:
    page = new_page(browser, viewport={"width": 360, "height": 740})
    page.goto(server)
    ask(page, BIOBANK)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shot(page, "chat-360px.png")
    with page.context.expect_page() as opened:
        page.locator('.turn .card a[href*="#chunk-"]').first.click()
    viewer = opened.value
    viewer.wait_for_url(re.compile(r"/documents/"))
    expect(viewer.locator("mark.cited").first).to_be_in_viewport()
    assert viewer.evaluate("document.documentElement.scrollWidth") <= 360
    shot(viewer, "viewer-360px.png", full_page=False)


def test_conflicting_sources_are_shown_as_the_api_reports_them(browser: Browser,
                                                               server: str) -> None:
    page = new_page(browser, viewport={"width": 1000, "height": 900})
    page.goto(server)
    question = "When was the MoU with Charité signed?"
    ask(page, question)
    conflicts = page.request.post(server + "/api/ask", data={"question": question}).json()[
        "conflicts"]
    card = page.locator(".turn").last
    expect(card.locator(".conflict")).to_have_count(len(conflicts))
    for conflict in conflicts:
        for statement in conflict["statements"]:
            expect(card.locator(".conflict")).to_contain_text(statement["sentence"])
    shot(page, "chat-conflicting-sources.png")


def test_documents_page(browser: Browser, server: str) -> None:
    page = new_page(browser)
    page.goto(server + "/documents")
    expect(page.locator("tbody tr")).to_have_count(len(list(CORPUS.iterdir())))
    expect(page.get_by_role("button", name="Rebuild index")).to_be_visible()
    shot(page, "documents.png")


def test_api_docs_render_offline_under_the_csp(browser: Browser, server: str) -> None:
    page = new_page(browser)
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{server}/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() >= 5
    assert not blocked
    shot(page, "api-docs.png", full_page=False)
    page.close()
