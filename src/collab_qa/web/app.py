"""``create_app(settings)``: the web chat and the JSON API as one FastAPI application.

The embedding model and the index load once, in the lifespan; the routes live in
``routes_ask``, ``routes_documents`` and ``routes_admin`` and get what they need through the
dependencies in ``deps``. With ``COLLAB_QA_DATABASE_URL`` set, the index, the conversations
and the feedback live in that database, shared by every server given the same URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import swagger_ui
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request

from collab_qa.embedding import Embedder, load_embedder
from collab_qa.errors import DatabaseError
from collab_qa.feedback import FeedbackStore
from collab_qa.settings import Settings
from collab_qa.web import routes_admin, routes_ask, routes_documents
from collab_qa.web.conversations import ConversationStore, MemoryConversations
from collab_qa.web.live_index import LiveIndex
from collab_qa.web.pages import (
    ASSETS,
    PAGE_METHODS,
    error_response,
    install_error_pages,
    make_templates,
)
from collab_qa.web.security import DOCS_PATH, install_security
from collab_qa.web.watcher import corpus_watcher

FAVICON_URL = "/static/favicon.svg"
DOCS_HEAD = '<link rel="stylesheet" href="/static/docs.css">'
DOCS_BACK_LINK = '<p class="back-to-app"><a href="/">← Back to the chat</a></p>'


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None,
               watch: bool = False, conversations: ConversationStore | None = None) -> FastAPI:
    """Build the web application.

    Args:
        settings: Folders and limits; read from the environment when None.
        embedder: The embedding model; loaded in the lifespan when None.
        watch: Re-index by itself when files in the corpus folder change.
        conversations: Where the chat keeps its conversations; in memory (or in the
            database when a URL is set) when None.
    """
    settings = settings or Settings()
    database = None
    if settings.database_url:
        from collab_qa.store.postgres import Database
        from collab_qa.web.conversations_pg import PostgresConversations, PostgresFeedback

        database = Database(settings.database_url, pool_size=settings.database_pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live = LiveIndex(settings, embedder or load_embedder(settings.model), database)
        if database is not None:
            from collab_qa.web.conversations_pg import create_chat_tables

            create_chat_tables(database)
        try:
            with live.following():
                live.refresh(wait=True)
                app.state.live = live
                with corpus_watcher(live) if watch else nullcontext():
                    yield
        finally:
            if database is not None:
                database.close()

    app = FastAPI(
        title="collab-qa",
        summary="Answers from your organisation's documents, with citations.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.live = None  # until the lifespan has loaded the index
    if database is None:
        app.state.conversations = conversations or MemoryConversations()
        app.state.feedback = FeedbackStore(settings.data_dir)
    else:
        app.state.conversations = conversations or PostgresConversations(database)
        app.state.feedback = PostgresFeedback(database)
        app.add_exception_handler(DatabaseError, _on_database_error)
    app.state.templates = make_templates()
    app.mount("/static", StaticFiles(directory=str(ASSETS / "static")), name="static")
    # Swagger UI's files come from the swagger-ui-py wheel: /docs works offline.
    swagger_files = Path(swagger_ui.__file__).parent / "static"
    app.mount("/swagger-ui", StaticFiles(directory=str(swagger_files)), name="swagger-ui")
    app.add_api_route(DOCS_PATH, _api_docs(app), methods=PAGE_METHODS, include_in_schema=False)
    app.add_api_route("/favicon.ico", _favicon, methods=PAGE_METHODS, include_in_schema=False)
    for module in (routes_ask, routes_documents, routes_admin):
        app.include_router(module.router)
    install_error_pages(app)
    install_security(app, settings)
    return app


async def _on_database_error(request: Request, exc: Exception) -> Response:
    """A database that went away: 503 and its sentence, until the pool reconnects."""
    return error_response(request, 503, str(exc))


def _api_docs(app: FastAPI) -> Callable[[], HTMLResponse]:
    """The API documentation page: Swagger UI served from this server."""

    def api_docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="collab-qa API",
            swagger_js_url="/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/swagger-ui/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
        )
        html = bytes(page.body).decode().replace("<head>", f"<head>{DOCS_HEAD}", 1)
        html = html.replace("<body>", f"<body>{DOCS_BACK_LINK}", 1).replace(
            "<html>", '<html lang="en">', 1)
        return HTMLResponse(html)

    return api_docs


def _favicon() -> FileResponse:
    """The browser's default favicon address, for clients that do not read the page's link."""
    return FileResponse(str(ASSETS / "static" / "favicon.svg"), media_type="image/svg+xml")


def served_url(host: str, port: int) -> str:
    """The address to open in a browser for a server bound to ``host``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"
