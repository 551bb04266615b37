"""Retrieval with the real bundled model on the real corpus."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collab_qa.answer import search_passages
from collab_qa.cli import app
from collab_qa.embedding import Embedder, SparseEmbedder
from collab_qa.search import Searcher
from collab_qa.sparse import SparseTerms

pytestmark = pytest.mark.slow


def test_real_embedder_gives_unit_vectors(real_embedder: Embedder) -> None:
    vectors = real_embedder.encode(["biobank samples", "Data Transfer Agreement"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert real_embedder.model_id.startswith("multilingual-e5-small")
    assert real_embedder.count_tokens("biobank samples") >= 2


def test_real_sparse_terms_match_across_languages(real_embedder: Embedder) -> None:
    assert isinstance(real_embedder, SparseEmbedder) and real_embedder.sparse_dimension > 0
    question = real_embedder.encode_query_sparse("Who is the head of the university library?")
    passages = SparseTerms.from_rows(real_embedder.encode_sparse([
        "Universitetsbiblioteket leds av överbibliotekarien Anna Berg.",  # Swedish, on topic
        "The weather was sunny at the harbour all weekend.",
    ]), real_embedder.sparse_dimension)
    on_topic, off_topic = passages.scores(question, np.arange(2))
    assert on_topic > 2 * off_topic > 0


def test_the_real_index_fuses_sparse_terms(real_searcher: Searcher) -> None:
    assert real_searcher.sparse is not None and real_searcher.sparse_weight > 0


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_biobank_contact_is_the_top_hit(real_searcher: Searcher, mode: str) -> None:
    hit = search_passages(real_searcher, "who do I contact about biobank samples", k=5,
                          mode=mode)[0]
    assert hit.doc_id == "industry-collaboration-support.txt"
    assert "biobank@ki.se" in hit.text


def test_charite_mou_date_in_top_three(real_searcher: Searcher) -> None:
    hits = search_passages(real_searcher, "When was the MoU with Charité signed?", k=3)
    assert any("17 oktober" in h.text for h in hits)


def test_data_transfer_agreement(real_searcher: Searcher) -> None:
    hit = search_passages(real_searcher, "What is a Data Transfer Agreement for?", k=3)[0]
    assert "Data Transfer Agreement is then required" in hit.text


def test_follow_up_finds_the_phone_number(real_searcher: Searcher) -> None:
    hits = search_passages(real_searcher, "and their phone number?", k=3,
                                history=["who do I contact about biobank samples"])
    assert "08-524 820 03" in hits[0].text


def test_cli_index_and_ask(tmp_corpus: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("COLLAB_QA_CORPUS_DIR", str(tmp_corpus))
    runner = CliRunner()
    missing = runner.invoke(app, ["ask", "who do I contact about biobank samples"])
    assert missing.exit_code == 2 and "collab-qa index" in missing.output
    assert "Traceback" not in missing.output
    (tmp_corpus / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    built = runner.invoke(app, ["index"])
    assert built.exit_code == 0, built.output
    assert "added documents" in built.output and "broken.pdf" in built.output
    answered = runner.invoke(app, ["ask", "who do I contact about biobank samples", "-k", "2"])
    assert answered.exit_code == 0 and "biobank@ki.se" in answered.output
    as_json = runner.invoke(app, ["ask", "biobank", "--json", "--mode", "lexical"])
    assert as_json.exit_code == 0 and '"doc_id"' in as_json.output
    follow_up = runner.invoke(app, ["ask", "and their phone number?", "--after",
                                    "who do I contact about biobank samples"])
    assert follow_up.exit_code == 0 and "08-524 820 03" in follow_up.output
    unanswerable = runner.invoke(app, ["ask", "who coordinates our collaboration with Japan?"])
    assert "don't answer this" in unanswerable.output
    bad = runner.invoke(app, ["ask", "", "--mode", "hybrid"])
    assert bad.exit_code == 2 and "empty" in bad.output
    (tmp_corpus / "collaboration-in-germany.txt").unlink()
    again = runner.invoke(app, ["index"])
    assert again.exit_code == 0
    assert re.search(r"removed documents\s*│\s*1\s", again.output), again.output
