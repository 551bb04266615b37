"""The indexed documents: the list, the viewer that highlights a cited passage, and the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from collab_qa.store import DocumentRecord
from collab_qa.web.deps import LiveIndexDep, SettingsDep
from collab_qa.web.live_index import LoadedIndex
from collab_qa.web.pages import PAGE_METHODS, render
from collab_qa.web.schema import ERRORS, DocumentOut, DocumentsOut
from collab_qa.web.security import rebuild_access
from collab_qa.web.views import (
    cited_chunk,
    document_blocks,
    document_payload,
    document_url,
    documents_payload,
)

router = APIRouter()

MAX_CHUNK_PARAMETER = 1000


def _record(loaded: LoadedIndex, doc_id: str) -> DocumentRecord:
    record = loaded.store.documents.get(doc_id)
    if record is None:
        raise HTTPException(404, "There is no document with that id in the index.")
    return record


@router.api_route("/documents", methods=PAGE_METHODS, response_class=HTMLResponse,
                  include_in_schema=False)
def documents_page(request: Request, live: LiveIndexDep, settings: SettingsDep,
                   rebuilt: str | None = None) -> HTMLResponse:
    loaded = live.current()
    return render(request, "documents.html", {
        "loaded": loaded, "manifest": loaded.store.manifest,
        "documents": sorted(loaded.store.documents.values(), key=lambda r: r.id),
        "reload_error": live.reload_error, "rebuilt": rebuilt,
        "rebuild_access": rebuild_access(request, settings.admin_token),
    })


@router.api_route("/documents/{doc_id:path}", methods=PAGE_METHODS, response_class=HTMLResponse,
                  include_in_schema=False)
def document_page(
    request: Request, doc_id: str, live: LiveIndexDep,
    chunk: Annotated[str | None, Query(max_length=MAX_CHUNK_PARAMETER)] = None,
) -> Response:
    """The whole document; ``?chunk=<id>`` highlights a passage. An old ``?chunk=<position>``
    link is redirected to the passage's id."""
    loaded = live.current()
    record = _record(loaded, doc_id)
    chunks = loaded.chunks_by_doc.get(doc_id, [])
    cited, moved = cited_chunk(chunks, chunk)
    if moved is not None:
        return RedirectResponse(document_url(doc_id, moved.id), status_code=302)
    return render(request, "document.html", {
        "record": record, "blocks": document_blocks(record, chunks, cited),
        "cited": cited, "missing": bool(chunk) and cited is None, "chunks": chunks,
        "index_version": loaded.version,
    })


@router.get("/api/documents", response_model=DocumentsOut, responses=ERRORS,
            tags=["documents"])
def api_documents(live: LiveIndexDep) -> DocumentsOut:
    """The indexed documents with chunk counts, and the files the build skipped."""
    return documents_payload(live.current().store)


@router.get("/api/documents/{doc_id:path}", response_model=DocumentOut, responses=ERRORS,
            tags=["documents"])
def api_document(doc_id: str, live: LiveIndexDep) -> DocumentOut:
    """One document's normalised text and its chunks."""
    loaded = live.current()
    record = _record(loaded, doc_id)
    return document_payload(record, loaded.chunks_by_doc.get(doc_id, []), loaded.version)
