"""Eval reports: report.json, report.md and report.html (with matplotlib charts)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from collab_qa.evaluate import EvalReport

RATE_METRICS = ("hit@1", "recall@5", "mrr@10", "ndcg@10", "evidence@1",
                "unanswerable_abstained", "answerable_abstained")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")


def format_value(value: float | None, name: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if name.endswith("_ms") else f"{value:.3f}"


def metrics_table_md(report: EvalReport) -> str:
    names = (*RATE_METRICS, *LATENCY_METRICS)
    lines = ["| mode | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for mode in report.modes:
        lines.append(f"| {mode.mode} | " + " | ".join(
            format_value(mode.metrics.get(n), n) for n in names) + " |")
    return "\n".join(lines)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def charts(report: EvalReport) -> dict[str, bytes]:
    """PNG charts: quality metrics per mode, and the latency histogram per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pictures: dict[str, bytes] = {}
    figure, axes = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(len(report.modes), 1)
    for i, mode in enumerate(report.modes):
        values = [mode.metrics.get(n) or 0.0 for n in RATE_METRICS]
        positions = [x + i * width for x in range(len(RATE_METRICS))]
        axes.bar(positions, values, width, label=mode.mode)
    axes.set_xticks([x + width * (len(report.modes) - 1) / 2 for x in range(len(RATE_METRICS))])
    axes.set_xticklabels([n.replace("_", "\n") for n in RATE_METRICS], fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_title("Metrics per mode")
    axes.legend(fontsize=8)
    pictures["metrics.png"] = _png(figure)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(9, 3.2))
    for mode in report.modes:
        axes.hist([q.latency_ms for q in mode.questions], bins=30, alpha=0.6, label=mode.mode)
    axes.set_xlabel("ms per question (search and answer, after the query encode)")
    axes.set_ylabel("questions")
    axes.set_title("Latency")
    axes.legend(fontsize=8)
    pictures["latency.png"] = _png(figure)
    plt.close(figure)
    return pictures


def failures_md(report: EvalReport) -> str:
    parts = []
    for mode in report.modes:
        failed = mode.failures
        parts.append(f"### {mode.mode}: {len(failed)} failed\n")
        for result in failed:
            verdict = ("should have abstained" if not result.answerable
                       else "abstained wrongly" if result.abstained else "not found first")
            parts.append(f"- **{result.id}** {result.question} — {verdict} "
                         f"(confidence {result.confidence:.3f})")
            for rank, top in enumerate(result.top, 1):
                mark = "✓" if top["relevant"] else "✗"
                parts.append(f"  {rank}. {mark} {top['citation']}")
        parts.append("")
    return "\n".join(parts)


def report_markdown(report: EvalReport) -> str:
    encode = report.query_encode_ms
    return "\n".join([
        f"# Eval report: {report.source}",
        "",
        f"Split: {report.split or 'all'} · questions: {report.counts['questions']} "
        f"({report.counts['answerable']} answerable, {report.counts['unanswerable']} "
        f"unanswerable, {report.counts['follow_ups']} follow-ups) · k = {report.k} · "
        f"settings: {json.dumps(report.settings)}",
        "",
        metrics_table_md(report),
        "",
        f"Latency is search plus answer building after the query vector is encoded; the "
        f"query encode itself: p50 {format_value(encode.get('p50'), '_ms')} ms, "
        f"p95 {format_value(encode.get('p95'), '_ms')} ms.",
        "",
        "![metrics](metrics.png)",
        "",
        "![latency](latency.png)",
        "",
        "## Failed questions with their top 3",
        "",
        failures_md(report),
    ])


def report_html(report: EvalReport, pictures: dict[str, bytes]) -> str:
    names = (*RATE_METRICS, *LATENCY_METRICS)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><th>{html.escape(m.mode)}</th>"
        + "".join(f"<td>{format_value(m.metrics.get(n), n)}</td>" for n in names) + "</tr>"
        for m in report.modes)
    images = "".join(
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}">' for name, data in pictures.items())
    failed = []
    for mode in report.modes:
        items = []
        for result in mode.failures:
            tops = "".join(
                f"<li>{'✓' if t['relevant'] else '✗'} {html.escape(t['citation'])}</li>"
                for t in result.top)
            items.append(f"<li><b>{html.escape(result.id)}</b> {html.escape(result.question)}"
                         f" <small>(confidence {result.confidence:.3f}"
                         f"{', abstained' if result.abstained else ''})</small><ol>{tops}</ol>"
                         "</li>")
        failed.append(f"<h3>{html.escape(mode.mode)}: {len(items)} failed</h3>"
                      f"<ul>{''.join(items)}</ul>")
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>Eval report {html.escape(report.source)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;"
        "padding:0 1rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:.3rem .5rem;text-align:right}img{max-width:100%;display:block;"
        "margin:1rem 0}</style>"
        f"<h1>Eval report: {html.escape(report.source)}</h1>"
        f"<p>Split {html.escape(report.split or 'all')}, {report.counts['questions']} "
        f"questions ({report.counts['answerable']} answerable, "
        f"{report.counts['unanswerable']} unanswerable), k = {report.k}.</p>"
        f"<table><tr><th>mode</th>{head}</tr>{rows}</table>{images}"
        f"<h2>Failed questions with their top 3</h2>{''.join(failed)}</html>"
    )


def write_reports(report: EvalReport, directory: Path) -> list[Path]:
    """Write report.json, report.md, report.html and the chart PNGs; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    pictures = charts(report)
    written = []
    for name, data in pictures.items():
        (directory / name).write_bytes(data)
        written.append(directory / name)
    outputs = {
        "report.json": json.dumps(report.to_dict(), indent=1, ensure_ascii=False),
        "report.md": report_markdown(report),
        "report.html": report_html(report, pictures),
    }
    for name, text in outputs.items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written
