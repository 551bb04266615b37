"""Postgres beside the local folder: the same synthetic chunks (``bench.scale``'s generator) in
a throwaway Postgres with pgvector (pgserver) and in the local folder's indexes.

For each size: the database build through the product's writer (COPY, the vector index the
build chooses or ``--pg-index`` names, BM25 statistics and impact-ordered postings, one
transaction), p50/p95 of hybrid search through the product's Searcher, dense recall@10
against exact search (and, for IVFFlat, across a sweep of probes), the database's size, the
postgres processes' memory, the load average, and ``EXPLAIN`` of the dense query (it must use
the vector index with the version filter). The local side is ``bench.scale``'s product index
(ivf_sq8 from 50k chunks on, flat below), built and searched in child processes as there;
``--pg-only`` skips it and keeps its figures from the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import CACHE, read_result, run_child, show, summary_ms, table, write_result
from bench.scale import DIM, _child, _FixedEmbedder, _read_texts, folder

PER_DOCUMENT = 100  # synthetic chunks per synthetic document
# Enough for the HNSW graph of 1M 384-d vectors to be built in memory.
MAINTENANCE_WORK_MEM = "2GB"
PROBE_SWEEP = (4, 8, 16, 32, 64)


def _records(size: int) -> list[tuple[Any, list[Any], np.ndarray]]:
    from collab_qa.chunking import Chunk
    from collab_qa.store import DocumentRecord

    out = folder(size)
    vectors = np.load(out / "vectors.npy", mmap_mode="r")
    texts = _read_texts(out)
    added = []
    for low in range(0, size, PER_DOCUMENT):
        doc_id = f"doc{low // PER_DOCUMENT}"
        chunks = []
        for i in range(low, min(size, low + PER_DOCUMENT)):
            start = (i - low) * 1000
            chunks.append(Chunk(doc_id, i - low, (), start, start + len(texts[i]), texts[i]))
        record = DocumentRecord(doc_id, f"Document {low // PER_DOCUMENT}", "", f"sha{low}",
                                "txt", tuple(c.id for c in chunks))
        added.append((record, chunks, np.asarray(vectors[low:low + len(chunks)])))
    return added


def _postgres_pss_mb(server: Any) -> float:
    """Memory of the postgres processes: the sum of their PSS (shared pages counted once)."""
    import psutil

    root = psutil.Process(server.get_pid())
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:  # a backend that ended meanwhile
            continue
        except (psutil.AccessDenied, AttributeError):
            total += process.memory_info().rss
    return round(total / 2**20, 1)


def _explain(connection: Any, store: Any, vector: np.ndarray) -> str:
    from collab_qa.store.postgres import _DENSE_SQL
    from collab_qa.store.postgres_vectors import SEARCH_SETTINGS_SQL, search_settings

    with connection.transaction():
        connection.execute(SEARCH_SETTINGS_SQL,
                           search_settings(store.manifest.get("vector_index"), 10))
        rows = connection.execute("EXPLAIN (ANALYZE, COSTS OFF) " + _DENSE_SQL.format(d=DIM),
                                  {"vector": vector, "version": store.version_id,
                                   "k": 10}).fetchall()
    plan = "\n".join(row[0] for row in rows)
    return re.sub(r"'\[[^\]]*\]'::vector", "'[…]'::vector", plan)


def _sweep_probes(database: Any, store: Any, vectors: np.ndarray, truth: np.ndarray
                  ) -> list[dict[str, Any]]:
    """Dense search alone at several ``ivfflat.probes`` (an IVFFlat index only)."""
    from collab_qa.store.postgres import _DENSE_SQL

    lists = int((store.manifest.get("vector_index") or {}).get("lists") or 0)
    rows = []
    with database.connection(vectors=True) as connection:
        for probes in [p for p in PROBE_SWEEP if p <= lists]:
            timings, recalls = [], []
            for vector, expected in zip(vectors, truth, strict=True):
                started = time.perf_counter()
                with connection.transaction():
                    connection.execute("SELECT set_config('ivfflat.probes', %s, true)",
                                       (str(probes),))
                    got = connection.execute(_DENSE_SQL.format(d=DIM), {
                        "vector": vector, "version": store.version_id, "k": 10}).fetchall()
                timings.append((time.perf_counter() - started) * 1000)
                recalls.append(len({row[0] for row in got} & set(expected.tolist())) / 10)
            rows.append({"probes": probes, "dense_ms": summary_ms(timings),
                         "recall_at_10": round(float(np.mean(recalls)), 4)})
    return rows


def step_postgres(size: int, queries: int, kind: str = "auto") -> dict[str, Any]:
    """Build the synthetic index in a fresh Postgres, then search it (one child process).

    With ``COLLAB_QA_BENCH_KEEP_DATABASE`` set, the database is stopped rather than deleted
    and its folder is reported as ``kept_data_dir``, so ``query`` can search it again.
    """
    import pgserver

    from collab_qa.store.postgres import Database
    from collab_qa.store.postgres_build import PostgresBackend
    from collab_qa.store.postgres_vectors import VectorIndexChoice

    keep = bool(os.environ.get("COLLAB_QA_BENCH_KEEP_DATABASE"))
    data_dir = Path(tempfile.mkdtemp(prefix="pg-", dir=CACHE))
    server = pgserver.get_server(data_dir, cleanup_mode="stop" if keep else "delete")
    try:
        server.psql(f"ALTER SYSTEM SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}';"
                    "SELECT pg_reload_conf();")
        database = Database.connect(server.get_uri())
        added = _records(size)
        load_at_start = os.getloadavg()
        started = time.perf_counter()
        backend = PostgresBackend(database, VectorIndexChoice(kind))  # type: ignore[arg-type]
        with backend.building(60):
            writer = backend.writer(None)
            for record, chunks, vectors in added:
                writer.add(record, chunks, vectors)
            writer.commit({"model": {"id": "synthetic", "dimension": DIM},
                           "chunker": {}, "skipped": [], "build": {}})
        build_seconds = time.perf_counter() - started
        del added
        load_after_build = os.getloadavg()
        result = {"build_seconds": round(build_seconds, 1),
                  **_query_postgres(server, database, size, queries),
                  "load_average": {"start": load_at_start, "after_build": load_after_build,
                                   "after_queries": os.getloadavg()}}
        if keep:
            result["kept_data_dir"] = str(data_dir)
        database.close()
        return result
    finally:
        server.cleanup()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def step_query(size: int, queries: int, data_dir: Path) -> dict[str, Any]:
    """Search a database kept by an earlier ``step_postgres`` again (after a change)."""
    import pgserver

    from collab_qa.store.postgres import Database

    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        database = Database.connect(server.get_uri())
        result = _query_postgres(server, database, size, queries)
        database.close()
        return result
    finally:
        server.cleanup()


def _query_postgres(server: Any, database: Any, size: int, queries: int) -> dict[str, Any]:
    """Load the store, time dense and hybrid search, and measure the database."""
    from bench.common import rss_mb
    from collab_qa.answer import search_passages
    from collab_qa.search import Searcher
    from collab_qa.store.postgres import PostgresStore

    out = folder(size)
    base = rss_mb()
    started = time.perf_counter()
    store = PostgresStore.load(database)
    load_seconds = time.perf_counter() - started
    query_vectors = np.load(out / "queries.npy")
    query_texts = json.loads((out / "query_texts.json").read_text(encoding="utf-8"))
    truth = np.load(out / "truth.npy")
    n = min(queries, len(query_vectors))
    searcher = Searcher(store, _FixedEmbedder(query_vectors, query_texts))
    for i in range(min(10, n)):  # warm the caches a serving database would have
        search_passages(searcher, query_texts[i], k=10, mode="hybrid")
    timings: dict[str, list[float]] = {"dense_store": [], "dense": [], "hybrid": []}
    recalls: dict[str, list[float]] = {"dense_store": [], "dense": []}
    for i in range(n):
        t0 = time.perf_counter()
        positions, _ = store.dense_search(query_vectors[i], 10)
        timings["dense_store"].append((time.perf_counter() - t0) * 1000)
        recalls["dense_store"].append(len(set(positions.tolist())
                                          & set(truth[i].tolist())) / 10)
        for mode in ("dense", "hybrid"):
            t0 = time.perf_counter()
            hits = search_passages(searcher, query_texts[i], k=10, mode=mode)
            timings[mode].append((time.perf_counter() - t0) * 1000)
            if mode == "dense":
                got = {int(h.chunk.doc_id[3:]) * PER_DOCUMENT + h.chunk.ordinal for h in hits}
                recalls["dense"].append(len(got & set(truth[i].tolist())) / 10)
    with database.connection(vectors=True) as connection:
        sizes = dict(connection.execute(
            "SELECT 'database', pg_database_size(current_database()) UNION ALL "
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'collab_qa' AND "
            "c.relkind IN ('r', 'i')").fetchall())
        plan = _explain(connection, store, query_vectors[0])
    sweep = _sweep_probes(database, store, query_vectors[:n], truth[:n])
    return {
        "dense_index": store.manifest.get("dense_index", ""),
        "probe_sweep": sweep,
        "load_seconds": round(load_seconds, 1),
        "store_rss_mb": round(rss_mb() - base, 1),
        "postgres_pss_mb": _postgres_pss_mb(server),
        "database_mb": round(sizes.pop("database") / 2**20, 1),
        "relations_mb": {name: round(b / 2**20, 1) for name, b in sorted(
            sizes.items(), key=lambda item: -item[1])[:6]},
        "search_ms": {mode: summary_ms(values) for mode, values in timings.items()},
        "recall_at_10": {mode: round(float(np.mean(values)), 4)
                         for mode, values in recalls.items()},
        "plan": plan,
        "plan_uses_index": f"chunks_embedding_{DIM}" in plan and "Seq Scan" not in plan,
    }


def _pg_child(size: int, queries: int, timeout: float, kind: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.pgscale", str(size), str(queries), kind]
    return run_child(command, timeout)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [300] if args.tiny else [int(s) for s in args.pg_sizes.split(",")]
    kind = "flat" if args.tiny else "ivf_sq8"
    results: dict[str, Any] = {"sizes": (read_result("pgscale") or {}).get("sizes", {})}
    pg_only, pg_index = getattr(args, "pg_only", False), getattr(args, "pg_index", "auto")
    for size in sizes:
        before = results["sizes"].get(str(size), {})
        if pg_only and (folder(size) / "truth.npy").is_file():
            data = before.get("data", {})  # the cached chunks of an earlier run
        else:
            data = _child("data", size, "-", args.queries, args.scale_timeout)
        local_kind = "flat" if size < 50_000 else kind
        if pg_only and "local" in before:
            local = before["local"]
        else:
            local = {"build": _child("build", size, local_kind, args.queries,
                                     args.scale_timeout),
                     "query": _child("query", size, local_kind, args.queries,
                                     args.scale_timeout)}
        postgres = _pg_child(size, args.queries, args.scale_timeout, pg_index)
        results["sizes"][str(size)] = {"data": data, "local_kind": local_kind,
                                       "local": local, "postgres": postgres}
        if pg_only and "postgres" in before:  # the first figures this kind of run replaced
            results["sizes"][str(size)]["postgres_before"] = before.get("postgres_before",
                                                                        before["postgres"])
        show(f"{size:>9,} postgres {({k: v for k, v in postgres.items() if k != 'plan'})}")
        show(postgres.get("plan", ""))
        write_result("pgscale", results)
        if "kept_data_dir" not in postgres:
            shutil.rmtree(folder(size), ignore_errors=True)
    show(render(results))
    return results


def _postgres_rows(size: str, postgres: dict[str, Any], label: str) -> list[list[Any]]:
    search = postgres["search_ms"]
    dense_index = postgres.get("dense_index", "pgvector HNSW (cosine)")
    uses_index = postgres.get("plan_uses_index", postgres.get("plan_uses_hnsw"))
    return [[f"{int(size):,}", label + dense_index, postgres.get("build_seconds", "–"),
             f"{search['dense']['p50']} / {search['dense']['p95']}",
             f"{search['hybrid']['p50']} / {search['hybrid']['p95']}",
             f"{postgres['recall_at_10']['dense']} "
             f"(index alone {postgres['recall_at_10']['dense_store']})",
             postgres["database_mb"],
             f"{postgres['store_rss_mb']} + postgres {postgres['postgres_pss_mb']}",
             "yes" if uses_index else "NO"]]


def render(result: dict[str, Any]) -> str:
    rows = []
    for size, entry in sorted(result["sizes"].items(), key=lambda item: int(item[0])):
        local, postgres, data = entry["local"], entry["postgres"], entry["data"]
        if "error" in postgres or "error" in local["query"] or "error" in local["build"]:
            rows.append([f"{int(size):,}", postgres.get("error") or local["query"].get("error")
                         or local["build"].get("error"), "", "", "", "", "", "", ""])
            continue
        searcher = local["query"]["searcher"]
        rows.append([f"{int(size):,}", f"local ({entry['local_kind']})",
                     round(local["build"]["build_seconds"]
                           + data.get("lexical_build_seconds", 0), 1),
                     f"{searcher['dense']['p50']} / {searcher['dense']['p95']}",
                     f"{searcher['hybrid']['p50']} / {searcher['hybrid']['p95']}",
                     searcher.get("dense_recall_at_10", ""),
                     round(local["build"]["disk_mb"] + data.get("lexical_disk_mb", 0)
                           + data.get("vectors_disk_mb", 0)),
                     local["query"]["rss_mb"], ""])
        for key, label in (("postgres_before", "postgres before, "), ("postgres", "postgres, ")):
            if key in entry and "error" not in entry[key]:
                rows.extend(_postgres_rows(size, entry[key], label))
                for again in entry[key].get("searched_again", []):
                    rows.extend(_postgres_rows(size, again, f"{label}{again['change']}, "))
        for again in entry.get("searched_again", []):  # the kept database, after a change
            rows.extend(_postgres_rows(size, again, f"postgres, {again['change']}, "))
    return table("Postgres beside the local folder: synthetic chunks, one query at a time "
                 "(ms, MB)",
                 ["chunks", "store", "build s", "dense p50 / p95", "hybrid p50 / p95",
                  "dense recall@10", "disk / database MB", "RSS MB (server + database)",
                  "index in plan"],
                 rows) + (
        "\nSame data as the Scale part. Build: the local folder's dense and BM25 indexes; for "
        "Postgres the product's writer (COPY, the vector index built in one go, BM25 statistics"
        " and postings, one transaction) with maintenance_work_mem 2GB; the vector index is the"
        " one the build chooses by size (HNSW below 100,000 passages, IVFFlat from there). "
        "Searches go through the product's Searcher over loopback; dense recall@10 is against "
        "exact search. The database's memory is the sum of its processes' PSS after the "
        "queries. The lexical half of hybrid search in Postgres reads impact-ordered postings "
        "(each word's passages by BM25 contribution, in blocks) until no unread passage can "
        "enter the top k, then scores the remaining candidates exactly (see SCALING.md); past "
        "200,000 passages it keeps to a budget. Rows \"postgres, …\" searched the same database"
        " again after a change to the code (`python -m bench.pgscale query`, with "
        "COLLAB_QA_BENCH_KEEP_DATABASE set for the build). Rows \"postgres before\" are the "
        "figures a `--pg-only` run replaced (the HNSW index, measured at a load average of "
        "5-9 on the 2 cores, against 1-5 for the IVFFlat rows).\n")


if __name__ == "__main__":
    if sys.argv[1] == "query":  # python -m bench.pgscale query SIZE QUERIES DATA_DIR
        print(json.dumps(step_query(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))))
    else:
        print(json.dumps(step_postgres(int(sys.argv[1]), int(sys.argv[2]),
                                       sys.argv[3] if len(sys.argv) > 3 else "auto")))
