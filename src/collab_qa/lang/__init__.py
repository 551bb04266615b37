"""Language data: the word lists of each language the product reads (``en.toml``,
``sv.toml``), loaded once. Code builds its patterns from these; it holds no list itself."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any

LANGUAGES = ("en", "sv")


@cache
def _data(language: str) -> dict[str, Any]:
    text = files(__name__).joinpath(f"{language}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def words(key: str, languages: tuple[str, ...] = LANGUAGES) -> list[str]:
    """The entries under ``key`` of each language, in order, without repeats."""
    return list(dict.fromkeys(entry for language in languages
                              for entry in _data(language)[key]))


def alternation(key: str, languages: tuple[str, ...] = LANGUAGES) -> str:
    """The entries under ``key`` as one regular-expression alternation, longest first."""
    return "|".join(sorted(words(key, languages), key=len, reverse=True))


def numbers(languages: tuple[str, ...] = LANGUAGES) -> dict[str, int]:
    """Every number word of the languages with its value."""
    return {word: value for language in languages
            for word, value in _data(language)["numbers"].items()}


def grouped(key: str, languages: tuple[str, ...] = LANGUAGES) -> dict[str, list[str]]:
    """The table ``key`` of each language (kind: words), all languages together."""
    kinds: dict[str, list[str]] = {}
    for language in languages:
        for kind, entries in _data(language).get(key, {}).items():
            kinds.setdefault(kind, []).extend(entries)
    return kinds


def events(languages: tuple[str, ...] = LANGUAGES) -> dict[str, list[str]]:
    """The verbs that date each kind of event, all languages together."""
    return grouped("events", languages)


def roles(languages: tuple[str, ...] = LANGUAGES) -> dict[str, list[str]]:
    """The words for each kind of role ("rector": president, rektor, …), all languages
    together, so a question in one language finds the role named in the other."""
    return grouped("roles", languages)
