"""👍/👎 on answers, kept in ``<data_dir>/feedback.jsonl`` and exportable as eval questions.

One JSON object a line, appended under a lock, so the file stays readable by hand and a
crash loses at most the line being written.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Rating = Literal["up", "down"]
FEEDBACK_FILE = "feedback.jsonl"


@dataclass(frozen=True)
class Feedback:
    """A user's verdict on one answer.

    Attributes:
        rating: ``up`` (the answer was right) or ``down``.
        question: The question as asked.
        history: Earlier questions of the conversation, oldest first.
        abstained: Whether the answer said the documents don't answer it.
        doc_id: The document of the top passage (None when abstained).
        evidence: The best sentence shown (None when abstained).
        index_version: The index that answered.
        created: UTC time the feedback was given.
    """

    rating: Rating
    question: str
    history: tuple[str, ...] = ()
    abstained: bool = False
    doc_id: str | None = None
    evidence: str | None = None
    index_version: str = ""
    created: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )


class FeedbackStore:
    """Appends feedback to a JSONL file in the data directory (never in index/)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FEEDBACK_FILE
        self._lock = threading.Lock()

    def record(self, feedback: Feedback) -> None:
        """Append one entry; creates the data directory when needed."""
        line = json.dumps(asdict(feedback), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def read(self) -> Iterator[Feedback]:
        """Every stored entry, oldest first; a damaged line is left out."""
        if not self.path.is_file():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                    row["history"] = tuple(row.get("history") or ())
                    yield Feedback(**row)
                except (ValueError, TypeError):
                    continue


def eval_lines(entries: Sequence[Feedback], include_down: bool = False) -> list[dict[str, Any]]:
    """Feedback as lines of the eval question format (see eval/README.md).

    A 👍 becomes a question whose expected answer is what was shown: the top document and
    its best sentence, or ``answers: []`` when the answer abstained. A 👎 says only that the
    answer was wrong, so it is left out unless ``include_down``; then its ``answers`` are
    empty and its id starts with ``review-`` so a person fills them in before using it.
    Repeated verdicts on the same question and history keep the latest.
    """
    latest: dict[tuple[str, tuple[str, ...]], Feedback] = {}
    for entry in entries:
        latest[(entry.question.strip(), tuple(entry.history))] = entry
    lines = []
    for (question, history), entry in latest.items():
        if entry.rating != "up" and not include_down:
            continue
        digest = hashlib.sha256(json.dumps([question, history]).encode()).hexdigest()[:10]
        answers: list[dict[str, str]] = []
        if entry.rating == "up" and not entry.abstained and entry.doc_id and entry.evidence:
            answers = [{"doc": entry.doc_id, "contains": entry.evidence}]
        prefix = "feedback-" if entry.rating == "up" else "review-"
        line: dict[str, Any] = {"id": prefix + digest, "question": question, "answers": answers}
        if history:
            line["history"] = list(history)
        lines.append(line)
    return lines
