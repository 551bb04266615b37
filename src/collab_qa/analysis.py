"""The one text analyser: accent folding, stop words, number words, stemming and word
statistics, used alike by the index (BM25) and by the answer (coverage, typos, IDF)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from collab_qa import lang

_STEMMER_NAMES = {"en": "english", "sv": "swedish"}
# Passages and questions are stemmed in their own language (Snowball sv/en); questions are
# searched with the stems of both languages.
STEM_BY_LANGUAGE = True
QUERY_IN_BOTH_LANGUAGES = True
# The languages' function and question words ("what", "vem") are stop words too.
FUNCTION_WORDS_ARE_STOP_WORDS = True
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=2)
def _stemmer(language: str = "en") -> Any:
    import Stemmer

    return Stemmer.Stemmer(_STEMMER_NAMES[language])


@lru_cache(maxsize=2)
def _function_words(language: str) -> frozenset[str]:
    return frozenset(lang.words("function_words", (language,)))


def detect_language(text: str, default: str = "en") -> str:
    """``sv`` or ``en``: the language whose short function words the text uses more ("och",
    "att", "på" against "the", "of", "and"); ``default`` when neither shows."""
    words = _WORD.findall(text.casefold())
    swedish = sum(word in _function_words("sv") for word in words)
    english = sum(word in _function_words("en") for word in words)
    if swedish == english:
        return default
    return "sv" if swedish > english else "en"


@lru_cache(maxsize=65_536)
def passage_language(text: str) -> str:
    """``sv`` or ``en`` for a passage, or empty when its words do not show (cached)."""
    return detect_language(text, default="")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_SWEDISH

    listed = (*STOPWORDS_EN, *STOPWORDS_SWEDISH, *lang.words("function_words"),
              *lang.words("question_words")) if FUNCTION_WORDS_ARE_STOP_WORDS else (
        *STOPWORDS_EN, *STOPWORDS_SWEDISH)
    return frozenset(fold_accents(word) for word in listed)


def fold_accents(text: str) -> str:
    """Lower case without accents: "Café" and "Cafe" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Numbers are one word whatever the language: "fyra" and "4" are indexed as "four". Words
# that are also ordinary words ("en", "ett", "sex") are left alone.
_CANONICAL = {value: word for word, value in lang.numbers(("en",)).items()}
_NUMBER_WORDS = {
    **{fold_accents(word): _CANONICAL[value] for word, value in lang.numbers().items()
       if word not in lang.words("ambiguous_numbers") and word != _CANONICAL[value]},
    **{str(value): _CANONICAL[value] for value in range(2, 10)},
}
# A word, or a lone digit (not part of "2.7", "KM-4" or a date).
_NUMBER_WORD = re.compile(
    rf"\b(?:{'|'.join(word for word in _NUMBER_WORDS if not word.isdigit())})\b"
    r"|(?<![\w.,-])[2-9](?![\w-]|[.,]\d)")


def _common_numbers(text: str) -> str:
    return _NUMBER_WORD.sub(lambda match: _NUMBER_WORDS[match.group()], text)


# bm25s' token pattern (scikit-learn's): words of two or more word characters.
_BM25_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _tokenize(texts: Sequence[str], language: str) -> list[list[str]]:
    """What ``bm25s.tokenize(..., return_ids=False)`` returns for the folded texts: lower
    case, bm25s' token pattern, stop words dropped, each distinct word stemmed once.

    Done here rather than by ``bm25s.tokenize``, which builds three progress bars and a
    set of the stop words for every text: for one question that was most of the search's
    time. The tokens are the same (a test compares the two)."""
    stopwords = _stopwords()
    words = [[word for word in _BM25_TOKEN.findall(_common_numbers(fold_accents(text)).lower())
              if word not in stopwords] for text in texts]
    distinct = list(dict.fromkeys(word for text_words in words for word in text_words))
    stems = dict(zip(distinct, _stemmer(language).stemWords(distinct), strict=True))
    return [[stems[word] for word in text_words] for text_words in words]


def lexical_tokens(texts: Sequence[str],
                   languages: Sequence[str] | None = None) -> list[list[str]]:
    """Lower-cased, accent-folded, stop-word-free word tokens for BM25, each text stemmed
    in its own language (detected when ``languages`` is not given).

    Folding is applied to documents and questions alike, so a document that writes "Cafe"
    is found for "Café"; the stop words are folded the same way. Small numbers are written
    as English words, so "fyra" and "4" match "four"."""
    if STEM_BY_LANGUAGE:
        languages = languages or [detect_language(text) for text in texts]
    else:
        languages = ["en"] * len(texts)
    tokens: list[list[str]] = [[] for _ in texts]
    for language in dict.fromkeys(languages):
        where = [i for i, found in enumerate(languages) if found == language]
        for i, found_tokens in zip(where, _tokenize([texts[i] for i in where], language),
                                   strict=True):
            tokens[i] = found_tokens
    return tokens


# Bump with any change to how a passage becomes BM25 tokens (folding, token pattern, stop
# words, number words, stemming): the local index records the analyser that built its BM25
# side, and the next build rebuilds that side of a folder an older analyser wrote.
ANALYSER_VERSION = 1


@lru_cache(maxsize=1)
def analyser_version() -> str:
    """The analyser's version as an index records it: ``ANALYSER_VERSION`` and a digest of
    the word data it reads (stop words, number words, the words that tell the languages
    apart, stemmers, switches), so that a change in a language file counts as a new
    analyser too, e.g. ``"1-3f2a9c0d41be"``."""
    data = json.dumps([
        ANALYSER_VERSION, sorted(_stopwords()), sorted(_NUMBER_WORDS.items()),
        sorted(_STEMMER_NAMES.items()), _BM25_TOKEN.pattern,
        [STEM_BY_LANGUAGE, QUERY_IN_BOTH_LANGUAGES, FUNCTION_WORDS_ARE_STOP_WORDS],
        [sorted(_function_words(code)) for code in sorted(_STEMMER_NAMES)],
    ], ensure_ascii=False)
    return f"{ANALYSER_VERSION}-{hashlib.sha256(data.encode()).hexdigest()[:12]}"


def query_tokens(text: str) -> list[str]:
    """The tokens a question is searched with: its words stemmed in its own language and,
    where the other language stems them differently, that way too (names and loan words
    are shared across languages; a word that only the other language's passages hold
    finds nothing, so it costs nothing). Cached: a question is scored more than once."""
    return list(_query_tokens(text))


@lru_cache(maxsize=4096)
def _query_tokens(text: str) -> tuple[str, ...]:
    if not (STEM_BY_LANGUAGE and QUERY_IN_BOTH_LANGUAGES):
        return tuple(lexical_tokens([text])[0])
    stemmed = {language: _tokenize([text], language)[0] for language in _STEMMER_NAMES}
    own = stemmed[detect_language(text)]
    return tuple(dict.fromkeys([*own, *(token for tokens in stemmed.values()
                                        for token in tokens)]))


# Question words carry no topic; bm25s' stop-word lists keep some of them.
QUESTION_WORDS = frozenset((
    *lang.words("question_words"), *lang.words("question_stems"),
    *(token for language in _STEMMER_NAMES
      for token in _stemmer(language).stemWords(
          [fold_accents(word) for word in lang.words("question_words")]))))


def content_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Stemmed content words of each text, accents folded (one tokenizer call for all)."""
    return [[t for t in tokens if t not in QUESTION_WORDS]
            for tokens in lexical_tokens(texts)]


@lru_cache(maxsize=4096)
def text_tokens(text: str) -> tuple[str, ...]:
    """``content_tokens`` of one short text (a question, a word), cached."""
    return tuple(content_tokens([text])[0])


def within_edits(first: str, second: str, limit: int) -> bool:
    """Levenshtein distance of two words is at most ``limit`` (early exit)."""
    previous = list(range(len(second) + 1))
    for i, a in enumerate(first, 1):
        current = [i]
        for j, b in enumerate(second, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        if min(current) > limit:
            return False
        previous = current
    return previous[-1] <= limit


@dataclass
class TermStats:
    """Word statistics of one index: the IDF of every content word over its passages, each
    passage's content words, and the filler lines its documents repeat
    (``documents.filler_lines``). A store computes them once, when it loads."""

    idf: dict[str, float]
    unknown_idf: float
    chunk_tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    near: dict[str, bool] = field(default_factory=dict)
    by_prefix: dict[str, list[str]] = field(default_factory=dict)
    size: int = 0
    fillers: frozenset[str] = frozenset()

    @classmethod
    def from_passages(cls, passages: Iterable[tuple[str, str]]) -> TermStats:
        """Statistics of ``(chunk_id, text)`` pairs, the text being what BM25 indexes."""
        pairs = list(passages)
        df: dict[str, int] = {}
        chunk_tokens = {}
        for (chunk_id, _), tokens in zip(pairs, content_tokens([t for _, t in pairs]),
                                         strict=True):
            unique = frozenset(tokens)
            chunk_tokens[chunk_id] = unique
            for token in unique:
                df[token] = df.get(token, 0) + 1
        return cls.from_document_frequencies(df, max(len(pairs), 1), chunk_tokens)

    @classmethod
    def from_document_frequencies(cls, df: dict[str, int], size: int,
                                  chunk_tokens: dict[str, frozenset[str]] | None = None,
                                  ) -> TermStats:
        """Statistics from how many passages hold each word, out of ``size``."""
        n = max(size, 1)
        return cls({t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()},
                   math.log(1 + (n + 0.5) / 0.5), chunk_tokens or {}, size=n)

    def idf_of_share(self, share: float) -> float:
        """The IDF of a word found in ``share`` of the passages."""
        df = share * self.size
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def weights(self, tokens: Iterable[str]) -> dict[str, float]:
        """The IDF of each distinct token (unknown words weigh the most)."""
        # In the order given, so sums over them do not depend on the hash seed.
        return {t: self.idf.get(t, self.unknown_idf) for t in dict.fromkeys(tokens)}

    def known(self, token: str, min_typo_length: int = 4) -> bool:
        """Whether the index holds the word or one a typo away ("agreemnt", "cordin").

        Words shorter than ``min_typo_length`` must match exactly."""
        if token in self.idf:
            return True
        if len(token) < min_typo_length:
            return False
        if token not in self.near:
            limit = 1 if len(token) <= 6 else 2
            if not self.by_prefix:
                for word in self.idf:
                    self.by_prefix.setdefault(word[:1], []).append(word)
            # Typos rarely hit the first letter; comparing within it keeps this fast.
            self.near[token] = len(token) >= 4 and any(
                abs(len(word) - len(token)) <= limit and within_edits(token, word, limit)
                for word in self.by_prefix.get(token[:1], ()))
        return self.near[token]
