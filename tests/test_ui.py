"""The page an everyday user meets, without a browser: the first screen, the interface in
Swedish and English, the answer card's layout, the colours' contrast, HEAD and the favicon.
The same findings in a real Chromium are in test_browser_ui.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from fastapi.testclient import TestClient

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_index
from collab_qa.settings import Settings
from collab_qa.web.i18n import LANGUAGE_COOKIE, accepted_languages, catalogues
from collab_qa.web.views import passage_blocks, plain_sentence
from tests.conftest import REMOTE, MakeAppClient

ROOT = Path(__file__).resolve().parent.parent
STYLE = (ROOT / "web" / "static" / "style.css").read_text(encoding="utf-8")
SWEDISH_DOC = "charite-mou-news-sv.txt"
SAME_IN_SWEDISH = ("hybrid", "index %(version)s")


@pytest.fixture
def settings(tmp_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Settings:
    index_dir = tmp_path / "index"
    build_index(tmp_corpus, index_dir, fake_embedder, ChunkerConfig())
    return Settings(corpus_dir=tmp_corpus, index_dir=index_dir, data_dir=tmp_path / "data",
                    _env_file=None)


@pytest.fixture
def client(settings: Settings, make_app_client: MakeAppClient) -> Iterator[TestClient]:
    with make_app_client(settings) as test_client:
        yield test_client


def html_lang(page: str) -> str:
    match = re.search(r'<html lang="(\w+)">', page)
    assert match, "the page has no <html lang>"
    return match.group(1)


# ---------------------------------------------------------------------------- first screen


def test_first_screen_offers_example_questions_that_ask_themselves(client: TestClient) -> None:
    page = client.get("/").text
    examples = re.findall(r'<form method="post" action="/" class="example">\s*'
                          r'<input type="hidden" name="question" value="([^"]+)">', page)
    assert len(examples) >= 3
    answered = client.post("/", data={"question": examples[0].replace("&#34;", '"')})
    assert answered.status_code == 200 and 'class="turn"' in answered.text


def test_first_screen_lists_the_documents_covered(client: TestClient,
                                                  settings: Settings) -> None:
    page = client.get("/").text
    documents = client.get("/api/documents").json()
    titles = [doc["title"] for doc in documents["documents"]]
    assert f"{len(titles)} documents, last indexed" in page
    assert all(title.replace("&", "&amp;") in page for title in titles)
    assert re.search(r"last indexed \d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert "It cannot answer from anything else" in page


def test_configured_example_questions_are_offered_as_given(
    settings: Settings, make_app_client: MakeAppClient
) -> None:
    configured = ["How do I start a project?", "Who signs agreements?", "Where is it kept?"]
    with make_app_client(settings.model_copy(update={"example_questions": configured})) as app:
        page = app.get("/").text
    assert all(f'value="{question}"' in page for question in configured)


def test_the_first_screen_is_replaced_by_the_conversation(client: TestClient) -> None:
    client.post("/", data={"question": "biobank samples"})
    page = client.get("/").text
    assert 'id="intro"' not in page and 'class="turn"' in page


# ---------------------------------------------------------------------------- languages


def test_accept_language_picks_swedish(client: TestClient) -> None:
    page = client.get("/", headers={"accept-language": "sv-SE,sv;q=0.9,en;q=0.8"})
    assert html_lang(page.text) == "sv"
    assert "Fråga dokumenten" in page.text and "Prova att fråga" in page.text
    assert "Accept-Language" in page.headers["vary"]
    english = client.get("/", headers={"accept-language": "de-DE,en;q=0.5"})
    assert html_lang(english.text) == "en" and "Try asking" in english.text


def test_the_switch_overrides_accept_language_and_is_remembered(client: TestClient) -> None:
    switched = client.get("/documents?lang=en", headers={"accept-language": "sv"})
    assert html_lang(switched.text) == "en"
    assert switched.cookies.get(LANGUAGE_COOKIE) == "en"
    later = client.get("/", headers={"accept-language": "sv"})
    assert html_lang(later.text) == "en"
    client.cookies.clear()
    client.cookies.set(LANGUAGE_COOKIE, "sv")
    assert html_lang(client.get("/documents").text) == "sv"


def test_the_switch_is_a_visible_link_that_keeps_the_query(client: TestClient) -> None:
    page = client.get("/documents/collaboration-in-germany.txt?chunk=x").text
    assert '<a href="?chunk=x&amp;lang=sv" lang="sv" hreflang="sv">Svenska</a>' in page


def test_an_unknown_language_is_ignored(client: TestClient) -> None:
    page = client.get("/?lang=xx", headers={"accept-language": "sv"})
    assert html_lang(page.text) == "sv" and LANGUAGE_COOKIE not in page.cookies


@pytest.mark.parametrize(("header", "expected"), [
    ("sv-SE,sv;q=0.9,en-US;q=0.8", ["sv", "sv", "en"]),
    ("en;q=0.2, sv;q=0.7", ["sv", "en"]),
    ("fr, sv;q=0", ["fr"]),
    ("", []),
    ("sv;q=abc", []),
])
def test_accept_language_is_read_by_quality(header: str, expected: list[str]) -> None:
    assert accepted_languages(header) == expected


def test_every_interface_string_has_a_swedish_translation() -> None:
    messages = list(extract_from_dir(str(ROOT), method_map=[
        ("src/collab_qa/web/**.py", "python"), ("web/templates/**.html", "jinja2")],
        options_map={"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}))
    swedish = catalogues()["sv"]
    assert len(messages) > 40
    untranslated = []
    for _, _, message, _, _ in messages:
        if isinstance(message, tuple):
            if swedish.ngettext(message[0], message[1], 2) == message[1]:
                untranslated.append(message[0])
        elif swedish.gettext(message) == message and message not in SAME_IN_SWEDISH:
            untranslated.append(message)
    assert not untranslated, f"strings without a Swedish translation: {untranslated}"


def test_swedish_text_carries_lang_sv_in_the_viewer_and_in_answers(client: TestClient) -> None:
    viewer = client.get(f"/documents/{SWEDISH_DOC}").text
    assert '<div class="document-text" lang="sv">' in viewer
    english = client.get("/documents/collaboration-in-germany.txt").text
    assert '<div class="document-text" lang="en">' in english
    listing = client.get("/documents", headers={"accept-language": "sv"}).text
    assert re.search(rf'href="/documents/{re.escape(SWEDISH_DOC)}" lang="sv"', listing)
    assert re.search(r'href="/documents/collaboration-in-germany.txt" lang="en"', listing)
    client.post("/", data={"question": "När undertecknades avtalet med Charité?",
                           "mode": "lexical"})
    card = client.get("/").text
    assert '<div class="passage-text" lang="sv">' in card


# ---------------------------------------------------------------------------- answer card


def test_passage_drops_stray_headings_and_lists_bullets() -> None:
    text = ("About us\n\nWe help researchers.\nContact\n\n- One place\n- Another place\n"
            "Closing words follow here.\n# Next section")
    blocks = passage_blocks(text, "- Another place")
    assert [block.kind for block in blocks] == ["p", "ul", "p"]
    assert blocks[0].lines == [[("We help researchers.", False)]]
    assert blocks[1].lines == [[("One place", False)], [("Another place", True)]]
    assert blocks[2].lines == [[("Closing words follow here.", False)]]


def test_the_lead_is_marked_once_even_when_repeated() -> None:
    blocks = passage_blocks("Say it.\nSay it.", "Say it.")
    assert [hot for block in blocks for line in block.lines for _, hot in line] == [True, False]
    assert plain_sentence(" - A listed sentence. ") == "A listed sentence."


def test_answer_card_has_one_heading_the_lead_first_and_one_citation(
    client: TestClient,
) -> None:
    client.post("/", data={"question": "who do I contact about biobank samples",
                           "mode": "lexical"})
    page = client.get("/").text
    turn = page[page.index('<article class="turn"'):page.index("</article>")]
    assert len(re.findall(r"<h[1-6]", turn)) == 1
    lead = turn.find('class="lead"')
    assert 0 < lead < turn.find('class="passage"')
    top_url = re.search(r'</blockquote>\s*<p class="cite">Source: <a href="([^"]+)"', turn)
    assert top_url and turn.count(f'href="{top_url.group(1)}"') == 1
    assert 'target="_blank" rel="noopener"' in turn
    advanced = turn[turn.index('<details class="advanced">'):]
    assert re.search(r'class="took">Answered in \d+ ms', advanced)


def test_search_options_are_behind_advanced(client: TestClient) -> None:
    page = client.get("/").text
    options = page[page.index('<details class="options">'):page.index("</details>")]
    assert "<summary>Advanced</summary>" in options
    assert 'id="mode"' in options and 'id="k"' in options


# ---------------------------------------------------------------------------- pages


@pytest.mark.parametrize("path", ["/", "/documents", "/documents/collaboration-in-germany.txt",
                                  "/docs", "/favicon.ico", "/static/style.css"])
def test_head_is_allowed_on_the_pages(client: TestClient, path: str) -> None:
    head = client.head(path)
    get = client.get(path)
    assert head.status_code == 200 == get.status_code
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_the_favicon_is_linked_and_served(client: TestClient) -> None:
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").text
    icon = client.get("/favicon.ico")
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")


def test_api_docs_link_back_to_the_app(client: TestClient) -> None:
    page = client.get("/docs").text
    assert '<a href="/">← Back to the chat</a>' in page and '<html lang="en">' in page


def test_rebuild_is_offered_only_to_those_allowed(settings: Settings, client: TestClient,
                                                  make_app_client: MakeAppClient) -> None:
    assert "Rebuild index" in client.get("/documents").text
    with make_app_client(settings, client=REMOTE) as remote:
        assert "Rebuild index" not in remote.get("/documents").text
    guarded = settings.model_copy(update={"admin_token": "a-token"})
    with make_app_client(guarded, client=REMOTE) as remote:
        page = remote.get("/documents").text
        assert "Rebuild index" in page and 'name="token"' in page


# ---------------------------------------------------------------------------- contrast


def _colour(name: str) -> str:
    match = re.search(rf"--{name}:\s*#([0-9a-fA-F]{{6}}|[0-9a-fA-F]{{3}})\b", STYLE)
    assert match, f"--{name} is not in style.css"
    digits = match.group(1)
    return "#" + (digits if len(digits) == 6 else "".join(d * 2 for d in digits))


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance of an sRGB colour."""
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two colours."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_helper_matches_known_ratios() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("part", ["focus", "field-line", "cited-line"])
@pytest.mark.parametrize("background", ["paper", "tint", "cited"])
def test_focus_ring_field_border_and_highlight_reach_3_to_1(part: str, background: str) -> None:
    assert contrast(_colour(part), _colour(background)) >= 3.0
    assert f"var(--{part})" in STYLE


def test_the_focus_ring_and_highlight_outline_use_the_variables() -> None:
    assert re.search(r"focus-visible \{ outline: 3px solid var\(--focus\)", STYLE)
    assert re.search(r"mark\.cited \{[^}]*outline: 2px solid var\(--cited-line\)", STYLE)
    assert re.search(r"\.ask-row input \{[^}]*border: 1px solid var\(--field-line\)", STYLE)
