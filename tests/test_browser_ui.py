"""An everyday user's walk through the chat in a real Chromium, in English and Swedish: the
first screen, the conversation kept across citations and Back, the language switch, the
answer card, the Advanced disclosure, sizes and contrast as drawn, and an axe-core scan.

Screenshots at 1280 px and 390 px go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests import test_browser as shared
from tests.test_ui import contrast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

server = shared.server
browser = shared.browser
new_page, ask, shot, WAIT_MS = shared.new_page, shared.ask, shared.shot, shared.WAIT_MS
BIOBANK = shared.BIOBANK
SWEDISH_DOC = "charite-mou-news-sv.txt"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
LOCALES = {"en": "en-GB", "sv": "sv-SE"}

try:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - the dev extra installs them
    Axe = None


def hex_of(css_colour: str) -> str:
    """``rgb(11, 92, 173)`` -> ``#0b5cad``."""
    channels = [int(value) for value in re.findall(r"\d+", css_colour)[:3]]
    return "#" + "".join(f"{value:02x}" for value in channels)


def style(page: Page, selector: str, prop: str) -> str:
    return str(page.locator(selector).first.evaluate(
        f"element => getComputedStyle(element).{prop}"))


def page_in(browser: Browser, language: str, **context: Any) -> Page:
    return new_page(browser, locale=LOCALES[language], **context)


# ---------------------------------------------------------------------------- 1. first screen


@pytest.mark.parametrize("language", ["en", "sv"])
@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_first_screen(browser: Browser, server: str, language: str, width: str) -> None:
    page = page_in(browser, language, viewport=WIDTHS[width])
    page.goto(server)
    examples = page.locator(".example-question")
    assert examples.count() >= 3
    heading = {"en": "Try asking", "sv": "Prova att fråga"}[language]
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    documents = page.request.get(server + "/api/documents").json()["documents"]
    expect(page.locator(".covered li")).to_have_count(len(documents))
    expect(page.locator(".covered-summary")).to_contain_text(str(len(documents)))
    expect(page.locator(".scope")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS[width]["width"]
    shot(page, f"first-screen-{language}-{width}.png")

    question = examples.first.inner_text()
    examples.first.click()
    expect(page.locator(".turn")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator(".turn .question")).to_contain_text(question)
    shot(page, f"answer-{language}-{width}.png")


def test_an_example_question_is_asked_without_javascript(browser: Browser, server: str) -> None:
    page = new_page(browser, java_script_enabled=False)
    page.goto(server)
    question = page.locator(".example-question").nth(1).inner_text()
    with page.expect_navigation():
        page.locator(".example-question").nth(1).click()
    expect(page.locator(".turn .question")).to_contain_text(question)


# ---------------------------------------------------------------------------- 2. conversation


def test_citations_open_in_a_new_tab_and_back_keeps_the_conversation(
    browser: Browser, server: str
) -> None:
    page = new_page(browser)
    page.goto(server)
    ask(page, BIOBANK)
    ask(page, "and their phone number?")
    citation = page.locator(".turn").first.locator("blockquote + .cite a")
    with page.context.expect_page() as opened:
        citation.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    expect(viewer.locator("mark.cited").first).to_be_in_viewport()
    expect(page.locator(".turn")).to_have_count(2)  # the chat tab did not move

    page.get_by_role("link", name="Documents", exact=True).click()
    page.wait_for_url(re.compile(r"/documents$"))
    page.go_back()
    expect(page.locator(".turn")).to_have_count(2)
    page.reload()
    expect(page.locator(".turn")).to_have_count(2)


# ---------------------------------------------------------------------------- 3. languages


def test_accept_language_and_the_switch(browser: Browser, server: str) -> None:
    page = page_in(browser, "sv")
    page.goto(server)
    assert page.locator("html").get_attribute("lang") == "sv"
    expect(page.get_by_label("Din fråga")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_label("Your question")).to_be_visible()
    page.get_by_role("link", name="Documents", exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")  # the switch is remembered
    page.get_by_role("link", name="Svenska").click()
    expect(page.get_by_role("heading", name="Dokument", exact=True)).to_be_visible()


def test_swedish_text_is_marked_as_swedish(browser: Browser, server: str) -> None:
    page = page_in(browser, "en", viewport=WIDTHS["desktop"])
    page.goto(f"{server}/documents/{SWEDISH_DOC}")
    expect(page.locator(".document-text")).to_have_attribute("lang", "sv")
    expect(page.locator("h1")).to_have_attribute("lang", "sv")
    page.goto(server)
    ask(page, "När undertecknade KI och Charité avtalet?")
    card = page.locator(".turn").last
    expect(card.locator(".passage-text")).to_have_attribute("lang", "sv")
    shot(page, "answer-swedish-passage.png")


# ---------------------------------------------------------------------------- 4, 5. card


def test_answer_card_layout_and_advanced(browser: Browser, server: str) -> None:
    page = new_page(browser, viewport=WIDTHS["desktop"])
    page.goto(server)
    expect(page.locator("#mode")).to_be_hidden()
    page.get_by_text("Advanced").first.click()
    expect(page.locator("#mode")).to_be_visible()
    expect(page.locator("#k")).to_be_visible()
    ask(page, BIOBANK)
    card = page.locator(".turn").last
    expect(card.locator("h1, h2, h3, h4, h5, h6")).to_have_count(1)
    expect(card.get_by_role("heading")).to_contain_text(BIOBANK)
    lead = card.locator(".lead")
    expect(lead).to_be_visible()
    lead_top = lead.bounding_box()["y"]  # type: ignore[index]
    assert lead_top < card.locator(".passage").bounding_box()["y"]  # type: ignore[index]
    expect(card.locator(".passage ul li").first).to_be_visible()
    items = card.locator(".passage li").all_inner_texts()
    assert items and not any(item.startswith("-") for item in items)
    top_url = card.locator("blockquote + .cite a").get_attribute("href")
    expect(card.locator(f'a[href="{top_url}"]')).to_have_count(1)
    expect(card.locator(".took")).to_be_hidden()
    card.locator(".advanced summary").click()
    expect(card.locator(".took")).to_be_visible()
    expect(card.locator(".took")).to_contain_text("ms")
    card.locator(".more summary").click()
    expect(card.locator(".more .source").first).to_be_visible()
    shot(page, "answer-card-open.png")


def test_rebuild_is_shown_on_this_machine_and_docs_link_back(browser: Browser,
                                                             server: str) -> None:
    page = new_page(browser)
    page.goto(server + "/documents")
    expect(page.get_by_role("button", name="Rebuild index")).to_be_visible()
    page.goto(server + "/docs")
    page.get_by_role("link", name="Back to the chat").click()
    page.wait_for_url(server + "/")


# ---------------------------------------------------------------------------- 6. accessibility


def test_sizes_and_contrast_as_drawn(browser: Browser, server: str) -> None:
    page = new_page(browser, viewport=WIDTHS["phone"])
    page.goto(server)
    background = hex_of(style(page, ".ask", "backgroundColor"))
    border = hex_of(style(page, "#question", "borderTopColor"))
    assert contrast(border, background) >= 3 and contrast(border, "#ffffff") >= 3
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    ring = hex_of(page.evaluate("getComputedStyle(document.activeElement).outlineColor"))
    assert contrast(ring, background) >= 3 and contrast(ring, "#ffffff") >= 3
    ask(page, BIOBANK)
    for button in page.locator(".turn .feedback button").all():
        box = button.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(server + str(icon)).ok
    assert page.request.head(server + "/").ok

    with page.context.expect_page() as opened:
        page.locator(".turn blockquote + .cite a").first.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    viewer.set_viewport_size({"width": 390, "height": 844})
    outline = hex_of(style(viewer, "mark.cited", "outlineColor"))
    paper = hex_of(style(viewer, ".document", "backgroundColor"))
    assert style(viewer, "mark.cited", "outlineStyle") == "solid"
    assert contrast(outline, paper) >= 3
    shot(viewer, "viewer-phone.png", full_page=False)
    viewer.set_viewport_size({"width": 1280, "height": 900})
    shot(viewer, "viewer-desktop.png", full_page=False)


def _scanned_pages(page: Page, server: str) -> dict[str, str]:
    """The four pages to scan: the first screen, an answer, the list and a cited document."""
    page.goto(server)
    ask(page, BIOBANK)
    cited = page.locator(".turn blockquote + .cite a").first.get_attribute("href")
    return {"first screen": "/", "answer": "/", "documents": "/documents",
            "document": str(cited)}


@pytest.mark.parametrize("language", ["en", "sv"])
def test_axe_finds_no_serious_violations(browser: Browser, server: str, language: str) -> None:
    if Axe is None:
        pytest.skip("the axe-playwright-python package is not installed")
    axe = Axe()
    first = page_in(browser, language, viewport=WIDTHS["desktop"])
    first.goto(server)
    results = {"first screen": axe.run(first).response}
    page = page_in(browser, language, viewport=WIDTHS["desktop"])
    for name, path in _scanned_pages(page, server).items():
        if name == "first screen":
            continue
        page.goto(server + path)
        page.locator("main").wait_for()
        results[name] = axe.run(page).response
    first.evaluate("document.body.append(document.createElement('img'))")  # no alt text
    broken = [v["id"] for v in axe.run(first).response["violations"] if v["impact"] == "critical"]
    assert "image-alt" in broken, "the axe scan does not report a missing alt text"
    found = [f"{name}: {violation['id']} ({violation['impact']}): {violation['help']}"
             for name, response in results.items() for violation in response["violations"]
             if violation["impact"] in ("serious", "critical")]
    assert not found, "\n".join(found)
