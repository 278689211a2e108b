"""Retrieval quality on held-out paraphrases: recall@k, MRR and a threshold sweep. Rasa-free."""

import dataclasses
from typing import Dict, List, Optional, Sequence, Text


@dataclasses.dataclass(frozen=True)
class RankedResult:
    """Ranked answer ids (best first) with scores for one paraphrase, and its gold answer."""

    expected: Optional[Text]  # None: the knowledge base has no answer for it
    ranked_ids: List[Text]
    scores: List[float]


def recall_at(results: Sequence[RankedResult], k: int) -> float:
    """Share of answerable paraphrases whose answer is among the top ``k``."""
    answerable = [r for r in results if r.expected is not None]
    if not answerable:
        return 0.0
    return sum(r.expected in r.ranked_ids[:k] for r in answerable) / len(answerable)


def mean_reciprocal_rank(results: Sequence[RankedResult]) -> float:
    answerable = [r for r in results if r.expected is not None]
    if not answerable:
        return 0.0
    total = 0.0
    for result in answerable:
        if result.expected in result.ranked_ids:
            total += 1.0 / (result.ranked_ids.index(result.expected) + 1)
    return total / len(answerable)


def threshold_sweep(results: Sequence[RankedResult], thresholds: Sequence[float]) -> List[Dict[Text, float]]:
    """For each threshold: shares answered correctly, answered wrongly and deferred.

    A paraphrase is answered when its best score reaches the threshold; the answer is
    wrong when the best id is not the expected one, including any answer at all to a
    question the knowledge base does not cover.
    """
    rows = []
    for threshold in thresholds:
        correct = wrong = deferred = 0
        for result in results:
            if not result.scores or result.scores[0] < threshold:
                deferred += 1
            elif result.expected is not None and result.ranked_ids[0] == result.expected:
                correct += 1
            else:
                wrong += 1
        total = max(1, len(results))
        rows.append(
            {"threshold": round(float(threshold), 4), "correct": correct / total, "wrong": wrong / total, "deferred": deferred / total}
        )
    return rows
