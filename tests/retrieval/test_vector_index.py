"""FAISS indexes against a brute-force numpy oracle, and byte serialisation."""

import numpy as np
import pytest

from lepton_components.retrieval.vector_index import (
    best_per_owner,
    build_index,
    index_from_bytes,
    index_to_bytes,
    search,
)


def unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_flat_index_matches_brute_force() -> None:
    base, queries = unit_vectors(2000, 32, 0), unit_vectors(50, 32, 1)
    scores, ids = search(build_index(base, "flat"), queries, 5)
    oracle = np.argsort(-(queries @ base.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, oracle)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ base.T, oracle, axis=1), rtol=1e-5)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_find_near_duplicates(index_type: str) -> None:
    base = unit_vectors(3000, 32, 0)
    noisy = base[:200] + 0.05 * unit_vectors(200, 32, 2)
    _, ids = search(build_index(base, index_type, ivf_nprobe=8), noisy, 1)
    assert np.mean(ids[:, 0] == np.arange(200)) >= 0.99


def test_bytes_round_trip_gives_identical_results() -> None:
    base, queries = unit_vectors(500, 16, 3), unit_vectors(10, 16, 4)
    for index_type in ("flat", "hnsw", "ivf"):
        index = build_index(base, index_type)
        restored = index_from_bytes(index_to_bytes(index))
        for original, loaded in zip(search(index, queries, 3), search(restored, queries, 3)):
            np.testing.assert_array_equal(original, loaded)


def test_best_per_owner_collapses_variants_and_sorts() -> None:
    owners = [0, 0, 1, 2, 2]
    ranked = best_per_owner([0.9, 0.8, 0.85, 0.5, 0.7], [0, 1, 2, 3, 4], owners, limit=2)
    assert ranked == [(0, 0.9, 0), (1, 0.85, 2)]
    assert best_per_owner([0.3, 0.2], [-1, 4], owners, limit=3) == [(2, 0.2, 4)]
