"""What every ``collab-qa`` command shares: the consoles, the settings, the searcher and
the turn of a user's error into one sentence and exit code 2."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from collab_qa.errors import UserError
from collab_qa.settings import Settings

if TYPE_CHECKING:
    from collab_qa.embedding import Embedder
    from collab_qa.search import Searcher

console = Console()
errors = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors the user can fix into one sentence on stderr and exit code 2."""
    try:
        yield
    except UserError as exc:
        errors.print(f"[bold red]Error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with the command's flags (when given) on top."""
    with user_errors():
        try:
            settings = Settings()
        except ValueError as exc:
            raise UserError(f"A COLLAB_QA_ setting is invalid: {exc}") from None
    given = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=given) if given else settings


def open_any_searcher(settings: Settings, load_embedder: Callable[[str], Embedder]) -> Searcher:
    """A searcher over the index the settings name: the database when a URL is set (checked
    before the model loads), else the local folder."""
    from collab_qa.search import Searcher, open_searcher

    if not settings.database_url:
        return open_searcher(settings, load_embedder(settings.model))
    from collab_qa.store.postgres import Database, PostgresStore

    database = Database.connect(settings.database_url)
    embedder = load_embedder(settings.model)
    store = PostgresStore.load(database, expected_model_id=embedder.model_id)
    return Searcher(store, embedder, dense_weight=settings.dense_weight,
                    sparse_terms=settings.sparse_terms,
                    max_question_chars=settings.max_question_chars, max_k=settings.max_k)
