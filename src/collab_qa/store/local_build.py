"""Writing the local index folder: ``LocalFolder`` is its ``StoreBackend``, ``LocalWriter``
writes one version.

A version is written into a hidden temporary folder, fsynced, renamed to its version name,
and then ``CURRENT`` is replaced; a reader therefore sees the old index or the new one,
never a mix. A file lock keeps to one builder at a time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from filelock import FileLock, Timeout

from collab_qa.analysis import analyser_version
from collab_qa.chunking import embedding_text
from collab_qa.errors import BuildLockedError, IndexLoadError, UserError
from collab_qa.store import IndexStore
from collab_qa.store.local import (
    ANALYSER,
    CHUNKS,
    CURRENT_FILE,
    DENSE,
    DOCUMENTS,
    FORMAT_VERSION,
    LEXICAL,
    LOCK_FILE,
    MANIFEST,
    SPARSE,
    TMP_PREFIX,
    VECTORS,
    LexicalIndex,
    LocalStore,
    current_version_dir,
    load_index,
    make_vector_index,
)
from collab_qa.store.shared import DraftWriter

log = logging.getLogger(__name__)


class LocalFolder:
    """An index folder: version folders side by side, ``CURRENT`` naming the live one.

    Args:
        index_dir: The folder; created by the first build.
        approximate_threshold: Chunk count from which the dense index is approximate.
    """

    keeps_sparse_terms = True

    def __init__(self, index_dir: Path, *, approximate_threshold: int = 50_000) -> None:
        self.index_dir = index_dir
        self.approximate_threshold = approximate_threshold

    @contextmanager
    def building(self, timeout: float) -> Iterator[None]:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.index_dir / LOCK_FILE), timeout=timeout)
        try:
            lock.acquire()
        except Timeout as exc:
            raise BuildLockedError(
                f"Another build of {self.index_dir} is running and did not finish within "
                f"{timeout:g} s; try again when it is done."
            ) from exc
        try:
            remove_leftovers(self.index_dir)
            yield
        finally:
            lock.release()

    def load(self, *, expected_model_id: str | None = None) -> LocalStore:
        return load_index(self.index_dir, expected_model_id=expected_model_id)

    def base(self) -> tuple[LocalStore | None, str | None]:
        try:
            return load_index(self.index_dir, mmap=False, term_stats=False), None
        except IndexLoadError as exc:
            if not (self.index_dir / CURRENT_FILE).exists():
                return None, "no previous index"
            return None, f"the previous index could not be read ({exc})"

    def writer(self, base: IndexStore | None) -> LocalWriter:
        if base is not None and not isinstance(base, LocalStore):
            raise TypeError(f"A local index builds on a local version, not {type(base)}.")
        return LocalWriter(self.index_dir, base, self.approximate_threshold)


class LocalWriter(DraftWriter):
    """One new version of an index folder (``IndexWriter``), held in memory until commit."""

    def __init__(self, index_dir: Path, base: LocalStore | None,
                 approximate_threshold: int) -> None:
        super().__init__(base)
        self._index_dir = index_dir
        self._approximate_threshold = approximate_threshold

    def commit(self, facts: Mapping[str, Any]) -> str:
        version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S%fZ-") + uuid.uuid4().hex[:6]
        matrix = self.matrix(int(facts["model"]["dimension"]))
        try:
            self._write(version, matrix, facts)
        except (OSError, RuntimeError) as exc:  # disk full, read-only folder; FAISS: Runtime
            remove_leftovers(self._index_dir)  # the unfinished folder, or the unswitched one
            try:
                switched = current_version_dir(self._index_dir) == self._index_dir / version
            except IndexLoadError:
                switched = False
            if not switched:
                why = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:160]
                raise UserError(
                    f"Writing the new index to {self._index_dir} failed ({why}); the previous "
                    "index is unchanged. Free some space or fix the folder's permissions, then "
                    "build again."
                ) from exc
            log.warning("Index %s is live, but a step after the switch failed: %s", version, exc)
        return version

    def _write(self, version: str, matrix: np.ndarray, facts: Mapping[str, Any]) -> None:
        tmp = self._index_dir / f"{TMP_PREFIX}{version}"
        tmp.mkdir()
        records, chunks = self.records, self.chunks
        _write_jsonl(tmp / DOCUMENTS, [
            {"id": r.id, "title": r.title, "text": r.text, "sha256": r.sha256,
             "format": r.format, "chunk_ids": list(r.chunk_ids)}
            for r in records
        ])
        _write_jsonl(tmp / CHUNKS, [
            {"id": c.id, "doc_id": c.doc_id, "ordinal": c.ordinal,
             "heading_path": c.heading_path, "start": c.start, "end": c.end, "text": c.text}
            for c in chunks
        ])
        _write_file(tmp / VECTORS, lambda handle: np.save(handle, matrix), mode="wb")
        sparse = self.sparse_terms(int(facts["model"].get("sparse_dimension", 0)))
        if sparse is not None:
            _write_file(tmp / SPARSE, sparse.save, mode="wb")
        dense = make_vector_index(matrix, self._approximate_threshold)
        faiss.write_index(dense, str(tmp / DENSE))
        titles = {r.id: r.title for r in records}
        lexical = LexicalIndex.build([embedding_text(titles[c.doc_id], c) for c in chunks])
        lexical.save(tmp / LEXICAL)
        for file in [tmp / DENSE, *(tmp / LEXICAL).iterdir()]:
            _write_file(file, lambda handle: None, mode="ab")  # fsync what libraries wrote
        _fsync_dir(tmp / LEXICAL)
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **facts,
            "dense_index": type(dense).__name__,
            ANALYSER: analyser_version(),  # the BM25 index above is rebuilt on every write
            **self.manifest_facts(),
        }
        _write_file(tmp / MANIFEST, lambda handle: json.dump(manifest, handle, indent=1,
                                                              ensure_ascii=False))
        _fsync_dir(tmp)
        os.rename(tmp, self._index_dir / version)
        pointer = self._index_dir / f"{TMP_PREFIX}{CURRENT_FILE}"
        _write_file(pointer, lambda handle: handle.write(version + "\n"))
        os.replace(pointer, self._index_dir / CURRENT_FILE)
        _fsync_dir(self._index_dir)
        remove_leftovers(self._index_dir)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    kwargs: dict[str, Any] = {"encoding": "utf-8"} if "b" not in mode else {}
    with open(path, mode, **kwargs) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    def write(handle: Any) -> None:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    _write_file(path, write)


def remove_leftovers(index_dir: Path, keep: int = 2) -> None:
    """Delete what crashed builds left and all but the ``keep`` newest live versions.

    Leftovers are the temporary build folders and pointer files, and version folders newer
    than ``CURRENT`` (a build killed between renaming its folder and switching ``CURRENT``).
    The version before the current one is kept by default, so a server that read ``CURRENT``
    just before a switch can still load it. Runs under the build lock.
    """
    if not index_dir.is_dir():
        return
    for tmp in index_dir.glob(TMP_PREFIX + "*"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    try:
        current = current_version_dir(index_dir)
    except IndexLoadError:
        return  # a garbled CURRENT: delete no version; the build writes a new CURRENT
    versions = sorted(p for p in index_dir.glob("v*") if p.is_dir() and not p.is_symlink())
    if current is None:
        doomed = versions  # nothing was ever made live: every version is a crashed build's
    else:
        older = [p.name for p in versions if p.name < current.name]
        kept = {current.name, *older[max(len(older) - max(keep - 1, 0), 0):]}
        doomed = [p for p in versions if p.name not in kept]
    for old in doomed:
        shutil.rmtree(old, ignore_errors=True)
