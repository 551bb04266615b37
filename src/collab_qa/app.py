"""The web chat and the JSON API.

``create_app(settings)`` builds the FastAPI application. The embedding model and the index
load once, in the lifespan. Every request checks ``index/CURRENT`` with one ``stat``; when a
build has switched it, the new index is loaded and then swapped in as one reference, so a
request in flight finishes on the index it started with. A new index that fails to load is
logged, reported by ``/readyz`` and ignored: the server keeps answering from the old one.

Routes stay thin: they validate, call ``answer_question`` or the index, and render the
payloads built in ``views``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import swagger_ui
from fastapi import FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from collab_qa.answer import answer_question
from collab_qa.chunking import Chunk
from collab_qa.embedding import Embedder, load_embedder
from collab_qa.errors import BuildLockedError, IndexLoadError, QuestionError, UserError
from collab_qa.feedback import Feedback, FeedbackStore, Rating
from collab_qa.index import (
    CURRENT_FILE,
    BuildReport,
    build_index_from_settings,
    current_version_dir,
    load_index,
)
from collab_qa.search import Searcher
from collab_qa.security import DOCS_PATH, install_security
from collab_qa.settings import SearchMode, Settings
from collab_qa.views import (
    answer_payload,
    document_blocks,
    document_url,
    heading_text,
    mark_sentence,
    readable_time,
    tel_href,
)

log = logging.getLogger(__name__)

ASSETS = files("collab_qa.assets")
CONVERSATION_COOKIE = "collab_qa_conversation"
CHAT_HEADER = "X-Collab-QA-Chat"  # sent by chat.js: keep the turn in the page's conversation
TURN_HEADER = "X-Collab-QA-Turn"
MAX_HISTORY = 20
MAX_TURNS = 30
MAX_CONVERSATIONS = 200  # in memory: at most ~50 MB of answers
WATCH_DEBOUNCE_MS = 1600


# ---------------------------------------------------------------------------- live index


@dataclass(frozen=True)
class LoadedIndex:
    """One loaded index version with what the pages need from it."""

    searcher: Searcher
    chunks_by_doc: dict[str, list[Chunk]]
    loaded_at: str

    @property
    def version(self) -> str:
        return self.searcher.index.version


class IndexNotReady(Exception):
    """No index could be loaded yet; the message says why."""


class LiveIndex:
    """Holds the index the server answers from and follows ``index/CURRENT``."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.reload_error: str | None = None
        self._loaded: LoadedIndex | None = None
        self._signature: tuple[int, int, int] | None = (-1, -1, -1)  # nothing checked yet
        self._lock = threading.Lock()

    def _pointer_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.settings.index_dir / CURRENT_FILE)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _load(self) -> LoadedIndex:
        index = load_index(self.settings.index_dir, expected_model_id=self.embedder.model_id)
        searcher = Searcher(index, self.embedder, dense_weight=self.settings.dense_weight,
                            max_question_chars=self.settings.max_question_chars,
                            max_k=self.settings.max_k)
        chunks_by_doc: dict[str, list[Chunk]] = {doc_id: [] for doc_id in index.documents}
        for chunk in index.chunks:
            chunks_by_doc.setdefault(chunk.doc_id, []).append(chunk)
        return LoadedIndex(searcher, chunks_by_doc,
                           datetime.now(UTC).isoformat(timespec="seconds"))

    def refresh(self, *, wait: bool = False) -> None:
        """Load the index ``CURRENT`` names if it is not the one loaded.

        Args:
            wait: Wait for a reload another thread is doing; otherwise return at once
                (the caller keeps using the index loaded so far).
        """
        signature = self._pointer_signature()
        if signature == self._signature and (self._loaded or signature is None):
            return
        if not self._lock.acquire(blocking=wait):
            return
        try:
            signature = self._pointer_signature()
            if signature == self._signature and (self._loaded or signature is None):
                return
            loaded = self._loaded
            try:
                live = current_version_dir(self.settings.index_dir)
                if live is None:
                    raise IndexLoadError(
                        f"No index in {self.settings.index_dir}; build it with `collab-qa index`."
                    )
                if loaded is not None and live.name == loaded.searcher.index.version:
                    self._signature = signature
                    return
                fresh = self._load()
            except IndexLoadError as exc:
                self._signature = signature  # retried when CURRENT changes again
                self.reload_error = str(exc)
                if loaded is not None:
                    log.warning("Keeping index %s: the new one failed to load: %s",
                                loaded.version, exc)
                else:
                    log.warning("No index loaded: %s", exc)
                return
            self._loaded = fresh  # the swap: one reference, readers hold their own
            self._signature = signature
            self.reload_error = None
            log.info("Serving index %s", fresh.version)
        finally:
            self._lock.release()

    def current(self) -> LoadedIndex:
        """The index to answer this request from (checks ``CURRENT`` first).

        Raises:
            IndexNotReady: when no index has been loaded.
        """
        self.refresh()
        loaded = self._loaded
        if loaded is None:
            raise IndexNotReady(self.reload_error or "The index is still loading.")
        return loaded

    @property
    def loaded(self) -> LoadedIndex | None:
        return self._loaded


def rebuild_index(settings: Settings, embedder: Embedder) -> BuildReport:
    """Bring the index in line with the corpus (only changed files are re-embedded).

    Raises:
        UserError: when the corpus folder is missing.
        BuildLockedError: when another build holds the lock too long.
    """
    return build_index_from_settings(settings, embedder)


def watch_corpus(settings: Settings, embedder: Embedder, live: LiveIndex,
                 stop: threading.Event) -> None:
    """Re-index whenever files in the corpus folder change (debounced) until ``stop``."""
    import watchfiles

    for _changes in watchfiles.watch(settings.corpus_dir, stop_event=stop,
                                     debounce=WATCH_DEBOUNCE_MS, raise_interrupt=False):
        try:
            report = rebuild_index(settings, embedder)
        except UserError as exc:
            log.warning("Re-indexing after a corpus change failed: %s", exc)
            continue
        except Exception:  # keep watching: the next change may build fine
            log.exception("Re-indexing after a corpus change failed")
            continue
        live.refresh(wait=True)
        log.info("Corpus changed: index %s (%d added, %d changed, %d removed)",
                 report.version, len(report.added), len(report.changed), len(report.removed))


# ---------------------------------------------------------------------------- conversations


@dataclass
class Turn:
    """One question of the chat and what was answered."""

    id: str
    question: str
    history: list[str]
    answer: dict[str, Any]
    rating: str | None = None


@dataclass
class Conversations:
    """The chat page's conversations, in memory, keyed by a random cookie value."""

    store: OrderedDict[str, list[Turn]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def turns(self, conversation_id: str | None) -> list[Turn]:
        with self.lock:
            return list(self.store.get(conversation_id or "", []))

    def add(self, conversation_id: str, turn: Turn) -> None:
        with self.lock:
            turns = self.store.setdefault(conversation_id, [])
            turns.append(turn)
            del turns[:-MAX_TURNS]
            self.store.move_to_end(conversation_id)
            while len(self.store) > MAX_CONVERSATIONS:
                self.store.popitem(last=False)

    def find(self, conversation_id: str | None, turn_id: str) -> Turn | None:
        return next((t for t in self.turns(conversation_id) if t.id == turn_id), None)

    def clear(self, conversation_id: str | None) -> None:
        with self.lock:
            self.store.pop(conversation_id or "", None)


# ---------------------------------------------------------------------------- API models


class AskRequest(BaseModel):
    """A question for ``POST /api/ask``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question, in any words.")
    k: int | None = Field(None, description="Passages to return (default: COLLAB_QA_DEFAULT_K).")
    mode: SearchMode | None = Field(None, description="hybrid, dense or lexical.")
    history: list[str] = Field(
        default_factory=list, max_length=MAX_HISTORY,
        description="Earlier questions of the conversation, oldest first; a short follow-up "
        "is read together with the previous one.",
    )


class PassageOut(BaseModel):
    doc_id: str
    title: str
    heading: str
    text: str
    score: float
    start: int
    end: int
    url: str


class ContactOut(BaseModel):
    name: str | None
    role: str | None
    email: str | None
    phone: str | None
    citation: str
    url: str | None


class StatementOut(BaseModel):
    citation: str
    sentence: str
    date: str | None
    url: str | None


class ConflictOut(BaseModel):
    topic: str
    note: str | None
    statements: list[StatementOut]


class AskResponse(BaseModel):
    question: str
    abstained: bool
    best_sentence: str | None
    contacts: list[ContactOut]
    passages: list[PassageOut]
    conflicts: list[ConflictOut]
    index_version: str
    took_ms: float


class FeedbackRequest(BaseModel):
    """A verdict on one answer for ``POST /api/feedback``."""

    model_config = ConfigDict(extra="forbid")

    rating: Rating
    question: str = Field(min_length=1)
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY)
    abstained: bool = False
    doc_id: str | None = None
    evidence: str | None = None
    index_version: str = ""


class ErrorOut(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 403, 404, 409, 413, 422, 503)
}


# ---------------------------------------------------------------------------- helpers


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _same_origin(request: Request) -> bool:
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


def _validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is invalid."
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    if not location and first.get("type") in ("missing", "model_attributes_type", "dict_type"):
        return 'The request body must be a JSON object such as {"question": "..."}.'
    message = str(first.get("msg", "is invalid")).rstrip(".")
    return f"{'.'.join(location)}: {message}." if location else f"{message}."


def _wants_html(request: Request) -> bool:
    return (not request.url.path.startswith("/api/")
            and "text/html" in request.headers.get("accept", ""))


def _check_history(history: list[str], settings: Settings) -> list[str]:
    for turn in history:
        if len(turn) > settings.max_question_chars:
            raise QuestionError(
                f"An earlier question in history is longer than {settings.max_question_chars:,} "
                "characters."
            )
    return history


# ---------------------------------------------------------------------------- the app


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None,
               watch: bool = False) -> FastAPI:
    """Build the web application.

    Args:
        settings: Folders and limits; read from the environment when None.
        embedder: The embedding model; loaded in the lifespan when None.
        watch: Re-index by itself when files in the corpus folder change.
    """
    settings = settings or Settings()
    templates = Jinja2Templates(directory=str(ASSETS / "templates"))
    templates.env.globals.update(mark_sentence=mark_sentence, tel_href=tel_href,
                                 document_url=document_url, heading_text=heading_text,
                                 readable_time=readable_time)
    conversations = Conversations()
    feedback = FeedbackStore(settings.data_dir)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = embedder or load_embedder(settings.model)
        live = LiveIndex(settings, model)
        live.refresh(wait=True)
        state["live"] = live
        stop = threading.Event()
        watcher = None
        if watch:
            watcher = threading.Thread(target=watch_corpus, args=(settings, model, live, stop),
                                       name="collab-qa-watch", daemon=True)
            watcher.start()
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=5)

    app = FastAPI(
        title="collab-qa",
        summary="Answers from your organisation's documents, with citations.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.conversations = conversations
    app.state.feedback = feedback
    app.mount("/static", StaticFiles(directory=str(ASSETS / "static")), name="static")
    # Swagger UI's files come from the swagger-ui-py wheel: /docs works offline.
    swagger_files = Path(swagger_ui.__file__).parent / "static"
    app.mount("/swagger-ui", StaticFiles(directory=str(swagger_files)), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="collab-qa API",
            swagger_js_url="/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/swagger-ui/favicon-32x32.png",
        )

    install_security(app, settings)

    def live_index() -> LiveIndex:
        live = state.get("live")
        if live is None:
            raise IndexNotReady("The server is starting.")
        return live

    def page(request: Request, name: str, context: dict[str, Any],
             status_code: int = 200) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def error_response(request: Request, status: int, detail: str) -> Response:
        if _wants_html(request):
            return page(request, "error.html", {"status": status, "detail": detail}, status)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": _validation_sentence(exc)}, status_code=422)

    @app.exception_handler(QuestionError)
    async def on_question_error(request: Request, exc: QuestionError) -> Response:
        return error_response(request, 422, str(exc))

    @app.exception_handler(IndexNotReady)
    async def on_not_ready(request: Request, exc: IndexNotReady) -> Response:
        return error_response(request, 503, f"No index is loaded: {exc}")

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
        response = error_response(request, exc.status_code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    def ask(question: str, k: int | None, mode: str | None,
            history: list[str]) -> dict[str, Any]:
        loaded = live_index().current()
        answer = answer_question(loaded.searcher, question,
                                 settings.default_k if k is None else k,
                                 mode or settings.default_mode,
                                 _check_history(history, settings))
        return answer_payload(answer, loaded.version)

    def require_admin(request: Request, token: str | None = None) -> None:
        if not _same_origin(request):
            raise HTTPException(403, "This form was posted from another site; it was refused.")
        client = request.client.host if request.client else None
        if _is_loopback(client):
            return
        header = request.headers.get("authorization", "")
        given = token or (header[7:].strip() if header.lower().startswith("bearer ") else "")
        if settings.admin_token and given and hmac.compare_digest(
            given.encode(), settings.admin_token.encode()
        ):
            return
        raise HTTPException(
            403, "Rebuilding the index is allowed from this machine only, or with the token "
            "set in COLLAB_QA_ADMIN_TOKEN.",
        )

    def reindex() -> dict[str, Any]:
        live = live_index()
        try:
            report = rebuild_index(settings, live.embedder)
        except BuildLockedError as exc:
            raise HTTPException(409, str(exc)) from None
        except UserError as exc:
            raise HTTPException(400, str(exc)) from None
        live.refresh(wait=True)
        loaded = live.loaded
        result = report.to_dict()
        result["index_version"] = loaded.version if loaded else None
        result["reload_error"] = live.reload_error
        return result

    def conversation_of(request: Request) -> str | None:
        value = request.cookies.get(CONVERSATION_COOKIE)
        return value if value and len(value) <= 64 else None

    def with_conversation(response: Response, request: Request) -> str:
        conversation = conversation_of(request) or secrets.token_urlsafe(18)
        response.set_cookie(CONVERSATION_COOKIE, conversation, httponly=True, samesite="strict",
                            max_age=7 * 24 * 3600)
        return conversation

    def save_feedback(entry: Feedback) -> None:
        try:
            feedback.record(entry)
        except OSError as exc:
            log.warning("Could not save feedback to %s: %s", feedback.path, exc)
            raise HTTPException(503, "The feedback could not be saved on the server; "
                                "try again later.") from None

    def store_feedback(rating: str, turn_question: str, history: list[str],
                       answer: dict[str, Any]) -> None:
        passages = answer.get("passages") or []
        abstained = bool(answer.get("abstained"))
        save_feedback(Feedback(
            rating="up" if rating == "up" else "down",
            question=turn_question,
            history=tuple(history),
            abstained=abstained,
            doc_id=None if abstained or not passages else passages[0]["doc_id"],
            evidence=None if abstained else (answer.get("best_sentence")
                                             or (passages[0]["text"] if passages else None)),
            index_version=str(answer.get("index_version", "")),
        ))

    # ------------------------------------------------------------------ chat page

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def chat_page(request: Request) -> HTMLResponse:
        turns = conversations.turns(conversation_of(request))
        return page(request, "chat.html", {"turns": turns, "settings": settings,
                                           "error": None, "question": ""})

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    def chat_post(
        request: Request,
        question: Annotated[str, Form()] = "",
        mode: Annotated[str, Form()] = "",
        k: Annotated[str, Form()] = "",
    ) -> Response:
        if not _same_origin(request):
            raise HTTPException(403, "This form was posted from another site; it was refused.")
        conversation = conversation_of(request)
        turns = conversations.turns(conversation)
        history = [turn.question for turn in turns][-MAX_HISTORY:]
        try:
            if k and not k.strip().isdigit():
                raise QuestionError("k must be a whole number.")
            payload = ask(question, int(k) if k.strip() else None, mode or None, history)
        except QuestionError as exc:
            return page(request, "chat.html", {"turns": turns, "settings": settings,
                                               "error": str(exc), "question": question}, 422)
        turn = Turn(secrets.token_hex(6), question.strip(), history, payload)
        response = RedirectResponse(f"/#turn-{turn.id}", status_code=303)
        conversations.add(with_conversation(response, request), turn)
        return response

    @app.post("/clear", include_in_schema=False)
    def chat_clear(request: Request) -> Response:
        if _same_origin(request):
            conversations.clear(conversation_of(request))
        return RedirectResponse("/", status_code=303)

    @app.post("/feedback", include_in_schema=False)
    def chat_feedback(
        request: Request,
        turn_id: Annotated[str, Form()] = "",
        rating: Annotated[str, Form()] = "",
    ) -> Response:
        if not _same_origin(request):
            raise HTTPException(403, "This form was posted from another site; it was refused.")
        turn = conversations.find(conversation_of(request), turn_id)
        if turn is None or rating not in ("up", "down"):
            raise HTTPException(404, "That answer is no longer in this conversation.")
        store_feedback(rating, turn.question, turn.history, turn.answer)
        turn.rating = rating
        if request.headers.get(CHAT_HEADER):
            return Response(status_code=204)
        return RedirectResponse(f"/#turn-{turn.id}", status_code=303)

    # ------------------------------------------------------------------ documents

    @app.get("/documents", response_class=HTMLResponse, include_in_schema=False)
    def documents_page(request: Request, rebuilt: str | None = None) -> HTMLResponse:
        live = live_index()
        loaded = live.current()
        return page(request, "documents.html", {
            "loaded": loaded, "manifest": loaded.searcher.index.manifest,
            "reload_error": live.reload_error, "rebuilt": rebuilt,
            "needs_token": not _is_loopback(request.client.host if request.client else None),
            "message": None,
        })

    @app.post("/documents/reindex", include_in_schema=False)
    def documents_reindex(
        request: Request, token: Annotated[str, Form()] = ""
    ) -> Response:
        require_admin(request, token or None)
        result = reindex()
        return RedirectResponse(f"/documents?rebuilt={result['index_version']}", status_code=303)

    @app.get("/documents/{doc_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def document_page(
        request: Request, doc_id: str,
        chunk: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    ) -> HTMLResponse:
        loaded = live_index().current()
        record = loaded.searcher.index.documents.get(doc_id)
        if record is None:
            raise HTTPException(404, "There is no document with that id in the index.")
        chunks = loaded.chunks_by_doc.get(doc_id, [])
        cited = next((c for c in chunks if c.ordinal == chunk), None)
        return page(request, "document.html", {
            "record": record, "blocks": document_blocks(record, chunks, cited),
            "cited": cited, "chunks": chunks, "index_version": loaded.version,
        })

    # ------------------------------------------------------------------ JSON API

    @app.post("/api/ask", response_model=AskResponse, responses=ERRORS, tags=["questions"])
    def api_ask(body: AskRequest, request: Request, response: Response) -> dict[str, Any]:
        """Answer a question: the best sentence, contacts, cited passages, conflicts."""
        payload = ask(body.question, body.k, body.mode, body.history)
        if request.headers.get(CHAT_HEADER):  # the chat page keeps the turn across refreshes
            turn = Turn(secrets.token_hex(6), body.question.strip(), body.history, payload)
            conversations.add(with_conversation(response, request), turn)
            response.headers[TURN_HEADER] = turn.id
        return payload

    @app.post("/api/feedback", status_code=204, responses=ERRORS, tags=["questions"])
    def api_feedback(body: FeedbackRequest) -> Response:
        """Record 👍 (``up``) or 👎 (``down``) for an answer; `collab-qa feedback export`."""
        _check_history(body.history, settings)
        if len(body.question) > settings.max_question_chars:
            raise QuestionError("The question is too long.")
        save_feedback(Feedback(
            rating=body.rating, question=body.question.strip(), history=tuple(body.history),
            abstained=body.abstained, doc_id=body.doc_id, evidence=body.evidence,
            index_version=body.index_version,
        ))
        return Response(status_code=204)

    @app.get("/api/documents", responses=ERRORS, tags=["documents"])
    def api_documents() -> dict[str, Any]:
        """The indexed documents with chunk counts, and the files the build skipped."""
        loaded = live_index().current()
        index = loaded.searcher.index
        return {
            "index_version": loaded.version,
            "created": index.manifest.get("created"),
            "documents": [
                {"doc_id": record.id, "title": record.title, "chunks": len(record.chunk_ids),
                 "sha256": record.sha256, "url": document_url(record.id)}
                for record in sorted(index.documents.values(), key=lambda r: r.id)
            ],
            "skipped": index.manifest.get("skipped", []),
        }

    @app.get("/api/documents/{doc_id:path}", responses=ERRORS, tags=["documents"])
    def api_document(doc_id: str) -> dict[str, Any]:
        """One document's normalised text and its chunks."""
        loaded = live_index().current()
        record = loaded.searcher.index.documents.get(doc_id)
        if record is None:
            raise HTTPException(404, "There is no document with that id in the index.")
        return {
            "doc_id": record.id, "title": record.title, "format": record.format,
            "sha256": record.sha256, "text": record.text, "index_version": loaded.version,
            "chunks": [
                {"ordinal": c.ordinal, "heading": heading_text(c), "start": c.start,
                 "end": c.end, "url": document_url(c.doc_id, c.ordinal)}
                for c in loaded.chunks_by_doc.get(doc_id, [])
            ],
        }

    @app.post("/api/reindex", responses=ERRORS, tags=["admin"])
    def api_reindex(request: Request) -> dict[str, Any]:
        """Rebuild the index from the corpus folder and switch to it (loopback or token)."""
        require_admin(request)
        return reindex()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorOut}})
    def readyz() -> Response:
        """An index is loaded; its manifest summary, and why a newer one was not loaded."""
        live = state.get("live")
        if live is not None:
            live.refresh()
        loaded = live.loaded if live is not None else None
        if live is None or loaded is None:
            reason = live.reload_error if live is not None else "The server is starting."
            return JSONResponse({"detail": f"No index is loaded: {reason}"}, status_code=503)
        manifest = loaded.searcher.index.manifest
        return JSONResponse({
            "ready": True,
            "index_version": loaded.version,
            "created": manifest.get("created"),
            "loaded_at": loaded.loaded_at,
            "model": manifest.get("model", {}).get("id"),
            "documents": manifest.get("totals", {}).get("documents"),
            "chunks": manifest.get("totals", {}).get("chunks"),
            "skipped": len(manifest.get("skipped", [])),
            "reload_error": live.reload_error,
        })

    return app


def served_url(host: str, port: int) -> str:
    """The address to open in a browser for a server bound to ``host``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"

