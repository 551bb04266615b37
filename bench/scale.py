"""Scale: synthetic indexes of 10k, 100k and 1M chunks, exact vs approximate dense search.

The data is made up but shaped like embeddings and passages: unit vectors in 384-d drawn
around 1,000 topic centres (cosine ~0.6 to their centre), and 40-word texts drawn from a
Zipf vocabulary. A query is a perturbed copy of one chunk (cosine 0.8, like a paraphrase)
plus six of that chunk's words. Every (size, index kind) is built and then searched in its
own child process, so RSS and timings of one never leak into another; each has a time box.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import CACHE, percentile, run_child, show, summary_ms, table, write_result

DIM = 384
CENTRES = 1000
WORDS = 40
VOCABULARY = 30_000
SEED = 7
# Dense index kinds and the search parameter values swept for each.
KINDS: dict[str, list[int]] = {
    "flat": [0],
    "hnsw_flat": [64, 128, 256],
    "hnsw_sq8": [64, 128, 256],
    "ivf_sq8": [16, 32, 64],
}
PRODUCT_PARAMETER = {"hnsw_flat": 128, "hnsw_sq8": 128, "ivf_sq8": 32}


def folder(size: int) -> Path:
    return CACHE / f"scale-{size}"


def _unit(rows: np.ndarray) -> np.ndarray:
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def _vocabulary(rng: np.random.Generator) -> np.ndarray:
    syllables = np.array([c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"])
    parts = rng.integers(0, len(syllables), size=(VOCABULARY, 4))
    lengths = rng.integers(2, 5, size=VOCABULARY)
    words = {"".join(syllables[p[:n]]) for p, n in zip(parts, lengths, strict=True)}
    return np.array(sorted(words))


def make_data(size: int, queries: int) -> dict[str, Any]:
    """Write vectors.npy, texts.txt, queries.npy, query_texts.json and truth.npy."""
    out = folder(size)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    centres = _unit(rng.standard_normal((CENTRES, DIM), dtype=np.float32))
    vectors = np.empty((size, DIM), dtype=np.float32)
    step = 100_000
    for low in range(0, size, step):
        high = min(size, low + step)
        noise = _unit(rng.standard_normal((high - low, DIM), dtype=np.float32))
        topic = centres[rng.integers(0, CENTRES, size=high - low)]
        vectors[low:high] = _unit(0.6 * topic + 0.8 * noise)
    np.save(out / "vectors.npy", vectors)
    vocabulary = _vocabulary(rng)
    ranks = np.arange(1, len(vocabulary) + 1)
    weights = 1.0 / ranks**1.07
    weights /= weights.sum()
    with (out / "texts.txt").open("w", encoding="utf-8") as handle:
        for low in range(0, size, step):
            high = min(size, low + step)
            ids = rng.choice(len(vocabulary), size=(high - low, WORDS), p=weights)
            handle.writelines(" ".join(vocabulary[row]) + "\n" for row in ids)
    targets = rng.choice(size, size=queries, replace=False)
    query_vectors = _unit(0.8 * vectors[targets]
                          + 0.6 * _unit(rng.standard_normal((queries, DIM), dtype=np.float32)))
    np.save(out / "queries.npy", query_vectors)
    texts = _read_texts(out, wanted=set(int(t) for t in targets))
    query_texts = [" ".join(rng.choice(texts[int(t)].split(), size=6, replace=False))
                   for t in targets]
    (out / "query_texts.json").write_text(json.dumps(query_texts), encoding="utf-8")
    generated = time.perf_counter() - started
    import faiss

    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth = exact.search(query_vectors, 10)
    np.save(out / "truth.npy", truth)
    return {"generate_seconds": round(generated, 1)}


def _read_texts(out: Path, wanted: set[int] | None = None) -> dict[int, str]:
    texts: dict[int, str] = {}
    with (out / "texts.txt").open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if wanted is None or i in wanted:
                texts[i] = line.rstrip("\n")
    return texts


def make_dense(kind: str, vectors: np.ndarray) -> Any:
    """One dense index of the given kind, built over ``vectors``."""
    import faiss

    from collab_qa.store import local as product

    n = len(vectors)
    index: Any
    if kind == "flat":
        return product.make_vector_index(vectors, approximate_threshold=n + 1)
    if kind == "hnsw_flat":
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    elif kind == "hnsw_sq8":
        index = faiss.IndexHNSWSQ(DIM, faiss.ScalarQuantizer.QT_8bit, 32,  # type: ignore[arg-type]
                                  faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.train(vectors[: min(n, 100_000)])
    elif kind == "ivf_sq8":  # what the product builds from COLLAB_QA_APPROXIMATE_THRESHOLD on
        return product.make_vector_index(vectors, approximate_threshold=1)
    else:
        raise ValueError(kind)
    index.add(vectors)
    return index


def set_parameter(index: Any, kind: str, value: int) -> None:
    import faiss

    if kind.startswith("hnsw"):
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efSearch = value
    elif kind.startswith("ivf"):
        faiss.extract_index_ivf(index).nprobe = value


# ---------------------------------------------------------------------------- child steps


def step_data(size: int, queries: int) -> dict[str, Any]:
    from bench.common import peak_rss_mb
    from collab_qa.store.local import LexicalIndex

    result = make_data(size, queries)
    out = folder(size)
    texts = list(_read_texts(out).values())
    started = time.perf_counter()
    lexical = LexicalIndex.build(texts)
    result["lexical_build_seconds"] = round(time.perf_counter() - started, 1)
    shutil.rmtree(out / "bm25", ignore_errors=True)
    lexical.save(out / "bm25")
    result["lexical_disk_mb"] = _disk_mb(out / "bm25")
    result["vectors_disk_mb"] = _disk_mb(out / "vectors.npy")
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def step_build(size: int, kind: str) -> dict[str, Any]:
    import faiss

    from bench.common import peak_rss_mb

    out = folder(size)
    vectors = np.load(out / "vectors.npy")
    started = time.perf_counter()
    index = make_dense(kind, vectors)
    seconds = time.perf_counter() - started
    faiss.write_index(index, str(out / f"{kind}.faiss"))
    return {"build_seconds": round(seconds, 1), "disk_mb": _disk_mb(out / f"{kind}.faiss"),
            "peak_rss_mb": peak_rss_mb()}


class _FixedEmbedder:
    """Returns the stored vector of query ``q<i>``: the search path without a model."""

    def __init__(self, vectors: np.ndarray, texts: list[str]) -> None:
        self._by_text = {text: vectors[i] for i, text in enumerate(texts)}
        self.model_id = "synthetic"
        self.dimension = DIM

    def encode_query(self, text: str) -> np.ndarray:
        return self._by_text[text]

    def encode(self, texts: Any, *, progress: bool = False) -> np.ndarray:
        return np.stack([self._by_text[t] for t in texts])

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def step_query(size: int, kind: str, queries: int) -> dict[str, Any]:
    import faiss

    from bench.common import peak_rss_mb, rss_mb
    from collab_qa.answer import search_passages
    from collab_qa.chunking import Chunk
    from collab_qa.search import Searcher
    from collab_qa.store import DocumentRecord
    from collab_qa.store.local import LexicalIndex, LocalStore

    faiss.omp_set_num_threads(1)  # one query at a time, as a request would
    out = folder(size)
    base = rss_mb()
    started = time.perf_counter()
    vectors = np.load(out / "vectors.npy", mmap_mode="r")
    dense = faiss.read_index(str(out / f"{kind}.faiss"))
    lexical = LexicalIndex.load(out / "bm25", mmap=True)
    chunks = []
    with (out / "texts.txt").open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            text = line.rstrip("\n")
            start = (i % 100) * 1000
            chunks.append(Chunk(f"doc{i // 100}", i % 100, (), start, start + len(text), text))
    documents = {f"doc{d}": DocumentRecord(f"doc{d}", f"Document {d}", "", "", "txt", ())
                 for d in range((size + 99) // 100)}
    load_seconds = time.perf_counter() - started
    index = LocalStore(out, {"version": f"scale-{size}", "model": {"id": "synthetic"}}, documents,
                  chunks, vectors, dense, lexical)
    query_vectors = np.load(out / "queries.npy")
    query_texts = json.loads((out / "query_texts.json").read_text(encoding="utf-8"))
    truth = np.load(out / "truth.npy")
    n = min(queries, len(query_vectors))
    searcher = Searcher(index, _FixedEmbedder(query_vectors, query_texts))
    sweeps = []
    for value in KINDS[kind]:
        set_parameter(dense, kind, value)
        for i in range(min(10, n)):  # warm the pages a server would have touched
            dense.search(query_vectors[i : i + 1], 10)
        timings, found = [], []
        for i in range(n):
            t0 = time.perf_counter()
            _, ids = dense.search(query_vectors[i : i + 1], 10)
            timings.append((time.perf_counter() - t0) * 1000)
            found.append(ids[0])
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in
                                zip(found, truth[:n], strict=True)]))
        sweeps.append({"parameter": value, "dense_ms": summary_ms(timings),
                       "recall_at_10": round(recall, 4)})
    set_parameter(dense, kind, PRODUCT_PARAMETER.get(kind, 0))
    product: dict[str, Any] = {"parameter": PRODUCT_PARAMETER.get(kind, 0)}
    for mode in ("dense", "hybrid"):
        timings, recalls = [], []
        for i in range(n):
            t0 = time.perf_counter()
            hits = search_passages(searcher, query_texts[i], k=10, mode=mode)
            timings.append((time.perf_counter() - t0) * 1000)
            if mode == "dense":
                got = {int(h.chunk.doc_id[3:]) * 100 + h.chunk.ordinal for h in hits}
                recalls.append(len(got & set(truth[i].tolist())) / 10)
        product[mode] = summary_ms(timings)
        if recalls:
            product["dense_recall_at_10"] = round(float(np.mean(recalls)), 4)
    return {"load_seconds": round(load_seconds, 1), "rss_mb": round(rss_mb() - base + base, 1),
            "peak_rss_mb": peak_rss_mb(), "sweep": sweeps, "searcher": product}


def _disk_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def _child(step: str, size: int, kind: str, queries: int, timeout: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.scale", step, str(size), kind, str(queries)]
    started = time.perf_counter()
    result = run_child(command, timeout)
    if "error" not in result:
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [300] if args.tiny else [int(s) for s in args.sizes.split(",")]
    kinds = list(KINDS)
    results: dict[str, Any] = {"sizes": {}, "kinds": KINDS,
                               "product_parameter": PRODUCT_PARAMETER}
    previous = _previous()
    for size in sizes:
        entry: dict[str, Any] = {"data": _child("data", size, "-", args.queries,
                                                args.scale_timeout)}
        for kind in kinds:
            if kind == "hnsw_flat" and size >= 1_000_000 and not getattr(args, "all_kinds",
                                                                         False):
                continue  # 1.5 GB of float vectors twice over; see the README
            built = _child("build", size, kind, args.queries, args.scale_timeout)
            queried = (_child("query", size, kind, args.queries, args.scale_timeout)
                       if "error" not in built else {})
            entry[kind] = {"build": built, "query": queried}
            show(f"{size:>9,} {kind:<10} build {built} query "
                 f"{ {k: v for k, v in queried.items() if k != 'sweep'} }")
        results["sizes"][str(size)] = entry
        previous["sizes"][str(size)] = entry
        write_result("scale", {**previous, "kinds": KINDS,
                               "product_parameter": PRODUCT_PARAMETER})
        shutil.rmtree(folder(size), ignore_errors=True)
    merged = _previous()
    show(render(merged))
    return merged


def _previous() -> dict[str, Any]:
    from bench.common import read_result

    old = read_result("scale") or {}
    return {"sizes": old.get("sizes", {})}


def render(result: dict[str, Any]) -> str:
    rows = []
    for size, entry in sorted(result["sizes"].items(), key=lambda item: int(item[0])):
        data = entry.get("data", {})
        for kind in KINDS:
            if kind not in entry:
                continue
            built, queried = entry[kind]["build"], entry[kind]["query"]
            if "error" in built or "error" in queried:
                rows.append([f"{int(size):,}", kind, built.get("error") or queried.get("error"),
                             "", "", "", "", "", "", "", ""])
                continue
            best = _pick(queried["sweep"], PRODUCT_PARAMETER.get(kind, 0))
            searcher = queried["searcher"]
            rows.append([
                f"{int(size):,}", kind, built["build_seconds"],
                round(built["disk_mb"] + data.get("lexical_disk_mb", 0)
                      + data.get("vectors_disk_mb", 0)), queried["rss_mb"],
                best["parameter"], best["dense_ms"]["p50"], best["dense_ms"]["p95"],
                best["recall_at_10"], searcher.get("dense_recall_at_10", ""),
                f"{searcher['hybrid']['p50']} / {searcher['hybrid']['p95']}",
            ])
    return table("Scale: synthetic chunks, one query at a time (ms, MB)",
                 ["chunks", "dense index", "build s", "disk MB", "RSS MB", "ef/nprobe",
                  "ANN p50", "ANN p95", "ANN recall@10", "search dense recall@10",
                  "hybrid search p50 / p95"], rows) + (
        "\nUnit vectors in 384-d around 1,000 topic centres, 40-word Zipf texts; a query is a "
        "perturbed copy of one chunk (cosine 0.8) plus six of its words. \"ANN\" is the faiss "
        "index alone (k=10); \"search\" is the product's Searcher (40 candidates re-scored "
        "exactly from vectors.npy). RSS is the serving process without the model "
        "(index, memory-mapped vectors, BM25 and the chunk list). hnsw_flat was not built at 1M "
        "(see the notes above).\n")


def _pick(sweep: list[dict[str, Any]], value: int) -> dict[str, Any]:
    for row in sweep:
        if row["parameter"] == value:
            return row
    return sweep[0]


def _percentile_check() -> float:  # keeps the import used for mypy's sake in tiny runs
    return percentile([1.0], 50)


if __name__ == "__main__":
    step_name, size_arg, kind_arg, queries_arg = sys.argv[1:5]
    if step_name == "data":
        output = step_data(int(size_arg), int(queries_arg))
    elif step_name == "build":
        output = step_build(int(size_arg), kind_arg)
    else:
        output = step_query(int(size_arg), kind_arg, int(queries_arg))
    print(json.dumps(output))
