"""Open-set confidence: is a message like anything the bot was trained on?

A softmax over the known intents always picks one of them, and is confidently wrong on a
message that belongs to none (the closed-world problem). The score here needs no list of
out-of-scope topics: the cosine between a message's sentence vector and the nearest intent
centroid (optionally averaged, per intent, with the cosine to that intent's nearest training
example), from the same fine-tuned encoder that classifies the intent, so it costs a small
matrix product and no second encoder pass. On CLINC150 the centroid score ranked in-scope
above out-of-scope questions better than max softmax (with or without a fitted temperature),
energy, Mahalanobis and k-nearest-neighbour cosine (AUROC 0.985), and the per-intent average
better still (docs/benchmarks.md).

Two ways to turn it into a decision:

- ``confidence``: the share of held-out in-scope questions that scored no higher (a
  conformal p-value). Needs no out-of-scope examples at all, and a threshold means what it
  says: at 0.05, about 5% of in-scope questions fall back.
- ``choose_threshold``: when labelled out-of-scope questions exist, the threshold that
  maximises in-scope accuracy plus out-of-scope recall on them.

Rasa-free and numpy only; persisted as plain arrays (safetensors), never pickled.
"""

import dataclasses
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

SCORER_FILE = "open_set.safetensors"
# Parse-data keys: every message's score, and the softmax's ranking of a rejected message.
OPEN_SET_SCORE = "open_set_score"
OPEN_SET_REJECTED_RANKING = "open_set_rejected_ranking"


def unit_length(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclasses.dataclass
class PrototypeScore:
    """Cosine to the nearest intent centroid: high for a message among an intent's training
    examples, low for one unlike every intent, whatever its topic.

    ``centroids`` holds one unit-length mean of unit-length training vectors per intent.
    ``examples`` (optional, `fit(..., keep_examples=True)`) are the unit-length training
    vectors themselves, grouped by intent; ``class_starts`` is the row where each intent's
    examples begin. With them an intent scores the mean of its centroid's cosine and its
    nearest example's, and the message the best intent: a short phrasing close to one example
    of a broad intent ("can you track it for me" beside "track my order") is not turned away
    because the centroid averages many other phrasings, while an out-of-scope question that
    happens to sit near one stray example is still held down by that intent's centroid. On
    CLINC150 this ranks better than either alone (docs/benchmarks.md).
    ``reference`` (sorted scores of held-out in-scope questions, set by `with_reference`)
    makes `confidence` available; ``threshold`` is optional.
    """

    centroids: np.ndarray
    examples: Optional[np.ndarray] = None
    class_starts: Optional[np.ndarray] = None
    reference: Optional[np.ndarray] = None
    threshold: Optional[float] = None

    def __post_init__(self) -> None:
        """Refuses examples that `score` could not group by intent, so a mismatched file fails
        when it loads instead of on every message."""
        if (self.examples is None) != (self.class_starts is None):
            raise ValueError("Training examples need the row where each intent's examples start, and only then.")
        if self.class_starts is None:
            return
        if len(self.class_starts) != len(self.centroids):
            raise ValueError(
                f"{len(self.class_starts)} intents have examples but there are {len(self.centroids)} centroids."
            )
        starts = np.asarray(self.class_starts)
        if starts[0] != 0 or (np.diff(starts) <= 0).any() or starts[-1] >= len(self.examples):
            raise ValueError("Each intent's examples must start after the previous intent's, from row 0.")
        if self.examples.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"Examples have {self.examples.shape[1]} dimensions, the centroids {self.centroids.shape[1]}."
            )

    @classmethod
    def fit(cls, training_vectors: np.ndarray, labels: np.ndarray, keep_examples: bool = False) -> "PrototypeScore":
        """One centroid per distinct label, in sorted label order (and the training vectors
        themselves, grouped in that order, with ``keep_examples``)."""
        unit = unit_length(training_vectors)
        labels = np.asarray(labels)
        if len(labels) != len(unit) or not len(unit):
            raise ValueError(f"Need one label per training vector, got {len(labels)} labels for {len(unit)} vectors.")
        _, label_index, counts = np.unique(labels, return_inverse=True, return_counts=True)
        order = np.argsort(label_index, kind="stable")
        grouped = unit[order]
        ends = np.cumsum(counts)
        starts = (ends - counts).astype(np.int64)
        centroids = unit_length(np.stack([grouped[start:end].mean(axis=0) for start, end in zip(starts, ends)]))
        if not keep_examples:
            return cls(centroids=centroids)
        return cls(centroids=centroids, examples=grouped, class_starts=starts)

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """One score per row of ``vectors``, in [-1, 1]; higher means more in-scope."""
        unit = unit_length(np.atleast_2d(vectors))
        to_centroids = unit @ self.centroids.T
        if self.examples is None:
            return to_centroids.max(axis=1)
        nearest_in_class = np.maximum.reduceat(unit @ self.examples.T, self.class_starts, axis=1)
        return ((to_centroids + nearest_in_class) / 2).max(axis=1)

    def with_reference(self, in_scope_vectors: np.ndarray) -> "PrototypeScore":
        """A copy whose `confidence` compares with these held-out in-scope questions (never
        training examples: those sit closer to their own centroid than new messages do)."""
        return dataclasses.replace(self, reference=np.sort(self.score(in_scope_vectors)).astype(np.float32))

    def confidence(self, vectors: np.ndarray) -> np.ndarray:
        """Per message, the share of held-out in-scope questions that scored no higher
        (``(1 + count) / (n + 1)``, in (0, 1]). Rejecting below ``alpha`` turns away about
        ``alpha`` of in-scope messages, and every message unlike all intents."""
        if self.reference is None:
            raise ValueError(
                "This scorer has no reference scores: call `with_reference` with held-out in-scope questions."
            )
        lower = np.searchsorted(self.reference, self.score(vectors), side="right")
        return (1 + lower) / (len(self.reference) + 1)

    # ------------------------------------------------------------ persistence

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """Everything needed to score again, as named numpy arrays (empty / NaN: not set)."""
        reference = np.zeros(0) if self.reference is None else self.reference
        examples = np.zeros((0, self.centroids.shape[1])) if self.examples is None else self.examples
        class_starts = np.zeros(0) if self.class_starts is None else self.class_starts
        return {
            "centroids": np.ascontiguousarray(self.centroids, dtype=np.float32),
            "examples": np.ascontiguousarray(examples, dtype=np.float32),
            "class_starts": np.ascontiguousarray(class_starts, dtype=np.int64),
            "reference": np.ascontiguousarray(reference, dtype=np.float32),
            "threshold": np.array([np.nan if self.threshold is None else self.threshold], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "PrototypeScore":
        threshold = float(arrays["threshold"][0])
        examples = arrays.get("examples", ())
        if len(examples) and "class_starts" not in arrays:
            raise ValueError(
                f"{SCORER_FILE} holds training examples without their intents: it was written by an earlier "
                "Lepton, which scored messages differently, so its `open_set_threshold` would not fit"
            )
        return cls(
            centroids=np.asarray(arrays["centroids"], dtype=np.float32),
            # Absent from scorers saved before examples were kept: those score by centroids.
            examples=np.asarray(examples, dtype=np.float32) if len(examples) else None,
            class_starts=np.asarray(arrays["class_starts"], dtype=np.int64) if len(examples) else None,
            reference=np.asarray(arrays["reference"], dtype=np.float32) if len(arrays["reference"]) else None,
            threshold=None if np.isnan(threshold) else threshold,
        )

    def save(self, directory: Union[str, Path]) -> None:
        from safetensors.numpy import save_file

        save_file(self.to_arrays(), str(Path(directory) / SCORER_FILE))

    @classmethod
    def load(cls, directory: Union[str, Path]) -> "PrototypeScore":
        from safetensors.numpy import load_file

        return cls.from_arrays(load_file(str(Path(directory) / SCORER_FILE)))


# ------------------------------------------------------------------ tuning and measuring


def choose_threshold(scores: np.ndarray, in_scope: np.ndarray, correct: np.ndarray) -> float:
    """The threshold (accept when ``score >= threshold``) that maximises in-scope accuracy
    plus out-of-scope recall on held-out questions, weighing both kinds equally whatever
    their counts.

    ``in_scope`` marks in-scope questions; ``correct`` marks those whose own intent won
    (ignored for out-of-scope ones): an in-scope question counts only if it is correct and
    accepted. The result lies halfway between two observed scores, so it does not hinge
    on one question's exact score. A score of ``-inf`` is rejected at any threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    in_scope = np.asarray(in_scope, dtype=bool)
    if not in_scope.any() or in_scope.all():
        raise ValueError("choose_threshold needs both in-scope and out-of-scope questions.")
    wanted = np.sort(scores[in_scope & np.asarray(correct, dtype=bool)])
    unwanted = np.sort(scores[~in_scope])
    candidates = np.append(np.unique(scores[np.isfinite(scores)]), np.inf)  # inf: reject everything
    accuracy = (len(wanted) - np.searchsorted(wanted, candidates, side="left")) / in_scope.sum()
    recall = np.searchsorted(unwanted, candidates, side="left") / len(unwanted)
    best = int(np.argmax(accuracy + recall))
    if best == 0 or not np.isfinite(candidates[best]):
        return float(candidates[best])
    return float((candidates[best] + candidates[best - 1]) / 2)


def auroc(scores: np.ndarray, in_scope: np.ndarray) -> float:
    """Area under the ROC curve of in-scope against out-of-scope questions: the chance that
    a random in-scope question scores above a random out-of-scope one (ties count half)."""
    scores = np.asarray(scores, dtype=np.float64)
    in_scope = np.asarray(in_scope, dtype=bool)
    positives, negatives = int(in_scope.sum()), int((~in_scope).sum())
    if not positives or not negatives:
        raise ValueError("auroc needs both in-scope and out-of-scope questions.")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based ranks, ties averaged
    rank_sum = average_rank[inverse][in_scope].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))
