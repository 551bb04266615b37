"""A real ``collab-qa serve`` on 127.0.0.1 in a child process, for the end-to-end figures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from collab_qa.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``with Server(settings) as server:`` starts ``collab-qa serve`` and waits for /readyz.

    ``server.ready_seconds`` is the cold start: process start until /readyz answers 200.
    """

    def __init__(self, settings: Settings, *, timeout: float = 120.0,
                 extra_env: dict[str, str] | None = None, watch: bool = False) -> None:
        self.watch = watch
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timeout = timeout
        self.extra_env = extra_env or {}
        self.ready_seconds = float("nan")
        self._process: subprocess.Popen[bytes] | None = None
        self._log = settings.data_dir / "server.log"

    @property
    def pid(self) -> int:
        """Process id of the running server."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def __enter__(self) -> Server:
        env = {**os.environ, **self.extra_env,
               "COLLAB_QA_CORPUS_DIR": str(self.settings.corpus_dir),
               "COLLAB_QA_INDEX_DIR": str(self.settings.index_dir),
               "COLLAB_QA_DATA_DIR": str(self.settings.data_dir),
               "COLLAB_QA_HOST": "127.0.0.1", "COLLAB_QA_PORT": str(self.port)}
        command = Path(sys.executable).parent / "collab-qa"
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(command), "serve", *(["--watch"] if self.watch else [])], env=env,
                stdout=log, stderr=subprocess.STDOUT)
        deadline = started + self.timeout
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"collab-qa serve exited; see {self._log}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        self.ready_seconds = time.perf_counter() - started
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        self.__exit__(None, None, None)
        raise TimeoutError(f"collab-qa serve was not ready within {self.timeout} s")

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
