"""Rules must generalise: no phrase of the documents in corpus/ appears in src/ (code,
comments, docstrings, language data). A phrase is three consecutive words of which one has
six letters or more; shorter runs are ordinary language."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORD = re.compile(r"\w+")
SOURCE_SUFFIXES = {".py", ".toml", ".txt", ".md", ".json", ".html", ".js", ".po"}


def _words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def _phrases(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)
            if any(len(word) >= 6 for word in words[i:i + 3])}


def test_no_phrase_of_the_corpus_in_src() -> None:
    corpus = set().union(*(_phrases(_words(path.read_text(encoding="utf-8")))
                           for path in (ROOT / "corpus").rglob("*") if path.is_file()))
    assert corpus, "corpus/ holds no text to compare with"
    found = [f"{path.relative_to(ROOT)}: {' '.join(phrase)}"
             for path in sorted((ROOT / "src").rglob("*"))
             if path.is_file() and path.suffix in SOURCE_SUFFIXES
             for phrase in sorted(_phrases(_words(path.read_text(encoding="utf-8"))) & corpus)]
    assert not found, "phrases of corpus/ in src/:\n" + "\n".join(found)


def test_the_check_catches_a_copied_phrase(tmp_path: Path) -> None:
    sample = next(path for path in (ROOT / "corpus").rglob("*") if path.is_file())
    words = _words(sample.read_text(encoding="utf-8"))
    phrase = next(tuple(words[i:i + 3]) for i in range(len(words) - 2)
                  if any(len(word) >= 6 for word in words[i:i + 3]))
    copied = f"# a comment quoting {' '.join(phrase)} verbatim"
    assert _phrases(_words(copied)) & _phrases(words)
