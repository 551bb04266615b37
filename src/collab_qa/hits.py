"""The passages a question retrieves, as they travel from search through rerank to the
answer: each keeps its own retrieval scores, whatever later stages do to its rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collab_qa.chunking import Chunk
from collab_qa.fusion import Fusion
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


@dataclass(frozen=True)
class Retrieval:
    """Every candidate passage for a query, each with its own retrieval scores.

    Attributes:
        query: The resolved query.
        mode: ``hybrid``, ``dense`` or ``lexical``.
        candidates: The candidates in index order, ``score`` being the mode's score.
        vector: The query's vector (encoded in every mode: the confidence reads it).
        best_dense: The passage of the whole index nearest the query, and its cosine.
        fusion: The hybrid fusion's weights and the candidates' score scales.
        sparse_query: The query's sparse vector, when hybrid fusion used sparse scores.
    """

    query: Query
    mode: str
    candidates: list[Hit]
    vector: np.ndarray
    best_dense: tuple[Chunk | None, float]
    fusion: Fusion
    sparse_query: SparseVector | None = None

    def hits_for(self, store: IndexStore, chunks: Sequence[Chunk]) -> list[Hit]:
        """Passages that were not retrieved (the next one of a document, ones a conflict
        quotes) with their own scores, fused as the candidates were and on their scale."""
        known = [(chunk, store.position_of(chunk.id)) for chunk in chunks]
        known = [(chunk, position) for chunk, position in known if position is not None]
        where = np.array([position for _, position in known], dtype=np.int64)
        dense = store.dense_scores(self.vector, where) if known else np.zeros(0)
        lexical = store.lexical_scores(self.query.text, where) if known else np.zeros(0)
        terms = store.sparse if isinstance(store, WithSparseTerms) else None
        sparse = (terms.scores(self.sparse_query, where)
                  if known and terms is not None and self.sparse_query is not None
                  and self.fusion.sparse_weight > 0 else None)
        if self.mode == "dense":
            scores = dense
        elif self.mode == "lexical":
            scores = lexical
        else:
            scores = self.fusion.scores(self.query.language, [chunk for chunk, _ in known],
                                        dense, lexical, sparse)
        return [Hit(chunk, store.title_of(chunk.doc_id), float(score), float(d), float(x),
                    float(score))
                for (chunk, _), score, d, x in zip(known, scores, dense, lexical, strict=True)]
