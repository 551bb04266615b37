"""Peers side by side on corpus/: collab-qa, txtai (hybrid Embeddings) and Haystack 2.x
(in-memory BM25 + embedding retrievers joined by rank fusion), same chunks, same questions,
same bundled all-MiniLM-L6-v2, same process and torch threads.

Every system gets the passages collab-qa cuts (title and headings prefixed, the text
collab-qa embeds) and the same retrieval text per question (a follow-up read with the
previous question), so the comparison is of indexing and ranking, not of chunkers.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    CACHE,
    Question,
    load_questions,
    relevance,
    show,
    summary_ms,
    table,
    write_result,
)
from bench.corpus_index import bench_settings, build, fresh_corpus

K = 10
ROUNDS = 2  # index builds per system; the best counts (the machine is shared)

Retrieve = Callable[[str], list[tuple[str, str]]]  # query -> ranked (doc_id, text)


def _collab_qa(settings: Any) -> tuple[float, Retrieve, Callable[[], None], Any]:
    from collab_qa.answer import search_passages
    from collab_qa.embedding import load_embedder
    from collab_qa.search import open_searcher

    embedder: Any = load_embedder(settings.model)  # both real embedders cache questions
    seconds = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        build(settings, embedder, full=True)
        searcher = open_searcher(settings, embedder)  # loading is part of being ready
        seconds = min(seconds, time.perf_counter() - started)

    def retrieve(query: str) -> list[tuple[str, str]]:
        return [(h.doc_id, h.text) for h in search_passages(searcher, query, k=K, mode="hybrid")]

    return seconds, retrieve, embedder._cached_query.cache_clear, searcher


def _passages(searcher: Any) -> list[tuple[str, str, str]]:
    """(doc_id, chunk text, embedding text) of every chunk collab-qa indexed."""
    from collab_qa.chunking import embedding_text

    index = searcher.index
    return [(c.doc_id, c.text, embedding_text(index.title_of(c.doc_id), c))
            for c in index.chunks]


def _txtai(passages: list[tuple[str, str, str]]) -> tuple[float, Retrieve]:
    from txtai import Embeddings

    from collab_qa.embedding_st import bundled_model_path

    folder = CACHE / "peers" / "txtai"
    embeddings = Embeddings(path=str(bundled_model_path()), method="sentence-transformers",
                            content=True, hybrid=True)
    seconds = float("inf")
    for _ in range(ROUNDS):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        embeddings.index([(str(i), text, None) for i, (_, _, text) in enumerate(passages)])
        embeddings.save(str(folder))
        seconds = min(seconds, time.perf_counter() - started)

    def retrieve(query: str) -> list[tuple[str, str]]:
        return [(passages[int(r["id"])][0], passages[int(r["id"])][1])
                for r in embeddings.search(query, K)]

    return seconds, retrieve


def _haystack(passages: list[tuple[str, str, str]]) -> tuple[float, Retrieve]:
    from haystack import Document, Pipeline
    from haystack.components.embedders import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from collab_qa.embedding_st import bundled_model_path

    model = str(bundled_model_path())
    embedder = SentenceTransformersDocumentEmbedder(model=model, progress_bar=False,
                                                    normalize_embeddings=True,
                                                    local_files_only=True)
    embedder.warm_up()  # model loading is left out for every system
    seconds = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        store = InMemoryDocumentStore(embedding_similarity_function="cosine")
        documents = [Document(id=str(i), content=text)
                     for i, (_, _, text) in enumerate(passages)]
        store.write_documents(embedder.run(documents)["documents"])
        seconds = min(seconds, time.perf_counter() - started)
    pipeline = Pipeline()
    pipeline.add_component("text_embedder", SentenceTransformersTextEmbedder(
        model=model, progress_bar=False, normalize_embeddings=True, local_files_only=True))
    pipeline.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=K))
    pipeline.add_component("bm25", InMemoryBM25Retriever(store, top_k=K))
    pipeline.add_component("joiner", DocumentJoiner(
        join_mode="distribution_based_rank_fusion", top_k=K))
    pipeline.connect("text_embedder.embedding", "dense.query_embedding")
    pipeline.connect("dense", "joiner")
    pipeline.connect("bm25", "joiner")
    pipeline.warm_up()

    def retrieve(query: str) -> list[tuple[str, str]]:
        out = pipeline.run({"text_embedder": {"text": query}, "bm25": {"query": query}})
        return [(passages[int(d.id)][0], passages[int(d.id)][1])
                for d in out["joiner"]["documents"]]

    return seconds, retrieve


def _measure(retrieve: Retrieve, questions: list[Question], queries: list[str], requests: int,
             reset: Callable[[], None] | None) -> dict[str, Any]:
    if reset:
        reset()
    first: list[float] = []
    hit1: list[float] = []
    mrr: list[float] = []
    for question, query in zip(questions, queries, strict=True):
        started = time.perf_counter()
        ranked = retrieve(query)
        first.append((time.perf_counter() - started) * 1000)
        if question.answers:
            h, m = relevance(question, ranked, K)
            hit1.append(h)
            mrr.append(m)
    cycled: list[float] = []
    for query in itertools.islice(itertools.cycle(queries), requests):
        started = time.perf_counter()
        retrieve(query)
        cycled.append((time.perf_counter() - started) * 1000)
    return {"first_sight_ms": summary_ms(first), "cycled_ms": summary_ms(cycled),
            "hit_at_1": round(sum(hit1) / len(hit1), 4), "mrr_at_10": round(sum(mrr) / len(mrr), 4),
            "answerable": len(hit1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from collab_qa.query import compose_query

    questions, source = load_questions()
    queries = [compose_query(q.question, q.history) for q in questions]
    settings = bench_settings("peers")
    fresh_corpus(settings)
    requests = 50 if args.tiny else min(args.requests, 400)
    systems: dict[str, Any] = {}
    seconds, retrieve, reset, searcher = _collab_qa(settings)
    passages = _passages(searcher)
    systems["collab-qa"] = {"index_seconds": round(seconds, 2),
                            **_measure(retrieve, questions, queries, requests, reset)}
    for name, make in (("txtai", _txtai), ("haystack", _haystack)):
        try:
            seconds, retrieve = make(passages)
        except ImportError as exc:
            systems[name] = {"error": f"not installed ({exc.name}); pip install -e '.[bench]'"}
            continue
        systems[name] = {"index_seconds": round(seconds, 2),
                         **_measure(retrieve, questions, queries, requests, None)}
    result = {"questions": source, "question_count": len(questions), "chunks": len(passages),
              "k": K, "systems": systems}
    write_result("peers", result)
    show(render(result))
    return result


def render(result: dict[str, Any]) -> str:
    ours = result["systems"]["collab-qa"]
    rows = []
    for name, stats in result["systems"].items():
        if "error" in stats:
            rows.append([name, stats["error"], "", "", "", "", "", "", "", ""])
            continue
        rows.append([
            name, stats["index_seconds"], stats["first_sight_ms"]["p50"],
            stats["cycled_ms"]["p50"], stats["cycled_ms"]["p95"], stats["hit_at_1"],
            stats["mrr_at_10"],
            _ratio(stats["index_seconds"], ours["index_seconds"]),
            _ratio(stats["first_sight_ms"]["p50"], ours["first_sight_ms"]["p50"]),
            _ratio(stats["cycled_ms"]["p50"], ours["cycled_ms"]["p50"]),
        ])
    return table(
        f"Peers: {result['chunks']} chunks, {result['question_count']} questions "
        f"({result['questions']}), hybrid retrieval of {result['k']} passages",
        ["system", "index s", "first-sight p50 ms", "cycled p50 ms", "cycled p95 ms",
         "Hit@1", "MRR@10", "index: peer/collab-qa", "first-sight: peer/collab-qa",
         "cycled: peer/collab-qa"], rows) + (
        "\nRatios are peer time / collab-qa time (above 1× collab-qa is faster). Index time "
        "is the best of two builds, model loading left out; \"first sight\" is each question "
        "once with collab-qa's query cache cleared, \"cycled\" the questions repeated.\n")


def _ratio(peer: float, ours: float) -> str:
    return f"{peer / ours:.1f}×" if ours else "n/a"
