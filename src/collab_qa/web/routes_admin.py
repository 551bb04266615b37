"""Rebuilding the index (loopback or the admin token) and the health checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from collab_qa.errors import BuildLockedError, DatabaseError, UserError
from collab_qa.settings import Settings
from collab_qa.web.deps import LiveIndexDep, SettingsDep
from collab_qa.web.live_index import LiveIndex
from collab_qa.web.schema import ERRORS, ErrorOut, ReadyOut, ReindexOut
from collab_qa.web.security import require_admin

router = APIRouter()


def reindex(settings: Settings, live: LiveIndex) -> ReindexOut:
    """Bring the index in line with the corpus (only changed files are re-embedded) and
    switch to it; with a database URL the build goes into the database, and every server
    sharing it follows.

    Raises:
        HTTPException: 409 while another build holds the lock, 400 when the corpus is missing.
        DatabaseError: when the database cannot be reached (the app answers 503).
    """
    try:
        report = live.rebuild()
    except BuildLockedError as exc:
        raise HTTPException(409, str(exc)) from None
    except DatabaseError:
        raise
    except UserError as exc:
        raise HTTPException(400, str(exc)) from None
    loaded = live.loaded
    return ReindexOut.model_validate({
        **report.to_dict(), "index_version": loaded.version if loaded else None,
        "reload_error": live.reload_error,
    })


@router.post("/documents/reindex", include_in_schema=False)
def documents_reindex(request: Request, settings: SettingsDep, live: LiveIndexDep,
                      token: Annotated[str, Form()] = "") -> Response:
    require_admin(request, settings.admin_token, token or None)
    result = reindex(settings, live)
    return RedirectResponse(f"/documents?rebuilt={result.index_version}", status_code=303)


@router.post("/api/reindex", response_model=ReindexOut, responses=ERRORS, tags=["admin"])
def api_reindex(request: Request, settings: SettingsDep, live: LiveIndexDep) -> ReindexOut:
    """Rebuild the index from the corpus folder and switch to it (loopback or token)."""
    require_admin(request, settings.admin_token)
    return reindex(settings, live)


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, tags=["health"],
            responses={503: {"model": ErrorOut}})
def readyz(request: Request) -> ReadyOut | Response:
    """An index is loaded; its manifest summary, and why a newer one was not loaded."""
    live: LiveIndex | None = request.app.state.live
    if live is not None:
        live.refresh()
        if live.follower is not None and live.follower.error:  # the database is gone
            return JSONResponse({"detail": live.follower.error}, status_code=503)
    loaded = live.loaded if live is not None else None
    if live is None or loaded is None:
        reason = live.reload_error if live is not None else "The server is starting."
        return JSONResponse({"detail": f"No index is loaded: {reason}"}, status_code=503)
    manifest = loaded.store.manifest
    return ReadyOut(
        ready=True,
        index_version=loaded.version,
        created=manifest.get("created"),
        loaded_at=loaded.loaded_at,
        model=manifest.get("model", {}).get("id"),
        documents=manifest.get("totals", {}).get("documents"),
        chunks=manifest.get("totals", {}).get("chunks"),
        skipped=len(manifest.get("skipped", [])),
        reload_error=live.reload_error,
    )
