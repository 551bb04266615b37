"""Following the database's current index version from a server.

A build switches ``current_version`` and sends a notification on ``VERSION_CHANNEL`` in the
same transaction. ``VersionFollower`` keeps one connection that listens on that channel and
also reads the version row at least every ``poll_seconds``, so a notification missed while
the connection was being re-made is caught up within that time. A database that goes away is
retried every ``poll_seconds``; ``error`` says why it cannot be reached meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from collab_qa.errors import DatabaseError
from collab_qa.store.postgres import (
    CONNECT_TIMEOUT_SECONDS,
    VERSION_CHANNEL,
    Database,
    read_current_version,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class VersionFollower:
    """Calls ``on_change(version_id)`` from a background thread whenever the current version
    of the database changes (None: nothing built yet).

    Args:
        database: The database to follow.
        on_change: Called with the new current version id; may take its time (loading).
        poll_seconds: Longest time between two reads of the version row.
    """

    def __init__(self, database: Database, on_change: Callable[[int | None], None], *,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.database = database
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self.version_id: int | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> int | None:
        """Read the current version now (on a connection of its own) and note it.

        Raises:
            DatabaseError: when the database cannot be reached.
        """
        version_id = self.database.current_version_id()
        self.version_id = version_id
        return version_id

    def start(self) -> None:
        """Start following in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="collab-qa-version",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following; returns within about ``poll_seconds``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + CONNECT_TIMEOUT_SECONDS + 1)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (psycopg.Error, DatabaseError) as exc:
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                if self.error is None:
                    log.warning("Lost the database; retrying every %g s: %s",
                                self.poll_seconds, lines[0] if lines else exc)
                self.error = (f"The {self.database.describe()} cannot be reached right now "
                              f"({lines[0] if lines else type(exc).__name__}).")
                self._stop.wait(self.poll_seconds)
            except Exception:  # never let the thread die: servers would stop following
                log.exception("Following the database's index version failed")
                self._stop.wait(self.poll_seconds)

    def _listen(self) -> None:
        connection: psycopg.Connection[Any]
        with psycopg.connect(self.database.url, autocommit=True,
                             connect_timeout=CONNECT_TIMEOUT_SECONDS) as connection:
            connection.execute(f"LISTEN {VERSION_CHANNEL}")
            if self.error is not None:
                log.info("The database is back")
            self.error = None
            while not self._stop.is_set():
                self._see(read_current_version(connection))
                # Wakes on the first notification, or after poll_seconds.
                for _ in connection.notifies(timeout=self.poll_seconds, stop_after=1):
                    pass

    def _see(self, version_id: int | None) -> None:
        if version_id != self.version_id:
            self.version_id = version_id
            self.on_change(version_id)
