"""Query latency on corpus/: in-process search + answer with a stage breakdown, then
``POST /api/ask`` against a real server; throughput with concurrent clients."""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from bench.common import Question, load_questions, show, summary_ms, table, write_result
from bench.corpus_index import bench_settings, build, fresh_corpus

STAGES = ("encode", "dense", "lexical", "fusion", "answer", "render")


class _Timings:
    """Accumulates milliseconds per stage for the request in flight (one thread)."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[stage] += (time.perf_counter() - started) * 1000
        return timed


class _Proxy:
    """Delegates everything to ``target`` except the methods given."""

    def __init__(self, target: Any, **methods: Callable[..., Any]) -> None:
        self._target = target
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def instrumented(searcher: Any) -> tuple[Any, _Timings]:
    """A copy of ``searcher`` whose encoder, dense index, BM25 and search are timed."""
    import copy

    from collab_qa.search import Searcher

    timings = _Timings()
    index = copy.copy(searcher.index)
    index.dense = _Proxy(index.dense, search=timings.wrap("dense", index.dense.search))
    index.lexical = _Proxy(index.lexical, scores=timings.wrap("lexical", index.lexical.scores))
    embedder = _Proxy(searcher.embedder,
                      encode_query=timings.wrap("encode", searcher.embedder.encode_query),
                      encode=timings.wrap("encode_sentences", searcher.embedder.encode))
    probe = Searcher(index, embedder, dense_weight=searcher.dense_weight,
                     max_question_chars=searcher.max_question_chars, max_k=searcher.max_k)
    probe.retrieve = timings.wrap("search", probe.retrieve)  # type: ignore[method-assign]
    return probe, timings


def _render(answer: Any, version: str) -> bytes:
    """What the API does after answering: the payload model, then its JSON."""
    from collab_qa.web.views import answer_payload

    return answer_payload(answer, version).model_dump_json().encode()


def in_process(searcher: Any, questions: list[Question], requests: int,
               clients: int, throughput_requests: int, seconds: float) -> dict[str, Any]:
    from collab_qa.answer import answer_question

    probe, timings = instrumented(searcher)
    version = searcher.index.version
    cycle = itertools.cycle(questions)
    for question in questions:  # warm-up: one pass, like a server that has seen each once
        answer_question(searcher, question.question, history=question.history)
    totals: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    for _ in range(requests):
        question = next(cycle)
        timings.current.clear()
        started = time.perf_counter()
        answer = answer_question(probe, question.question, history=question.history)
        mid = time.perf_counter()
        _render(answer, version)
        ended = time.perf_counter()
        totals.append((ended - started) * 1000)
        now = timings.current
        search = now["search"]
        stages["encode"].append(now["encode"])
        stages["dense"].append(now["dense"])
        stages["lexical"].append(now["lexical"])
        stages["fusion"].append(max(0.0, search - now["encode"] - now["dense"] - now["lexical"]))
        stages["answer"].append((mid - started) * 1000 - search)
        stages["answer_sentence_encode"].append(now["encode_sentences"])
        stages["render"].append((ended - mid) * 1000)
    # Cold: every question new to the query cache (first sight of a question).
    cold: list[float] = []
    for i, question in enumerate(questions[: min(len(questions), 60)]):
        fresh = f"{question.question} ({i})"
        started = time.perf_counter()
        answer_question(searcher, fresh, history=question.history)
        cold.append((time.perf_counter() - started) * 1000)
    return {"requests": requests, "latency_ms": summary_ms(totals),
            "uncached_latency_ms": summary_ms(cold),
            "breakdown_ms": {stage: summary_ms(values) for stage, values in stages.items()},
            "throughput": _throughput_in_process(searcher, questions, clients,
                                                 throughput_requests, seconds)}


def bounded_throughput(clients: int, total: int, seconds: float,
                       request: Callable[[int, Any], object],
                       session: Callable[[], AbstractContextManager[Any]] = nullcontext,
                       ) -> dict[str, Any]:
    """Run ``request(n, session)`` from ``clients`` threads until ``total`` requests or
    ``seconds`` have passed, whichever comes first; each thread opens its own ``session``."""
    counter = itertools.count()
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with session() as own:
            while time.perf_counter() < deadline:
                n = next(counter)
                if n >= total:
                    return
                started = time.perf_counter()
                request(n, own)
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "seconds": round(elapsed, 2),
            "per_second": round(len(latencies) / elapsed, 1), "latency_ms": summary_ms(latencies)}


def _throughput_in_process(searcher: Any, questions: list[Question], clients: int,
                           total: int, seconds: float) -> dict[str, Any]:
    from collab_qa.answer import answer_question

    def ask(n: int, _: Any) -> None:
        question = questions[n % len(questions)]
        answer_question(searcher, question.question, history=question.history)

    return bounded_throughput(clients, total, seconds, ask)


def end_to_end(settings: Any, questions: list[Question], requests: int, clients: int,
               throughput_requests: int, seconds: float) -> dict[str, Any]:
    import httpx

    from bench.server import Server

    bodies = [json.dumps({"question": q.question, "history": q.history}).encode()
              for q in questions]
    headers = {"content-type": "application/json"}
    with Server(settings) as server:
        url = f"{server.url}/api/ask"
        with httpx.Client(timeout=30.0) as client:
            for body in bodies:  # warm-up pass
                client.post(url, content=body, headers=headers).raise_for_status()
            latencies: list[float] = []
            server_ms: list[float] = []
            for i in range(requests):
                started = time.perf_counter()
                response = client.post(url, content=bodies[i % len(bodies)], headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                server_ms.append(float(response.json().get("took_ms", 0.0)))
        def post(n: int, own: httpx.Client) -> None:
            own.post(url, content=bodies[n % len(bodies)], headers=headers).raise_for_status()

        throughput = bounded_throughput(clients, throughput_requests, seconds, post,
                                        lambda: httpx.Client(timeout=30.0))
        return {"requests": requests, "latency_ms": summary_ms(latencies),
                "server_took_ms": summary_ms(server_ms),
                "cold_start_seconds": round(server.ready_seconds, 2),
                "throughput": throughput}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from collab_qa.embedding import Embedder, FakeEmbedder, load_embedder
    from collab_qa.search import open_searcher

    questions, source = load_questions()
    settings = bench_settings("latency")
    fresh_corpus(settings)
    embedder: Embedder = FakeEmbedder() if args.tiny else load_embedder(settings.model)
    build(settings, embedder, full=True)
    searcher = open_searcher(settings, embedder)
    result: dict[str, Any] = {"questions": source, "question_count": len(questions),
                              "chunks": len(searcher.index.chunks),
                              "dense_index": searcher.index.manifest.get("dense_index", "")}
    if args.tiny:
        args.requests, args.throughput_requests, args.seconds = 20, 20, 5.0
    result["in_process"] = in_process(searcher, questions, args.requests, args.clients,
                                      args.throughput_requests, args.seconds)
    if not args.no_server and not args.tiny:
        result["end_to_end"] = end_to_end(settings, questions, args.requests, args.clients,
                                          args.throughput_requests, args.seconds)
    write_result("latency", result)
    show(render(result))
    return result


def render(result: dict[str, Any]) -> str:
    rows = []
    inproc = result["in_process"]
    rows.append(["in-process search+answer+render (cycled)", *_pcts(inproc["latency_ms"])])
    rows.append(["in-process, question never seen (cold cache)",
                 *_pcts(inproc["uncached_latency_ms"])])
    e2e = result.get("end_to_end")
    if e2e:
        rows.append(["POST /api/ask on 127.0.0.1 (cycled)", *_pcts(e2e["latency_ms"])])
    text = table(f"Query latency, {result['chunks']} chunks, {result['question_count']} "
                 f"questions from {result['questions']} (ms)",
                 ["path", "n", "p50", "p95", "p99"], rows)
    stages = inproc["breakdown_ms"]
    text += "\n" + table("Breakdown per in-process request (ms)", ["stage", "p50", "p95", "mean"],
                         [[s, stages[s]["p50"], stages[s]["p95"], stages[s]["mean"]]
                          for s in (*STAGES, "answer_sentence_encode") if s in stages])
    rows = [["in-process", *_throughput(inproc["throughput"])]]
    if e2e:
        rows.append(["POST /api/ask", *_throughput(e2e["throughput"])])
    text += "\n" + table("Throughput", ["path", "clients", "requests", "req/s", "p50 ms",
                                        "p95 ms"], rows)
    if e2e:
        text += f"\nCold start of `collab-qa serve` to /readyz: {e2e['cold_start_seconds']} s\n"
    return text


def _pcts(stats: dict[str, float]) -> list[Any]:
    return [stats["n"], stats["p50"], stats["p95"], stats["p99"]]


def _throughput(stats: dict[str, Any]) -> list[Any]:
    return [stats["clients"], stats["requests"], stats["per_second"],
            stats["latency_ms"]["p50"], stats["latency_ms"]["p95"]]
