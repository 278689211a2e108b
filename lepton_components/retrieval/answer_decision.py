"""The fallback ladder for questions the intent classifier cannot place. Rasa-free.

Given the retrieval candidates for a message (best first, cosine scores), the bot either
answers with the best approved template, offers the closest few as choices when they are
too close to call, or falls back: first it asks the customer to rephrase, and if the
rephrased message is still not understood it hands over to a human.
"""

import dataclasses
from typing import Any, Dict, List, Sequence, Text

ANSWER = "answer"
SUGGEST = "suggest"
REPHRASE = "rephrase"
HANDOFF = "handoff"


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Score cut-offs, calibrated with `python -m benchmarks.faq_eval` on held-out paraphrases."""

    answer: float = 0.6
    suggest: float = 0.45
    ambiguity_margin: float = 0.05
    max_suggestions: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.suggest <= self.answer <= 1:
            raise ValueError(
                f"thresholds must satisfy 0 <= suggest_threshold <= answer_threshold <= 1, "
                f"got suggest_threshold={self.suggest}, answer_threshold={self.answer}"
            )
        if not 2 <= self.max_suggestions <= 3:
            raise ValueError(f"max_suggestions must be 2 or 3, got {self.max_suggestions}")


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: Text
    candidates: List[Dict[Text, Any]]


def decide(
    candidates: Sequence[Dict[Text, Any]], thresholds: Thresholds, deflected_last_turn: bool
) -> Decision:
    """Picks the next step from candidates sorted best first."""
    if candidates:
        best = candidates[0]
        runner_up = candidates[1]["score"] if len(candidates) > 1 else -1.0
        if best["score"] >= thresholds.answer and best["score"] - runner_up >= thresholds.ambiguity_margin:
            return Decision(ANSWER, [best])
        close = [c for c in candidates[: thresholds.max_suggestions] if c["score"] >= thresholds.suggest]
        if len(close) >= 2:
            return Decision(SUGGEST, close)
        if len(close) == 1 and best["score"] >= thresholds.answer:
            return Decision(ANSWER, [best])
    return Decision(HANDOFF if deflected_last_turn else REPHRASE, [])
