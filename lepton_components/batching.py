"""Length-bucketed batching: sentences of similar length share a batch.

Support messages are short (BANKING77 averages about 12 word pieces) while a few are long.
Padding every batch to ``max_length`` wastes most of the compute on CPU; sorting examples
into buckets of similar length and padding each batch only to its own longest member
keeps the work proportional to the real tokens.
"""

import random
from typing import List, Sequence, Tuple

import numpy as np


def length_bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    bucket_size_in_batches: int = 50,
) -> List[List[int]]:
    """Groups example indices into batches of similar length, in a seeded random order.

    Examples are shuffled, cut into buckets of ``bucket_size_in_batches`` batches, sorted by
    length inside each bucket and then split into batches; finally the batch order is
    shuffled. The shuffle before bucketing keeps batches varied from epoch to epoch
    (pass a different ``seed`` per epoch) while the sort inside a bucket keeps padding low.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    rng = random.Random(seed)
    indices = list(range(len(lengths)))
    rng.shuffle(indices)
    bucket_size = batch_size * bucket_size_in_batches
    batches: List[List[int]] = []
    for bucket_start in range(0, len(indices), bucket_size):
        bucket = sorted(
            indices[bucket_start : bucket_start + bucket_size], key=lambda i: lengths[i]
        )
        batches.extend(
            bucket[start : start + batch_size] for start in range(0, len(bucket), batch_size)
        )
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Batches in order of length, for inference where order does not matter for the result."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_ids(sequences: Sequence[List[int]], pad_token_id: int) -> Tuple[np.ndarray, np.ndarray]:
    """Token id lists padded to the longest in the batch (dynamic padding): int64 ids and mask."""
    longest = max(len(sequence) for sequence in sequences)
    input_ids = np.full((len(sequences), longest), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = sequence
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask
