"""Viterbi decoding keeps one entity whole where per-piece argmax would split it."""

import numpy as np
import pytest

from lepton_components.extractors.bio_alignment import IGNORE_INDEX, TagScheme, EntityLabel, tag_runs
from lepton_components.extractors.tag_decoding import (
    count_transitions,
    is_valid_transition,
    transition_log_probabilities,
    viterbi,
)

SCHEME = TagScheme([EntityLabel("date"), EntityLabel("product")])
O, B_DATE, I_DATE, B_PRODUCT, I_PRODUCT = range(5)


def transitions_from(sequences):
    return transition_log_probabilities(count_transitions(sequences, SCHEME.num_tags), SCHEME.num_tags)


TRAINING = [
    [IGNORE_INDEX, O, B_PRODUCT, I_PRODUCT, I_PRODUCT, O, IGNORE_INDEX],
    [IGNORE_INDEX, O, O, B_DATE, I_DATE, I_DATE, IGNORE_INDEX],
    [IGNORE_INDEX, B_PRODUCT, I_PRODUCT, O, B_DATE, IGNORE_INDEX],
]


def test_counts_skip_ignored_pieces_and_count_window_starts() -> None:
    counts = np.array(count_transitions(TRAINING, SCHEME.num_tags))
    start = SCHEME.num_tags
    assert counts[start, O] == 2 and counts[start, B_PRODUCT] == 1
    assert counts[B_PRODUCT, I_PRODUCT] == 2 and counts[I_PRODUCT, I_PRODUCT] == 1
    assert counts[B_DATE, B_DATE] == 0
    assert counts.sum() == sum(sum(tag != IGNORE_INDEX for tag in s) for s in TRAINING)


def test_bio_invalid_steps_are_impossible_and_unseen_valid_ones_unlikely() -> None:
    table = transitions_from(TRAINING)
    start = SCHEME.num_tags
    assert np.isneginf(table[O, I_DATE]) and np.isneginf(table[start, I_PRODUCT])
    assert np.isneginf(table[B_DATE, I_PRODUCT])
    assert np.isfinite(table[B_DATE, B_DATE])  # never seen, still allowed
    assert table[B_PRODUCT, I_PRODUCT] > table[B_PRODUCT, B_PRODUCT]
    assert is_valid_transition(-1, B_DATE) and not is_valid_transition(-1, I_DATE)


def test_an_entity_the_tagger_favours_is_kept_where_entities_are_rare() -> None:
    # Most training pieces are O. The tagger's 0.7 for B-date already weighs that in;
    # decoding must not count it again and turn the date into O.
    mostly_outside = [[O] * 8] * 20 + [[O, O, O, B_DATE, I_DATE, O]] * 3
    probabilities = np.array([[0.95, 0.01, 0.01, 0.02, 0.01], [0.95, 0.01, 0.01, 0.02, 0.01], [0.25, 0.7, 0.01, 0.02, 0.02]])
    assert viterbi(probabilities, transitions_from(mostly_outside)) == [O, O, B_DATE]
    # ... while a clear O stays O.
    probabilities[2] = [0.7, 0.25, 0.01, 0.02, 0.02]
    assert viterbi(probabilities, transitions_from(mostly_outside)) == [O, O, O]


def test_counts_of_another_tag_set_are_refused() -> None:
    with pytest.raises(ValueError, match="expected"):
        transition_log_probabilities(np.zeros((SCHEME.num_tags + 1, SCHEME.num_tags + 1)), SCHEME.num_tags)


def test_close_call_between_begin_and_inside_keeps_the_entity_whole() -> None:
    # "cast iron skillet": argmax says B B I (two products); the statistics say one product.
    probabilities = np.array(
        [
            [0.05, 0.0, 0.0, 0.9, 0.05],
            [0.05, 0.0, 0.0, 0.5, 0.45],
            [0.05, 0.0, 0.0, 0.1, 0.85],
        ]
    )
    argmax = probabilities.argmax(axis=1).tolist()
    assert len(tag_runs(argmax)) == 2
    path = viterbi(probabilities, transitions_from(TRAINING))
    assert path == [B_PRODUCT, I_PRODUCT, I_PRODUCT]
    assert tag_runs(path) == [(1, 0, 2)]


def test_inside_after_outside_becomes_a_valid_sequence() -> None:
    probabilities = np.array([[0.9, 0.02, 0.02, 0.03, 0.03], [0.3, 0.05, 0.6, 0.0, 0.05]])
    path = viterbi(probabilities, transitions_from(TRAINING))
    assert all(is_valid_transition(a, b) for a, b in zip([-1] + path, path))


def test_confident_predictions_are_left_alone() -> None:
    probabilities = np.eye(SCHEME.num_tags)[[O, B_DATE, I_DATE, O, B_PRODUCT]]
    assert viterbi(probabilities, transitions_from(TRAINING)) == [O, B_DATE, I_DATE, O, B_PRODUCT]
    assert viterbi(np.zeros((0, SCHEME.num_tags)), transitions_from(TRAINING)) == []
