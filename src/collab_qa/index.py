"""Build, update and load the index directory.

Layout of ``index/``::

    CURRENT                 name of the live version folder (swapped atomically)
    <version>/manifest.json format, model, chunker settings, per-document sha256 and chunk ids
    <version>/documents.jsonl  normalised document texts (the viewer shows these)
    <version>/chunks.jsonl  one chunk per line, in vector order
    <version>/vectors.npy   float32 unit vectors, reused by incremental builds
    <version>/dense.faiss   exact inner product; IVF over 8-bit codes from
                            ``approximate_threshold`` chunks on
    <version>/bm25/         the bm25s lexical index

A build writes a hidden temporary folder, fsyncs it, renames it to its version name and
then replaces ``CURRENT``; a reader therefore sees the old index or the new one, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import faiss
import numpy as np
from filelock import FileLock, Timeout

from collab_qa.analysis import TermStats, lexical_tokens
from collab_qa.chunking import Chunk, ChunkerConfig, chunk_document, embedding_text
from collab_qa.documents import Document, SkippedFile, load_corpus
from collab_qa.embedding import Embedder
from collab_qa.errors import BuildLockedError, IndexLoadError, UserError
from collab_qa.settings import Settings
from collab_qa.store import DocumentRecord

log = logging.getLogger(__name__)

# 2: the lexical index folds accents ("Charité" and "Charite" are one word).
# 3: numbers are one word in either language ("fyra", "four" and "4").
FORMAT_VERSION = 3
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".build.lock"
TMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"
DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
LEXICAL = "bm25"
REBUILD_HINT = "rebuild it with `collab-qa index --full`"


# ---------------------------------------------------------------------------- lexical


class LexicalIndex:
    """BM25 over the chunks' embedding texts (title and headings included)."""

    def __init__(self, retriever: Any) -> None:
        self._retriever = retriever

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25()
        # An empty-token guard keeps documents with no indexable words from breaking bm25s.
        tokens = [tokens or [""] for tokens in lexical_tokens(texts)]
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    @classmethod
    def load(cls, path: Path, mmap: bool = False) -> LexicalIndex:
        import bm25s

        return cls(bm25s.BM25.load(str(path), mmap=mmap))

    def save(self, path: Path) -> None:
        self._retriever.save(str(path))

    @property
    def size(self) -> int:
        return int(self._retriever.scores["num_docs"])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros when no query word is indexed)."""
        ids = self._retriever.get_tokens_ids(lexical_tokens([query])[0])
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores_from_ids(ids), dtype=np.float32)


# ---------------------------------------------------------------------------- dense


# The approximate index: inverted lists over 8-bit codes. Searcher re-scores its candidates
# exactly from vectors.npy, so the codes only need to find them. bench/README.md (scale) has
# the measurements: at 1M chunks it builds in minutes where HNSW took over 40, answers in a
# few ms with recall@10 = 1.0 after re-scoring, and keeps RSS near 2 GB.
IVF_LISTS_PER_SQRT = 4
IVF_PROBES = 32
IVF_TRAIN_PER_LIST = 39  # faiss' minimum of training points per centroid
IVF_TRAIN_MAX_PER_LIST = 64


def make_vector_index(vectors: np.ndarray, approximate_threshold: int) -> faiss.Index:
    """Exact inner product for small collections; from ``approximate_threshold`` chunks on, an
    IVF index with 8-bit scalar-quantised codes (4·√n lists, 32 probed); the setting is
    ``COLLAB_QA_APPROXIMATE_THRESHOLD`` (bench/README.md shows why IVF and why 50,000).
    """
    count, dimension = vectors.shape
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if count < approximate_threshold or count == 0:
        exact = faiss.IndexFlatIP(dimension)
        if count:
            exact.add(data)
        return exact
    lists = max(1, min(int(IVF_LISTS_PER_SQRT * np.sqrt(count)), count // IVF_TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, lists,
                                          faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    sample = min(count, lists * IVF_TRAIN_MAX_PER_LIST)
    rows = np.sort(np.random.default_rng(0).choice(count, sample, replace=False))
    index.train(data[rows])
    index.add(data)
    index.nprobe = min(IVF_PROBES, lists)
    return index


# ---------------------------------------------------------------------------- loaded index


@dataclass
class Index:
    """A loaded, validated index version."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, DocumentRecord]
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: faiss.Index
    lexical: LexicalIndex

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def model_id(self) -> str:
        return str(self.manifest["model"]["id"])

    def title_of(self, doc_id: str) -> str:
        return self.documents[doc_id].title

    @cached_property
    def _chunks_by_id(self) -> dict[str, Chunk]:
        return {chunk.id: chunk for chunk in self.chunks}

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        return self._chunks_by_id.get(chunk_id)

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {chunk.id: position for position, chunk in enumerate(self.chunks)}

    def position_of(self, chunk_id: str) -> int | None:
        return self._positions.get(chunk_id)

    def next_chunk(self, chunk: Chunk) -> Chunk | None:
        return self._chunks_by_id.get(f"{chunk.doc_id}#{chunk.ordinal + 1}")

    @cached_property
    def term_stats(self) -> TermStats:
        return TermStats.from_passages(
            (c.id, embedding_text(self.title_of(c.doc_id), c)) for c in self.chunks)

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.dense.search(vector[None, :], k)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def dense_scores(self, vector: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[positions] @ vector, dtype=np.float32)

    def lexical_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.lexical.scores(query)
        total = len(scores)
        top = np.argpartition(-scores, k - 1)[:k] if k < total else np.arange(total)
        top = top[scores[top] > 0]
        return top.astype(np.int64), scores[top]

    def lexical_scores(self, query: str, positions: np.ndarray) -> np.ndarray:
        return self.lexical.scores(query)[positions]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def current_version_dir(index_dir: Path) -> Path | None:
    """The live version folder, or None when no index was built yet."""
    try:
        name = (index_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not name or "/" in name or name.startswith("."):
        raise IndexLoadError(f"{index_dir / CURRENT_FILE} is garbled; {REBUILD_HINT}.")
    return index_dir / name


def load_index(index_dir: Path, *, expected_model_id: str | None = None,
               mmap: bool = True) -> Index:
    """Load and check the live index.

    Args:
        index_dir: The index folder.
        expected_model_id: When given, an index built with another model is refused.
        mmap: Map the stored vectors instead of reading them into memory.

    Raises:
        IndexLoadError: naming the file at fault and the fix.
    """
    for _attempt in range(3):
        path = current_version_dir(index_dir)
        if path is None:
            raise IndexLoadError(f"No index in {index_dir}; build it with `collab-qa index`.")
        try:
            return _load_version(path, expected_model_id, mmap)
        except Exception as exc:
            if _switched_since(index_dir, path):
                continue  # a build switched CURRENT and cleaned up while we read: read again
            _raise_load_error(path, exc)
    raise IndexLoadError(f"The index in {index_dir} kept changing while it was read; try again.")


def _switched_since(index_dir: Path, path: Path) -> bool:
    try:
        return current_version_dir(index_dir) != path
    except IndexLoadError:
        return False


def _raise_load_error(path: Path, exc: Exception) -> NoReturn:
    if isinstance(exc, IndexLoadError):
        raise exc
    if isinstance(exc, FileNotFoundError):
        raise IndexLoadError(
            f"The index file {exc.filename} is missing; {REBUILD_HINT}."
        ) from exc
    # corrupt files raise anything from json, numpy, faiss or bm25s
    raise IndexLoadError(
        f"The index in {path} is corrupt ({type(exc).__name__}: {exc}); {REBUILD_HINT}."
    ) from exc


@contextmanager
def _reading(file: Path) -> Iterator[None]:
    """Turn whatever a corrupt or missing file raises into a message naming that file."""
    try:
        yield
    except IndexLoadError:
        raise
    except Exception as exc:  # corrupt files raise anything from json, numpy, faiss or bm25s
        if isinstance(exc, FileNotFoundError) or not file.exists():
            raise IndexLoadError(f"The index file {file} is missing; {REBUILD_HINT}.") from exc
        why = " ".join(str(exc).split())
        why = why if len(why) <= 160 else why[:157] + "..."
        raise IndexLoadError(
            f"The index file {file} is corrupt ({type(exc).__name__}: {why}); {REBUILD_HINT}."
        ) from exc


def _load_version(path: Path, expected_model_id: str | None, mmap: bool) -> Index:
    manifest_path = path / MANIFEST
    with _reading(manifest_path):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IndexLoadError(f"{manifest_path} is not valid JSON; {REBUILD_HINT}.") from exc
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            found = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise IndexLoadError(
                f"{manifest_path} has format {found!r}, this collab-qa reads format "
                f"{FORMAT_VERSION}; {REBUILD_HINT}."
            )
        model_id = manifest["model"]["id"]
        if expected_model_id is not None and model_id != expected_model_id:
            raise IndexLoadError(
                f"The index in {path} was built with model {model_id}, but the configured model "
                f"is {expected_model_id}; {REBUILD_HINT}."
            )
        dimension = int(manifest["model"]["dimension"])
        total = int(manifest["totals"]["chunks"])
        manifest_documents = set(manifest["documents"])

    def check(condition: bool, file: str, what: str) -> None:
        if not condition:
            raise IndexLoadError(f"{path / file} {what}; {REBUILD_HINT}.")

    with _reading(path / CHUNKS):
        chunk_rows = _read_jsonl(path / CHUNKS)
        check(len(chunk_rows) == total, CHUNKS,
              f"holds {len(chunk_rows)} chunks, manifest says {total}")
        chunks = [
            Chunk(row["doc_id"], row["ordinal"], tuple(row["heading_path"]), row["start"],
                  row["end"], row["text"])
            for row in chunk_rows
        ]
    with _reading(path / DOCUMENTS):
        documents = {
            row["id"]: DocumentRecord(
                id=row["id"], title=row["title"], text=row["text"], sha256=row["sha256"],
                format=row["format"], chunk_ids=tuple(row["chunk_ids"]),
            )
            for row in _read_jsonl(path / DOCUMENTS)
        }
        check(set(documents) == manifest_documents, DOCUMENTS, "does not match the manifest")
    check({chunk.doc_id for chunk in chunks} <= set(documents), CHUNKS,
          "names documents that documents.jsonl does not hold")
    with _reading(path / VECTORS):
        vectors = np.load(path / VECTORS, mmap_mode="r" if mmap else None)
        check(vectors.shape == (total, dimension), VECTORS,
              f"has shape {vectors.shape}, expected ({total}, {dimension})")
    with _reading(path / DENSE):
        dense = faiss.read_index(str(path / DENSE))
        check(dense.d == dimension, DENSE, f"has dimension {dense.d}, expected {dimension}")
        check(dense.ntotal == total, DENSE, f"holds {dense.ntotal} vectors, expected {total}")
    with _reading(path / LEXICAL):
        lexical = LexicalIndex.load(path / LEXICAL, mmap=mmap)
        check(lexical.size == total, LEXICAL, f"holds {lexical.size} chunks, expected {total}")
    return Index(path=path, manifest=manifest, documents=documents, chunks=chunks,
                 vectors=vectors, dense=dense, lexical=lexical)


# ---------------------------------------------------------------------------- build


@dataclass
class BuildReport:
    """What a build did, for the CLI summary and the documents page."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    full_rebuild_reason: str | None = None
    version: str = ""
    up_to_date: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _new_version_name() -> str:
    return datetime.now(UTC).strftime("v%Y%m%dT%H%M%S%fZ-") + uuid.uuid4().hex[:6]


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


def _previous_index(index_dir: Path) -> tuple[Index | None, str | None]:
    try:
        return load_index(index_dir, mmap=False), None
    except IndexLoadError as exc:
        if not (index_dir / CURRENT_FILE).exists():
            return None, "no previous index"
        return None, f"the previous index could not be read ({exc})"


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunker: ChunkerConfig,
    *,
    full: bool = False,
    max_file_bytes: int = 20_000_000,
    approximate_threshold: int = 50_000,
    lock_timeout: float = 30.0,
    progress: bool = False,
) -> BuildReport:
    """Bring the index in line with the corpus, re-embedding only what changed.

    Args:
        corpus_dir: Folder with the documents.
        index_dir: Index folder; created when missing.
        embedder: The embedding model.
        chunker: Chunk size and overlap.
        full: Re-embed every document even when unchanged.
        max_file_bytes: Larger files are skipped.
        approximate_threshold: Chunk count from which the dense index is approximate.
        lock_timeout: Seconds to wait for another build to finish.
        progress: Show the embedding progress bar.

    Raises:
        UserError: when the corpus folder is missing.
        BuildLockedError: when another build keeps the lock longer than ``lock_timeout``.
    """
    if not corpus_dir.is_dir():
        raise UserError(f"The corpus folder {corpus_dir} does not exist.")
    index_dir.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(index_dir / LOCK_FILE), timeout=lock_timeout):
            return _build_locked(corpus_dir, index_dir, embedder, chunker, full,
                                 max_file_bytes, approximate_threshold, progress)
    except Timeout as exc:
        raise BuildLockedError(
            f"Another build of {index_dir} is running and did not finish within "
            f"{lock_timeout:g} s; try again when it is done."
        ) from exc



def build_index_from_settings(settings: Settings, embedder: Embedder, *, full: bool = False,
                              progress: bool = False) -> BuildReport:
    """``build_index`` with every folder, limit and chunker knob taken from the settings."""
    return build_index(
        settings.corpus_dir, settings.index_dir, embedder,
        ChunkerConfig(settings.chunk_tokens, settings.chunk_overlap_tokens),
        full=full, max_file_bytes=settings.max_file_bytes,
        approximate_threshold=settings.approximate_threshold,
        lock_timeout=settings.build_lock_timeout, progress=progress,
    )

def _build_locked(
    corpus_dir: Path, index_dir: Path, embedder: Embedder, chunker: ChunkerConfig, full: bool,
    max_file_bytes: int, approximate_threshold: int, progress: bool,
) -> BuildReport:
    started = time.perf_counter()
    remove_leftovers(index_dir)
    report = BuildReport()
    documents, report.skipped = load_corpus(corpus_dir, max_file_bytes)

    previous, reason = _previous_index(index_dir)
    chunker_settings = asdict(chunker)
    if full:
        reason = "--full was asked for"
    elif previous is not None:
        if previous.model_id != embedder.model_id:
            reason = f"the model changed ({previous.model_id} -> {embedder.model_id})"
        elif previous.manifest["chunker"] != chunker_settings:
            reason = "the chunker settings changed"
        else:
            reason = None
    reuse = previous if reason is None else None
    report.full_rebuild_reason = reason if previous is not None or full else None

    old_docs = previous.documents if previous else {}
    positions = {chunk.id: i for i, chunk in enumerate(reuse.chunks)} if reuse else {}
    chunks: list[Chunk] = []
    vectors: list[np.ndarray | None] = []
    texts_to_embed: list[str] = []
    slots: list[int] = []
    titles: dict[str, str] = {}
    for document in documents:
        titles[document.id] = document.title
        old = old_docs.get(document.id)
        if reuse is not None and old is not None and old.sha256 == document.sha256:
            report.unchanged.append(document.id)
            for chunk_id in old.chunk_ids:
                i = positions[chunk_id]
                chunks.append(reuse.chunks[i])
                vectors.append(reuse.vectors[i])
            continue
        if old is None:
            report.added.append(document.id)
        else:
            (report.changed if old.sha256 != document.sha256 else report.unchanged).append(
                document.id)
        for chunk in chunk_document(document, chunker, embedder.count_tokens):
            slots.append(len(chunks))
            texts_to_embed.append(embedding_text(document.title, chunk))
            chunks.append(chunk)
            vectors.append(None)
    report.removed = sorted(set(old_docs) - {d.id for d in documents})
    report.chunks = len(chunks)

    previous_skipped = reuse.manifest.get("skipped") if reuse else None
    if (reuse is not None and not report.added and not report.changed and not report.removed
            and previous_skipped == [asdict(s) for s in report.skipped]):
        report.up_to_date = True
        report.version = reuse.version
        report.seconds = time.perf_counter() - started
        return report

    report.embedded_chunks = len(texts_to_embed)
    fresh = embedder.encode(texts_to_embed, progress=progress)
    for slot, vector in zip(slots, fresh, strict=True):
        vectors[slot] = vector
    matrix = (np.stack([v for v in vectors if v is not None]).astype(np.float32)
              if chunks else np.zeros((0, embedder.dimension), dtype=np.float32))

    report.version = _new_version_name()
    try:
        _write_version(index_dir, report, documents, chunks, matrix, titles, embedder, chunker,
                       approximate_threshold)
    except (OSError, RuntimeError) as exc:  # disk full, read-only folder; FAISS raises Runtime
        remove_leftovers(index_dir)  # the unfinished folder, or the version never switched to
        try:
            switched = current_version_dir(index_dir) == index_dir / report.version
        except IndexLoadError:
            switched = False
        if not switched:
            why = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:160]
            raise UserError(
                f"Writing the new index to {index_dir} failed ({why}); the previous index is "
                "unchanged. Free some space or fix the folder's permissions, then build again."
            ) from exc
        log.warning("Index %s is live, but a step after the switch failed: %s",
                    report.version, exc)
    report.seconds = time.perf_counter() - started
    return report


def _write_version(
    index_dir: Path, report: BuildReport, documents: list[Document], chunks: list[Chunk],
    matrix: np.ndarray, titles: dict[str, str], embedder: Embedder, chunker: ChunkerConfig,
    approximate_threshold: int,
) -> None:
    tmp = index_dir / f"{TMP_PREFIX}{report.version}"
    tmp.mkdir()
    chunk_ids: dict[str, list[str]] = {d.id: [] for d in documents}
    for chunk in chunks:
        chunk_ids[chunk.doc_id].append(chunk.id)
    _write_jsonl(tmp / DOCUMENTS, [
        {"id": d.id, "title": d.title, "text": d.text, "sha256": d.sha256, "format": d.format,
         "chunk_ids": chunk_ids[d.id]}
        for d in documents
    ])
    _write_jsonl(tmp / CHUNKS, [
        {"id": c.id, "doc_id": c.doc_id, "ordinal": c.ordinal, "heading_path": c.heading_path,
         "start": c.start, "end": c.end, "text": c.text}
        for c in chunks
    ])
    _write_file(tmp / VECTORS, lambda handle: np.save(handle, matrix), mode="wb")
    dense = make_vector_index(matrix, approximate_threshold)
    faiss.write_index(dense, str(tmp / DENSE))
    lexical = LexicalIndex.build([embedding_text(titles[c.doc_id], c) for c in chunks])
    lexical.save(tmp / LEXICAL)
    for file in [tmp / DENSE, *(tmp / LEXICAL).iterdir()]:
        _write_file(file, lambda handle: None, mode="ab")  # fsync what libraries wrote
    _fsync_dir(tmp / LEXICAL)
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": report.version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"id": embedder.model_id, "dimension": embedder.dimension},
        "chunker": asdict(chunker),
        "dense_index": type(dense).__name__,
        "documents": {
            d.id: {"sha256": d.sha256, "title": d.title, "chunk_ids": chunk_ids[d.id]}
            for d in documents
        },
        "totals": {"documents": len(documents), "chunks": len(chunks)},
        "skipped": [asdict(s) for s in report.skipped],
        "build": {key: value for key, value in report.to_dict().items()
                  if key in ("added", "changed", "removed", "full_rebuild_reason")},
    }
    _write_file(tmp / MANIFEST, lambda handle: json.dump(manifest, handle, indent=1,
                                                          ensure_ascii=False))
    _fsync_dir(tmp)
    final = index_dir / report.version
    os.rename(tmp, final)
    pointer = index_dir / f"{TMP_PREFIX}{CURRENT_FILE}"
    _write_file(pointer, lambda handle: handle.write(report.version + "\n"))
    os.replace(pointer, index_dir / CURRENT_FILE)
    _fsync_dir(index_dir)
    remove_leftovers(index_dir)
