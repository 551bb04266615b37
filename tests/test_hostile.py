"""Hostile requests and exposure: every bad input gets a 4xx with one sentence (never a 5xx,
never a traceback), markup is escaped everywhere, document ids never become file paths, and
every response carries the security headers. Through TestClient on a fake-embedder index;
tests/test_live_server.py does the same against a real uvicorn server and Chromium.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from collab_qa import cli
from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_index
from collab_qa.settings import Settings
from collab_qa.web.security import docs_policy, host_allowed, script_hashes
from tests.conftest import CORPUS, DAMAGES, LOOPBACK, REMOTE, MakeAppClient, damage_index

IMG = '"><img src=x onerror=alert(1)>'
SCRIPT = "<script>alert(1)</script>"
CANARY = "CANARY-secret-outside-the-corpus"


def make_settings(root: Path) -> Settings:
    """A corpus copy with a hostile document, a secret next to it, and its fake-embedder index."""
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "hostile.md").write_text(
        f"# {IMG}\n\n## {SCRIPT}\n\nZebrafish {SCRIPT} and {IMG} live here.\n"
        "Mixed \u202eRTL override\u202c text with emoji 🐟.\n", encoding="utf-8")
    (root / "secret.txt").write_text(CANARY, encoding="utf-8")
    build_index(corpus, root / "index", FakeEmbedder(), ChunkerConfig())
    return Settings(corpus_dir=corpus, index_dir=root / "index", data_dir=root / "data",
                    admin_token="s3cret-token", _env_file=None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """For tests that change the index or the settings."""
    return make_settings(tmp_path)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory,
           make_app_client: MakeAppClient) -> Iterator[TestClient]:
    """One app for the tests that only send requests."""
    settings = make_settings(tmp_path_factory.mktemp("hostile"))
    with make_app_client(settings, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_sentence(response: Any, *statuses: int) -> str:
    """A 4xx in the expected statuses with a JSON one-sentence detail, no traceback."""
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text and 'File "' not in response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and len(detail.split()) >= 2 and len(detail) < 400, detail
    return detail


def assert_secured(response: Any) -> None:
    headers = response.headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


# ---------------------------------------------------------------------------- bad questions

BAD_BODIES: list[tuple[str, Any, int]] = [
    ("empty question", {"question": ""}, 422),
    ("whitespace question", {"question": " \t\n\u3000 "}, 422),
    ("too long question", {"question": "why " * 2000}, 422),
    ("NUL character", {"question": "who\x00 is the contact"}, 422),
    ("question is a number", {"question": 5}, 422),
    ("question is null", {"question": None}, 422),
    ("question is a list", {"question": ["a", "b"]}, 422),
    ("no question", {"k": 3}, 422),
    ("k = 0", {"question": "biobank", "k": 0}, 422),
    ("k = -1", {"question": "biobank", "k": -1}, 422),
    ("k = 10^9", {"question": "biobank", "k": 10**9}, 422),
    ("k = 10^30", {"question": "biobank", "k": 10**30}, 422),
    ("k is a string", {"question": "biobank", "k": "five"}, 422),
    ("k is a float", {"question": "biobank", "k": 2.5}, 422),
    ("unknown mode", {"question": "biobank", "mode": "semantic"}, 422),
    ("mode is a number", {"question": "biobank", "mode": 1}, 422),
    ("history is a string", {"question": "biobank", "history": "earlier"}, 422),
    ("history holds numbers", {"question": "biobank", "history": [1, 2]}, 422),
    ("huge history list", {"question": "and them?", "history": ["q"] * 10_000}, 422),
    ("long history turns", {"question": "and them?", "history": ["why " * 600] * 3}, 422),
    ("unknown field", {"question": "biobank", "admin": True}, 422),
    ("body is a list", ["biobank"], 422),
    ("body is a string", "biobank", 422),
    ("body is null", None, 422),
]


@pytest.mark.parametrize(("case", "body", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_ask_bodies_get_one_sentence(client: TestClient, case: str, body: Any,
                                         status: int) -> None:
    response = client.post("/api/ask", content=json.dumps(body),
                           headers={"content-type": "application/json"})
    assert_sentence(response, status)
    assert_secured(response)


@pytest.mark.parametrize("raw", [b'{"question": ', b"\xff\xfe\x00garbage", b"{'question': 1}",
                                 b'{"question": "a"}{"question": "b"}', b"", b"[" * 5000])
def test_invalid_json_gets_one_sentence(client: TestClient, raw: bytes) -> None:
    response = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert_sentence(response, 422, 400)


def test_big_bodies_are_refused_before_parsing(client: TestClient,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.requests import Request

    read: list[str] = []
    real_body = Request.body

    async def spy(self: Request) -> bytes:
        read.append(self.url.path)
        return await real_body(self)

    monkeypatch.setattr(Request, "body", spy)
    one_mb = client.post("/api/ask", json={"question": "x" * 1_000_000})
    ten_mb = client.post("/api/ask", content=b"{" + b" " * 10_000_000 + b"}",
                         headers={"content-type": "application/json"})
    form = client.post("/", data={"question": "y" * 2_000_000})
    for response in (one_mb, ten_mb):
        assert "262,144-byte limit" in assert_sentence(response, 413)
        assert_secured(response)
    assert form.status_code == 413
    assert not read, "a body over the limit was read"


def test_a_chunked_body_is_cut_off_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(100):
            yield b"z" * 10_000
        yield b'"}'

    response = client.post("/api/ask", content=chunks(),
                           headers={"content-type": "application/json"})
    assert_sentence(response, 413)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP response as a client reads it: the head, then Content-Length bytes of body."""
    response = b""
    while b"\r\n\r\n" not in response:
        data = sock.recv(65536)  # a reset raises here
        assert data, f"the server closed the connection after {response[:200]!r}"
        response += data
    head, _, body = response.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        data = sock.recv(65536)
        assert data, "the server closed the connection in the middle of the response"
        body += data
    return head, body


def chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_the_413_reaches_a_client_that_sends_a_huge_body(
    tmp_path: Path, make_app_client: MakeAppClient
) -> None:
    """A real server: 20 times 10 MB, declared or chunked; the client sends it all without a
    reset and reads the 413 with its sentence (the server reads and discards the rest)."""
    body = b'{"question": "' + b"x" * 9_999_980 + b'"}'
    with make_app_client(make_settings(tmp_path), server=True) as http:
        address = (http.base_url.host, http.base_url.port or 80)
        for attempt in range(20):
            head = (b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\n")
            if attempt % 2:
                request = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body)
            else:
                request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
            with socket.create_connection(address, timeout=30) as sock:
                sock.sendall(request)  # a reset would raise here
                status, payload = read_response(sock)
            assert status.startswith(b"HTTP/1.1 413"), (attempt, status[:200])
            assert "262,144-byte limit" in json.loads(payload)["detail"]
        # A client that waits for "100 Continue" gets the 413 instead and sends nothing.
        with socket.create_connection(address, timeout=30) as sock:
            sock.sendall(b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            status, payload = read_response(sock)
        assert status.startswith(b"HTTP/1.1 413") and b"byte limit" in payload


@pytest.mark.parametrize("question", [
    "who is the biobank contact\x01\x02\x1b[31m\x7f",
    "\u202eknaboib\u202c contact? 🐟🧬 👩‍🔬",
    SCRIPT + " biobank",
    IMG + " zebrafish",
    "'; DROP TABLE documents; --",
    "{{ 7*7 }} {% raw %} ${7*7}",
    "\ud7ff\ue000\uffff",
])
def test_odd_questions_are_answered_as_plain_text(client: TestClient, question: str) -> None:
    response = client.post("/api/ask", json={"question": question, "k": 3})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert payload["question"].strip() == question.strip()
    assert "49" not in payload["question"]
    page = client.post("/", data={"question": question}, follow_redirects=True)
    assert page.status_code in (200, 422)
    assert_secured(page)
    assert "<script>alert" not in page.text and "<img src=x" not in page.text


def test_markup_is_escaped_on_every_page(client: TestClient) -> None:
    client.post("/", data={"question": IMG + " " + SCRIPT + " zebrafish"})
    pages = {
        "chat": client.get("/"),
        "documents": client.get("/documents"),
        "viewer": client.get("/documents/hostile.md?chunk=0"),
        "404": client.get("/documents/" + IMG, headers={"accept": "text/html"}),
    }
    for name, page in pages.items():
        assert page.headers["content-type"].startswith("text/html"), name
        assert_secured(page)
        text = page.text
        assert "<img src=x" not in text and "<script>alert" not in text, name
        assert "onerror=alert(1)&gt;" in text or name == "404", name
        # the only scripts are files from this server
        assert all(src.startswith("/static/")
                   for src in re.findall(r"<script[^>]*src=\"([^\"]+)\"", text)), name
        assert not re.search(r"<script(?![^>]*src=)[^>]*>", text), f"inline script on {name}"


# ---------------------------------------------------------------------------- document ids

TRAVERSALS = [
    "../secret.txt", "../../etc/passwd", "..%2fsecret.txt", "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd", "%252e%252e%252fsecret.txt", "....//....//etc/passwd",
    "/etc/passwd", "%2Fetc%2Fpasswd", "..\\..\\secret.txt", "hostile.md/../../secret.txt",
    "hostile.md%00.txt", "%c0%ae%c0%ae/secret.txt", "corpus/../secret.txt", "~/.ssh/id_rsa",
]


@pytest.mark.parametrize("doc_id", TRAVERSALS)
def test_traversal_document_ids_are_404_and_read_no_file(
    client: TestClient, doc_id: str, opened: list[str]
) -> None:
    for prefix in ("/api/documents/", "/documents/"):
        response = client.get(prefix + doc_id)
        assert response.status_code in (404, 400), (prefix, doc_id, response.status_code)
        assert CANARY not in response.text and "root:" not in response.text
        if prefix.startswith("/api"):
            assert_sentence(response, 404, 400)
    assert not [path for path in opened if "secret" in path or "passwd" in path]


# ---------------------------------------------------------------------------- exposure


def test_security_headers_on_every_kind_of_response(client: TestClient) -> None:
    responses = [client.get("/"), client.get("/healthz"), client.get("/readyz"),
                 client.get("/static/chat.js"), client.get("/nowhere"),
                 client.get("/api/documents"), client.post("/api/ask", json={"question": ""}),
                 client.get("/openapi.json")]
    for response in responses:
        assert_secured(response)
    assert client.get("/static/chat.js").headers["content-type"].startswith(
        ("application/javascript", "text/javascript"))


def test_docs_pages_allow_only_their_own_inline_script(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert_secured(page)
    hashes = script_hashes(page.content)
    policy = page.headers["content-security-policy"]
    assert hashes and all(h in policy for h in hashes)
    assert "https:" not in policy and "https:" not in page.text  # nothing from the internet
    assert client.get("/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert "'sha256-" not in client.get("/").headers["content-security-policy"]
    assert docs_policy(b"<script>x</script>") != docs_policy(b"<script>y</script>")


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("127.0.0.1:8000", True), ("localhost:8000", True),
    ("[::1]:8000", True), ("LOCALHOST", True), ("evil.example", False),
    ("evil.example:8000", False), ("127.0.0.1.evil.example", False), ("", False),
])
def test_only_trusted_hosts_are_served(client: TestClient, host: str, allowed: bool) -> None:
    response = client.get("/healthz", headers={"host": host})
    if allowed:
        assert response.status_code == 200
    else:
        assert "COLLAB_QA_TRUSTED_HOSTS" in assert_sentence(response, 400)
        assert_secured(response)


def test_trusted_host_patterns() -> None:
    assert host_allowed("qa.example.org", ["*.example.org"])
    assert not host_allowed("example.org.evil.net", ["*.example.org"])
    assert host_allowed("anything:1", ["*"])


def test_admin_routes_need_the_token_off_loopback(settings: Settings,
                                                  make_app_client: MakeAppClient) -> None:
    with make_app_client(settings, client=REMOTE, raise_server_exceptions=False) as remote:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"}):
            assert_sentence(remote.post("/api/reindex", headers=headers), 403)
        assert remote.post("/documents/reindex", data={"token": "wrong"}).status_code == 403
        ok = remote.post("/api/reindex", headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["index_version"]
    settings = settings.model_copy(update={"admin_token": ""})
    with make_app_client(settings, client=REMOTE, raise_server_exceptions=False) as remote:
        assert_sentence(remote.post("/api/reindex", headers={"authorization": "Bearer "}), 403)
    with make_app_client(settings, client=LOOPBACK, raise_server_exceptions=False) as local:
        assert local.post("/api/reindex").status_code == 200


def test_default_settings_bind_loopback_only() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.host == "127.0.0.1"
    assert "0.0.0.0" not in defaults.trusted_hosts and "*" not in defaults.trusted_hosts


def test_serve_binds_loopback_with_limits(settings: Settings,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    app_log = logging.getLogger("collab_qa")  # serve adds a handler on CliRunner's stderr
    monkeypatch.setattr(app_log, "handlers", [])
    monkeypatch.setattr(app_log, "level", app_log.level)
    monkeypatch.setattr("collab_qa.embedding.load_embedder", lambda model="": FakeEmbedder())
    for name in ("COLLAB_QA_HOST", "COLLAB_QA_PORT", "COLLAB_QA_MAX_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("COLLAB_QA_CORPUS_DIR", str(settings.corpus_dir))
    with socket.socket() as probe:  # a free port: the default one may be in use here
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(cli.app, ["serve", "--port", str(port)])
    assert result.exit_code == 0, result.output
    (kwargs,) = calls
    assert kwargs["host"] == "127.0.0.1" and kwargs["limit_concurrency"] == 100
    assert 5 < kwargs["timeout_keep_alive"] <= 30 and kwargs["forwarded_allow_ips"] == "127.0.0.1"


# ---------------------------------------------------------------------------- corrupt index


@pytest.mark.parametrize("damage", DAMAGES)
def test_ask_and_serve_refuse_a_corrupt_index(settings: Settings, damage: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    named = damage_index(settings.index_dir, damage)
    monkeypatch.setattr("collab_qa.embedding.load_embedder", lambda model="": FakeEmbedder())
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served a broken index"))
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("COLLAB_QA_CORPUS_DIR", str(settings.corpus_dir))
    for args in (["ask", "biobank contact"], ["serve"]):
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 2, (args, result.output)
        message = "".join(result.output.split())  # rich wraps long paths anywhere
        assert named in message and "collab-qaindex--full" in message, result.output
        assert "Traceback" not in message


@pytest.mark.parametrize("damage", ["truncated faiss", "wrong model", "missing chunk store"])
def test_a_running_server_keeps_its_index_when_the_new_one_is_broken(
    settings: Settings, damage: str, caplog: pytest.LogCaptureFixture,
    make_app_client: MakeAppClient,
) -> None:
    with make_app_client(settings, raise_server_exceptions=False) as client:
        before = client.get("/readyz").json()
        (settings.corpus_dir / "new.md").write_text("# New\n\nA zebrafish note.", encoding="utf-8")
        build_index(settings.corpus_dir, settings.index_dir, FakeEmbedder(), ChunkerConfig())
        named = damage_index(settings.index_dir, damage)
        with caplog.at_level(logging.WARNING):
            answer = client.post("/api/ask", json={"question": "biobank contact"})
        assert answer.status_code == 200
        assert answer.json()["index_version"] == before["index_version"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        report = ready.json()
        assert report["index_version"] == before["index_version"]
        reason = report["reload_error"]
        assert named in reason and "collab-qa index --full" in reason
        assert any(named in record.getMessage() for record in caplog.records)
        # the fix the message names brings the server onto the new index
        build_index(settings.corpus_dir, settings.index_dir, FakeEmbedder(), ChunkerConfig(),
                    full=True)
        fixed = client.get("/readyz").json()
        assert fixed["index_version"] != before["index_version"] and not fixed["reload_error"]


def test_index_command_says_when_another_build_runs(settings: Settings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from filelock import FileLock

    from collab_qa.index import LOCK_FILE

    monkeypatch.setattr("collab_qa.embedding.load_embedder", lambda model="": FakeEmbedder())
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("COLLAB_QA_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("COLLAB_QA_BUILD_LOCK_TIMEOUT", "0.2")
    with FileLock(str(settings.index_dir / LOCK_FILE)):
        result = CliRunner().invoke(cli.app, ["index", "--full"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "Another build" in message and "try again" in message and "Traceback" not in message


@pytest.mark.parametrize("path", [
    "/static/../../pyproject.toml", "/static/..%2f..%2fpyproject.toml",
    "/static/%2e%2e/%2e%2e/etc/passwd", "/static//etc/passwd", "/static/chat.js%00.html",
])
def test_static_files_stay_in_their_folder(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert "[project]" not in response.text and "root:" not in response.text


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PUT", "DELETE", "PATCH", "CONNECT"])
def test_other_methods_are_refused_without_a_5xx(client: TestClient, method: str) -> None:
    for path in ("/", "/api/ask", "/api/documents/hostile.md"):
        response = client.request(method, path)
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        assert_secured(response)
