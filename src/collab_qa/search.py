"""Query -> retrieved passages: dense (vectors), lexical (BM25) or hybrid (score fusion),
read through the store.

Hybrid fuses min-max normalised dense and BM25 scores, and the sparse "latent terms" score
when the index holds them (``collab_qa.sparse``), over the union of the candidate lists,
each candidate scored exactly by every retriever (FINDINGS on SciFact: normalised score
fusion beats RRF); the formula lives in ``collab_qa.fusion``. The question arrives resolved
into a ``Query``; ``rerank`` boosts and cuts what is retrieved here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from collab_qa.calibration import calibration_for
from collab_qa.embedding import Embedder, SparseEmbedder
from collab_qa.errors import QuestionError
from collab_qa.fusion import Fusion
from collab_qa.hits import Hit, Retrieval
from collab_qa.index import load_index
from collab_qa.query import Query
from collab_qa.settings import SearchMode, Settings
from collab_qa.store import IndexStore, WithSparseTerms

SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")
# Lexical search needs no vector, so it runs here while the question is encoded (the
# models' engines release the GIL); when no thread of it is free by the time the vector is
# ready, the request's own thread does it.
_LEXICAL_AHEAD = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lexical-search")
# The question's sparse vector is a second pass of the model over the question; it runs here
# while the dense vector is encoded, each pass on one core, so a new question waits for about
# one pass rather than two.
_SPARSE_AHEAD = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sparse-encode")


class Searcher:
    """Searches one loaded index with one embedder; both are loaded once by the caller."""

    def __init__(self, index: IndexStore, embedder: Embedder, *,
                 dense_weight: float | None = None, abstain_below: float | None = None,
                 max_question_chars: int = 1000, max_k: int = 50,
                 sparse_terms: bool = True) -> None:
        calibration = calibration_for(embedder.model_id)
        self.index = index
        self.embedder = embedder
        # The index's sparse vectors are fused unless ``sparse_terms`` is off.
        terms = index.sparse if sparse_terms and isinstance(index, WithSparseTerms) else None
        self.sparse = (terms if terms is not None and calibration.sparse_weight > 0
                       and isinstance(embedder, SparseEmbedder) else None)
        calibrated = (calibration.dense_weight if self.sparse is None
                      else calibration.dense_weight_with_sparse)
        self.dense_weight = calibrated if dense_weight is None else dense_weight
        # A dense weight set by hand keeps the sparse weight, which comes out of BM25's share.
        self.sparse_weight = (0.0 if self.sparse is None
                              else min(calibration.sparse_weight, 1.0 - self.dense_weight))
        self.abstain_below = (calibration.abstain_below if abstain_below is None
                              else abstain_below)
        self.cross_language_dense = calibration.cross_language_dense
        self.max_question_chars = max_question_chars
        self.max_k = max_k

    def validate(self, question: str, k: int, mode: str) -> str:
        """Return the stripped question, or raise QuestionError with a sentence."""
        if not isinstance(question, str) or not question.strip():
            raise QuestionError("The question is empty; type a question.")
        if len(question) > self.max_question_chars:
            raise QuestionError(
                f"The question is {len(question):,} characters long; the limit is "
                f"{self.max_question_chars:,}."
            )
        if "\x00" in question:
            raise QuestionError("The question contains a NUL character.")
        if mode not in SEARCH_MODES:
            raise QuestionError(f"Unknown mode '{mode}'; use one of {', '.join(SEARCH_MODES)}.")
        if not 1 <= k <= self.max_k:
            raise QuestionError(f"k must be between 1 and {self.max_k}, not {k}.")
        return question.strip()

    def retrieve(self, query: Query, k: int, mode: str) -> Retrieval:
        """The candidate passages of a query with their dense, lexical and fused scores."""
        store = self.index
        total = len(store.chunks)
        pool = min(total, max(4 * k, 40))
        wants_lexical = total > 0 and mode in ("hybrid", "lexical")
        ahead = (_LEXICAL_AHEAD.submit(store.lexical_search, query.text, pool) if wants_lexical
                 else None)
        terms = self.sparse if mode == "hybrid" else None
        embedder = self.embedder
        sparse_ahead = (_SPARSE_AHEAD.submit(embedder.encode_query_sparse, query.text)
                        if terms is not None and isinstance(embedder, SparseEmbedder) else None)
        vector = embedder.encode_query(query.text)
        # A vector from the query cache comes back before the helper has started: then the
        # lexical search is done here, without the two threads taking turns.
        inline = ahead is not None and ahead.cancel()
        # The nearest passage comes with the dense candidates; lexical search asks for it.
        best_ids, best_scores = store.dense_search(vector, max(pool, 1) if mode != "lexical"
                                                   else 1)
        best_dense = ((store.chunks[int(best_ids[0])], float(best_scores[0]))
                      if len(best_ids) else (None, 0.0))
        # A sparse vector still queued when the dense one is ready is encoded here.
        sparse_query = None
        if sparse_ahead is not None and isinstance(embedder, SparseEmbedder):
            sparse_query = (embedder.encode_query_sparse(query.text) if sparse_ahead.cancel()
                            else sparse_ahead.result())
        candidates: set[int] = set()
        if total and mode in ("hybrid", "dense"):
            candidates.update(int(i) for i in best_ids)
        if ahead is not None:
            found = store.lexical_search(query.text, pool) if inline else ahead.result()
            candidates.update(int(i) for i in found[0])
        if total and terms is not None and sparse_query is not None:
            candidates.update(int(i) for i in terms.search(sparse_query, pool)[0])
        ids = np.fromiter(sorted(candidates), dtype=np.int64)
        # The candidates' BM25 scores, too, on the helper while the dense ones are read.
        beside = (_LEXICAL_AHEAD.submit(store.lexical_scores, query.text, ids)
                  if mode != "dense" else None)
        dense = (store.dense_scores(vector, ids) if mode != "lexical"
                 else np.zeros(len(ids), dtype=np.float32))
        if beside is None:
            lexical = np.zeros(len(ids), dtype=np.float32)
        else:
            lexical = (store.lexical_scores(query.text, ids) if beside.cancel()
                       else beside.result())
        sparse = (terms.scores(sparse_query, ids)
                  if terms is not None and sparse_query is not None else None)
        fusion = self.fusion_over(dense, lexical, sparse)
        if mode == "dense":
            scores = dense
        elif mode == "lexical":
            scores = lexical
        else:
            scores = fusion.scores(query.language, [store.chunks[i] for i in ids.tolist()],
                                   dense, lexical, sparse)
        hits = [Hit(chunk, store.title_of(chunk.doc_id), float(score), float(d), float(x),
                    retrieval_score=float(score))
                for chunk, score, d, x in zip(map(store.chunks.__getitem__, ids.tolist()),
                                              scores, dense, lexical, strict=True)]
        return Retrieval(query, mode, hits, vector, best_dense, fusion,
                         sparse_query=sparse_query)

    def fusion_over(self, dense: np.ndarray, lexical: np.ndarray,
                    sparse: np.ndarray | None = None) -> Fusion:
        """This searcher's hybrid fusion, scaled by one query's candidate scores."""
        return Fusion.over(dense, lexical, sparse, dense_weight=self.dense_weight,
                           sparse_weight=self.sparse_weight,
                           cross_language=self.cross_language_dense)


def encode_question(searcher: Searcher, text: str, mode: str) -> None:
    """Encode a question ahead of its search (into the embedder's caches), as the search in
    ``mode`` will: the vector, and the sparse vector when hybrid search uses one."""
    searcher.embedder.encode_query(text)
    if mode == "hybrid" and searcher.sparse is not None and isinstance(searcher.embedder,
                                                                       SparseEmbedder):
        searcher.embedder.encode_query_sparse(text)


def open_searcher(settings: Settings, embedder: Embedder) -> Searcher:
    """Load the live index for ``embedder`` and wrap it in a Searcher configured by settings.

    Raises:
        IndexLoadError: when the index is missing, corrupt or built with another model.
    """
    index = load_index(settings.index_dir, expected_model_id=embedder.model_id)
    return Searcher(index, embedder, dense_weight=settings.dense_weight,
                    sparse_terms=settings.sparse_terms,
                    max_question_chars=settings.max_question_chars, max_k=settings.max_k)
