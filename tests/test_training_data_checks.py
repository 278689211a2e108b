"""The training-time warnings bot owners get about data that will make the bot answer wrongly."""

import pytest

from lepton_components.training_data_checks import (
    comparable,
    shared_questions,
    small_intents,
    warn_small_intents,
)


def test_intents_below_five_examples_are_named_with_their_counts() -> None:
    intents = ["greet"] * 5 + ["refund"] * 2 + ["cancel"] * 4
    with pytest.warns(UserWarning, match=r"fewer than 5 training examples: 'refund' \(2\), 'cancel' \(4\)"):
        found = warn_small_intents(intents)
    assert found == [("refund", 2), ("cancel", 4)]


def test_enough_examples_give_no_warning(recwarn) -> None:
    assert warn_small_intents(["greet"] * 5 + ["bye"] * 9) == []
    assert not [w for w in recwarn if "training examples" in str(w.message)]


def test_questions_match_whatever_their_case_spacing_and_end_punctuation() -> None:
    assert comparable("  Do you   deliver to CANADA?! ") == comparable("do you deliver to canada")
    found = shared_questions(
        [("do you deliver to canada", "shipping_info"), ("hello", "greet")],
        [("Do you deliver to Canada?", "international_shipping"), ("Do you sell gift cards?", "gift_cards")],
    )
    assert found == [("Do you deliver to Canada?", "shipping_info", "international_shipping")]

