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
        assert postgres["plan_uses_hnsw"], postgres["plan"]
        assert 0.0 <= postgres["recall_at_10"]["dense"] <= 1.0
        assert postgres["search_ms"]["hybrid"]["n"] == 20 and postgres["database_mb"] > 0
    assert "## Postgres beside the local folder" in (tmp_path / "README.md").read_text()
