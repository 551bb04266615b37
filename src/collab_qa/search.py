"""Question -> ranked passages: dense (FAISS), lexical (BM25) or hybrid (score fusion).

Hybrid fuses min-max normalised dense and BM25 scores over the union of both candidate
lists, each candidate scored exactly by both retrievers (FINDINGS on SciFact: normalised
score fusion beats RRF). Overlapping windows of one region are returned once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collab_qa.analysis import lexical_tokens
from collab_qa.chunking import Chunk
from collab_qa.embedding import Embedder
from collab_qa.errors import QuestionError
from collab_qa.index import load_index
from collab_qa.settings import SearchMode, Settings
from collab_qa.store import IndexStore

SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")

_FOLLOW_UP_START = re.compile(
    r"^(and|or|but|also|what about|how about|same for|och|men|än|vad gäller)\b", re.IGNORECASE
)
_TOPIC_SHIFT = re.compile(r"^(and |but )?(what|how) about\b|^vad gäller\b|^same for\b",
                          re.IGNORECASE)
# Share of the score range added to passages of the previous answer's document.
FOLLOW_UP_BOOST = 0.2
# Share of the score range added to passages that hold the new subject of "what about X?".
NEW_SUBJECT_BOOST = 0.3
# Share of the score range added to a passage holding every name the question mentions.
NAME_BOOST = 0.2
# A capitalised word inside a sentence: "Charité", "Hungary" (acronyms such as "EU" are left
# out: passages often spell them out, "European Union").
NAME = re.compile(r"(?<=[\w,;:] )[A-ZÅÄÖÜ][a-zåäöüéèáíóúñç][\w-]*")
_REFERRING_WORD = re.compile(
    r"\b(they|them|their|theirs|it|its|this|that|those|these|there|he|she|his|her|"
    r"de|dem|deras|den|det|dess|hen|hans|hennes)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Hit:
    """One passage found for a question.

    Attributes:
        chunk: The passage with its document id, headings and offsets.
        title: The document's title.
        score: The ranking score of the mode used (fused score for hybrid).
        dense_score: Cosine similarity of question and passage.
        lexical_score: BM25 score of the passage (0 when no question word occurs).
    """

    chunk: Chunk
    title: str
    score: float
    dense_score: float
    lexical_score: float

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


def is_follow_up(question: str) -> bool:
    """A short question that leans on the previous one ("and their phone number?", "which
    partners are involved?"): it starts like a continuation, refers back with a pronoun, or
    is five words or fewer without a name of its own."""
    words = question.split()
    names = [w for w in words[1:] if w[:1].isupper() and w != "I"]
    return bool(
        _FOLLOW_UP_START.match(question.strip())
        or (len(words) <= 8 and _REFERRING_WORD.search(question))
        or len(words) <= 3
        or (len(words) <= 5 and not names and not any(ch.isdigit() for ch in question))
    )


def compose_query(question: str, history: Sequence[str] = ()) -> str:
    """The text to retrieve with: a follow-up is read together with the previous question."""
    previous = [turn.strip() for turn in history if turn and turn.strip()]
    if previous and is_follow_up(question):
        return f"{previous[-1]} {question.strip()}"
    return question.strip()


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if high - low < 1e-9:
        return np.zeros_like(values) if high <= 0 else np.ones_like(values)
    return (values - low) / (high - low)


class Searcher:
    """Searches one loaded index with one embedder; both are loaded once by the caller."""

    def __init__(self, index: IndexStore, embedder: Embedder, *, dense_weight: float = 0.5,
                 max_question_chars: int = 1000, max_k: int = 50) -> None:
        self.index = index
        self.embedder = embedder
        self.dense_weight = dense_weight
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

    def search(self, question: str, k: int = 5, mode: str = "hybrid",
               history: Sequence[str] = ()) -> list[Hit]:
        """Rank passages for a question.

        Args:
            question: The user's question (at most ``max_question_chars`` characters).
            k: Number of passages to return.
            mode: ``hybrid``, ``dense`` or ``lexical``.
            history: Earlier questions of the conversation, oldest first.

        Raises:
            QuestionError: for an empty or too long question, a bad k or an unknown mode.
        """
        query = compose_query(self.validate(question, k, mode), history)
        total = len(self.index.chunks)
        if total == 0:
            return []
        pool = min(total, max(4 * k, 40))
        candidates: set[int] = set()
        query_vector: np.ndarray | None = None
        if mode in ("hybrid", "dense"):
            query_vector = self.embedder.encode_query(query)
            candidates.update(int(i) for i in self.index.dense_search(query_vector, pool)[0])
        if mode in ("hybrid", "lexical"):
            candidates.update(int(i) for i in self.index.lexical_search(query, pool)[0])
        if not candidates:
            return []
        ids = np.fromiter(sorted(candidates), dtype=np.int64)
        dense = (self.index.dense_scores(query_vector, ids)
                 if query_vector is not None else np.zeros(len(ids), dtype=np.float32))
        lexical = (self.index.lexical_scores(query, ids) if mode != "dense"
                   else np.zeros(len(ids), dtype=np.float32))
        if mode == "dense":
            scores = dense
        elif mode == "lexical":
            scores = lexical
        else:
            scores = (self.dense_weight * _min_max(dense)
                      + (1 - self.dense_weight) * _min_max(lexical)).astype(np.float32)
        # Boosts, each a share of the score range for the passages that have what it wants:
        # - the names asked about: a name is the sharpest word of a question, yet BM25 weighs
        #   one that many passages share ("Charité" in every paragraph of the news item) little;
        # - the new subject of "what about Germany?", which asks the previous question anew;
        # - the document the previous question was answered from, for a follow-up about "it"
        #   or "them" (a passage elsewhere that is clearly better still wins).
        topic = self._follow_up_document(question, history, mode)
        in_topic = None if topic is None else np.fromiter(
            (self.index.chunks[int(i)].doc_id == topic for i in ids), dtype=bool, count=len(ids))
        for weight, share in (
            (NAME_BOOST, self._name_share(self._names_asked(question, history), ids)),
            (NEW_SUBJECT_BOOST, self._new_subject_share(question, history, ids)),
            (FOLLOW_UP_BOOST, in_topic),
        ):
            if share is not None and len(scores):
                boost = weight * float(scores.max() - scores.min())
                scores = (scores + np.float32(boost) * share).astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        hits: list[Hit] = []
        for position in order:
            chunk = self.index.chunks[int(ids[position])]
            if any(h.doc_id == chunk.doc_id and h.chunk.start < chunk.end
                   and chunk.start < h.chunk.end for h in hits):
                continue
            hits.append(Hit(chunk, self.index.title_of(chunk.doc_id), float(scores[position]),
                            float(dense[position]), float(lexical[position])))
            if len(hits) == k:
                break
        return hits


    @staticmethod
    def _names_asked(question: str, history: Sequence[str]) -> str:
        """The text whose names a passage should hold: the question, read with the previous
        one when it follows up on it ("and when was it signed?"), alone when it moves on to
        another subject ("what about Germany?")."""
        if _TOPIC_SHIFT.match(question.strip()):
            return question
        return compose_query(question, history)

    def _name_share(self, text: str, ids: np.ndarray) -> np.ndarray | None:
        """For each candidate, the share of the names in ``text`` it holds (names found
        nowhere in the index left out); None when ``text`` names nothing indexed."""
        return self._share_holding(lexical_tokens([" ".join(NAME.findall(text))])[0], ids)

    def _share_holding(self, words: Sequence[str], ids: np.ndarray) -> np.ndarray | None:
        """For each candidate, the share of ``words`` it holds, counting only words that
        occur somewhere in the index; None when none does."""
        present = [self.index.lexical_scores(word, ids) > 0 for word in dict.fromkeys(words)
                   if self.index.lexical_search(word, 1)[0].size]
        return np.mean(present, axis=0).astype(np.float32) if present else None

    def _new_subject_share(self, question: str, history: Sequence[str],
                           ids: np.ndarray) -> np.ndarray | None:
        """For a follow-up that moves to a new subject ("what about Germany?"), the share of
        the subject's indexed words each candidate holds; None for any other question."""
        shift = _TOPIC_SHIFT.match(question.strip())
        if shift is None or not any(turn.strip() for turn in history):
            return None
        return self._share_holding(lexical_tokens([question.strip()[shift.end():]])[0], ids)

    def _follow_up_document(self, question: str, history: Sequence[str],
                            mode: str) -> str | None:
        """The document that answered the previous question, when ``question`` follows up on
        it ("and when was it renewed?") rather than moving on ("what about Germany?")."""
        previous = [turn.strip() for turn in history if turn and turn.strip()]
        if not (previous and is_follow_up(question)
                and not _TOPIC_SHIFT.match(question.strip())):
            return None
        try:
            hits = self.search(previous[-1], k=1, mode=mode)
        except QuestionError:
            return None
        return hits[0].doc_id if hits else None


def open_searcher(settings: Settings, embedder: Embedder) -> Searcher:
    """Load the live index for ``embedder`` and wrap it in a Searcher configured by settings.

    Raises:
        IndexLoadError: when the index is missing, corrupt or built with another model.
    """
    index = load_index(settings.index_dir, expected_model_id=embedder.model_id)
    return Searcher(index, embedder, dense_weight=settings.dense_weight,
                    max_question_chars=settings.max_question_chars, max_k=settings.max_k)
