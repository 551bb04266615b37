"""The HTML side: the templates (from the installed ``collab_qa.assets``), rendering a page,
and errors as a page for browsers or as ``{"detail": ...}`` for everyone else."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.requests import Request

from collab_qa.errors import QuestionError
from collab_qa.web.i18n import (
    LANGUAGE_COOKIE,
    chosen_language,
    install_i18n,
    page_context,
    text_language,
)
from collab_qa.web.live_index import IndexNotReady
from collab_qa.web.views import (
    chunk_anchor,
    document_url,
    heading_text,
    mark_sentence,
    passage_blocks,
    plain_sentence,
    readable_time,
    tel_href,
)

ASSETS = files("collab_qa.assets")
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
PAGE_METHODS = ["GET", "HEAD"]  # FastAPI routes answer HEAD only when asked to


def make_templates() -> Jinja2Templates:
    """The page templates with the helpers they call."""
    templates = Jinja2Templates(directory=str(ASSETS / "templates"))
    install_i18n(templates.env)
    templates.env.globals.update(mark_sentence=mark_sentence, tel_href=tel_href,
                                 document_url=document_url, heading_text=heading_text,
                                 readable_time=readable_time, chunk_anchor=chunk_anchor,
                                 text_language=text_language, passage_blocks=passage_blocks,
                                 plain_sentence=plain_sentence)
    return templates


def render(request: Request, name: str, context: dict[str, Any],
           status_code: int = 200) -> HTMLResponse:
    """Render a template of the app that serves ``request``."""
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, name, {**page_context(request), **context},
                                          status_code=status_code)
    response.headers["vary"] = "Accept-Language, Cookie"
    chosen = chosen_language(request)
    if chosen:  # the language switch: remembered for the next pages
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=LANGUAGE_COOKIE_AGE,
                            samesite="lax")
    return response


def wants_html(request: Request) -> bool:
    """A browser asking for a page (the JSON API always answers JSON)."""
    return (not request.url.path.startswith("/api/")
            and "text/html" in request.headers.get("accept", ""))


def error_response(request: Request, status: int, detail: str) -> Response:
    """The error page for a browser, ``{"detail": ...}`` for any other client."""
    if wants_html(request):
        return render(request, "error.html", {"status": status, "detail": detail}, status)
    return JSONResponse({"detail": detail}, status_code=status)


def validation_sentence(exc: RequestValidationError) -> str:
    """The first validation error as one sentence that names the field."""
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


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_sentence(exc)}, status_code=422)


async def _on_question_error(request: Request, exc: Exception) -> Response:
    return error_response(request, 422, str(exc))


async def _on_not_ready(request: Request, exc: Exception) -> Response:
    return error_response(request, 503, f"No index is loaded: {exc}")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
    response = error_response(request, exc.status_code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install_error_pages(app: FastAPI) -> None:
    """Every error the user can cause becomes one sentence, never a traceback."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(QuestionError, _on_question_error)
    app.add_exception_handler(IndexNotReady, _on_not_ready)
    app.add_exception_handler(HTTPException, _on_http_error)
