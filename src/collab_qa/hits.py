"""The passages a question retrieves, as they travel from search through rerank to the
answer: each keeps its own retrieval scores, whatever later stages do to its rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collab_qa.chunking import Chunk
from collab_qa.query import Query
from collab_qa.sparse import SparseVector
from collab_qa.store import IndexStore, WithSparseTerms


@dataclass(frozen=True)
class Hit:
    """One passage found for a question.

    Attributes:
        chunk: The passage with its document id, headings and offsets.
        title: The document's title.
        score: The ranking score: the retrieval score plus any boost rerank gave it.
        dense_score: Cosine similarity of question and passage.
        lexical_score: BM25 score of the passage (0 when no question word occurs).
        retrieval_score: The mode's own score (fused for hybrid), before any boost.
    """

    chunk: Chunk
    title: str
    score: float
    dense_score: float
    lexical_score: float
    retrieval_score: float = 0.0

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def citation(self) -> str:
        """"Document title › heading › subheading"."""
        return " › ".join((self.title, *self.chunk.heading_path))


def _scaled(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if high - low < 1e-9:
        return 0.0 if high <= 0 else 1.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


@dataclass(frozen=True)
class Retrieval:
    """Every candidate passage for a query, each with its own retrieval scores.

    Attributes:
        query: The resolved query.
        mode: ``hybrid``, ``dense`` or ``lexical``.
        candidates: The candidates in index order, ``score`` being the mode's score.
        vector: The query's vector (encoded in every mode: the confidence reads it).
        best_dense: The passage of the whole index nearest the query, and its cosine.
        dense_bounds: Lowest and highest dense score among the candidates.
        lexical_bounds: Lowest and highest BM25 score among the candidates.
        dense_weight: Weight of the dense score in hybrid fusion.
        sparse_query: The query's sparse vector, when hybrid fusion used sparse scores.
        sparse_bounds: Lowest and highest sparse score among the candidates.
        sparse_weight: Weight of the sparse score in hybrid fusion (0: not used).
    """

    query: Query
    mode: str
    candidates: list[Hit]
    vector: np.ndarray
    best_dense: tuple[Chunk | None, float]
    dense_bounds: tuple[float, float] = (0.0, 0.0)
    lexical_bounds: tuple[float, float] = (0.0, 0.0)
    dense_weight: float = 0.5
    sparse_query: SparseVector | None = None
    sparse_bounds: tuple[float, float] = (0.0, 0.0)
    sparse_weight: float = 0.0

    def hits_for(self, store: IndexStore, chunks: Sequence[Chunk]) -> list[Hit]:
        """Passages that were not retrieved (the next one of a document, ones a conflict
        quotes) with their own scores, fused on the scale of the candidates."""
        known = [(chunk, store.position_of(chunk.id)) for chunk in chunks]
        known = [(chunk, position) for chunk, position in known if position is not None]
        where = np.array([position for _, position in known], dtype=np.int64)
        dense = store.dense_scores(self.vector, where) if known else np.zeros(0)
        lexical = store.lexical_scores(self.query.text, where) if known else np.zeros(0)
        terms = store.sparse if isinstance(store, WithSparseTerms) else None
        sparse = (terms.scores(self.sparse_query, where)
                  if known and terms is not None and self.sparse_query is not None
                  and self.sparse_weight > 0 else np.zeros(len(known)))
        lexical_weight = 1 - self.dense_weight - self.sparse_weight
        hits = []
        for (chunk, _), d, x, s in zip(known, dense.tolist(), lexical.tolist(), sparse.tolist(),
                                       strict=True):
            if self.mode == "dense":
                score = d
            elif self.mode == "lexical":
                score = x
            else:
                score = (self.dense_weight * _scaled(d, self.dense_bounds)
                         + lexical_weight * _scaled(x, self.lexical_bounds)
                         + self.sparse_weight * _scaled(s, self.sparse_bounds))
            hits.append(Hit(chunk, store.title_of(chunk.doc_id), score, d, x, score))
        return hits
