"""``collab-qa feedback``: the answer feedback given in the web chat."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from collab_qa.cli.common import load_settings, user_errors

feedback_app = typer.Typer(help="Answer feedback (👍/👎) given in the web chat.",
                           no_args_is_help=True)

@feedback_app.command("export")
def feedback_export(
    include_down: Annotated[bool, typer.Option(
        "--include-down", help="Also print 👎 answers (ids review-…) to fill in.")] = False,
) -> None:
    """Print the feedback as lines of the eval question format, for eval/questions.jsonl."""
    from collab_qa.feedback import FeedbackStore, eval_lines

    settings = load_settings()
    store = FeedbackStore(settings.data_dir)
    with user_errors():
        if settings.database_url:
            from collab_qa.store.postgres import Database
            from collab_qa.web.conversations_pg import PostgresFeedback, create_chat_tables

            database = Database.connect(settings.database_url)
            create_chat_tables(database)
            store = PostgresFeedback(database)
            entries = list(store.read())
            database.close()
        else:
            entries = list(store.read())
    for line in eval_lines(entries, include_down):
        typer.echo(json.dumps(line, ensure_ascii=False))
