"""The fallback ladder: answer, suggest close candidates, ask to rephrase, then hand off."""

import pytest

from lepton_components.retrieval.answer_decision import ANSWER, HANDOFF, REPHRASE, SUGGEST, Thresholds, decide

THRESHOLDS = Thresholds(answer=0.6, suggest=0.45, ambiguity_margin=0.05, max_suggestions=3)


def candidates(*scores: float):
    return [{"id": f"a{i}", "score": score, "question": f"q{i}"} for i, score in enumerate(scores)]


def test_clear_winner_is_answered() -> None:
    decision = decide(candidates(0.8, 0.5, 0.4), THRESHOLDS, deflected_last_turn=False)
    assert decision.kind == ANSWER and decision.candidates[0]["id"] == "a0"


def test_close_candidates_are_offered_as_choices() -> None:
    decision = decide(candidates(0.7, 0.68, 0.5, 0.46), THRESHOLDS, False)
    assert decision.kind == SUGGEST
    assert [c["id"] for c in decision.candidates] == ["a0", "a1", "a2"]


def test_two_mid_scores_are_offered() -> None:
    decision = decide(candidates(0.55, 0.5, 0.3), THRESHOLDS, False)
    assert decision.kind == SUGGEST and len(decision.candidates) == 2


def test_runner_up_below_suggest_threshold_does_not_block_the_answer() -> None:
    # Within the margin, but the runner-up is too weak to be offered as a choice.
    thresholds = Thresholds(answer=0.5, suggest=0.48, ambiguity_margin=0.05)
    assert decide(candidates(0.5, 0.47), thresholds, False).kind == ANSWER


@pytest.mark.parametrize("scores", [(0.3, 0.2), (0.5,), ()])
def test_nothing_good_enough_asks_to_rephrase_then_hands_off(scores) -> None:
    assert decide(candidates(*scores), THRESHOLDS, deflected_last_turn=False).kind == REPHRASE
    assert decide(candidates(*scores), THRESHOLDS, deflected_last_turn=True).kind == HANDOFF


def test_inconsistent_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="suggest_threshold <= answer_threshold"):
        Thresholds(answer=0.4, suggest=0.5)
    with pytest.raises(ValueError, match="max_suggestions must be 2 or 3"):
        Thresholds(max_suggestions=5)
