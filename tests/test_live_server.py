"""A real `collab-qa serve` (uvicorn, the real model) on 127.0.0.1: the body limit before
reading, forwarded clients, markup in real Chromium, and a bounded load test while the index
is rebuilt five times; plus two `collab-qa index` runs at once.

Everything is loopback-only and bounded in requests and seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import Embedder
from collab_qa.index import LOCK_FILE, TMP_PREFIX, build_index, load_index
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, record_and_dismiss
from tests.conftest import CORPUS

pytestmark = pytest.mark.slow

COMMAND = Path(sys.executable).with_name("collab-qa")
IMG = '"><img src=x onerror=alert(1)>'
SCRIPT = "<script>alert(1)</script>"
CLIENTS = 50
LOAD_SECONDS = 45  # hard cap; the test stops 2 s after the fifth rebuild
MAX_REQUESTS = 20_000
REBUILDS = 5
QUESTIONS = [
    "who do I contact about biobank samples", "zebrafish marker agreement",
    "when was the Charité MoU signed", "industry collaboration support contact",
    "Cutcancer twinning project partners", "post doc agreements in Germany",
    "and their phone number?", IMG, SCRIPT + " zebrafish",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(root: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "COLLAB_QA_MODEL": "", "COLLAB_QA_CORPUS_DIR": str(root / "corpus"),
            "COLLAB_QA_INDEX_DIR": str(root / "index"), "COLLAB_QA_DATA_DIR": str(root / "data")}


@dataclass
class Live:
    url: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def live(corpus_index_dir: Path, real_embedder: Embedder,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live")
    shutil.copytree(CORPUS, root / "corpus")
    (root / "corpus" / "hostile.md").write_text(
        f"# {IMG} zebrafish\n\n## {SCRIPT}\n\nThe zebrafish marker agreement: {IMG} and "
        f"{SCRIPT} are text here. Contact zebrafish@example.org.\n", encoding="utf-8")
    shutil.copytree(corpus_index_dir, root / "index", ignore=shutil.ignore_patterns(LOCK_FILE))
    build_index(root / "corpus", root / "index", real_embedder, ChunkerConfig())
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(COMMAND), "serve", "--port", str(port)],
                                   env=cli_env(root), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("collab-qa serve did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)
    yield Live(url, root, process, log)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_a_huge_body_is_refused_before_it_is_sent(live: Live) -> None:
    port = int(live.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
                     b'{"question": "')  # the other 9.99 MB are never sent
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            response += data
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"content-security-policy" in head.lower()
    assert "byte limit" in json.loads(body)["detail"]


def test_the_server_header_and_tracebacks_stay_hidden(live: Live) -> None:
    response = httpx.post(live.url + "/api/ask", content=b"[" * 100_000,
                          headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text and "server" not in response.headers
    assert "Traceback" not in live.log.read_text(errors="replace")


def test_hostile_requests_on_the_real_server(live: Live) -> None:
    """The hostile bodies of test_hostile.py, and malformed HTTP, through uvicorn itself."""
    from tests.test_hostile import BAD_BODIES, TRAVERSALS

    with httpx.Client(base_url=live.url, timeout=30) as http:
        for case, body, status in BAD_BODIES:
            response = http.post("/api/ask", content=json.dumps(body),
                                 headers={"content-type": "application/json"})
            assert response.status_code == status, (case, response.text[:200])
            assert response.json()["detail"] and "Traceback" not in response.text
        for doc_id in TRAVERSALS:
            response = http.get("/api/documents/" + doc_id)
            assert response.status_code in (400, 404) and "root:" not in response.text
    port = int(live.url.rsplit(":", 1)[1])
    for raw in (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: \x00\x01\r\n\r\n",
                b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            answer = sock.recv(65536)
        assert answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:80]
    assert httpx.get(live.url + "/readyz").status_code == 200
    assert "Traceback" not in live.log.read_text(errors="replace")


def test_a_client_behind_a_local_proxy_is_not_loopback(live: Live) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 only: behind a reverse proxy on this
    machine the real client address counts, so it needs the admin token."""
    remote = httpx.post(live.url + "/api/reindex", headers={"x-forwarded-for": "203.0.113.9"})
    assert remote.status_code == 403 and "COLLAB_QA_ADMIN_TOKEN" in remote.json()["detail"]
    evil_host = httpx.get(live.url + "/api/documents", headers={"host": "evil.example"})
    assert evil_host.status_code == 400


def test_markup_never_runs_in_chromium(live: Live) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (CI installs it with apt-get)")
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for javascript in (True, False):
                context = browser.new_context(java_script_enabled=javascript)
                page = context.new_page()
                page.on("dialog", record_and_dismiss(dialogs))
                for question in (IMG + " zebrafish", SCRIPT + " zebrafish marker"):
                    page.goto(live.url + "/")
                    before = page.locator("article.turn").count()
                    page.fill("#question", question)
                    page.click("#ask-button")
                    page.locator("article.turn").nth(before).wait_for(timeout=30_000)
                    page.wait_for_timeout(300)
                    assert page.locator("img[src=x]").count() == 0
                for path in ("/", "/documents", "/documents/hostile.md?chunk=0",
                             "/documents/" + IMG.replace('"', "%22")):
                    page.goto(live.url + path)
                    page.wait_for_timeout(200)
                    assert page.locator("img[src=x]").count() == 0
                if javascript:
                    # An inline script that got into a page anyhow is blocked by the CSP.
                    def inject(route: Any) -> None:
                        response = route.fetch()
                        route.fulfill(response=response, body=response.text().replace(
                            "</main>", "<script>alert('inline')</script></main>"))

                    page.route("**/?csp-check", inject)
                    page.goto(live.url + "/?csp-check")
                    page.wait_for_timeout(300)
                    assert "alert('inline')" in page.content()
                context.close()
        finally:
            browser.close()
    assert not dialogs, f"a dialog opened: {dialogs}"


# ---------------------------------------------------------------------------- load


@dataclass
class Tally:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    versions_seen: Counter[str] = field(default_factory=Counter)


def version_contents(index_dir: Path) -> tuple[str, dict[tuple[str, int, int], str],
                                              dict[str, str]]:
    index = load_index(index_dir)
    chunks = {(c.doc_id, c.start, c.end): c.text for c in index.chunks}
    return index.version, chunks, {d.id: d.text for d in index.documents.values()}


def test_load_while_the_index_is_rebuilt(live: Live,
                                         real_embedder: Embedder) -> None:
    import psutil

    corpus, index_dir = live.root / "corpus", live.root / "index"
    version, chunks, texts = version_contents(index_dir)
    known: dict[str, tuple[dict[tuple[str, int, int], str], dict[str, str]]] = {
        version: (chunks, texts)}
    server = psutil.Process(live.process.pid)
    tally = Tally()
    memory: list[int] = []
    rebuilt: list[str] = []
    stop = threading.Event()
    doc_ids = sorted(texts)

    answered: list[tuple[int, str, str, dict[str, Any]]] = []  # checked once all are known

    def check(kind: str, response: httpx.Response, client: int) -> None:
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500 or "Traceback" in response.text:
            tally.failures.append(f"{kind}: {response.status_code} {response.text[:200]}")
        elif kind == "bad" and response.status_code == 422:
            pass
        elif response.status_code != 200:
            tally.failures.append(f"{kind}: {response.status_code} {response.text[:200]}")
        else:
            payload = response.json()
            answered.append((client, kind, payload["index_version"], payload))

    def check_versions() -> None:
        """Every response names a version the test built, its passages and texts are that
        version's, and no client ever goes back to an older version."""
        order = list(known)
        last_seen: dict[int, int] = {}
        for client, kind, seen, payload in answered:
            tally.versions_seen[seen] += 1
            if seen not in known:
                tally.failures.append(f"{kind}: unknown index_version {seen}")
                continue
            if order.index(seen) < last_seen.get(client, 0):
                tally.failures.append(f"client {client} went back to {seen}")
            last_seen[client] = order.index(seen)
            version_chunks, version_texts = known[seen]
            if kind == "ask":
                for passage in payload["passages"]:
                    key = (passage["doc_id"], passage["start"], passage["end"])
                    if version_chunks.get(key) != passage["text"]:
                        tally.failures.append(f"ask: passage {key} is not in {seen}")
            elif kind == "document" and version_texts.get(payload["doc_id"]) != payload["text"]:
                tally.failures.append(f"document: {payload['doc_id']} text is not {seen}'s")

    started_at = time.monotonic()
    lags: list[float] = []

    async def watch_lag() -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.1)
            lags.append(time.monotonic() - before - 0.1)

    async def client(number: int, http: httpx.AsyncClient, deadline: float) -> None:
        rng = random.Random(number)
        while not stop.is_set() and time.monotonic() < deadline:
            if tally.requests >= MAX_REQUESTS:
                return
            tally.requests += 1
            roll = rng.random()
            try:
                if roll < 0.7:
                    body: dict[str, Any] = {"question": rng.choice(QUESTIONS),
                                            "k": rng.randint(1, 8),
                                            "mode": rng.choice(["hybrid", "dense", "lexical"])}
                    if rng.random() < 0.3:
                        body["history"] = [rng.choice(QUESTIONS)]
                    kind, response = "ask", await http.post("/api/ask", json=body)
                elif roll < 0.8:
                    doc_id = rng.choice(doc_ids)
                    kind, response = "document", await http.get(f"/api/documents/{doc_id}")
                elif roll < 0.88:
                    kind, response = "list", await http.get("/api/documents")
                elif roll < 0.95:
                    kind, response = "ready", await http.get("/readyz")
                else:
                    kind, response = "bad", await http.post(
                        "/api/ask", json={"question": rng.choice(["", "x" * 5000, "\x00"])})
            except httpx.HTTPError as exc:
                tally.failures.append(
                    f"client {number}: {type(exc).__name__}: {exc!r} cause {exc.__cause__!r} "
                    f"at {time.monotonic() - started_at:.1f} s, lag {max(lags, default=0):.2f}")
                continue
            check(kind, response, number)

    def rebuild_five_times() -> None:
        marker = "The zebrafish marker agreement"
        target = corpus / "collaboration-in-germany.txt"
        original = target.read_text(encoding="utf-8")
        for round_ in range(1, REBUILDS + 1):
            time.sleep(2.5)
            if round_ == 3:
                (corpus / "added-during-load.md").write_text(
                    f"# Added\n\n{marker} was amended in round {round_}.", encoding="utf-8")
            target.write_text(original + f"\n\n{marker} revision {round_} applies from now.\n",
                              encoding="utf-8")
            report = build_index(corpus, index_dir, real_embedder, ChunkerConfig())
            assert report.version and not report.up_to_date
            new_version, new_chunks, new_texts = version_contents(index_dir)
            known[new_version] = (new_chunks, new_texts)
            rebuilt.append(new_version)

    def sample_memory() -> None:
        while not stop.is_set():
            memory.append(server.memory_info().rss)
            stop.wait(0.5)

    async def run() -> float:
        started = time.monotonic()
        deadline = started + LOAD_SECONDS
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=live.url, timeout=30, limits=limits) as http:
            rebuilder = asyncio.create_task(asyncio.to_thread(rebuild_five_times))
            clients = [asyncio.create_task(client(n, http, deadline)) for n in range(CLIENTS)]
            clients.append(asyncio.create_task(watch_lag()))
            try:
                await asyncio.wait_for(asyncio.shield(rebuilder), LOAD_SECONDS)
                await asyncio.sleep(2)  # let every client see the last version
            finally:
                stop.set()
                await asyncio.gather(*clients)
                await rebuilder
        return time.monotonic() - started

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    seconds = asyncio.run(run())
    sampler.join()
    check_versions()

    warm = memory[min(len(memory) - 1, 4)]
    peak, last = max(memory), memory[-1]
    print(f"\nload: {tally.requests} requests from {CLIENTS} clients in {seconds:.1f} s, "
          f"{len(tally.failures)} failed; statuses {dict(tally.statuses)}; "
          f"{len(rebuilt)} rebuilds; versions answered {dict(tally.versions_seen)}; "
          f"server RSS warm {warm / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB, "
          f"end {last / 2**20:.0f} MB; client loop lag max {max(lags):.2f} s")
    assert not tally.failures, tally.failures[:10]
    assert len(rebuilt) == REBUILDS
    assert tally.versions_seen[rebuilt[-1]] > 0, "no response came from the last index"
    assert sum(1 for v in known if tally.versions_seen[v]) >= 3
    assert 300 <= tally.requests <= MAX_REQUESTS
    assert last - warm < 200 * 2**20, "server memory kept growing"
    ready = httpx.get(live.url + "/readyz").json()
    assert ready["index_version"] == rebuilt[-1] and not ready["reload_error"]
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert not leftovers and len([p for p in index_dir.iterdir() if p.is_dir()]) <= 2


def test_two_index_commands_at_once(corpus_index_dir: Path, tmp_path: Path) -> None:
    """Both start together; the second waits for the first one's lock, then finds the index up
    to date. The index stays valid. (With no time to wait, the command exits with a sentence:
    test_index_command_says_when_another_build_runs.)"""
    shutil.copytree(CORPUS, tmp_path / "corpus")
    shutil.copytree(corpus_index_dir, tmp_path / "index", ignore=shutil.ignore_patterns(LOCK_FILE))
    (tmp_path / "corpus" / "extra.md").write_text("# Extra\n\nA zebrafish note.", encoding="utf-8")
    env = cli_env(tmp_path)
    runs = [subprocess.Popen([str(COMMAND), "index"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=240), *run.communicate()) for run in runs]
    assert all(code == 0 for code, _, _ in results), results
    up_to_date = ["already up to date" in " ".join(out.split()) for _, out, _ in results]
    assert sorted(up_to_date) == [False, True], results
    index = load_index(tmp_path / "index")
    assert "extra.md" in index.documents
