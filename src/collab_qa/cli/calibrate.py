"""``collab-qa calibrate``: choose the collection's dense weight from its own questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from collab_qa.cli.common import console, load_settings, open_any_searcher, user_errors
from collab_qa.errors import UserError


def calibrate_command(
    file: Annotated[Path, typer.Argument(help="Question file, one JSON object a line.")] = Path(
        "eval/questions.jsonl"),
    split: Annotated[str, typer.Option(help="The split to tune on: dev or test.")] = "dev",
) -> None:
    """Choose this collection's dense weight from its own questions (hybrid MRR@10)."""
    from collab_qa.calibrate import calibrate_dense_weight
    from collab_qa.embedding import load_embedder
    from collab_qa.evaluate import load_questions
    from collab_qa.search import Searcher

    settings = load_settings()
    with user_errors():
        if split not in ("dev", "test"):
            raise UserError(f"Calibrate on the dev or test split, not '{split}'.")
        base = open_any_searcher(settings, load_embedder)
        questions = load_questions(file, base.index.documents, split)
        chosen, table = calibrate_dense_weight(
            lambda weight: Searcher(base.index, base.embedder, dense_weight=weight,
                                    sparse_terms=settings.sparse_terms,
                                    max_question_chars=settings.max_question_chars,
                                    max_k=settings.max_k), questions)
    view = Table(title=f"{file} · split {split} · hybrid, by dense weight")
    for column in ("dense weight", "Hit@1", "MRR@10"):
        view.add_column(column, justify="right")
    for row in table:
        view.add_row(f"{row.dense_weight:.2f}", f"{row.hit_at_1:.3f}", f"{row.mrr_at_10:.3f}")
    console.print(view)
    console.print(f"Chosen: COLLAB_QA_DENSE_WEIGHT={chosen:g} (the model's own: "
                  f"{base.dense_weight:g}).", highlight=False)
