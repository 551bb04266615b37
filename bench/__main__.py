"""``python -m bench [part ...]``: run benchmark parts, write results, regenerate README."""

from __future__ import annotations

import argparse
import importlib
import sys

PARTS = ("goals", "latency", "indexing", "scale", "pgscale", "peers")
EXTRA_PARTS = ("onnx",)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("parts", nargs="*", default=["all"],
                   choices=[*PARTS, *EXTRA_PARTS, "all", "report"],
                   help="what to run (default: all = goals latency indexing scale pgscale peers)")
    p.add_argument("--requests", type=int, default=600, help="timed requests per latency path")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients for throughput")
    p.add_argument("--throughput-requests", type=int, default=800,
                   help="requests in the throughput loop (bounded)")
    p.add_argument("--seconds", type=float, default=60.0,
                   help="time bound of each throughput loop")
    p.add_argument("--no-server", action="store_true", help="skip the end-to-end server part")
    p.add_argument("--sizes", default="10000,100000,1000000",
                   help="scale: comma-separated chunk counts")
    p.add_argument("--pg-sizes", default="1000000",
                   help="pgscale: comma-separated chunk counts (Postgres beside the folder)")
    p.add_argument("--pg-only", action="store_true",
                   help="pgscale: skip the local folder's side (its last figures stay)")
    p.add_argument("--pg-index", default="auto", choices=["auto", "hnsw", "ivfflat"],
                   help="pgscale: the Postgres vector index (auto: by size)")
    p.add_argument("--scale-timeout", type=float, default=1800.0,
                   help="scale: seconds allowed per size")
    p.add_argument("--queries", type=int, default=200, help="scale: timed queries per index")
    p.add_argument("--tiny", action="store_true",
                   help="smoke test: fake embedder, tiny sizes, few requests (seconds)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    parts = list(PARTS) if "all" in args.parts else [p for p in args.parts if p != "report"]
    for part in parts:
        print(f"\n== {part} ==", flush=True)
        importlib.import_module(f"bench.{part}").run(args)
    from bench.report import write_readme

    print(f"wrote {write_readme()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
