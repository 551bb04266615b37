"""The interface in English and Swedish: message catalogues, and the language of a request.

The templates are written in English and mark their text with ``_()`` or ``{% trans %}``
(Jinja2's i18n extension). The Swedish strings are in ``locale/sv/LC_MESSAGES/messages.po``;
the catalogue is compiled in memory when the app starts, so there is no build step.
``?lang=sv`` (the switch in the page header) wins and is remembered in a cookie; otherwise the
browser's ``Accept-Language`` picks the language.

Text quoted from the documents keeps the language it is written in: ``text_language`` tells
the templates which ``lang`` to put on a passage or a document.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from importlib.resources import files
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from starlette.requests import Request

from collab_qa.analysis import detect_language

LANGUAGES = ("en", "sv")
LANGUAGE_NAMES = {"en": "English", "sv": "Svenska"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "collab_qa_lang"
LANGUAGE_PARAMETER = "lang"
LOCALE = files("collab_qa") / "locale"


def compile_catalogue(language: str) -> gettext.NullTranslations:
    """The language's ``messages.po`` compiled in memory (English is the source text)."""
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    source = LOCALE / language / "LC_MESSAGES" / "messages.po"
    with source.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


@lru_cache(maxsize=1)
def catalogues() -> dict[str, gettext.NullTranslations]:
    """Every interface language's catalogue, compiled once."""
    return {language: compile_catalogue(language) for language in LANGUAGES}


def accepted_languages(header: str) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (``sv-SE`` -> ``sv``)."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = tag.strip().split("-")[0].lower()
        if language and quality > 0:
            ranked.append((-quality, position, language))
    return [language for _, _, language in sorted(ranked)]


def chosen_language(request: Request) -> str | None:
    """The language picked with the switch (``?lang=``), if it names one we have."""
    value = request.query_params.get(LANGUAGE_PARAMETER, "")
    return value if value in LANGUAGES else None


def request_language(request: Request) -> str:
    """The interface language: the switch, then its cookie, then ``Accept-Language``."""
    chosen = chosen_language(request) or request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    wanted = accepted_languages(request.headers.get("accept-language", ""))
    return next((language for language in wanted if language in LANGUAGES), DEFAULT_LANGUAGE)


@lru_cache(maxsize=4096)
def text_language(text: str, default: str = DEFAULT_LANGUAGE) -> str:
    """``sv`` or ``en``: the language a passage or document is written in (``default`` when
    the text is too short to tell)."""
    return detect_language(text, default)


@pass_context
def _gettext(context: Context, message: str) -> str:
    translations: gettext.NullTranslations = context.get("translations") or NullTranslations()
    return translations.gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    translations: gettext.NullTranslations = context.get("translations") or NullTranslations()
    return translations.ngettext(singular, plural, count)


def install_i18n(env: Environment) -> None:
    """Jinja2's i18n extension, translating into the language of the page being rendered
    (the ``translations`` of its context), so one environment serves both languages."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True)


def page_context(request: Request) -> dict[str, Any]:
    """What every page needs to speak the request's language."""
    language = request_language(request)
    others = [(name, value) for name, value in request.query_params.multi_items()
              if name != LANGUAGE_PARAMETER]
    switch = {code: "?" + urlencode([*others, (LANGUAGE_PARAMETER, code)])
              for code in LANGUAGES}
    return {"lang": language, "translations": catalogues()[language],
            "languages": LANGUAGE_NAMES, "language_links": switch}
