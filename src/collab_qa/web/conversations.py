"""The chat's conversations, kept on the server and found by a cookie.

Both versions of the chat page (the plain form and the script) store each question and its
answer here, so a refresh, or Back from a citation, shows the conversation again.
``ConversationStore`` is the interface the routes use; ``MemoryConversations`` keeps them in
this process. A store in a shared database would let several servers share them.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from collab_qa.feedback import Rating
from collab_qa.web.schema import AskResponse

CONVERSATION_COOKIE = "collab_qa_conversation"
COOKIE_MAX_AGE = 7 * 24 * 3600
MAX_TURNS = 30
MAX_CONVERSATIONS = 200  # in memory: at most ~50 MB of answers


@dataclass(frozen=True)
class Turn:
    """One question of the chat and what was answered."""

    id: str
    question: str
    history: list[str]
    answer: AskResponse
    rating: Rating | None = None


def new_turn(question: str, history: list[str], answer: AskResponse) -> Turn:
    """A turn with a fresh random id."""
    return Turn(secrets.token_hex(6), question.strip(), list(history), answer)


class ConversationStore(Protocol):
    """Where the turns of each conversation are kept, oldest first."""

    def turns(self, conversation_id: str | None) -> list[Turn]:
        """The conversation's turns ([] for an unknown or missing id)."""
        ...

    def add(self, conversation_id: str, turn: Turn) -> None:
        """Append a turn; the oldest turns and conversations may be dropped."""
        ...

    def find(self, conversation_id: str | None, turn_id: str) -> Turn | None:
        """One turn of the conversation, or None."""
        ...

    def rate(self, conversation_id: str | None, turn_id: str, rating: Rating) -> None:
        """Remember the 👍/👎 given to a turn."""
        ...

    def clear(self, conversation_id: str | None) -> None:
        """Forget the conversation."""
        ...


class MemoryConversations:
    """Conversations in this process's memory, the least recently used dropped first."""

    def __init__(self, max_turns: int = MAX_TURNS,
                 max_conversations: int = MAX_CONVERSATIONS) -> None:
        self.max_turns = max_turns
        self.max_conversations = max_conversations
        self._store: OrderedDict[str, list[Turn]] = OrderedDict()
        self._lock = threading.Lock()

    def turns(self, conversation_id: str | None) -> list[Turn]:
        with self._lock:
            return list(self._store.get(conversation_id or "", []))

    def add(self, conversation_id: str, turn: Turn) -> None:
        with self._lock:
            turns = self._store.setdefault(conversation_id, [])
            turns.append(turn)
            del turns[:-self.max_turns]
            self._store.move_to_end(conversation_id)
            while len(self._store) > self.max_conversations:
                self._store.popitem(last=False)

    def find(self, conversation_id: str | None, turn_id: str) -> Turn | None:
        return next((t for t in self.turns(conversation_id) if t.id == turn_id), None)

    def rate(self, conversation_id: str | None, turn_id: str, rating: Rating) -> None:
        with self._lock:
            turns = self._store.get(conversation_id or "", [])
            for position, turn in enumerate(turns):
                if turn.id == turn_id:
                    turns[position] = replace(turn, rating=rating)

    def clear(self, conversation_id: str | None) -> None:
        with self._lock:
            self._store.pop(conversation_id or "", None)


def conversation_of(request: Request) -> str | None:
    """The conversation id the request's cookie names (None when absent or implausible)."""
    value = request.cookies.get(CONVERSATION_COOKIE)
    return value if value and len(value) <= 64 else None


def keep_conversation(response: Response, request: Request) -> str:
    """The request's conversation id, or a new one; the response (re)sets the cookie."""
    conversation = conversation_of(request) or secrets.token_urlsafe(18)
    response.set_cookie(CONVERSATION_COOKIE, conversation, httponly=True, samesite="strict",
                        max_age=COOKIE_MAX_AGE)
    return conversation
