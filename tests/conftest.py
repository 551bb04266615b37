"""Shared fixtures: a fake embedder for fast tests, the real model and the real corpus index
for the tests that matter (loaded once per session), the one way tests build the web app
(``make_app_client``), a spy on opened files, and the ways to damage a built index."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, overload

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import Embedder, FakeEmbedder, load_embedder
from collab_qa.index import CURRENT_FILE, build_index, current_version_dir, load_index
from collab_qa.search import Searcher
from collab_qa.settings import Settings
from collab_qa.store.local import LocalStore
from collab_qa.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files opened during the test, through open() or Path.open()."""
    files: list[str] = []
    real_open, real_path_open = builtins.open, Path.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        files.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_path_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        files.append(str(self))
        return real_path_open(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(Path, "open", spy_path_open)
    return files


@pytest.fixture
def tmp_corpus(tmp_path: Path) -> Path:
    """A writable copy of the real corpus."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    return corpus


@contextmanager
def serve(app: FastAPI, **config: Any) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server on a free loopback port; yields its address."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the uvicorn server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class MakeAppClient(Protocol):
    """``make_app_client(settings, ...)``: the app as a TestClient, or on a real server."""

    @overload
    def __call__(self, settings: Settings, embedder: Embedder | None = None, *,
                 client: tuple[str, int] = LOOPBACK, watch: bool = False,
                 raise_server_exceptions: bool = True,
                 server: Literal[False] = False) -> AbstractContextManager[TestClient]: ...

    @overload
    def __call__(self, settings: Settings, embedder: Embedder | None = None, *,
                 client: tuple[str, int] = LOOPBACK, watch: bool = False,
                 raise_server_exceptions: bool = True,
                 server: Literal[True], **uvicorn_config: Any,
                 ) -> AbstractContextManager[httpx.Client]: ...


@contextmanager
def _app_client(settings: Settings, embedder: Embedder | None = None, *,
                client: tuple[str, int] = LOOPBACK, watch: bool = False,
                raise_server_exceptions: bool = True, server: bool = False,
                **uvicorn_config: Any) -> Iterator[TestClient | httpx.Client]:
    app = create_app(settings, embedder=embedder or FakeEmbedder(), watch=watch)
    if server:
        with serve(app, **uvicorn_config) as url, httpx.Client(base_url=url,
                                                               timeout=30) as http:
            yield http
        return
    with TestClient(app, client=client, base_url="http://127.0.0.1",
                    raise_server_exceptions=raise_server_exceptions) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def make_app_client() -> MakeAppClient:
    """The one way tests build the web app: ``with make_app_client(settings) as client:``.

    The app runs its lifespan (index loaded, watcher started with ``watch=True``) for the
    block. ``client`` is the TestClient's client address (``REMOTE`` for another machine);
    ``server=True`` runs the app on a real uvicorn server instead and yields an httpx client
    whose ``base_url`` is its address. The embedder is the fake one unless given.
    """
    return _app_client  # type: ignore[return-value]


def build(corpus: Path, index_dir: Path, embedder: Embedder, **kwargs: object) -> LocalStore:
    build_index(corpus, index_dir, embedder, ChunkerConfig(), **kwargs)  # type: ignore[arg-type]
    return load_index(index_dir, expected_model_id=embedder.model_id)


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    """The product's default model (the bundled multilingual e5), loaded once."""
    return load_embedder()


@pytest.fixture(scope="session")
def corpus_index_dir(
    real_embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The real corpus indexed with the real model, built once per session."""
    index_dir = tmp_path_factory.mktemp("corpus-index")
    build_index(CORPUS, index_dir, real_embedder, ChunkerConfig())
    return index_dir


@pytest.fixture(scope="session")
def real_searcher(
    corpus_index_dir: Path, real_embedder: Embedder
) -> Iterator[Searcher]:
    index = load_index(corpus_index_dir, expected_model_id=real_embedder.model_id)
    yield Searcher(index, real_embedder)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A throwaway Postgres with pgvector (pgserver) for the whole session. Its data folder
    is not under pytest's temporary folder: run as root, the server runs as another user,
    which must be able to reach it."""
    try:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="collab-qa-pg-"),
                                     cleanup_mode="delete")
    except Exception as exc:  # no binaries for this platform, no permission, ...
        pytest.skip(f"pgserver could not start a Postgres server here: {exc}")
    yield server
    server.cleanup()


@pytest.fixture
def database_url(postgres_server: Any) -> str:
    """The URL of a new, empty database on the session's server."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.get_uri(), autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return str(postgres_server.get_uri(name))


def damage_index(index_dir: Path, damage: str) -> str:
    """Break the live index one way; returns the file the message must name."""
    version = current_version_dir(index_dir)
    assert version is not None
    manifest_path = version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if damage == "truncated faiss":
        data = (version / "dense.faiss").read_bytes()
        (version / "dense.faiss").write_bytes(data[: len(data) // 3])
        return "dense.faiss"
    if damage == "garbled faiss":
        size = (version / "dense.faiss").stat().st_size
        (version / "dense.faiss").write_bytes(bytes(range(256)) * (size // 256 + 1))
        return "dense.faiss"
    if damage == "missing faiss":
        (version / "dense.faiss").unlink()
        return "dense.faiss"
    if damage == "wrong dimension":
        manifest["model"]["dimension"] = 384
    elif damage == "wrong model":
        manifest["model"]["id"] = "some-other-model@123"
    elif damage == "wrong counts":
        manifest["totals"]["chunks"] -= 2
    elif damage == "missing chunk store":
        (version / "chunks.jsonl").unlink()
        return "chunks.jsonl"
    elif damage == "truncated vectors":
        data = (version / "vectors.npy").read_bytes()
        (version / "vectors.npy").write_bytes(data[: len(data) // 2])
        return "vectors.npy"
    elif damage == "missing bm25":
        for file in (version / "bm25").iterdir():
            file.unlink()
        return "bm25"
    elif damage == "garbled current":
        (index_dir / CURRENT_FILE).write_text("\x00\x01garbage/..")
        return CURRENT_FILE
    elif damage == "current outside the index":
        (index_dir / CURRENT_FILE).write_text("../../etc")
        return CURRENT_FILE
    elif damage == "garbled manifest":
        manifest_path.write_text("{not json")
        return "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    return {"wrong model": str(version.name), "wrong counts": "chunks.jsonl"}.get(
        damage, "vectors.npy")


DAMAGES = ["truncated faiss", "garbled faiss", "missing faiss", "wrong dimension", "wrong model",
           "wrong counts", "missing chunk store", "truncated vectors", "missing bm25",
           "garbled current", "current outside the index", "garbled manifest"]
