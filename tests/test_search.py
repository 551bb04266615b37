from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from collab_qa.analysis import (
    ANALYSER_VERSION,
    analyser_version,
    lexical_tokens,
    passage_language,
)
from collab_qa.answer import search_passages
from collab_qa.chunking import Chunk
from collab_qa.embedding import FakeEmbedder
from collab_qa.errors import QuestionError
from collab_qa.query import compose_query, is_follow_up, resolve_query
from collab_qa.search import Searcher
from tests.conftest import build


@pytest.fixture
def searcher(tmp_corpus: Path, tmp_path: Path, fake_embedder: FakeEmbedder) -> Searcher:
    return Searcher(build(tmp_corpus, tmp_path / "index", fake_embedder), fake_embedder)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_every_mode_returns_ranked_hits(searcher: Searcher, mode: str) -> None:
    hits = search_passages(searcher, "biobank coordinator samples", k=5, mode=mode)
    assert 1 <= len(hits) <= 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    hit = hits[0]
    assert hit.citation.startswith(hit.title)
    assert hit.text == searcher.index.documents[hit.doc_id].text[hit.chunk.start:hit.chunk.end]


def test_lexical_finds_the_exact_term(searcher: Searcher) -> None:
    hit = search_passages(searcher, "biobank@ki.se", k=1, mode="lexical")[0]
    assert "biobank@ki.se" in hit.text


def test_overlapping_chunks_are_not_returned_twice(searcher: Searcher) -> None:
    for mode in ("hybrid", "dense", "lexical"):
        hits = search_passages(searcher, "cancer research collaboration Karolinska", k=20,
                               mode=mode)
        for i, a in enumerate(hits):
            for b in hits[i + 1:]:
                assert a.doc_id != b.doc_id or a.chunk.end <= b.chunk.start or \
                    b.chunk.end <= a.chunk.start


def test_unknown_words_give_no_lexical_hits(searcher: Searcher) -> None:
    assert search_passages(searcher, "xyzzyplugh", mode="lexical") == []


@pytest.mark.parametrize(("question", "k", "mode", "message"), [
    ("", 5, "hybrid", "empty"),
    ("   ", 5, "hybrid", "empty"),
    ("x" * 1001, 5, "hybrid", "limit"),
    ("ok?", 0, "hybrid", "k must be"),
    ("ok?", 10**9, "hybrid", "k must be"),
    ("ok?", 5, "fuzzy", "Unknown mode"),
    ("a\x00b", 5, "hybrid", "NUL"),
])
def test_bad_questions_get_a_sentence(searcher: Searcher, question: str, k: int, mode: str,
                                      message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        search_passages(searcher, question, k=k, mode=mode)


def test_follow_ups_are_read_with_the_previous_question() -> None:
    assert is_follow_up("and their phone number?")
    assert is_follow_up("what about Germany?")
    assert not is_follow_up("Who do I contact about biobank samples at Karolinska?")
    history = ["who do I contact about biobank samples"]
    assert compose_query("and their phone number?", history) == \
        "who do I contact about biobank samples and their phone number?"
    assert compose_query("What is a Data Transfer Agreement for?", history) == \
        "What is a Data Transfer Agreement for?"
    assert compose_query("and the phone?", []) == "and the phone?"


def test_accents_are_folded_in_documents_and_questions(tmp_path: Path,
                                                       fake_embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "germany.txt").write_text(
        "Germany\n\nKI has signed a Memorandum of Understanding with Charite Berlin.\n",
        encoding="utf-8")
    (corpus / "contracts.txt").write_text(
        "Contracts\n\nA research agreement needs a signature from KI.\n", encoding="utf-8")
    searcher = Searcher(build(corpus, tmp_path / "index", fake_embedder), fake_embedder)
    for question in ("Charité", "CHARITÉ", "charite", "Charité Berlin"):
        found = search_passages(searcher, question, mode="lexical")
        assert [h.doc_id for h in found] == ["germany.txt"]


def test_small_numbers_are_one_word_in_either_language() -> None:
    assert lexical_tokens(["Vilka fyra enheter?", "4 units", "four units"]) == [
        ["four", "enhet"], ["four", "unit"], ["four", "unit"]]
    # Digits that are part of something else stay as they are (a lone digit is no token).
    assert lexical_tokens(["2.7 million in KM-4, 17 oktober"]) == [["million", "km", "17", "oktob"]]


@pytest.mark.slow
def test_what_about_x_asks_the_previous_question_about_x(real_searcher: Searcher) -> None:
    history = ["Who coordinates KI's international collaborations in cancer research?"]
    hit = search_passages(real_searcher, "what about Germany?", k=1, history=history)[0]
    assert hit.doc_id == "collaboration-in-germany.txt"
    assert "Isabella Palomba Rydén" in hit.text


@pytest.mark.slow
def test_a_passage_holding_the_name_asked_about_comes_first(real_searcher: Searcher) -> None:
    # Without the name boost the industry page's "Develop a structure" section came first.
    for question in ("do we have an agreement with Charité?", "an agreement with Charite?"):
        assert "Charit" in search_passages(real_searcher, question, k=1)[0].text


def test_a_passage_in_the_other_language_takes_its_spread_dense_score(
    tmp_corpus: Path, tmp_path: Path,
) -> None:
    embedder = FakeEmbedder(model_id="fake multilingual-e5")
    searcher = Searcher(build(tmp_corpus, tmp_path / "index", embedder), embedder)
    english = Chunk("a.txt", 0, (), 0, 48, "The office is open to all of the staff on weekdays.")
    far, near = (Chunk(f"{name}.txt", 0, (), 0, 50, "Kontoret är öppet för alla på vardagar och "
                       "helger.") for name in ("far", "near"))
    query = resolve_query("When is the office open?")
    dense = np.array([0.85, 0.80, 0.84], dtype=np.float32)
    lexical = np.array([3.0, 0.0, 0.0])
    fusion = searcher.fusion_over(dense, lexical)
    scores = fusion.scores(query.language, [english, far, near], dense, lexical)
    # The Swedish passage farthest in meaning gets no credit in BM25's place, the nearest
    # gets most of it; sharing the words and nearest in meaning still ranks first.
    weight = searcher.dense_weight
    assert scores[1] == pytest.approx(weight * 0.80 / 0.85)
    assert scores[1] < scores[2] < scores[0] == pytest.approx(1.0)


def test_a_passage_scored_after_retrieval_is_fused_as_the_candidates_were(
    tmp_corpus: Path, tmp_path: Path,
) -> None:
    embedder = FakeEmbedder(model_id="fake multilingual-e5")
    store = build(tmp_corpus, tmp_path / "index", embedder)
    searcher = Searcher(store, embedder)
    retrieval = searcher.retrieve(resolve_query("When is the office open?"), 10, "hybrid")
    candidates = retrieval.candidates
    # Both languages are among the candidates: the other-language rule applies to some.
    assert {passage_language(hit.text) for hit in candidates} >= {"en", "sv"}
    again = retrieval.hits_for(store, [hit.chunk for hit in candidates])
    assert [hit.score for hit in again] == pytest.approx([hit.score for hit in candidates],
                                                         abs=1e-6)


def test_a_change_of_passage_tokens_comes_with_a_new_analyser_version() -> None:
    # The local index records the analyser version and rebuilds an older one's BM25 index.
    # When these tokens change, bump ANALYSER_VERSION, then update them here.
    texts = ["Café CAFÉ cafe, fyra 4 four and 7 sju",
             "The offices were opened on Mondays by the staff.",
             "Kontoren öppnades på måndagarna av personalen."]
    assert ANALYSER_VERSION == 1 and lexical_tokens(texts) == [
        ["cafe", "cafe", "cafe", "four", "four", "four", "seven", "seven"],
        ["offic", "were", "open", "monday", "staff"],
        ["kontor", "oppn", "mandag", "personal"]]
    assert analyser_version().startswith(f"{ANALYSER_VERSION}-")


def _bm25s_tokens(texts: list[str], language: str) -> list[list[str]]:
    import bm25s

    from collab_qa import analysis

    tokenized = bm25s.tokenize(
        [analysis._common_numbers(analysis.fold_accents(text)) for text in texts],
        stopwords=list(analysis._stopwords()), stemmer=analysis._stemmer(language),
        return_ids=False, show_progress=False)
    return [list(tokens) for tokens in tokenized]


@pytest.mark.parametrize("language", ["en", "sv"])
def test_tokens_are_those_bm25s_tokenize_gives(language: str) -> None:
    from collab_qa.analysis import _tokenize
    from tests.conftest import CORPUS

    texts = [line for path in sorted(CORPUS.iterdir()) if path.is_file()
             for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    texts += ["", "a", "Café CAFÉ cafe", "ﬁve İstanbul straße ΣΊΣΥΦΟΣ", "KM-4 2.7 17 oktober",
              "fyra 4 four, 7 sju", "e-mail: x_y@ki.se +46 8 524 800 00", "日本語 ok ü"]
    assert _tokenize(texts, language) == _bm25s_tokens(texts, language)
    assert [_tokenize([text], language)[0] for text in texts] == _bm25s_tokens(texts, language)


def test_a_query_is_scored_once_and_its_scores_cannot_change(searcher: Searcher) -> None:
    lexical = searcher.index.lexical  # type: ignore[attr-defined]
    scores = lexical.scores("biobank samples")
    assert scores is lexical.scores("biobank samples")
    assert scores.max() > 0 and not scores.flags.writeable
    assert lexical.scores("biobank").tolist() != scores.tolist()
