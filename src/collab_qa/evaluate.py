"""Eval question sets: reading them, pure metric functions, and the runner.

A question file has one JSON object a line (see eval/README.md)::

    {"id": "q01", "question": "...", "answers": [{"doc": "<file>", "contains": "<evidence>"}],
     "history": ["earlier question"], "split": "dev", "tags": ["follow-up"]}

``answers: []`` means the documents cannot answer and the system should abstain. A hit is
relevant to an expected answer when it comes from the named document and its text contains
the evidence string, both normalised (Unicode NFKC, case folded, typographic quotes and
dashes made plain, whitespace collapsed).

The metric functions live in ``metrics``; ``run_eval`` applies them to a searcher.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from collab_qa.answer import answer_question
from collab_qa.embedding import SparseEmbedder
from collab_qa.errors import UserError
from collab_qa.metrics import (
    hit_at_k,
    mean,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    rate,
    recall_at_k,
)
from collab_qa.query import compose_query
from collab_qa.search import Searcher, encode_question

SPLITS = ("dev", "test", "blind", "blind2", "blind3")
#: Scored only when asked for by name, so routine runs never show their answers. A new blind
#: split is written before a round changes any rule, and scored once at its end.
BLIND_SPLITS = frozenset({"blind", "blind2", "blind3"})
#: The metrics reported per tag, over the answerable questions that carry it.
TAG_METRICS = ("hit@1", "recall@5", "mrr@10")
METRICS = ("hit@1", "recall@5", "mrr@10", "ndcg@10", "evidence@1",
           "unanswerable_abstained", "answerable_abstained", "latency_p50_ms",
           "latency_p95_ms")
_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                             "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2022": "-"})
_SPACE = re.compile(r"\s+")


class EvalFileError(UserError):
    """A question file that cannot be read; the message names the line."""


# ---------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class ExpectedAnswer:
    """Evidence that answers a question: a document and a string copied from it."""

    doc: str
    contains: str


@dataclass(frozen=True)
class EvalQuestion:
    """One line of a question file."""

    id: str
    question: str
    answers: tuple[ExpectedAnswer, ...]
    history: tuple[str, ...] = ()
    split: str | None = None
    line: int = 0
    tags: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def normalise(text: str) -> str:
    """The form evidence and passages are compared in: NFKC, case folded, plain quotes and
    dashes, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_TYPOGRAPHY)
    return _SPACE.sub(" ", text).strip()


def _parse_line(raw: str, number: int, source: str) -> EvalQuestion:
    def fail(why: str) -> EvalFileError:
        return EvalFileError(f"{source} line {number}: {why}.")

    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise fail("expected a JSON object")
    unknown = set(row) - {"id", "question", "answers", "history", "split", "tags"}
    if unknown:
        raise fail(f"unknown field(s) {', '.join(sorted(unknown))}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise fail('"question" must be a non-empty string')
    answers = row.get("answers")
    if not isinstance(answers, list):
        raise fail('"answers" must be a list ([] when the documents cannot answer)')
    expected = []
    for answer in answers:
        if not (isinstance(answer, dict) and isinstance(answer.get("doc"), str)
                and isinstance(answer.get("contains"), str) and answer["contains"].strip()):
            raise fail('every answer needs "doc" and a non-empty "contains" string')
        expected.append(ExpectedAnswer(answer["doc"], answer["contains"]))
    history = row.get("history", [])
    if not (isinstance(history, list) and all(isinstance(h, str) for h in history)):
        raise fail('"history" must be a list of strings')
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise fail(f'"split" must be one of {", ".join(SPLITS)}, not {split!r}')
    tags = row.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) and t.strip() for t in tags)):
        raise fail('"tags" must be a list of non-empty strings')
    qid = row.get("id", f"line{number}")
    if not isinstance(qid, str | int):
        raise fail('"id" must be a string')
    return EvalQuestion(str(qid), question.strip(), tuple(expected), tuple(history), split,
                        number, tuple(tags))


def parse_questions(lines: Iterable[str], source: str = "questions",
                    known_docs: Iterable[str] | None = None) -> list[EvalQuestion]:
    """Parse question lines (blank lines are skipped).

    Args:
        lines: The file's lines.
        source: The name used in error messages.
        known_docs: Document ids of the index; an answer naming another document is an error.

    Raises:
        EvalFileError: naming the line of a malformed entry, a duplicate id or an unknown
            document.
    """
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    known = set(known_docs) if known_docs is not None else None
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        question = _parse_line(raw, number, source)
        if question.id in seen:
            raise EvalFileError(f"{source} line {number}: the id {question.id!r} was already "
                                f"used on line {seen[question.id]}.")
        seen[question.id] = number
        for answer in question.answers:
            if known is not None and answer.doc not in known:
                raise EvalFileError(
                    f"{source} line {number}: unknown document {answer.doc!r}; it is not in "
                    "the index (names are file paths relative to the corpus folder).")
        questions.append(question)
    if not questions:
        raise EvalFileError(f"{source} holds no questions.")
    return questions


def load_questions(path: Path, known_docs: Iterable[str] | None = None,
                   split: str | None = None) -> list[EvalQuestion]:
    """Read a question file, optionally keeping one split.

    Without a split every question is kept except the blind splits', which are scored only
    when asked for by name.

    Raises:
        EvalFileError: for a missing or malformed file, an unknown document, or a split that
            is unknown or absent from the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalFileError(f"The question file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"The question file {path} cannot be read ({exc}).") from None
    questions = parse_questions(text.splitlines(), str(path), known_docs)
    if split is None:
        return [q for q in questions if q.split not in BLIND_SPLITS]
    if split not in SPLITS:
        raise EvalFileError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    kept = [q for q in questions if q.split == split]
    if not kept:
        present = sorted({q.split for q in questions if q.split}) or ["none"]
        raise EvalFileError(f"{path} has no questions with split {split!r} (its splits: "
                            f"{', '.join(present)}).")
    return kept


# ---------------------------------------------------------------------------- metrics


def matches(doc_id: str, text: str, answer: ExpectedAnswer) -> bool:
    """Whether a passage is evidence for one expected answer."""
    return doc_id == answer.doc and normalise(answer.contains) in normalise(text)


def answer_coverage(passages: Sequence[tuple[str, str]],
                    answers: Sequence[ExpectedAnswer]) -> list[set[int]]:
    """For each ranked (doc_id, text) passage, the indexes of the answers it is evidence for."""
    return [{i for i, answer in enumerate(answers) if matches(doc, text, answer)}
            for doc, text in passages]


def evidence_at_1(best_sentence: str | None, top_doc: str | None,
                  answers: Sequence[ExpectedAnswer]) -> float:
    """1.0 when the answer's best sentence, taken from the top passage, holds the evidence
    (or, for evidence longer than a sentence, lies inside it)."""
    if not best_sentence or top_doc is None:
        return 0.0
    sentence = normalise(best_sentence)
    for answer in answers:
        evidence = normalise(answer.contains)
        if answer.doc == top_doc and (evidence in sentence or sentence in evidence):
            return 1.0
    return 0.0



@dataclass
class QuestionResult:
    """What one question got in one mode."""

    id: str
    question: str
    split: str | None
    answerable: bool
    abstained: bool
    confidence: float
    hit_at_1: float
    recall_at_5: float
    mrr_at_10: float
    ndcg_at_10: float
    evidence_at_1: float
    latency_ms: float
    best_sentence: str | None
    top: list[dict[str, Any]]
    tags: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Answerable and not found first (or wrongly abstained), or unanswerable and not
        abstained."""
        if not self.answerable:
            return not self.abstained
        return self.hit_at_1 < 1.0 or self.abstained


@dataclass
class ModeResult:
    """Metrics of one search mode over a question set."""

    mode: str
    metrics: dict[str, float | None]
    questions: list[QuestionResult] = field(default_factory=list)
    by_tag: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def failures(self) -> list[QuestionResult]:
        return [q for q in self.questions if q.failed]


@dataclass
class EvalReport:
    """The result of an eval run over one or more modes."""

    source: str
    split: str | None
    k: int
    counts: dict[str, int]
    modes: list[ModeResult]
    query_encode_ms: dict[str, float | None]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "split": self.split, "k": self.k, "counts": self.counts,
            "settings": self.settings, "query_encode_ms": self.query_encode_ms,
            "modes": [{"mode": m.mode, "metrics": m.metrics, "by_tag": m.by_tag,
                       "questions": [asdict(q) | {"failed": q.failed} for q in m.questions]}
                      for m in self.modes],
        }


def summarise(results: Sequence[QuestionResult]) -> dict[str, float | None]:
    """The metrics of a mode from its per-question results."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    latencies = [r.latency_ms for r in results]
    return {
        "hit@1": mean([r.hit_at_1 for r in answerable]),
        "recall@5": mean([r.recall_at_5 for r in answerable]),
        "mrr@10": mean([r.mrr_at_10 for r in answerable]),
        "ndcg@10": mean([r.ndcg_at_10 for r in answerable]),
        "evidence@1": mean([r.evidence_at_1 for r in answerable]),
        "unanswerable_abstained": rate([r.abstained for r in unanswerable]),
        "answerable_abstained": rate([r.abstained for r in answerable]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
    }


def metrics_by_tag(results: Sequence[QuestionResult]) -> dict[str, dict[str, float | None]]:
    """Hit@1, Recall@5 and MRR@10 over the answerable questions carrying each tag, with
    their count ("questions")."""
    tagged: dict[str, list[QuestionResult]] = {}
    for result in results:
        if result.answerable:
            for tag in result.tags:
                tagged.setdefault(tag, []).append(result)
    by_tag: dict[str, dict[str, float | None]] = {}
    for tag, group in sorted(tagged.items()):
        metrics = summarise(group)
        by_tag[tag] = {"questions": float(len(group)), **{n: metrics[n] for n in TAG_METRICS}}
    return by_tag


def evaluate_question(searcher: Searcher, question: EvalQuestion, mode: str, k: int,
                      abstain_threshold: float | None = None) -> QuestionResult:
    """Answer one question in one mode and score it. The query vector (and the previous
    question's) is encoded before the clock starts, so the latency is that of search and
    answer building alone."""
    query = compose_query(question.question, question.history, searcher.index.term_stats)
    if mode != "lexical":
        # As in a conversation, the previous question was encoded when it was asked.
        for text in (query, *question.history[-1:]):
            encode_question(searcher, text, mode)
    kwargs = {} if abstain_threshold is None else {"abstain_below": abstain_threshold}
    started = time.perf_counter()
    answer = answer_question(searcher, question.question, k=k, mode=mode,
                             history=question.history, **kwargs)
    latency = (time.perf_counter() - started) * 1000
    hits = answer.hits
    coverage = answer_coverage([(h.doc_id, h.text) for h in hits], question.answers)
    n = len(question.answers)
    return QuestionResult(
        id=question.id, question=question.question, split=question.split,
        answerable=question.answerable, abstained=answer.abstained,
        confidence=round(answer.confidence, 4),
        hit_at_1=hit_at_k(coverage, 1), recall_at_5=recall_at_k(coverage, n, 5),
        mrr_at_10=mrr_at_k(coverage, 10), ndcg_at_10=ndcg_at_k(coverage, n, 10),
        evidence_at_1=evidence_at_1(answer.best_sentence, hits[0].doc_id if hits else None,
                                    question.answers),
        latency_ms=round(latency, 3), best_sentence=answer.best_sentence,
        top=[{"doc": h.doc_id, "citation": h.citation, "score": round(h.score, 4),
              "relevant": bool(c), "text": h.text[:200]} for h, c in zip(hits[:3], coverage,
                                                                            strict=False)],
        tags=list(question.tags),
    )


def run_eval(
    searcher: Searcher, questions: Sequence[EvalQuestion], modes: Sequence[str], *,
    k: int = 10, source: str = "", split: str | None = None,
    abstain_threshold: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    """Run every question in every mode.

    Args:
        searcher: A searcher over the index the questions were written for.
        questions: The questions (already filtered to a split if wanted).
        modes: Search modes to evaluate.
        k: Passages retrieved per question (metrics look at the first 10 at most).
        source: The question file's name, for the report.
        split: The split evaluated, for the report.
        abstain_threshold: Overrides the answer module's calibrated threshold.
        progress: Called with (mode, done, total) after each question.
    """
    encode_times = []
    for question in questions:
        query = compose_query(question.question, question.history, searcher.index.term_stats)
        started = time.perf_counter()
        searcher.embedder.encode([query])
        if searcher.sparse is not None and isinstance(searcher.embedder, SparseEmbedder):
            searcher.embedder.encode_sparse([query])
        encode_times.append((time.perf_counter() - started) * 1000)
    results = []
    for mode in modes:
        per_question = []
        for done, question in enumerate(questions, 1):
            per_question.append(evaluate_question(searcher, question, mode, k,
                                                  abstain_threshold))
            if progress is not None:
                progress(mode, done, len(questions))
        results.append(ModeResult(mode, summarise(per_question), per_question,
                                  metrics_by_tag(per_question)))
    answerable = sum(q.answerable for q in questions)
    return EvalReport(
        source=source, split=split, k=k,
        counts={"questions": len(questions), "answerable": answerable,
                "unanswerable": len(questions) - answerable,
                "follow_ups": sum(bool(q.history) for q in questions)},
        modes=results,
        query_encode_ms={"p50": percentile(encode_times, 50),
                         "p95": percentile(encode_times, 95)},
        settings={"dense_weight": getattr(searcher, "dense_weight", None)},
    )


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """``["hit@1=0.9", "mrr@10=0.93"]`` -> {"hit@1": 0.9, "mrr@10": 0.93}.

    Raises:
        UserError: for a malformed item or an unknown metric.
    """
    thresholds = {}
    for item in items:
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name not in METRICS:
            raise UserError(f"Unknown metric {name!r} in --fail-under; use one of "
                            f"{', '.join(METRICS)}.")
        try:
            thresholds[name] = float(value)
        except ValueError:
            raise UserError(f"--fail-under {item!r} should look like METRIC=VALUE, "
                            "e.g. hit@1=0.9.") from None
    return thresholds


LOWER_IS_BETTER = frozenset({"answerable_abstained", "latency_p50_ms", "latency_p95_ms"})


def check_thresholds(report: EvalReport, thresholds: dict[str, float]) -> list[str]:
    """Sentences for every mode and metric that misses its threshold (for latency and wrong
    abstention, "under" means "at most")."""
    failures = []
    for mode in report.modes:
        for name, limit in thresholds.items():
            value = mode.metrics.get(name)
            if value is None:
                continue
            bad = value > limit if name in LOWER_IS_BETTER else value < limit
            if bad:
                failures.append(f"{mode.mode}: {name} = {value:.3f}, limit {limit:g}")
    return failures
