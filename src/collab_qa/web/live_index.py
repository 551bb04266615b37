"""The index the server answers from, following ``index/CURRENT``.

Every request checks ``CURRENT`` with one ``stat``; when a build has switched it, the new
index is loaded and then swapped in as one reference, so a request in flight finishes on the
index it started with. A new index that fails to load is logged, reported by ``/readyz`` and
ignored: the server keeps answering from the old one.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from collab_qa.chunking import Chunk
from collab_qa.embedding import Embedder
from collab_qa.errors import IndexLoadError
from collab_qa.index import CURRENT_FILE, current_version_dir, load_index
from collab_qa.search import Searcher
from collab_qa.settings import Settings
from collab_qa.store import IndexStore

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
    """Holds the index the server answers from and follows ``index/CURRENT``."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.reload_error: str | None = None
        self._loaded: LoadedIndex | None = None
        self._signature: tuple[int, int, int] | None = (-1, -1, -1)  # nothing checked yet
        self._lock = threading.Lock()

    def _unchanged(self, signature: tuple[int, int, int] | None) -> bool:
        return signature == self._signature and (self._loaded is not None or signature is None)

    def _load(self) -> LoadedIndex:
        index = load_index(self.settings.index_dir, expected_model_id=self.embedder.model_id)
        searcher = Searcher(index, self.embedder, dense_weight=self.settings.dense_weight,
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
        pointer = self.settings.index_dir / CURRENT_FILE
        if self._unchanged(_signature_of(pointer)) or not self._lock.acquire(blocking=wait):
            return
        try:
            signature = _signature_of(pointer)
            if not self._unchanged(signature):
                self._switch(signature)
        finally:
            self._lock.release()

    def _switch(self, signature: tuple[int, int, int] | None) -> None:
        """Load the version ``CURRENT`` names, or keep the old one and say why."""
        loaded = self._loaded
        try:
            live = current_version_dir(self.settings.index_dir)
            if live is None:
                raise IndexLoadError(
                    f"No index in {self.settings.index_dir}; build it with `collab-qa index`."
                )
            if loaded is not None and live.name == loaded.version:
                self._signature = signature
                return
            fresh = self._load()
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
