"""The chat's conversations and the answers' 👍/👎 in the database (``COLLAB_QA_DATABASE_URL``),
so a user's next request may reach any of the servers that share it.

``PostgresConversations`` implements ``ConversationStore``; ``PostgresFeedback`` keeps what
``FeedbackStore`` keeps in its file. A conversation not continued for ``COOKIE_MAX_AGE`` (the
cookie's life) is deleted. A database that went away raises ``DatabaseUnavailable``, which
the app answers with 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from collab_qa.feedback import Feedback, FeedbackStore, Rating
from collab_qa.store.postgres import Database
from collab_qa.web.conversations import COOKIE_MAX_AGE, MAX_TURNS, Turn
from collab_qa.web.schema import AskResponse

# pg_advisory_xact_lock key while creating the tables ("chat" in ASCII): two servers starting
# at once would otherwise race on CREATE ... IF NOT EXISTS.
SCHEMA_LOCK_KEY = 0x63686174
EXPIRE_EVERY_SECONDS = 600.0

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS collab_qa;
CREATE TABLE IF NOT EXISTS collab_qa.conversation_turns (
    conversation_id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    turn_id text NOT NULL,
    question text NOT NULL,
    history jsonb NOT NULL,
    answer jsonb NOT NULL,
    rating text CHECK (rating IN ('up', 'down')),
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS conversation_turns_created
    ON collab_qa.conversation_turns (created);
CREATE TABLE IF NOT EXISTS collab_qa.feedback (
    feedback_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry jsonb NOT NULL
);
"""


def create_chat_tables(database: Database) -> None:
    """Create the tables of conversations and feedback when missing.

    Raises:
        DatabaseError: when the database cannot be reached.
    """
    for attempt in (1, 2):
        try:
            with database.connection() as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                connection.execute(SCHEMA)
            return
        except psycopg.errors.UniqueViolation:  # a build created the schema at that moment
            if attempt == 2:
                raise


def _turn(row: tuple[str, str, Any, Any, str | None]) -> Turn:
    turn_id, question, history, answer, rating = row
    verdict: Rating | None = "up" if rating == "up" else "down" if rating == "down" else None
    return Turn(turn_id, question, list(history), AskResponse.model_validate(answer), verdict)


class PostgresConversations:
    """Conversations in the database (``ConversationStore``), the latest ``max_turns`` each.

    Args:
        database: The shared database (its tables made by ``create_chat_tables``).
        max_turns: Turns kept per conversation.
    """

    def __init__(self, database: Database, max_turns: int = MAX_TURNS) -> None:
        self.database = database
        self.max_turns = max_turns
        self._expired_at = 0.0
        self._lock = threading.Lock()

    def turns(self, conversation_id: str | None) -> list[Turn]:
        if not conversation_id:
            return []
        with self.database.pooled() as connection:
            rows = connection.execute(
                "SELECT turn_id, question, history, answer, rating "
                "FROM collab_qa.conversation_turns WHERE conversation_id = %s "
                "AND created > now() - make_interval(secs => %s) ORDER BY seq",
                (conversation_id, COOKIE_MAX_AGE)).fetchall()
        return [_turn(row) for row in rows]

    def add(self, conversation_id: str, turn: Turn) -> None:
        with self.database.pooled() as connection, connection.transaction():
            connection.execute(
                "INSERT INTO collab_qa.conversation_turns (conversation_id, turn_id, question, "
                "history, answer, rating) VALUES (%s, %s, %s, %s, %s, %s)",
                (conversation_id, turn.id, turn.question, Jsonb(turn.history),
                 Jsonb(turn.answer.model_dump(mode="json")), turn.rating))
            connection.execute(
                "DELETE FROM collab_qa.conversation_turns WHERE conversation_id = %s AND seq <= "
                "(SELECT seq FROM collab_qa.conversation_turns WHERE conversation_id = %s "
                "ORDER BY seq DESC OFFSET %s LIMIT 1)",
                (conversation_id, conversation_id, self.max_turns))
        self._expire_old()

    def find(self, conversation_id: str | None, turn_id: str) -> Turn | None:
        if not conversation_id:
            return None
        with self.database.pooled() as connection:
            row = connection.execute(
                "SELECT turn_id, question, history, answer, rating "
                "FROM collab_qa.conversation_turns WHERE conversation_id = %s AND turn_id = %s "
                "ORDER BY seq DESC LIMIT 1", (conversation_id, turn_id)).fetchone()
        return None if row is None else _turn(row)

    def rate(self, conversation_id: str | None, turn_id: str, rating: Rating) -> None:
        if not conversation_id:
            return
        with self.database.pooled() as connection:
            connection.execute(
                "UPDATE collab_qa.conversation_turns SET rating = %s "
                "WHERE conversation_id = %s AND turn_id = %s", (rating, conversation_id, turn_id))

    def clear(self, conversation_id: str | None) -> None:
        if not conversation_id:
            return
        with self.database.pooled() as connection:
            connection.execute("DELETE FROM collab_qa.conversation_turns "
                               "WHERE conversation_id = %s", (conversation_id,))

    def _expire_old(self) -> None:
        """Delete conversations older than the cookie, at most every few minutes."""
        with self._lock:
            if time.monotonic() - self._expired_at < EXPIRE_EVERY_SECONDS:
                return
            self._expired_at = time.monotonic()
        with self.database.pooled() as connection:
            connection.execute(
                "DELETE FROM collab_qa.conversation_turns "
                "WHERE created < now() - make_interval(secs => %s)", (COOKIE_MAX_AGE,))


class PostgresFeedback(FeedbackStore):
    """👍/👎 in the database's ``feedback`` table, one JSON entry a row (as in the file).

    Args:
        database: The shared database (its tables made by ``create_chat_tables``).
    """

    def __init__(self, database: Database) -> None:
        super().__init__(Path("."))
        self.database = database
        self.path = Path(database.describe())  # named in messages only; nothing is written

    def record(self, feedback: Feedback) -> None:
        """Insert one entry."""
        with self.database.pooled() as connection:
            connection.execute("INSERT INTO collab_qa.feedback (entry) VALUES (%s)",
                               (Jsonb(asdict(feedback)),))

    def read(self) -> Iterator[Feedback]:
        """Every stored entry, oldest first; a damaged row is left out."""
        with self.database.pooled() as connection:
            rows = connection.execute(
                "SELECT entry FROM collab_qa.feedback ORDER BY feedback_id").fetchall()
        for (entry,) in rows:
            try:
                entry["history"] = tuple(entry.get("history") or ())
                yield Feedback(**entry)
            except (TypeError, AttributeError):
                continue
