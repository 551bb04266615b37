"""The database URL: checked before anything connects, and described in messages without
the user or password."""

from __future__ import annotations

import re

import psycopg
from psycopg import conninfo

from collab_qa.errors import DatabaseError

_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


def describe_database(url: str) -> str:
    """"database NAME on HOST", without the user or password, for messages."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database"
    host = str(parts.get("host") or "localhost")
    return f"database {parts.get('dbname') or parts.get('user') or 'postgres'} on {host}"


def check_database_url(url: str) -> None:
    """Raise DatabaseError with a sentence when ``url`` is not a ``postgresql://`` URL."""
    if not _URL.match(url):
        raise DatabaseError(
            "COLLAB_QA_DATABASE_URL must start with postgresql:// (for example "
            "postgresql://user:password@host:5432/database)."
        )
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseError(f"COLLAB_QA_DATABASE_URL is not a valid database URL ({why}).") \
            from None
