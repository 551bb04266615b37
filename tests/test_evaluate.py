"""Metric functions on hand-computed cases, the question file parser, and the shipped set."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from collab_qa.errors import UserError
from collab_qa.evaluate import (
    EvalFileError,
    EvalQuestion,
    EvalReport,
    ExpectedAnswer,
    ModeResult,
    QuestionResult,
    answer_coverage,
    check_thresholds,
    evidence_at_1,
    load_questions,
    metrics_by_tag,
    normalise,
    parse_questions,
    parse_thresholds,
)
from collab_qa.metrics import (
    calibrate_threshold,
    hit_at_k,
    mrr_at_k,
    mrr_from_ranking,
    ndcg_at_k,
    ndcg_from_ranking,
    percentile,
    rate,
    recall_at_k,
    recall_from_ranking,
)

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "eval" / "questions.jsonl"
CORPUS = ROOT / "corpus"
SECOND = ROOT / "eval" / "second"

A = ExpectedAnswer("a.txt", "Signed in 2023")
B = ExpectedAnswer("b.txt", "initiated in 2024")


def test_relevance_needs_the_document_and_the_normalised_evidence() -> None:
    passages = [("a.txt", "It was  SIGNED\nin 2023."), ("b.txt", "Signed in 2023"),
                ("b.txt", "The collaboration was initiated in 2024")]
    assert answer_coverage(passages, [A, B]) == [{0}, set(), {1}]
    assert normalise("Accessing each other’s  expertise") == "accessing each other's expertise"
    assert normalise("Charité\u00a0Berlin") == "charité berlin"


def test_rank_metrics_by_hand() -> None:
    coverage = [set(), {0}, set(), {1}, {0}]
    assert hit_at_k(coverage, 1) == 0.0 and hit_at_k(coverage, 2) == 1.0
    assert recall_at_k(coverage, 2, 2) == 0.5 and recall_at_k(coverage, 2, 5) == 1.0
    assert mrr_at_k(coverage, 10) == 0.5 and mrr_at_k(coverage, 1) == 0.0
    # DCG = 1/log2(3) + 1/log2(5); the passage at rank 5 repeats answer 0 and gains nothing.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(coverage, 2, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([{0}], 1, 10) == 1.0
    assert ndcg_at_k([set()], 1, 10) == 0.0 and recall_at_k([], 0, 5) == 0.0


def test_evidence_at_1() -> None:
    assert evidence_at_1("KI has, it was signed in 2023.", "a.txt", [A]) == 1.0
    assert evidence_at_1("KI has, it was signed in 2023.", "b.txt", [A]) == 0.0
    # A sentence inside a longer evidence string counts too.
    assert evidence_at_1("signed", "a.txt", [A]) == 1.0
    assert evidence_at_1(None, "a.txt", [A]) == 0.0


def test_rates_percentiles_and_calibration() -> None:
    assert rate([True, False, False, True]) == 0.5 and rate([]) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert percentile([], 50) is None
    # 40 answerable, 3 % may be abstained -> 1; the threshold stays 0.1 under the 2nd.
    confidences = [-0.5, 0.1, *[0.5] * 38]
    assert calibrate_threshold(confidences, 0.03) == pytest.approx(0.0)
    # ... or half-way to the 1st when that is closer.
    assert calibrate_threshold([0.05, 0.1, *[0.5] * 38], 0.03) == pytest.approx(0.075)
    assert calibrate_threshold([0.3, 0.6], 0.0) == pytest.approx(0.2)


def test_beir_style_ranking_metrics() -> None:
    relevant = {"d1": 1, "d9": 1}
    ranking = ["d3", "d1", "d4"]
    assert mrr_from_ranking(ranking, relevant, 10) == 0.5
    assert recall_from_ranking(ranking, relevant, 100) == 0.5
    assert ndcg_from_ranking(ranking, relevant, 10) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_thresholds() -> None:
    assert parse_thresholds(["hit@1=0.9", "MRR@10=0.93"]) == {"hit@1": 0.9, "mrr@10": 0.93}
    with pytest.raises(UserError, match="Unknown metric"):
        parse_thresholds(["hits=1"])
    with pytest.raises(UserError, match="METRIC=VALUE"):
        parse_thresholds(["hit@1=high"])

    mode = ModeResult("hybrid", {"hit@1": 0.8, "answerable_abstained": 0.05,
                                 "latency_p95_ms": None})
    report = EvalReport("set", None, 10, {}, [mode], {})
    misses = check_thresholds(report, {"hit@1": 0.9, "answerable_abstained": 0.03,
                                       "latency_p95_ms": 1.0})
    assert misses == ["hybrid: hit@1 = 0.800, limit 0.9",
                      "hybrid: answerable_abstained = 0.050, limit 0.03"]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: expected a JSON object"),
    ('{"question": "", "answers": []}', 'line 2: "question" must be'),
    ('{"question": "q", "answers": {}}', 'line 2: "answers" must be a list'),
    ('{"question": "q", "answers": [{"doc": "a.txt"}]}', 'line 2: every answer needs'),
    ('{"question": "q", "answers": [], "split": "train"}', 'line 2: "split" must be'),
    ('{"question": "q", "answers": [], "colour": 1}', "line 2: unknown field"),
    ('{"question": "q", "answers": [], "tags": "history"}', 'line 2: "tags" must be'),
    ('{"question": "q", "answers": [], "tags": [""]}', 'line 2: "tags" must be'),
])
def test_malformed_lines_name_their_line(line: str, message: str) -> None:
    good = json.dumps({"id": "q1", "question": "ok?", "answers": []})
    with pytest.raises(EvalFileError, match=message):
        parse_questions([good, line], source="set.jsonl")


def test_unknown_document_is_named(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"question": "q?", "answers": [
        {"doc": "nope.txt", "contains": "x"}]}) + "\n", encoding="utf-8")
    with pytest.raises(EvalFileError, match=r"line 1: unknown document 'nope\.txt'"):
        load_questions(path, known_docs=["a.txt"])
    with pytest.raises(EvalFileError, match="does not exist"):
        load_questions(tmp_path / "missing.jsonl")
    with pytest.raises(EvalFileError, match="no questions with split 'dev'"):
        load_questions(path, split="dev")
    with pytest.raises(EvalFileError, match="Unknown split 'train'"):
        load_questions(path, split="train")


def test_the_blind_split_is_scored_only_by_name(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps({"id": qid, "question": f"{qid}?", "answers": [],
                                        "split": split, "tags": ["x"] if split else []}) + "\n"
                            for qid, split in (("d", "dev"), ("b", "blind"), ("c", "blind2"),
                                               ("e", "blind3"), ("n", None))),
                    encoding="utf-8")
    assert [q.id for q in load_questions(path)] == ["d", "n"]
    blind = load_questions(path, split="blind")
    assert [(q.id, q.tags) for q in blind] == [("b", ("x",))]
    assert [q.id for q in load_questions(path, split="blind2")] == ["c"]
    assert [q.id for q in load_questions(path, split="blind3")] == ["e"]
    with pytest.raises(EvalFileError, match=r"no questions with split 'test' \(its splits: "
                                            r"blind, blind2, blind3, dev\)"):
        load_questions(path, split="test")


def _result(qid: str, tags: list[str], hit: float, recall: float, mrr: float,
            answerable: bool = True) -> QuestionResult:
    return QuestionResult(qid, "q?", "dev", answerable, False, 0.5, hit, recall, mrr, 0.0, 0.0,
                          1.0, None, [], tags)


def test_metrics_by_tag_over_answerable_questions_with_the_tag() -> None:
    results = [_result("a", ["cross", "history"], 1.0, 1.0, 1.0),
               _result("b", ["cross"], 0.0, 0.5, 0.25),
               _result("c", [], 0.0, 0.0, 0.0),
               _result("u", ["cross"], 0.0, 0.0, 0.0, answerable=False)]
    assert metrics_by_tag(results) == {
        "cross": {"questions": 2.0, "hit@1": 0.5, "recall@5": 0.75, "mrr@10": 0.625},
        "history": {"questions": 1.0, "hit@1": 1.0, "recall@5": 1.0, "mrr@10": 1.0}}
    assert metrics_by_tag([_result("c", [], 1.0, 1.0, 1.0)]) == {}


# ---------------------------------------------------------------------------- the shipped set


def shipped(questions: Path = QUESTIONS, corpus: Path = CORPUS) -> list[EvalQuestion]:
    """Every question of a shipped set, the blind split included."""
    return parse_questions(questions.read_text(encoding="utf-8").splitlines(), str(questions),
                           known_docs=[p.name for p in corpus.iterdir()])


@pytest.mark.parametrize(("questions", "corpus"), [
    (QUESTIONS, CORPUS), (SECOND / "questions.jsonl", SECOND / "corpus")])
def test_every_evidence_string_is_copied_from_its_document(questions: Path,
                                                           corpus: Path) -> None:
    missing = []
    for question in shipped(questions, corpus):
        for answer in question.answers:
            text = (corpus / answer.doc).read_text(encoding="utf-8")
            if normalise(answer.contains) not in normalise(text):
                missing.append((question.id, answer.doc, answer.contains))
    assert not missing, f"evidence not found verbatim in its document: {missing}"


def test_the_set_covers_what_the_issue_asks_for() -> None:
    questions = shipped()
    assert len(questions) >= 60
    unanswerable = [q for q in questions if not q.answerable]
    follow_ups = [q for q in questions if q.history]
    assert len(unanswerable) >= 10 and len(follow_ups) >= 5
    splits = Counter((q.split, q.answerable) for q in questions)
    assert min(splits.values()) >= 5, splits
    assert len(splits) == 2 * len({q.split for q in questions}), splits
    assert {a.doc for q in questions for a in q.answers} == {p.name for p in CORPUS.iterdir()}
    swedish = [q for q in questions if any(w in q.question.lower().split()
                                           for w in ("vem", "vad", "vilket", "när", "vilka"))]
    assert len(swedish) >= 4


def test_the_second_corpus_set_is_a_held_out_test_set() -> None:
    questions = shipped(SECOND / "questions.jsonl", SECOND / "corpus")
    assert len(questions) >= 32 and {q.split for q in questions} == {"test"}
    assert sum(not q.answerable for q in questions) >= 6
    assert sum("cross-language" in q.tags for q in questions) >= 6
    assert sum(bool(q.history) for q in questions) >= 3
    assert {a.doc for q in questions for a in q.answers} == {
        p.name for p in (SECOND / "corpus").iterdir()}
