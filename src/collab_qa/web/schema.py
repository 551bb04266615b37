"""The JSON API's payloads: the one definition of what every route takes and returns.

``views`` builds these models from answers and the index; the routes return them, the chat
page renders them, and the OpenAPI schema at ``/openapi.json`` is generated from them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from collab_qa.feedback import Rating
from collab_qa.settings import SearchMode

MAX_HISTORY = 20


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
    """A cited passage, best first."""

    doc_id: str
    title: str
    heading: str = Field(description="The passage's headings as one line, outermost first.")
    text: str
    score: float = Field(description="The retrieval score of the passage.")
    start: int = Field(description="Offset of the first character in the document text.")
    end: int = Field(description="Offset just past the last character.")
    url: str = Field(description="The document viewer, scrolled to this passage.")


class ContactOut(BaseModel):
    """A person or office to contact, as written in a cited passage."""

    name: str | None
    role: str | None
    email: str | None
    phone: str | None
    citation: str
    url: str | None


class StatementOut(BaseModel):
    """One side of a disagreement between the sources."""

    citation: str
    sentence: str
    date: str | None
    url: str | None


class ConflictOut(BaseModel):
    """Sources that disagree, shown side by side."""

    topic: str
    note: str | None
    statements: list[StatementOut]


class AskResponse(BaseModel):
    """The answer to a question: the best sentence, contacts, cited passages, conflicts."""

    question: str
    abstained: bool = Field(description="True when the documents don't answer the question; "
                            "the passages are then only possibly related.")
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


class SkippedOut(BaseModel):
    """A corpus file the build left out, with a one-line reason."""

    path: str
    reason: str


class DocumentSummaryOut(BaseModel):
    """One indexed document in the list."""

    doc_id: str
    title: str
    chunks: int = Field(description="How many passages the document was cut into.")
    sha256: str
    url: str


class DocumentsOut(BaseModel):
    """The indexed documents and the files the build skipped."""

    index_version: str
    created: str | None = Field(description="When the index was built (UTC, ISO 8601).")
    documents: list[DocumentSummaryOut]
    skipped: list[SkippedOut]


class ChunkOut(BaseModel):
    """One passage of a document."""

    id: str = Field(description="The passage's id; `?chunk=<id>` in the viewer cites it.")
    ordinal: int = Field(description="Position of the passage in its document, from 0.")
    heading: str
    start: int
    end: int
    url: str


class DocumentOut(BaseModel):
    """One document's normalised text and its passages."""

    doc_id: str
    title: str
    format: str
    sha256: str
    text: str
    index_version: str
    chunks: list[ChunkOut]


class ReindexOut(BaseModel):
    """What a rebuild did and the index the server now answers from."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    skipped: list[SkippedOut]
    chunks: int
    embedded_chunks: int
    sparse_added_chunks: int = Field(
        0, description="Kept passages that only had their sparse terms added.")
    lexical_rebuilt: bool = Field(
        False, description="Whether the BM25 index was rebuilt for a newer text analyser.")
    seconds: float
    full_rebuild_reason: str | None
    version: str
    up_to_date: bool
    index_version: str | None = Field(description="The index served after the rebuild.")
    reload_error: str | None = Field(description="Why the new index could not be loaded.")


class ReadyOut(BaseModel):
    """The loaded index, summarised from its manifest."""

    ready: bool
    index_version: str
    created: str | None
    loaded_at: str
    model: str | None
    documents: int | None
    chunks: int | None
    skipped: int
    reload_error: str | None = Field(description="Why a newer index was not loaded, if so.")


class ErrorOut(BaseModel):
    """Every error: one sentence that says what to do."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 403, 404, 409, 413, 422, 503)
}
