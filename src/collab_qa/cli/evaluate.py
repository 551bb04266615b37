"""``collab-qa eval``: metrics per mode on a question file, or on a BEIR benchmark folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from collab_qa.cli.common import console, errors, load_settings, open_any_searcher, user_errors
from collab_qa.errors import UserError
from collab_qa.settings import Settings

EVAL_MODES = ("hybrid", "dense", "lexical")


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
        help="Only questions of this split: dev, test, or one of the blind splits "
             "(blind, blind2, blind3), which are left out otherwise.")
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
        from collab_qa.store.postgres_build import backend_for

        index = copy_into(dataset, cached, backend_for(settings, database),
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
