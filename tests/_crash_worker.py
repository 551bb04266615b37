"""Fork server for tests/test_crash_safety.py: imports collab-qa once, then runs each build in a
forked child the test can SIGKILL, so a trial costs a fork instead of a fresh interpreter.

Protocol, one JSON object per line: the test writes
``{"corpus": ..., "index": ..., "full": bool, "kill_at_op": int | null, "ops_file": str | null}``;
the worker answers ``{"pid": N}`` as soon as the child runs, then ``{"exit": code}`` when
it ended (-9 after SIGKILL). With ``kill_at_op`` the child SIGKILLs itself just before its
N-th file-system operation (open for writing, fsync, mkdir, rename, replace, unlink, rmdir,
FAISS write); with ``ops_file`` it writes how many such operations the build made and its
seconds.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_index

OS_OPERATIONS = ("fsync", "mkdir", "rename", "replace", "unlink", "rmdir")


def _instrument(kill_at_op: int | None) -> list[int]:
    """Count file-system operations; SIGKILL this process right before number ``kill_at_op``."""
    count = [0]

    def step() -> None:
        count[0] += 1
        if kill_at_op is not None and count[0] >= kill_at_op:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(function: Any, writes_only: bool = False) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
            if not writes_only or any(flag in str(mode) for flag in "wax+"):
                step()
            return function(*args, **kwargs)

        return wrapper

    for name in OS_OPERATIONS:
        setattr(os, name, wrap(getattr(os, name)))
    builtins.open = io.open = wrap(builtins.open, writes_only=True)
    faiss.write_index = wrap(faiss.write_index)
    return count


def _child(request: dict[str, Any]) -> None:
    count = _instrument(request.get("kill_at_op"))
    started = time.perf_counter()
    build_index(Path(request["corpus"]), Path(request["index"]), FakeEmbedder(),
                ChunkerConfig(), full=bool(request.get("full")), lock_timeout=5)
    if request.get("ops_file"):
        Path(request["ops_file"]).write_text(f"{count[0]} {time.perf_counter() - started}")


def _warm_up() -> None:
    """One throwaway build, so lazy imports (bm25s, Stemmer, pypdf...) happen before forking."""
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus"
        corpus.mkdir()
        (corpus / "a.txt").write_text("Warm up\n\nA short document.", encoding="utf-8")
        build_index(corpus, Path(scratch) / "index", FakeEmbedder(), ChunkerConfig())


def main() -> None:
    _warm_up()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child(request)
            except BaseException as exc:  # report and leave without running the parent's code
                print(f"build failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                code = 3
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
