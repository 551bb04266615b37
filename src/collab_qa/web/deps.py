"""What the routes get from the app, as FastAPI dependencies (tests can override them).

They only read the app's state, so they are coroutines: FastAPI runs a plain function
dependency on a worker thread, one thread hop per dependency and request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from collab_qa.feedback import FeedbackStore
from collab_qa.settings import Settings
from collab_qa.web.conversations import ConversationStore
from collab_qa.web.live_index import IndexNotReady, LiveIndex


async def get_settings(request: Request) -> Settings:
    """The settings the app was made with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_live_index(request: Request) -> LiveIndex:
    """The live index the lifespan loaded.

    Raises:
        IndexNotReady: while the server is starting.
    """
    live: LiveIndex | None = request.app.state.live
    if live is None:
        raise IndexNotReady("The server is starting.")
    return live


async def get_conversations(request: Request) -> ConversationStore:
    """The chat's conversation store."""
    conversations: ConversationStore = request.app.state.conversations
    return conversations


async def get_feedback(request: Request) -> FeedbackStore:
    """Where 👍/👎 are kept."""
    feedback: FeedbackStore = request.app.state.feedback
    return feedback


SettingsDep = Annotated[Settings, Depends(get_settings)]
LiveIndexDep = Annotated[LiveIndex, Depends(get_live_index)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
FeedbackDep = Annotated[FeedbackStore, Depends(get_feedback)]
