"""Choosing a collection's dense weight from its own questions."""

from __future__ import annotations

import json

import pytest

from collab_qa.calibrate import calibrate_dense_weight, plateau_choice
from collab_qa.chunking import ChunkerConfig
from collab_qa.documents import Document
from collab_qa.embedding import FakeEmbedder
from collab_qa.evaluate import parse_questions
from collab_qa.index import update_index
from collab_qa.search import Searcher
from collab_qa.store.memory import MemoryBackend


def test_a_plateau_beats_a_lone_peak() -> None:
    scores = {0.5: 0.80, 0.6: 0.95, 0.7: 0.80, 0.8: 0.90, 0.9: 0.90, 0.95: 0.90}
    # smoothed: 0.875, 0.85, 0.883, 0.867, 0.9, 0.9 -> the first of the two best
    assert plateau_choice(scores) == 0.9
    assert plateau_choice({0.7: 0.5}) == 0.7
    assert plateau_choice({0.5: 0.9, 0.6: 0.9, 0.7: 0.1}) == 0.5
    with pytest.raises(ValueError):
        plateau_choice({})


def test_calibrate_runs_every_weight_of_the_grid() -> None:
    backend = MemoryBackend()
    documents = [
        Document(id=name, title=name.title(), text=text, sha256=f"sha-{name}", format="plain")
        for name, text in (("printing", "A colour page costs three crowns at the printer."),
                           ("rooms", "Study rooms are booked online for three hours."))]
    embedder = FakeEmbedder()
    with backend.building(5.0):
        update_index(backend, documents, embedder, ChunkerConfig(max_tokens=40, overlap_tokens=0))
    store = backend.load()
    questions = parse_questions([json.dumps(row) for row in (
        {"question": "What does a colour page cost?",
         "answers": [{"doc": "printing", "contains": "three crowns"}]},
        {"question": "How are study rooms booked?",
         "answers": [{"doc": "rooms", "contains": "online"}]},
    )])
    asked: list[float] = []

    def make(weight: float) -> Searcher:
        asked.append(weight)
        return Searcher(store, embedder, dense_weight=weight)

    chosen, table = calibrate_dense_weight(make, questions, weights=(0.3, 0.6, 0.9))
    assert asked == [0.3, 0.6, 0.9]
    assert [row.dense_weight for row in table] == [0.3, 0.6, 0.9]
    assert all(row.hit_at_1 == 1.0 and row.mrr_at_10 == 1.0 for row in table)
    assert chosen == 0.3  # every weight ties: the first


def test_calibrating_on_the_blind_split_is_refused() -> None:
    from typer.testing import CliRunner

    from collab_qa.cli import app

    result = CliRunner().invoke(app, ["calibrate", "--split", "blind"])
    assert result.exit_code == 2
    assert "Calibrate on the dev or test split, not 'blind'." in result.output
