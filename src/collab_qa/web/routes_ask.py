"""Asking: the chat page (a plain form, made quicker by chat.js), its 👍/👎, and the JSON API.

The chat page posts its form to ``/``. Without JavaScript the answer is stored in the
conversation and the browser is redirected to the page, which renders every turn. chat.js
posts the same form with the ``X-Collab-QA-Chat`` header and gets back the rendered turn
(``_answer.html``) to insert, so both versions show the card the server renders.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from collab_qa.answer import answer_question
from collab_qa.errors import QuestionError
from collab_qa.feedback import Feedback, FeedbackStore, Rating
from collab_qa.settings import Settings
from collab_qa.web.conversations import (
    ConversationStore,
    Turn,
    conversation_of,
    keep_conversation,
    new_turn,
)
from collab_qa.web.deps import ConversationsDep, FeedbackDep, LiveIndexDep, SettingsDep
from collab_qa.web.i18n import catalogues, request_language
from collab_qa.web.live_index import LiveIndex
from collab_qa.web.pages import PAGE_METHODS, render
from collab_qa.web.schema import ERRORS, MAX_HISTORY, AskRequest, AskResponse, FeedbackRequest
from collab_qa.web.security import require_same_origin, same_origin
from collab_qa.web.views import answer_payload, covered_documents, example_questions

log = logging.getLogger(__name__)
router = APIRouter()

CHAT_HEADER = "X-Collab-QA-Chat"  # sent by chat.js: answer with the rendered turn
TURN_HEADER = "X-Collab-QA-Turn"
MAX_TITLES = 8  # documents the first screen lists by title; the rest are on /documents


def check_history(history: list[str], settings: Settings) -> list[str]:
    """The history, or QuestionError when an earlier question is over the length limit."""
    for turn in history:
        if len(turn) > settings.max_question_chars:
            raise QuestionError(
                f"An earlier question in history is longer than {settings.max_question_chars:,} "
                "characters."
            )
    return history


def answer_for(live: LiveIndex, settings: Settings, question: str, k: int | None,
               mode: str | None, history: list[str]) -> AskResponse:
    """Answer from the index loaded now, with the settings' defaults for k and mode."""
    loaded = live.current()
    answer = answer_question(loaded.searcher, question,
                             settings.default_k if k is None else k,
                             mode or settings.default_mode, check_history(history, settings))
    return answer_payload(answer, loaded.version)


def save_feedback(store: FeedbackStore, entry: Feedback) -> None:
    """Keep one verdict, or answer 503 when the data folder cannot be written."""
    try:
        store.record(entry)
    except OSError as exc:
        log.warning("Could not save feedback to %s: %s", store.path, exc)
        raise HTTPException(503, "The feedback could not be saved on the server; "
                            "try again later.") from None


def turn_feedback(turn: Turn, rating: Rating) -> Feedback:
    """A verdict on a turn of the chat: the top passage's document and the evidence shown."""
    answer = turn.answer
    top = answer.passages[0] if answer.passages and not answer.abstained else None
    evidence = answer.best_sentence or (top.text if top else None)
    return Feedback(rating=rating, question=turn.question, history=tuple(turn.history),
                    abstained=answer.abstained, doc_id=top.doc_id if top else None,
                    evidence=None if answer.abstained else evidence,
                    index_version=answer.index_version)


# ---------------------------------------------------------------------------- chat page


def first_screen(request: Request, settings: Settings) -> dict[str, Any]:
    """The documents the chat covers and the example questions, in the page's language
    (nothing while no index is loaded)."""
    live: LiveIndex | None = request.app.state.live
    loaded = live.loaded if live is not None else None
    if loaded is None:
        return {"covered": None, "examples": list(settings.example_questions)}
    covered = covered_documents(loaded.store)
    translations = catalogues()[request_language(request)]

    def about(title: str) -> str:
        return translations.gettext("What is “%(title)s” about?") % {"title": title}

    return {"covered": covered, "max_titles": MAX_TITLES,
            "examples": example_questions(covered, settings.example_questions, about)}


def chat_response(request: Request, settings: Settings, turns: list[Turn], *,
                  error: str | None = None, question: str = "",
                  status_code: int = 200) -> HTMLResponse:
    """The chat page. It is never cached, so Back from another page shows every turn the
    server keeps, including those the script added."""
    context = {"turns": turns, "settings": settings, "error": error, "question": question,
               **(first_screen(request, settings) if not turns else {})}
    response = render(request, "chat.html", context, status_code)
    response.headers["cache-control"] = "no-store"
    return response


@router.api_route("/", methods=PAGE_METHODS, response_class=HTMLResponse,
                  include_in_schema=False)
def chat_page(request: Request, settings: SettingsDep,
              conversations: ConversationsDep) -> HTMLResponse:
    return chat_response(request, settings, conversations.turns(conversation_of(request)))


@router.post("/", response_class=HTMLResponse, include_in_schema=False)
def chat_post(
    request: Request, live: LiveIndexDep, settings: SettingsDep,
    conversations: ConversationsDep,
    question: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "",
    k: Annotated[str, Form()] = "",
) -> Response:
    require_same_origin(request)
    scripted = bool(request.headers.get(CHAT_HEADER))
    turns = conversations.turns(conversation_of(request))
    history = [turn.question for turn in turns][-MAX_HISTORY:]
    try:
        if k and not k.strip().isdigit():
            raise QuestionError("k must be a whole number.")
        payload = answer_for(live, settings, question, int(k) if k.strip() else None,
                             mode or None, history)
    except QuestionError as exc:
        if scripted:
            raise  # {"detail": ...} for the script to show
        return chat_response(request, settings, turns, error=str(exc), question=question,
                             status_code=422)
    turn = new_turn(question, history, payload)
    response: Response
    if scripted:
        response = render(request, "_answer.html", {"turn": turn})
        response.headers[TURN_HEADER] = turn.id
    else:
        response = RedirectResponse(f"/#turn-{turn.id}", status_code=303)
    conversations.add(keep_conversation(response, request), turn)
    return response


@router.post("/clear", include_in_schema=False)
def chat_clear(request: Request, conversations: ConversationsDep) -> Response:
    if same_origin(request):
        conversations.clear(conversation_of(request))
    return RedirectResponse("/", status_code=303)


@router.post("/feedback", include_in_schema=False)
def chat_feedback(
    request: Request, conversations: ConversationsDep, feedback: FeedbackDep,
    turn_id: Annotated[str, Form()] = "",
    rating: Annotated[str, Form()] = "",
) -> Response:
    require_same_origin(request)
    conversation = conversation_of(request)
    turn = conversations.find(conversation, turn_id)
    if turn is None or rating not in ("up", "down"):
        raise HTTPException(404, "That answer is no longer in this conversation.")
    verdict: Rating = "up" if rating == "up" else "down"
    save_feedback(feedback, turn_feedback(turn, verdict))
    conversations.rate(conversation, turn.id, verdict)
    if request.headers.get(CHAT_HEADER):
        return Response(status_code=204)
    return RedirectResponse(f"/#turn-{turn.id}", status_code=303)


# ---------------------------------------------------------------------------- JSON API


@router.post("/api/ask", response_model=AskResponse, responses=ERRORS, tags=["questions"])
async def api_ask(body: AskRequest, request: Request, response: Response, live: LiveIndexDep,
                  settings: SettingsDep, conversations: ConversationsDep) -> AskResponse:
    """Answer a question: the best sentence, contacts, cited passages, conflicts."""
    # One worker thread for the answer and the conversation (which may be in a database);
    # validating and encoding the payload stay on the event loop, without a second hop.
    return await run_in_threadpool(ask_and_keep, body, request, response, live, settings,
                                   conversations)


def ask_and_keep(body: AskRequest, request: Request, response: Response, live: LiveIndex,
                 settings: Settings, conversations: ConversationStore) -> AskResponse:
    """The answer to an API question; kept in the page's conversation (across refreshes)
    when the chat script asks."""
    payload = answer_for(live, settings, body.question, body.k, body.mode, body.history)
    if request.headers.get(CHAT_HEADER):
        turn = new_turn(body.question, body.history, payload)
        conversations.add(keep_conversation(response, request), turn)
        response.headers[TURN_HEADER] = turn.id
    return payload


@router.post("/api/feedback", status_code=204, responses=ERRORS, tags=["questions"])
def api_feedback(body: FeedbackRequest, settings: SettingsDep,
                 feedback: FeedbackDep) -> Response:
    """Record 👍 (``up``) or 👎 (``down``) for an answer; `collab-qa feedback export`."""
    check_history(body.history, settings)
    if len(body.question) > settings.max_question_chars:
        raise QuestionError("The question is too long.")
    save_feedback(feedback, Feedback(
        rating=body.rating, question=body.question.strip(), history=tuple(body.history),
        abstained=body.abstained, doc_id=body.doc_id, evidence=body.evidence,
        index_version=body.index_version,
    ))
    return Response(status_code=204)
