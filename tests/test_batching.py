"""Length bucketing: every example once per epoch, similar lengths together, seeded order."""

from lepton_components.batching import length_bucketed_batches, sorted_batches


def test_every_index_appears_exactly_once() -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(1000)]
    batches = length_bucketed_batches(lengths, batch_size=32, seed=3)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(1000))
    assert all(len(batch) <= 32 for batch in batches)


def test_batches_hold_similar_lengths() -> None:
    lengths = [(i * 7) % 60 + 1 for i in range(3200)]
    batches = length_bucketed_batches(lengths, batch_size=32, seed=0)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # padding to max_length would cost ~2x


def test_same_seed_same_order_other_seed_other_order() -> None:
    lengths = list(range(500))
    assert length_bucketed_batches(lengths, 16, seed=1) == length_bucketed_batches(lengths, 16, seed=1)
    assert length_bucketed_batches(lengths, 16, seed=1) != length_bucketed_batches(lengths, 16, seed=2)


def test_sorted_batches_cover_all_in_length_order() -> None:
    lengths = [5, 1, 3, 2, 4]
    assert sorted_batches(lengths, 2) == [[1, 3], [2, 4], [0]]
