"""Picks the most likely valid BIO tag sequence for a message, not the best tag per piece.

A tagger trained on a few hundred annotations often splits one entity in two: it
tags "cast iron skillet" as ``B B I`` (two products) or "10 days ago" as ``B O B``, because
each word piece is classified on its own. Rasa's DIET avoids that with a CRF layer that
learns which tag may follow which. We get the same effect at decoding time, with no extra
training: tag bigram statistics counted on the training data (how often ``B-date`` is
followed by ``I-date`` rather than by another ``B-date``) are combined with the model's
per-piece probabilities in a Viterbi search, and BIO-invalid steps (``O`` followed by
``I-x``, ``B-x`` followed by ``I-y``) are ruled out. The statistics are plain counts,
persisted as JSON next to the weights.

The tagger's probabilities already know how common each tag is: most pieces are ``O``.
Multiplying them by bigram probabilities counts that a second time, so ``O`` won every
close call and whole entities went missing (Restaurants-8K recall 0.77 at precision 0.88).
Each step therefore scores ``P(next | previous) / P(next)``, the hybrid HMM's scaled
likelihood: the bigram says which tag follows which, the tagger alone says how likely the
tag is here (docs/benchmarks.md, Restaurants-8K).

Pure numpy over tag ids (see ``bio_alignment`` for the tag scheme), so it is testable
without torch or Rasa.
"""

from typing import List, Sequence

import numpy as np

from lepton_components.extractors.bio_alignment import IGNORE_INDEX, OUTSIDE, is_begin, label_index_of

# Add-one smoothing: a valid step never seen in training stays possible, only unlikely.
SMOOTHING = 1.0


def is_valid_transition(previous: int, current: int) -> bool:
    """BIO rule: ``I-x`` only continues ``B-x`` or ``I-x``; ``previous`` -1 is the start."""
    if current == OUTSIDE or is_begin(current):
        return True
    return previous > OUTSIDE and label_index_of(previous) == label_index_of(current)


def count_transitions(tag_sequences: Sequence[Sequence[int]], num_tags: int) -> List[List[int]]:
    """``counts[i][j]``: how often tag ``j`` follows tag ``i`` in the training windows.

    Row ``num_tags`` counts the first tag of each window. Ignored pieces (special tokens,
    annotations left out of training) are skipped, so the pieces around them count as
    neighbours.
    """
    counts = np.zeros((num_tags + 1, num_tags), dtype=np.int64)
    for sequence in tag_sequences:
        previous = num_tags
        for tag in sequence:
            if tag == IGNORE_INDEX:
                continue
            counts[previous, tag] += 1
            previous = tag
    return counts.tolist()


def transition_log_probabilities(counts: Sequence[Sequence[int]], num_tags: int) -> np.ndarray:
    """Smoothed log P(next | previous) / P(next), BIO-invalid steps at -inf; last row is the start.

    Dividing by the tag's frequency keeps the tagger's own sense of how common a tag is
    from being counted twice (module docstring).
    """
    smoothed = np.asarray(counts, dtype=np.float64) + SMOOTHING
    if smoothed.shape != (num_tags + 1, num_tags):
        raise ValueError(
            f"tag transition counts have shape {smoothed.shape}, expected {(num_tags + 1, num_tags)} "
            f"for {num_tags} tags"
        )
    log_tag_frequency = np.log(smoothed.sum(axis=0) / smoothed.sum())
    for previous in range(num_tags + 1):
        for current in range(num_tags):
            if not is_valid_transition(previous if previous < num_tags else -1, current):
                smoothed[previous, current] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(smoothed / smoothed.sum(axis=1, keepdims=True)) - log_tag_frequency


def viterbi(probabilities: np.ndarray, log_transitions: np.ndarray) -> List[int]:
    """The tag sequence maximising per-piece log probabilities plus transition scores.

    ``probabilities`` is ``(pieces, num_tags)`` softmax output; ``log_transitions`` comes
    from ``transition_log_probabilities`` (its last row scores the first piece).
    """
    length, num_tags = probabilities.shape
    if length == 0:
        return []
    with np.errstate(divide="ignore"):
        emissions = np.log(np.clip(probabilities, 1e-12, 1.0))
    score = log_transitions[num_tags] + emissions[0]
    backpointers = np.zeros((length, num_tags), dtype=np.int64)
    for position in range(1, length):
        candidates = score[:, None] + log_transitions[:num_tags]
        backpointers[position] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + emissions[position]
    path = [int(score.argmax())]
    for position in range(length - 1, 0, -1):
        path.append(int(backpointers[position, path[-1]]))
    return path[::-1]
