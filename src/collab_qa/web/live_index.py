"""The index the server answers from, following ``index/CURRENT`` or the database.

Every request checks ``CURRENT`` with one ``stat``; when a build has switched it, the new
index is loaded and then swapped in as one reference, so a request in flight finishes on the
index it started with. A new index that fails to load is logged, reported by ``/readyz`` and
ignored: the server keeps answering from the old one.

With a database (``COLLAB_QA_DATABASE_URL``), a ``VersionFollower`` thread listens for the
builds' notifications (and reads the version row every second) and loads a new version as
soon as any server or the CLI has switched to it; requests only compare two numbers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from collab_qa.chunking import Chunk
from collab_qa.embedding import Embedder
from collab_qa.errors import DatabaseError, IndexLoadError
from collab_qa.index import (
    CURRENT_FILE,
    BuildReport,
    build_index_from_settings,
    current_version_dir,
    load_index,
)
from collab_qa.search import Searcher
from collab_qa.settings import Settings
from collab_qa.store import IndexStore
from collab_qa.store.postgres import Database, PostgresStore
from collab_qa.store.postgres_follow import VersionFollower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedIndex:
    """One loaded index version with what the pages need from it."""

    searcher: Searcher
    chunks_by_doc: dict[str, list[Chunk]]
    loaded_at: str

    @property
    def store(self) -> IndexStore:
        return self.searcher.index

    @property
    def version(self) -> str:
        return self.store.version


class IndexNotReady(Exception):
    """No index could be loaded yet; the message says why."""


def _signature_of(path: os.PathLike[str]) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class LiveIndex:
    """Holds the index the server answers from and follows ``index/CURRENT``, or the
    database's current version when ``database`` is given."""

    def __init__(self, settings: Settings, embedder: Embedder,
                 database: Database | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.database = database
        self.reload_error: str | None = None
        self._loaded: LoadedIndex | None = None
        self._signature: tuple[int, int, int] | None = (-1, -1, -1)  # nothing checked yet
        self._lock = threading.Lock()
        self.follower = (None if database is None else VersionFollower(
            database, lambda _version: self.refresh(wait=True)))

    @contextmanager
    def following(self) -> Iterator[None]:
        """Follow the database's version in the background while the block runs (nothing
        to start for an index folder, which each request checks)."""
        if self.follower is None:
            yield
            return
        try:
            self.follower.check()
        except DatabaseError as exc:  # the follower keeps trying
            self.reload_error = str(exc)
        self.follower.start()
        try:
            yield
        finally:
            self.follower.stop()

    def rebuild(self) -> BuildReport:
        """Bring the index this server reads in line with the corpus, and switch to it.

        Raises:
            UserError: when the corpus is missing, another build holds the lock too long, or
                the database cannot be reached.
        """
        if self.database is None:
            report = build_index_from_settings(self.settings, self.embedder)
        else:
            from collab_qa.store.postgres_build import build_postgres_index_from_settings

            report = build_postgres_index_from_settings(self.settings, self.embedder)
        if self.follower is not None:
            self.follower.check()  # before its notification arrives
        self.refresh(wait=True)
        return report

    def _current_signature(self) -> tuple[int, int, int] | None:
        if self.follower is None:
            return _signature_of(self.settings.index_dir / CURRENT_FILE)
        version_id = self.follower.version_id
        return None if version_id is None else (version_id, 0, 0)

    def _unchanged(self, signature: tuple[int, int, int] | None) -> bool:
        return signature == self._signature and (self._loaded is not None or signature is None)

    def _load_store(self) -> IndexStore:
        if self.database is not None:
            return PostgresStore.load(self.database, expected_model_id=self.embedder.model_id)
        return load_index(self.settings.index_dir, expected_model_id=self.embedder.model_id)

    def _load(self) -> LoadedIndex:
        index = self._load_store()
        searcher = Searcher(index, self.embedder, dense_weight=self.settings.dense_weight,
                            sparse_terms=self.settings.sparse_terms,
                            max_question_chars=self.settings.max_question_chars,
                            max_k=self.settings.max_k)
        chunks_by_doc: dict[str, list[Chunk]] = {doc_id: [] for doc_id in index.documents}
        for chunk in index.chunks:
            chunks_by_doc.setdefault(chunk.doc_id, []).append(chunk)
        return LoadedIndex(searcher, chunks_by_doc,
                           datetime.now(UTC).isoformat(timespec="seconds"))

    def refresh(self, *, wait: bool = False) -> None:
        """Load the index ``CURRENT`` names if it is not the one loaded.

        Args:
            wait: Wait for a reload another thread is doing; otherwise return at once
                (the caller keeps using the index loaded so far).
        """
        if self._unchanged(self._current_signature()) or not self._lock.acquire(blocking=wait):
            return
        try:
            signature = self._current_signature()
            if not self._unchanged(signature):
                self._switch(signature)
        finally:
            self._lock.release()

    def _switch(self, signature: tuple[int, int, int] | None) -> None:
        """Load the version ``CURRENT`` names, or keep the old one and say why."""
        loaded = self._loaded
        try:
            if self.database is None:
                live = current_version_dir(self.settings.index_dir)
                if live is None:
                    raise IndexLoadError(
                        f"No index in {self.settings.index_dir}; build it with "
                        "`collab-qa index`.")
                if loaded is not None and live.name == loaded.version:
                    self._signature = signature
                    return
            fresh = self._load()
        except DatabaseError as exc:  # gone for now: the next check tries again
            self.reload_error = str(exc)
            log.warning("Could not load the index from the database: %s", exc)
            return
        except IndexLoadError as exc:
            self._signature = signature  # retried when CURRENT changes again
            self.reload_error = str(exc)
            if loaded is not None:
                log.warning("Keeping index %s: the new one failed to load: %s",
                            loaded.version, exc)
            else:
                log.warning("No index loaded: %s", exc)
            return
        self._loaded = fresh  # the swap: one reference, readers hold their own
        self._signature = signature
        self.reload_error = None
        log.info("Serving index %s", fresh.version)

    def current(self) -> LoadedIndex:
        """The index to answer this request from (checks ``CURRENT`` first).

        Raises:
            IndexNotReady: when no index has been loaded.
        """
        self.refresh()
        loaded = self._loaded
        if loaded is None:
            raise IndexNotReady(self.reload_error or "The index is still loading.")
        return loaded

    @property
    def loaded(self) -> LoadedIndex | None:
        return self._loaded
