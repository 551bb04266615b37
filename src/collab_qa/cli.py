"""The ``collab-qa`` command: parse flags, call the library, print. Nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from collab_qa.errors import UserError
from collab_qa.settings import Settings

if TYPE_CHECKING:
    from collab_qa.embedding import Embedder
    from collab_qa.index import BuildReport
    from collab_qa.search import Searcher

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
                    max_question_chars=settings.max_question_chars, max_k=settings.max_k)


@app.command("index")
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
    table.add_row("chunks", str(report.chunks), f"{report.embedded_chunks} embedded")
    table.add_row("seconds", f"{report.seconds:.2f}", "")
    console.print(table)
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    if report.up_to_date:
        console.print("The index was already up to date.")


def _copy_folder(folder: Path, settings: Settings) -> BuildReport:
    """``index --from-folder``: the folder's live version, copied into the database."""
    from collab_qa.index import copy_index, load_index
    from collab_qa.store.postgres import Database
    from collab_qa.store.postgres_build import PostgresBackend

    if not settings.database_url:
        raise UserError("--from-folder copies an index folder into a database: set "
                        "COLLAB_QA_DATABASE_URL to the database first.")
    database = Database.connect(settings.database_url)
    source = load_index(folder, term_stats=False)
    console.print(f"Copying version {source.version} of {folder} ({len(source.chunks):,} "
                  f"chunks) into the {database.describe()}…", highlight=False)
    return copy_index(source, PostgresBackend(database),
                      lock_timeout=settings.build_lock_timeout)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="Passages to show.")] = None,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or lexical.")] = None,
    history: Annotated[list[str] | None, typer.Option(
        "--after", help="An earlier question this one follows up on (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """Answer a question: the best sentence, contacts and the ranked passages with citations."""
    from collab_qa.answer import answer_question
    from collab_qa.embedding import load_embedder
    from collab_qa.web.views import answer_payload

    settings = load_settings()
    with user_errors():
        searcher = open_any_searcher(settings, load_embedder)
        answer = answer_question(searcher, question, k=k or settings.default_k,
                                 mode=mode or settings.default_mode, history=history or ())
    if as_json:
        payload = answer_payload(answer, searcher.index.version)
        console.print_json(json.dumps(payload.model_dump(mode="json"), ensure_ascii=False))
        return
    if answer.abstained:
        console.print("[bold]The documents don't answer this.[/]"
                      + (" Possibly related:" if answer.hits else ""))
    elif answer.best_sentence:
        console.print(f"[bold]{escape(answer.best_sentence)}[/]", highlight=False)
        console.print(f"[dim]— {escape(answer.hits[0].citation)}[/]\n", highlight=False)
    for contact in answer.contacts:
        details = ", ".join(part for part in (contact.name, contact.role, contact.email,
                                              contact.phone) if part)
        console.print(f"Contact: {escape(details)}  [dim]({escape(contact.citation)})[/]",
                      highlight=False)
    for conflict in answer.conflicts:
        console.print(f"[yellow]Sources disagree:[/] {escape(conflict.note or conflict.topic)}",
                      highlight=False)
        for citation, sentence in conflict.statements:
            console.print(f"  - {escape(sentence)}  [dim]({escape(citation)})[/]",
                          highlight=False)
    if answer.contacts or answer.conflicts:
        console.print()
    for rank, hit in enumerate(answer.hits, 1):
        console.print(f"[bold]{rank}. {escape(hit.citation)}[/]  [dim]{hit.score:.3f}[/]",
                      highlight=False)
        console.print(f"   {hit.text}\n", highlight=False, markup=False)


def check_port_free(host: str, port: int) -> None:
    """Raise UserError with a sentence when ``host:port`` cannot be listened on."""
    import socket

    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise UserError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}); stop what uses it or "
            "pick another port with --port."
        ) from None


def _print_built(report: BuildReport) -> None:
    console.print(f"Index {report.version}: {report.chunks} chunks from "
                  f"{len(report.added)} documents in {report.seconds:.1f} s.", highlight=False)


def _prepare_database(settings: Settings,
                      load_embedder: Callable[[str], Embedder]) -> Embedder:
    """Before serving from the database: reach it (a bad URL or a database that is down
    fails here, before the model loads), and build the index when there is none; returns
    the loaded model."""
    from collab_qa.store.postgres import Database, PostgresStore
    from collab_qa.store.postgres_build import build_postgres_index_from_settings

    database = Database.connect(settings.database_url)
    embedder = load_embedder(settings.model)
    if database.current_version_id() is None:
        console.print(f"No index in the {database.describe()} yet; building it from "
                      f"{settings.corpus_dir}...", highlight=False)
        _print_built(build_postgres_index_from_settings(settings, embedder))
    PostgresStore.load(database, expected_model_id=embedder.model_id)
    return embedder


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: setting].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: setting].")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Re-index when corpus files change.")]
    = False,
) -> None:
    """Serve the web chat and the JSON API; builds the index first when there is none."""
    import logging

    import uvicorn

    from collab_qa.embedding import load_embedder
    from collab_qa.index import build_index_from_settings, current_version_dir, load_index
    from collab_qa.web.app import create_app, served_url

    settings = load_settings(host=host, port=port)
    with user_errors():
        if settings.database_url:
            embedder = _prepare_database(settings, load_embedder)
        else:
            embedder = load_embedder(settings.model)
            if current_version_dir(settings.index_dir) is None:
                console.print(f"No index in {settings.index_dir} yet; building it from "
                              f"{settings.corpus_dir}...", highlight=False)
                _print_built(build_index_from_settings(settings, embedder))
            load_index(settings.index_dir, expected_model_id=embedder.model_id)
        check_port_free(settings.host, settings.port)
    # The app logs index switches, failed reloads and --watch rebuilds; show them with uvicorn's.
    app_log = logging.getLogger("collab_qa")
    if not app_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        app_log.addHandler(handler)
        app_log.setLevel(logging.INFO)
    console.print(f"collab-qa is serving on [bold]{served_url(settings.host, settings.port)}[/]"
                  f"{' (re-indexing on corpus changes)' if watch else ''}; Ctrl+C stops it.",
                  highlight=False)
    # Bounded: at most max_connections at once (then 503), idle keep-alive closed after 15 s
    # (longer than clients' pools keep idle connections, httpx 5 s: with equal timeouts a
    # request sent just as the server closes fails), X-Forwarded-For trusted from a proxy on
    # this machine only, no Server header. uvicorn parses HTTP with httptools (a dependency)
    # where it is installed, in C, rather than with h11 in Python.
    uvicorn.run(create_app(settings, embedder=embedder, watch=watch), host=settings.host,
                port=settings.port, log_level="info", timeout_keep_alive=15,
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


EVAL_MODES = ("hybrid", "dense", "lexical")


@app.command("eval")
def eval_command(
    file: Annotated[Path, typer.Argument(help="Question file, one JSON object a line.")] = Path(
        "eval/questions.jsonl"),
    mode: Annotated[str, typer.Option(help="hybrid, dense, lexical or all.")] = "all",
    k: Annotated[int, typer.Option("--k", "-k", help="Passages retrieved per question.")] = 10,
    report: Annotated[Path | None, typer.Option(
        help="Write report.json, report.md and report.html into this folder.")] = None,
    fail_under: Annotated[list[str] | None, typer.Option(
        "--fail-under", help="METRIC=VALUE, repeatable; exit 1 when a mode misses it "
        "(for latency and answerable_abstained: when it exceeds it).")] = None,
    split: Annotated[str | None, typer.Option(
        help="Only questions of this split: dev, test, blind or blind2 "
             "(the blind splits are left out otherwise).")
                     ] = None,
    beir: Annotated[Path | None, typer.Option(
        help="Run a BEIR-layout benchmark folder (e.g. SciFact) instead of a question file.")
                    ] = None,
) -> None:
    """Run an eval question set (or a BEIR benchmark) and print the metrics per mode."""
    from collab_qa.embedding import load_embedder
    from collab_qa.evaluate import check_thresholds, parse_thresholds

    settings = load_settings()
    with user_errors():
        if mode not in (*EVAL_MODES, "all"):
            raise UserError(f"Unknown mode '{mode}'; use hybrid, dense, lexical or all.")
        modes = list(EVAL_MODES) if mode == "all" else [mode]
        thresholds = parse_thresholds(fail_under or [])
        if beir is not None:
            _eval_beir(beir, modes, settings)
            return
        from collab_qa.evaluate import load_questions, run_eval

        searcher = open_any_searcher(settings, load_embedder)
        questions = load_questions(file, searcher.index.documents, split)
        result = run_eval(searcher, questions, modes, k=k,
                          source=str(file), split=split)
    table = Table(title=f"{file} · split {split or 'all'} · {result.counts['questions']} "
                        f"questions ({result.counts['unanswerable']} unanswerable)")
    names = ("hit@1", "recall@5", "mrr@10", "ndcg@10", "evidence@1", "unanswerable_abstained",
             "answerable_abstained", "latency_p50_ms", "latency_p95_ms")
    labels = ("Hit@1", "R@5", "MRR@10", "nDCG@10", "Ev@1", "unans. abst.", "ans. abst.",
              "p50 ms", "p95 ms")
    table.add_column("mode")
    for label in labels:
        table.add_column(label, justify="right")
    for mode_result in result.modes:
        table.add_row(mode_result.mode, *[
            "–" if mode_result.metrics[n] is None
            else f"{mode_result.metrics[n]:.1f}" if n.endswith("_ms")
            else f"{mode_result.metrics[n]:.3f}" for n in names])
    console.print(table)
    for mode_result in result.modes:
        for tag, values in mode_result.by_tag.items():
            console.print(f"{mode_result.mode} · tag {tag} ({values['questions']:.0f} answerable):"
                          f" Hit@1 {values['hit@1']:.3f}, R@5 {values['recall@5']:.3f}, "
                          f"MRR@10 {values['mrr@10']:.3f}", highlight=False)
    encode = result.query_encode_ms
    console.print(f"Latency is search + answer after the query encode (encode: p50 "
                  f"{encode['p50'] or 0:.1f} ms, p95 {encode['p95'] or 0:.1f} ms).",
                  highlight=False)
    for mode_result in result.modes:
        for failed in mode_result.failures:
            verdict = ("should have abstained" if not failed.answerable
                       else "abstained wrongly" if failed.abstained else "not found first")
            console.print(f"[bold]{mode_result.mode} {failed.id}[/] {failed.question} "
                          f"[dim]({verdict}, confidence {failed.confidence:.3f})[/]",
                          highlight=False)
            for rank, top in enumerate(failed.top, 1):
                console.print(f"   {rank}. {'✓' if top['relevant'] else '✗'} {top['citation']}",
                              highlight=False, markup=False)
    if report is not None:
        from collab_qa.eval_report import write_reports

        written = write_reports(result, report)
        console.print(f"Reports written: {', '.join(p.name for p in written)} in {report}",
                      highlight=False)
    misses = check_thresholds(result, thresholds)
    for miss in misses:
        errors.print(f"[bold red]Below threshold:[/] {miss}", highlight=False)
    if misses:
        raise typer.Exit(1)


@app.command("calibrate")
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


def _eval_beir(folder: Path, modes: list[str], settings: Settings) -> None:
    """The BEIR branch of ``collab-qa eval``: cached index, metrics per mode."""
    from rich.progress import Progress

    from collab_qa.beir import (
        PUBLISHED_NDCG10,
        copy_into,
        load_beir,
        open_beir_index,
        run_beir,
        split_queries,
    )
    from collab_qa.chunking import ChunkerConfig
    from collab_qa.embedding import load_embedder
    from collab_qa.search import Searcher
    from collab_qa.store import IndexStore

    dataset = load_beir(folder)
    database = None
    if settings.database_url:
        from collab_qa.store.postgres import Database

        database = Database.connect(settings.database_url)  # fails before the model loads
    embedder = load_embedder(settings.model)
    cached = open_beir_index(
        dataset, embedder, settings.data_dir,
        ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap_tokens),
        approximate_threshold=settings.approximate_threshold,
        lock_timeout=settings.build_lock_timeout, progress=True,
        sparse_terms=settings.sparse_terms,
        on_build=lambda path: console.print(
            f"Encoding {len(dataset.corpus):,} documents once into {path} (slow on a CPU; "
            "reused next time)…", highlight=False))
    index: IndexStore = cached
    if database is not None:
        from collab_qa.store.postgres_build import PostgresBackend

        index = copy_into(dataset, cached, PostgresBackend(database),
                          lock_timeout=settings.build_lock_timeout)
    searcher = Searcher(index, embedder, dense_weight=settings.dense_weight, max_k=1000,
                        sparse_terms=settings.sparse_terms)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("queries", total=len(dataset.queries) * len(modes))
        results = run_beir(searcher, dataset, modes,
                           progress=lambda mode, done, total: progress.advance(task))
    _, report_half = split_queries(list(dataset.queries))
    published = PUBLISHED_NDCG10.get(dataset.name.lower(), {})
    table = Table(title=f"{dataset.name}: {len(dataset.queries)} queries, "
                        f"{len(dataset.corpus):,} documents, {len(index.chunks):,} chunks "
                        f"in the {'local folder' if database is None else database.describe()}, "
                        f"dense weight {searcher.dense_weight}")
    for column in ("mode", "nDCG@10", "Recall@100", "MRR@10",
                   f"nDCG@10 report half ({len(report_half)})", "published nDCG@10"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for result in results:
        reference = published.get(result.mode)
        table.add_row(result.mode, f"{result.mean('ndcg@10'):.3f}",
                      f"{result.mean('recall@100'):.3f}", f"{result.mean('mrr@10'):.3f}",
                      f"{result.mean('ndcg@10', report_half):.3f}",
                      f"{reference[0]:.3f} ({reference[1]})" if reference else "–")
    console.print(table)
