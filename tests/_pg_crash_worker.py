"""Build the index in Postgres and SIGKILL this process just before its N-th database call,
for tests/test_postgres_store.py. Usage: ``python _pg_crash_worker.py URL CORPUS N`` (N = 0:
never). Prints the number of database calls the build made when it was not killed."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import psycopg

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_into
from collab_qa.store.postgres import Database
from collab_qa.store.postgres_build import PostgresBackend


def main() -> None:
    url, corpus, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    count = [0]

    def counted(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return method(*args, **kwargs)

        return wrapper

    psycopg.Cursor.execute = counted(psycopg.Cursor.execute)  # type: ignore[method-assign]
    psycopg.Cursor.copy = counted(psycopg.Cursor.copy)  # type: ignore[method-assign]
    build_into(PostgresBackend(Database(url)), corpus, FakeEmbedder(), ChunkerConfig(),
                         lock_timeout=10)
    print(count[0])


if __name__ == "__main__":
    main()
