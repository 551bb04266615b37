"""BEIR-layout benchmarks (e.g. SciFact): read the files, build a cached index, rank documents.

A BEIR folder holds ``corpus.jsonl`` ({"_id", "title", "text"}), ``queries.jsonl`` or
``queries-test.jsonl`` ({"_id", "text"}; any ``metadata`` is never read) and the test qrels
in ``qrels/test.tsv`` or ``qrels-test.tsv`` (tab separated, a header line, CRLF allowed).

The dataset is read in place and indexed with the product's own pipeline and store: an index
folder like the product's, under ``<data_dir>/beir/<name>-<hash of the model>/``, built
once and then brought up to date like any index (only changed documents are embedded again;
other chunker settings re-embed all). A chunk ranking becomes a document ranking by keeping
each document's best chunk.

With a database, the cached folder's version is copied into it, vectors and all, and the
benchmark is searched there (``copy_into``): the two stores rank the same passages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collab_qa.answer import search_passages
from collab_qa.chunking import ChunkerConfig
from collab_qa.documents import Document
from collab_qa.embedding import Embedder
from collab_qa.errors import UserError
from collab_qa.index import copy_index, update_index
from collab_qa.search import Searcher
from collab_qa.store import IndexStore, StoreBackend, WithSparseTerms
from collab_qa.store.local import CURRENT_FILE, LocalStore
from collab_qa.store.local_build import LocalFolder


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset read from disk.

    Attributes:
        name: The folder name (``scifact``).
        path: The folder.
        corpus: doc id -> (title, text).
        queries: query id -> text, only queries that have qrels.
        qrels: query id -> {doc id: relevance}.
        corpus_sha256: Hash of ``corpus.jsonl``, part of the cache key.
    """

    name: str
    path: Path
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus_sha256: str


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {number} is not valid JSON ({exc.msg}).") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise UserError(f"{path} line {number} has no \"_id\".")
            rows.append(row)
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip() or (number == 1 and fields[0] == "query-id"):
                continue
            if len(fields) != 3:
                raise UserError(f"{path} line {number} should have 3 tab-separated fields.")
            try:
                score = int(fields[2])
            except ValueError:
                raise UserError(f"{path} line {number}: the score is not a number.") from None
            qrels.setdefault(fields[0], {})[fields[1]] = score
    return qrels


def load_beir(path: Path) -> BeirDataset:
    """Read a BEIR folder.

    Raises:
        UserError: naming the missing or malformed file.
    """
    if not path.is_dir():
        raise UserError(f"The BEIR folder {path} does not exist.")
    corpus_file = path / "corpus.jsonl"
    query_file = next((p for p in (path / "queries-test.jsonl", path / "queries.jsonl")
                       if p.is_file()), None)
    qrels_file = next((p for p in (path / "qrels" / "test.tsv", path / "qrels-test.tsv")
                       if p.is_file()), None)
    if not corpus_file.is_file():
        raise UserError(f"{path} has no corpus.jsonl.")
    if query_file is None:
        raise UserError(f"{path} has neither queries-test.jsonl nor queries.jsonl.")
    if qrels_file is None:
        raise UserError(f"{path} has neither qrels/test.tsv nor qrels-test.tsv.")
    qrels = _read_qrels(qrels_file)
    corpus = {str(row["_id"]): (str(row.get("title") or ""), str(row.get("text") or ""))
              for row in _read_jsonl(corpus_file)}
    queries = {str(row["_id"]): str(row.get("text") or "") for row in _read_jsonl(query_file)}
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise UserError(f"{len(missing)} qrels query ids are not in {query_file.name}, "
                        f"e.g. {missing[0]}.")
    digest = hashlib.sha256()
    with corpus_file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return BeirDataset(
        name=path.resolve().name, path=path, corpus=corpus,
        queries={qid: queries[qid] for qid in queries if qid in qrels},
        qrels=qrels, corpus_sha256=digest.hexdigest(),
    )


def _documents(dataset: BeirDataset) -> list[Document]:
    return [Document(id=doc_id, title=title, text=text, format="plain",
                     sha256=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest())
            for doc_id, (title, text) in dataset.corpus.items()]


def cache_dir(dataset: BeirDataset, data_dir: Path, model_id: str) -> Path:
    """Where the dataset's index folder is kept: ``<data_dir>/beir/<name>-<hash of model>``."""
    model_hash = hashlib.sha256(model_id.encode()).hexdigest()[:12]
    return data_dir / "beir" / f"{dataset.name}-{model_hash}"


def open_beir_index(
    dataset: BeirDataset, embedder: Embedder, data_dir: Path, chunker: ChunkerConfig,
    *, approximate_threshold: int = 50_000, lock_timeout: float = 30.0,
    progress: bool = False, on_build: Callable[[Path], None] | None = None,
    sparse_terms: bool = True,
) -> LocalStore:
    """The dataset's index, encoded once and then brought up to date and loaded.

    Args:
        dataset: The loaded dataset.
        embedder: The embedding model.
        data_dir: The data folder; the index goes under ``beir/`` in it.
        chunker: Chunk size and overlap.
        approximate_threshold: Chunk count from which the dense index is approximate.
        lock_timeout: Seconds to wait for another build of the same index.
        progress: Show the encoding progress bar.
        on_build: Called with the index folder before the first (slow) build starts.
        sparse_terms: Also keep the passages' sparse vectors, when the model has them.
    """
    folder = cache_dir(dataset, data_dir, embedder.model_id)
    backend = LocalFolder(folder, approximate_threshold=approximate_threshold)
    if on_build is not None and not (folder / CURRENT_FILE).exists():
        on_build(folder)
    with backend.building(lock_timeout):
        update_index(backend, _documents(dataset), embedder, chunker, progress=progress,
                     sparse_terms=sparse_terms)
    return backend.load(expected_model_id=embedder.model_id)


def copy_into(dataset: BeirDataset, cached: LocalStore, backend: StoreBackend, *,
              lock_timeout: float = 30.0) -> IndexStore:
    """The dataset's index in another store (a database): the cached version copied in,
    unless that store already serves this very copy.

    Raises:
        UserError: when the store holds an index of other documents; a benchmark never
            replaces it.
    """
    current, _ = backend.base()
    if current is not None:
        if (current.manifest.get("build", {}).get("copied_from") == cached.version
                and isinstance(current, WithSparseTerms)
                and (current.sparse is None) == (cached.sparse is None)):
            return current
        if not set(current.documents) <= set(dataset.corpus):
            raise UserError(f"The database already holds an index of other documents than "
                            f"{dataset.name}; run the benchmark against a database of its own.")
    copy_index(cached, backend, lock_timeout=lock_timeout)
    return backend.load(expected_model_id=cached.model_id)


def rank_documents(searcher: Searcher, query: str, mode: str, depth: int = 100) -> list[str]:
    """Document ids for a query, best first: each document ranks by its best chunk."""
    ranked: list[str] = []
    seen: set[str] = set()
    k = min(searcher.max_k, len(searcher.index.chunks), depth * 3)
    for hit in search_passages(searcher, query, k=k, mode=mode):
        if hit.doc_id not in seen:
            seen.add(hit.doc_id)
            ranked.append(hit.doc_id)
            if len(ranked) == depth:
                break
    return ranked


def split_queries(query_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """A fixed half/half split (by a hash of the id) for tuning on one half, reporting on the
    other."""
    tune: list[str] = []
    report: list[str] = []
    for qid in query_ids:
        (tune if hashlib.sha256(qid.encode()).digest()[0] % 2 == 0 else report).append(qid)
    return tune, report


# Published nDCG@10 on SciFact test (see eval/README.md for the sources).
PUBLISHED_NDCG10 = {"scifact": {"lexical": (0.665, "BM25, BEIR paper"),
                                "dense": (0.645, "all-MiniLM-L6-v2, MTEB")}}


@dataclass
class BeirModeResult:
    """nDCG@10, Recall@100 and MRR@10 of one mode, over all queries and per half."""

    mode: str
    per_query: dict[str, dict[str, float]]

    def mean(self, metric: str, query_ids: Sequence[str] | None = None) -> float:
        ids = list(self.per_query) if query_ids is None else list(query_ids)
        return sum(self.per_query[q][metric] for q in ids) / len(ids) if ids else 0.0


def run_beir(searcher: Searcher, dataset: BeirDataset, modes: Sequence[str],
             progress: Callable[[str, int, int], None] | None = None) -> list[BeirModeResult]:
    """Rank documents for every test query in every mode and score them."""
    from collab_qa.metrics import mrr_from_ranking, ndcg_from_ranking, recall_from_ranking

    results = []
    for mode in modes:
        per_query = {}
        for done, (qid, text) in enumerate(dataset.queries.items(), 1):
            ranking = rank_documents(searcher, text, mode, depth=100)
            relevant = dataset.qrels[qid]
            per_query[qid] = {"ndcg@10": ndcg_from_ranking(ranking, relevant, 10),
                              "recall@100": recall_from_ranking(ranking, relevant, 100),
                              "mrr@10": mrr_from_ranking(ranking, relevant, 10)}
            if progress is not None:
                progress(mode, done, len(dataset.queries))
        results.append(BeirModeResult(mode, per_query))
    return results
