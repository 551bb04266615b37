"""The ``collab-qa`` command: parse flags, call the library, print. Nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from collab_qa.errors import UserError
from collab_qa.settings import Settings

app = typer.Typer(
    name="collab-qa",
    help="Ask questions of your organisation's documents; answers cite their sources.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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


@app.command("index")
def index_command(
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder [default: setting].")] = None,
    index: Annotated[Path | None, typer.Option(help="Index folder [default: setting].")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed every document.")] = False,
) -> None:
    """Build or update the index from the corpus folder (only changed files are re-embedded)."""
    from collab_qa.chunking import ChunkerConfig
    from collab_qa.embedding import load_embedder
    from collab_qa.index import build_index

    settings = load_settings(corpus_dir=corpus, index_dir=index)
    with user_errors():
        embedder = load_embedder(settings.model)
        report = build_index(
            settings.corpus_dir, settings.index_dir, embedder,
            ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap_tokens),
            full=full, max_file_bytes=settings.max_file_bytes,
            hnsw_threshold=settings.hnsw_threshold, lock_timeout=settings.build_lock_timeout,
            progress=True,
        )
    if report.full_rebuild_reason:
        console.print(f"Full rebuild: {report.full_rebuild_reason}.")
    table = Table(title=f"Index {report.version}", show_header=False)
    for label, names in (("added", report.added), ("changed", report.changed),
                         ("removed", report.removed), ("unchanged", report.unchanged)):
        table.add_row(f"{label} documents", str(len(names)), ", ".join(names[:6]))
    table.add_row("chunks", str(report.chunks), f"{report.embedded_chunks} embedded")
    table.add_row("seconds", f"{report.seconds:.2f}", "")
    console.print(table)
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    if report.up_to_date:
        console.print("The index was already up to date.")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="Passages to show.")] = None,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or lexical.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer a question from the index: ranked passages with citations."""
    from collab_qa.embedding import load_embedder
    from collab_qa.search import open_searcher

    settings = load_settings()
    with user_errors():
        searcher = open_searcher(settings, load_embedder(settings.model))
        hits = searcher.search(question, k=k or settings.default_k,
                               mode=mode or settings.default_mode)
    if as_json:
        console.print_json(json.dumps({"question": question, "passages": [
            {"doc_id": h.doc_id, "title": h.title, "heading": list(h.chunk.heading_path),
             "citation": h.citation, "score": round(h.score, 4), "start": h.chunk.start,
             "end": h.chunk.end, "text": h.text} for h in hits]}, ensure_ascii=False))
        return
    if not hits:
        console.print("Nothing in the documents matches this question.")
    for rank, hit in enumerate(hits, 1):
        console.print(f"[bold]{rank}. {hit.citation}[/]  [dim]{hit.score:.3f}[/]", highlight=False)
        console.print(f"   {hit.text}\n", highlight=False, markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: setting].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: setting].")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Re-index when corpus files change.")]
    = False,
) -> None:
    """Serve the web chat and the JSON API; builds the index first when there is none."""
    import uvicorn

    from collab_qa.app import create_app, rebuild_index, served_url
    from collab_qa.embedding import load_embedder
    from collab_qa.index import current_version_dir, load_index

    settings = load_settings(host=host, port=port)
    with user_errors():
        embedder = load_embedder(settings.model)
        if current_version_dir(settings.index_dir) is None:
            console.print(f"No index in {settings.index_dir} yet; building it from "
                          f"{settings.corpus_dir}...", highlight=False)
            report = rebuild_index(settings, embedder)
            console.print(f"Index {report.version}: {report.chunks} chunks from "
                          f"{len(report.added)} documents in {report.seconds:.1f} s.",
                          highlight=False)
        load_index(settings.index_dir, expected_model_id=embedder.model_id)
    console.print(f"collab-qa is serving on [bold]{served_url(settings.host, settings.port)}[/]"
                  f"{' (re-indexing on corpus changes)' if watch else ''}; Ctrl+C stops it.",
                  highlight=False)
    # Bounded: at most max_connections at once (then 503), idle keep-alive closed after 5 s,
    # X-Forwarded-For trusted from a proxy on this machine only, no Server header.
    uvicorn.run(create_app(settings, embedder=embedder, watch=watch), host=settings.host,
                port=settings.port, log_level="info", timeout_keep_alive=5,
                limit_concurrency=settings.max_connections, timeout_graceful_shutdown=10,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1", server_header=False)


feedback_app = typer.Typer(help="Answer feedback (👍/👎) given in the web chat.",
                           no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    include_down: Annotated[bool, typer.Option(
        "--include-down", help="Also print 👎 answers (ids review-…) to fill in.")] = False,
) -> None:
    """Print the feedback as lines of the eval question format, for eval/questions.jsonl."""
    from collab_qa.feedback import FeedbackStore, eval_lines

    settings = load_settings()
    for line in eval_lines(list(FeedbackStore(settings.data_dir).read()), include_down):
        typer.echo(json.dumps(line, ensure_ascii=False))
