"""What the web app exposes, and how little: security headers, a request body limit and a Host
check, installed on the app by ``install_security(app, settings)``; and the checks of the
admin routes and forms.

- Every response carries a Content-Security-Policy that allows scripts, styles and images from
  this server only (no inline script, no framing), ``X-Content-Type-Options: nosniff``, a
  strict ``Referrer-Policy`` and friends. The ``/docs`` page (Swagger UI, served from this
  server) gets its own policy: its one inline script is allowed by its sha256 hash; no other
  page may run inline script.
- A request whose body is larger than ``COLLAB_QA_MAX_BODY_BYTES`` is refused with 413 before
  the app reads it (by its Content-Length, or, for a chunked body, as soon as the bytes read
  pass the limit). The 413 is sent at once; then the rest of the body is read and thrown
  away (up to ``DRAIN_BYTES`` and ``DRAIN_SECONDS``) before the connection is closed, as
  nginx's lingering close does: closing a socket with unread data resets the connection,
  and the client would see the reset instead of the 413.
- A request whose ``Host`` is not in ``COLLAB_QA_TRUSTED_HOSTS`` is refused with 400, so a web
  page elsewhere cannot reach a server on this machine through DNS rebinding.

Forms are refused when posted from another site (``require_same_origin``); rebuilding the
index needs a loopback client or ``COLLAB_QA_ADMIN_TOKEN`` (``require_admin``). The bind
address, connection limit and timeouts are set by ``collab-qa serve``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collab_qa.settings import Settings

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATH = "/docs"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
DRAIN_BYTES = 64 * 1024 * 1024  # a refused body is read and discarded up to this size
DRAIN_SECONDS = 10.0  # ... or for this long
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL)


class BodyTooLarge(HTTPException):
    """Raised while a chunked body is read, once it passes the limit (FastAPI re-raises
    HTTPExceptions from body reading, so the app's handler answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large_sentence(limit))


def body_too_large_sentence(limit: int) -> str:
    return f"The request body is larger than the {limit:,}-byte limit; send a shorter request."


def parse_trusted_hosts(value: str) -> list[str]:
    """``COLLAB_QA_TRUSTED_HOSTS`` as lower-case host names without brackets or ports."""
    hosts = []
    for item in value.split(","):
        host = item.strip().lower()
        if host.startswith("[") and "]" in host:
            host = host[1:host.index("]")]
        if host:
            hosts.append(host)
    return hosts


def host_of(header: str) -> str:
    """The host name of a Host header: brackets and port removed, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.index("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def host_allowed(header: str, trusted: list[str]) -> bool:
    """Whether a Host header names a trusted host; ``*.example.org`` allows sub-domains."""
    if "*" in trusted:
        return True
    host = host_of(header)
    return any(host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
               for pattern in trusted)


def script_hashes(html: bytes) -> list[str]:
    """CSP source expressions for the inline scripts of a page."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
            for body in _INLINE_SCRIPT.findall(html)]


def docs_policy(html: bytes) -> str:
    """The policy of the API documentation page: its inline script by hash, nothing remote."""
    scripts = " ".join(["'self'", *script_hashes(html)])
    return (f"default-src 'self'; script-src {scripts}; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _json_message(status: int, detail: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, bytes]:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *(extra or [])]
    return {"type": "http.response.start", "status": status, "headers": headers}, body


async def _send_json(send: Send, status: int, detail: str) -> None:
    start, body = _json_message(status, detail)
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def _refuse_body(send: Send, receive: Receive, limit: int, *, drain: bool) -> None:
    """Send the 413, then read and discard what the client still sends, then close.

    The response is complete on the wire (its Content-Length is met) before the body is
    read, so a client that waits for it gets it at once. It is ended only when the request
    body has been read, the client has gone, or ``DRAIN_BYTES``/``DRAIN_SECONDS`` are used
    up: a server that closes with unread data resets the connection.
    """
    start, body = _json_message(413, body_too_large_sentence(limit),
                                [(b"connection", b"close")])
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": drain})
    if not drain:
        return
    discarded = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while discarded <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
            discarded += len(message.get("body", b""))
    await send({"type": "http.response.body", "body": b""})


def _sends_body(headers: dict[bytes, bytes]) -> bool:
    """False when the client waits for "100 Continue" before it sends the body: then there
    is nothing to discard, and asking for the body would invite it."""
    return b"100-continue" not in headers.get(b"expect", b"").lower()


class SecurityMiddleware:
    """Pure ASGI middleware: Host check, body limit and security headers on every response."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, trusted_hosts: list[str],
                 docs_paths: frozenset[str]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted_hosts = trusted_hosts
        self.docs_paths = docs_paths

    def _headers(self, message: Message, policy: str) -> Message:
        present = {name.lower() for name, _ in message.get("headers", [])}
        headers = list(message.get("headers", []))
        for name, value in [("content-security-policy", policy), *SECURITY_HEADERS.items()]:
            if name.encode() not in present:
                headers.append((name.encode(), value.encode()))
        return {**message, "headers": headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = self._headers(message, CONTENT_SECURITY_POLICY)
            await send(message)

        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self.trusted_hosts):
            await _send_json(send_secured, 400, "This server does not answer to that host "
                             "name; the administrator can add it to COLLAB_QA_TRUSTED_HOSTS.")
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_json(send_secured, 400, "The Content-Length header is not a number.")
                return
            if declared > self.max_body_bytes:
                await _refuse_body(send_secured, receive, self.max_body_bytes,
                                   drain=_sends_body(headers))
                return
        received = 0
        body_done = False

        async def receive_limited() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body")
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        target = send_secured
        if scope.get("path") in self.docs_paths:
            target = self._docs_sender(send)
        try:
            await self.app(scope, receive_limited, target)
        except BodyTooLarge:
            if started:
                raise
            await _refuse_body(send_secured, receive, self.max_body_bytes,
                               drain=not body_done)

    def _docs_sender(self, send: Send) -> Any:
        """Hold a documentation page until its body is complete, to hash its inline script."""
        held: list[Message] = []

        async def send_docs(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                html = b"".join(m.get("body", b"") for m in held
                                if m["type"] == "http.response.body")
                start = next(m for m in held if m["type"] == "http.response.start")
                await send(self._headers(start, docs_policy(html)))
                await send({"type": "http.response.body", "body": html})

        return send_docs


def install_security(app: FastAPI, settings: Settings) -> None:
    """Add the security headers, the body limit and the Host check to ``app``.

    Args:
        app: The application from ``create_app``.
        settings: ``max_body_bytes`` and ``trusted_hosts`` are used; ``host``, when it is a
            specific address, is trusted as well.
    """
    trusted = parse_trusted_hosts(settings.trusted_hosts)
    bind = settings.host.strip().lower()
    if bind and bind not in ("0.0.0.0", "::") and bind not in trusted:
        trusted.append(bind.strip("[]"))
    docs = frozenset({DOCS_PATH})
    app.add_middleware(SecurityMiddleware, max_body_bytes=settings.max_body_bytes,
                       trusted_hosts=trusted, docs_paths=docs)


# ---------------------------------------------------------------------------- forms and admin


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine."""
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def same_origin(request: Request) -> bool:
    """False for a browser form posted from another site or another port of this host.

    Browsers send ``Sec-Fetch-Site``; older ones only ``Origin`` (which is "null" in some
    same-origin cases, so Sec-Fetch-Site is asked first). Other clients send neither.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def require_same_origin(request: Request) -> None:
    """Refuse a form posted from another site with 403."""
    if not same_origin(request):
        raise HTTPException(403, "This form was posted from another site; it was refused.")


def rebuild_access(request: Request, admin_token: str) -> str | None:
    """How this client may rebuild the index, so the page offers only what works:
    ``"loopback"`` (this machine), ``"token"`` (another machine, when a token is set) or None."""
    if is_loopback(request.client.host if request.client else None):
        return "loopback"
    return "token" if admin_token else None


def require_admin(request: Request, admin_token: str, token: str | None = None) -> None:
    """Allow rebuilding the index from this machine, or with the admin token.

    Args:
        request: The request; its client address and ``Authorization: Bearer`` header count.
        admin_token: ``COLLAB_QA_ADMIN_TOKEN``; empty means loopback only.
        token: The token typed into the documents page's form, if any.

    Raises:
        HTTPException: 403 with a sentence.
    """
    require_same_origin(request)
    if is_loopback(request.client.host if request.client else None):
        return
    header = request.headers.get("authorization", "")
    given = token or (header[7:].strip() if header.lower().startswith("bearer ") else "")
    if admin_token and given and hmac.compare_digest(given.encode(), admin_token.encode()):
        return
    raise HTTPException(
        403, "Rebuilding the index is allowed from this machine only, or with the token "
        "set in COLLAB_QA_ADMIN_TOKEN.",
    )
