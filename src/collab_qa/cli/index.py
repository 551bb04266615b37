"""``collab-qa index``: build or update the index, or copy a folder into the database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from collab_qa.cli.common import console, load_settings, user_errors
from collab_qa.errors import UserError
from collab_qa.settings import Settings

if TYPE_CHECKING:
    from collab_qa.index import BuildReport

def index_command(
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder [default: setting].")] = None,
    index: Annotated[Path | None, typer.Option(help="Index folder [default: setting].")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed every document.")] = False,
    from_folder: Annotated[Path | None, typer.Option(
        "--from-folder", help="Copy this local index folder into the database "
        "(COLLAB_QA_DATABASE_URL), vectors and all, instead of reading the corpus.")] = None,
) -> None:
    """Build or update the index from the corpus folder (only changed files are re-embedded)."""
    from collab_qa.embedding import load_embedder

    settings = load_settings(corpus_dir=corpus, index_dir=index)
    with user_errors():
        if from_folder is not None:
            report = _copy_folder(from_folder, settings)
        else:
            if settings.database_url:
                from collab_qa.store.postgres import Database
                from collab_qa.store.postgres_build import build_postgres_index_from_settings

                Database.connect(settings.database_url)  # a bad URL fails before the model
                build = build_postgres_index_from_settings
            else:
                from collab_qa.index import build_index_from_settings as build
            report = build(settings, load_embedder(settings.model), full=full, progress=True)
    if report.full_rebuild_reason:
        console.print(f"Full rebuild: {report.full_rebuild_reason}.")
    table = Table(title=f"Index {report.version}", show_header=False)
    for label, names in (("added", report.added), ("changed", report.changed),
                         ("removed", report.removed), ("unchanged", report.unchanged)):
        table.add_row(f"{label} documents", str(len(names)), ", ".join(names[:6]))
    table.add_row("chunks", str(report.chunks), work_done(report))
    table.add_row("seconds", f"{report.seconds:.2f}", "")
    console.print(table)
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    if report.up_to_date:
        console.print("The index was already up to date.")


def work_done(report: BuildReport) -> str:
    """What the build did to the passages, e.g. "12 embedded", or "sparse terms added for
    64 passages" when only the kept passages' sparse vectors were encoded."""
    done = []
    if report.embedded_chunks or not (report.sparse_added_chunks or report.lexical_rebuilt):
        done.append(f"{report.embedded_chunks} embedded")
    if report.sparse_added_chunks:
        count = report.sparse_added_chunks
        done.append(f"sparse terms added for {count} passage{'s' if count != 1 else ''}")
    if report.lexical_rebuilt:
        done.append("BM25 index rebuilt for this version's text analyser")
    return "; ".join(done)


def _copy_folder(folder: Path, settings: Settings) -> BuildReport:
    """``index --from-folder``: the folder's live version, copied into the database."""
    from collab_qa.index import copy_index, load_index
    from collab_qa.store.postgres import Database
    from collab_qa.store.postgres_build import backend_for

    if not settings.database_url:
        raise UserError("--from-folder copies an index folder into a database: set "
                        "COLLAB_QA_DATABASE_URL to the database first.")
    database = Database.connect(settings.database_url)
    source = load_index(folder, term_stats=False)
    console.print(f"Copying version {source.version} of {folder} ({len(source.chunks):,} "
                  f"chunks) into the {database.describe()}…", highlight=False)
    return copy_index(source, backend_for(settings, database),
                      lock_timeout=settings.build_lock_timeout)
