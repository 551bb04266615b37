"""The local index folder (FAISS + BM25, the embedded default): its layout, and loading and
checking one version of it. ``store.local_build`` writes the versions.

Layout of the index folder::

    CURRENT                 name of the live version folder (swapped atomically)
    <version>/manifest.json format, model, chunker settings, per-document sha256 and chunk ids,
                            and the text analyser that built the BM25 index
    <version>/documents.jsonl  normalised document texts (the viewer shows these)
    <version>/chunks.jsonl  one chunk per line, in vector order
    <version>/vectors.npy   float32 unit vectors, reused by incremental builds
    <version>/dense.faiss   exact inner product; IVF over 8-bit codes from
                            ``approximate_threshold`` chunks on
    <version>/bm25/         the bm25s lexical index
    <version>/sparse.npz    the passages' sparse vectors (a CSR matrix), when the model has
                            a sparse head and ``sparse_terms`` is on
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NoReturn

import faiss
import numpy as np

from collab_qa.analysis import TermStats, analyser_version, lexical_tokens, query_tokens
from collab_qa.chunking import Chunk
from collab_qa.errors import IndexLoadError
from collab_qa.sparse import SparseTerms
from collab_qa.store import DocumentRecord
from collab_qa.store.shared import ChunkTable, TableLookups, passage_stats

# 2: the lexical index folds accents ("Café" and "Cafe" are one word).
# 3: numbers are one word in either language ("fyra", "four" and "4").
# 4: chunk ids come from the document id and the passage text, not the passage's ordinal.
# 5: passages are stemmed in their own language (Swedish or English).
# 6: a version may hold the passages' sparse vectors (sparse.npz).
FORMAT_VERSION = 6
# A format-5 version reads as one without sparse vectors (its files are the same); the next
# build adds them and keeps the vectors.
READABLE_FORMATS = (5, 6)
# The database's formats: 6 adds the passages' sparse vectors (a sparsevec column). A
# format-5 version reads as one without them; the next build adds them.
DATABASE_FORMAT_VERSION = 6
DATABASE_READABLE_FORMATS = (5, 6)
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".build.lock"
TMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"
DOCUMENTS = "documents.jsonl"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
LEXICAL = "bm25"
SPARSE = "sparse.npz"
REBUILD_HINT = "rebuild it with `collab-qa index --full`"
# The manifest key naming the text analyser that tokenised the passages for BM25.
ANALYSER = "analyser"
# Memory for the BM25 scores of the last queries (``LexicalIndex.scores``).
RECENT_SCORES_BYTES = 32 * 2**20

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- lexical


class LexicalIndex:
    """BM25 over the chunks' embedding texts (title and headings included).

    bm25s cannot index nothing; an index of no chunks holds no retriever and its folder is
    empty."""

    def __init__(self, retriever: Any | None) -> None:
        self._retriever = retriever
        # A question's text is scored for its candidates, for their scores and for passages
        # added later, and each name in it twice by the name boost: the last few queries'
        # scores are kept (read-only), within a bound on their memory.
        kept = max(2, min(64, RECENT_SCORES_BYTES // (4 * max(self.size, 1))))
        self._recent_scores = lru_cache(maxsize=kept)(partial(_bm25_scores, retriever, self.size))

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        if not texts:
            return cls(None)
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
        if self._retriever is None:
            path.mkdir()
        else:
            self._retriever.save(str(path))

    @property
    def size(self) -> int:
        return 0 if self._retriever is None else int(self._retriever.scores["num_docs"])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros when no query word is indexed);
        read-only."""
        return self._recent_scores(query)


def _bm25_scores(retriever: Any | None, size: int, query: str) -> np.ndarray:
    ids = [] if retriever is None else retriever.get_tokens_ids(query_tokens(query))
    if retriever is None or not ids:
        scores = np.zeros(size, dtype=np.float32)
    else:
        scores = np.asarray(retriever.get_scores_from_ids(ids), dtype=np.float32)
    scores.setflags(write=False)
    return scores


def top_positive(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` positions with the highest positive scores, in no particular order."""
    total = len(scores)
    top = np.argpartition(-scores, k - 1)[:k] if k < total else np.arange(total)
    top = top[scores[top] > 0]
    return top.astype(np.int64), scores[top]


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


# ---------------------------------------------------------------------------- loaded version


@dataclass
class LocalStore(TableLookups):
    """A loaded, validated version of the index folder (implements ``IndexStore``).

    ``stats`` are the word statistics; ``load_index`` computes them while loading. A store
    assembled without them computes them on first use. ``sparse`` holds the passages' sparse
    vectors when the build made them.
    """

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, DocumentRecord]
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: faiss.Index
    lexical: LexicalIndex
    stats: TermStats | None = None
    sparse: SparseTerms | None = None
    _table: ChunkTable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = ChunkTable(self.chunks, self.documents, self.manifest)

    @property
    def lexical_outdated(self) -> bool:
        """Whether another text analyser than this code's built the BM25 index (an older
        collab-qa; a version that names none is older than the record)."""
        return self.manifest.get(ANALYSER) != analyser_version()

    @property
    def term_stats(self) -> TermStats:
        if self.stats is None:
            self.stats = passage_stats(self.chunks, self.documents)
        return self.stats

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.dense.search(vector[None, :], k)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def dense_scores(self, vector: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[positions] @ vector, dtype=np.float32)

    def lexical_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_positive(self.lexical.scores(query), k)

    def lexical_scores(self, query: str, positions: np.ndarray) -> np.ndarray:
        return self.lexical.scores(query)[positions]


# ---------------------------------------------------------------------------- load


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
               mmap: bool = True, term_stats: bool = True) -> LocalStore:
    """Load and check the live index.

    Args:
        index_dir: The index folder.
        expected_model_id: When given, an index built with another model is refused.
        mmap: Map the stored vectors instead of reading them into memory.
        term_stats: Load for questions: compute the word statistics now, so no request has
            to, and warn when the BM25 index is an older analyser's (a build that only reuses
            the vectors leaves both out).

    Raises:
        IndexLoadError: naming the file at fault and the fix.
    """
    for _attempt in range(3):
        path = current_version_dir(index_dir)
        if path is None:
            raise IndexLoadError(f"No index in {index_dir}; build it with `collab-qa index`.")
        try:
            store = _load_version(path, expected_model_id, mmap)
        except Exception as exc:
            if _switched_since(index_dir, path):
                continue  # a build switched CURRENT and cleaned up while we read: read again
            _raise_load_error(path, exc)
        if term_stats:
            store.stats = passage_stats(store.chunks, store.documents)
            if store.lexical_outdated:
                log.warning("The BM25 index of %s was built by an older text analyser, so word "
                            "matches may be off; run `collab-qa index` to rebuild it (the "
                            "vectors are kept).", path)
        return store
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


def _read_manifest(path: Path, expected_model_id: str | None,
                   ) -> tuple[dict[str, Any], int, int, set[str]]:
    """The manifest, the vector dimension, the chunk total and the document ids."""
    manifest_path = path / MANIFEST
    with _reading(manifest_path):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IndexLoadError(f"{manifest_path} is not valid JSON; {REBUILD_HINT}.") from exc
        if (not isinstance(manifest, dict)
                or manifest.get("format_version") not in READABLE_FORMATS):
            found = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise IndexLoadError(
                f"{manifest_path} has format {found!r}, this collab-qa reads format "
                f"{FORMAT_VERSION} (and {READABLE_FORMATS[0]}); {REBUILD_HINT}."
            )
        model_id = manifest["model"]["id"]
        if expected_model_id is not None and model_id != expected_model_id:
            raise IndexLoadError(
                f"The index in {path} was built with model {model_id}, but the configured model "
                f"is {expected_model_id}; {REBUILD_HINT}."
            )
        return (manifest, int(manifest["model"]["dimension"]), int(manifest["totals"]["chunks"]),
                set(manifest["documents"]))


def _load_version(path: Path, expected_model_id: str | None, mmap: bool) -> LocalStore:
    manifest, dimension, total, manifest_documents = _read_manifest(path, expected_model_id)

    def check(condition: bool, file: str, what: str) -> None:
        if not condition:
            raise IndexLoadError(f"{path / file} {what}; {REBUILD_HINT}.")

    with _reading(path / CHUNKS):
        chunk_rows = _read_jsonl(path / CHUNKS)
        check(len(chunk_rows) == total, CHUNKS,
              f"holds {len(chunk_rows)} chunks, manifest says {total}")
        chunks = [
            Chunk(row["doc_id"], row["ordinal"], tuple(row["heading_path"]), row["start"],
                  row["end"], row["text"], row["id"])
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
        lexical = LexicalIndex.load(path / LEXICAL, mmap=mmap) if total else LexicalIndex(None)
        check(lexical.size == total, LEXICAL, f"holds {lexical.size} chunks, expected {total}")
    sparse = None
    features = int(manifest["model"].get("sparse_dimension", 0))
    if features:
        with _reading(path / SPARSE):
            sparse = SparseTerms.load(path / SPARSE)
            check((sparse.size, sparse.dimension) == (total, features), SPARSE,
                  f"has shape ({sparse.size}, {sparse.dimension}), expected ({total}, {features})")
    return LocalStore(path=path, manifest=manifest, documents=documents, chunks=chunks,
                      vectors=vectors, dense=dense, lexical=lexical, sparse=sparse)
