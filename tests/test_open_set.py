"""Open-set scores tell messages near the training data from ones unlike any of it, the
threshold is chosen as documented, and a saved scorer scores exactly as before."""

from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

from lepton_components import open_set

DIMENSIONS = 32
CLASSES = 6


def clusters(seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training vectors around one direction per intent, fresh in-scope questions around
    the same directions, and outliers in directions no intent has; logits from a linear
    head that points at each intent's direction."""
    rng = np.random.default_rng(seed)
    centres = open_set.unit_length(rng.normal(size=(CLASSES, DIMENSIONS)))
    labels = np.repeat(np.arange(CLASSES), 40)
    train = centres[labels] + 0.15 * rng.normal(size=(len(labels), DIMENSIONS))
    query_labels = np.repeat(np.arange(CLASSES), 10)
    queries = centres[query_labels] + 0.15 * rng.normal(size=(len(query_labels), DIMENSIONS))
    # Outliers: random directions made orthogonal to every intent's direction.
    outliers = rng.normal(size=(30, DIMENSIONS))
    outliers -= (outliers @ centres.T) @ np.linalg.pinv(centres.T)
    return train, labels, queries, query_labels, outliers


def test_every_candidate_score_ranks_in_scope_questions_above_clear_outliers() -> None:
    from benchmarks.clinc150 import energy, mahalanobis, max_softmax, top_cosines

    train, labels, queries, _, outliers = clusters()
    both = np.concatenate([queries, outliers])
    in_scope = np.arange(len(both)) < len(queries)
    centres = np.stack([train[labels == label].mean(axis=0) for label in range(CLASSES)])
    logits = 8 * open_set.unit_length(both) @ open_set.unit_length(centres).T
    columns = np.arange(CLASSES)
    nearest = top_cosines(train, both, 10)
    scores = {
        "prototype": open_set.PrototypeScore.fit(train, labels).score(both),
        "prototype with examples (shipped)": open_set.PrototypeScore.fit(train, labels, keep_examples=True).score(both),
        **{f"knn k={k}": nearest[:, k - 1] for k in (1, 3, 10)},
        "max softmax": max_softmax(logits, columns),
        "max softmax T=2": max_softmax(logits, columns, 2.0),
        "energy": energy(logits, columns),
        "mahalanobis": mahalanobis(train, labels, both),
    }
    for name, score in scores.items():
        assert open_set.auroc(score, in_scope) > 0.99, name
    # And the outliers really are outliers: below every in-scope question.
    for name in ("prototype", "prototype with examples (shipped)"):
        assert scores[name][~in_scope].max() < scores[name][in_scope].min(), name


def test_prototype_score_is_the_cosine_to_the_nearest_intent_centroid() -> None:
    # Intent "a" points along x, "b" along y; lengths do not matter, directions do.
    vectors = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    scorer = open_set.PrototypeScore.fit(vectors, np.array(["a", "a", "b", "b"]))
    np.testing.assert_allclose(scorer.centroids, [[1, 0], [0, 1]])
    scores = scorer.score(np.array([[5.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(scores, [1.0, np.sqrt(0.5), 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="one label per training vector"):
        open_set.PrototypeScore.fit(vectors, np.array(["a", "b"]))


def test_with_examples_an_intent_scores_the_mean_of_its_centroid_and_its_nearest_example() -> None:
    # Intent "a" has phrasings along x and along y; its centroid sits between them.
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    labels = np.array(["a", "b", "a"])  # grouped by intent whatever the training order
    near_one_phrasing = np.array([[0.95, 0.05, 0.0]])
    centroids_only = open_set.PrototypeScore.fit(vectors, labels).score(near_one_phrasing)
    scorer = open_set.PrototypeScore.fit(vectors, labels, keep_examples=True)
    with_examples = scorer.score(near_one_phrasing)
    unit = open_set.unit_length(near_one_phrasing)[0]
    centroid_a = open_set.unit_length(np.array([[1.0, 1.0, 0.0]]))[0]
    np.testing.assert_allclose(with_examples, [(unit @ centroid_a + unit @ vectors[0]) / 2], atol=1e-6)
    # A phrasing beside one example of the spread intent scores above its centroid alone...
    assert centroids_only[0] < 0.75 < with_examples[0]
    # ... and one beside a single example of an intent whose centroid points elsewhere stays
    # below that example's cosine: one stray example does not vouch for a message alone.
    stray = np.array([[0.0, 0.1, 1.0], [0.0, -0.3, 1.0]])
    spread = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.9, 0.0, 0.1]])
    lone_example = open_set.PrototypeScore.fit(spread, np.array(["a"] * 4), keep_examples=True)
    assert (lone_example.score(stray) < (open_set.unit_length(stray) @ spread[0]) - 0.2).all()
    # Far from every example and centroid, it stays low either way.
    assert scorer.score(np.array([[-1.0, -1.0, -1.0]]))[0] < 0


def test_k_nearest_cosines_of_the_benchmark_are_the_kth_most_similar_examples() -> None:
    from benchmarks.clinc150 import top_cosines

    bank = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(top_cosines(bank, np.array([[2.0, 0.0]]), 3), [[1.0, np.sqrt(0.5), 0.0]], atol=1e-6)


def test_confidence_is_the_share_of_held_out_in_scope_questions_scoring_no_higher() -> None:
    train, labels, queries, _, outliers = clusters()
    scorer = open_set.PrototypeScore.fit(train, labels)
    with pytest.raises(ValueError, match="no reference scores"):
        scorer.confidence(queries)
    held_out, fresh = queries[::2], queries[1::2]
    calibrated = scorer.with_reference(held_out)
    # The lowest-scoring held-out question has 2 of n + 1 (itself and the +1); one above
    # them all has 1.
    scores = scorer.score(held_out)
    lowest, highest = held_out[np.argmin(scores)], held_out[np.argmax(scores)]
    assert calibrated.confidence(lowest[None]) == pytest.approx([2 / (len(held_out) + 1)])
    assert calibrated.confidence(highest[None]) == pytest.approx([1.0])
    # Outliers, unlike every intent, get the least confidence there is; fresh in-scope
    # questions spread over the range like the held-out ones.
    assert calibrated.confidence(outliers).max() == pytest.approx(1 / (len(held_out) + 1))
    assert 0.3 < np.median(calibrated.confidence(fresh)) < 0.7


def test_saved_scorer_scores_exactly_as_before_with_its_reference_and_threshold(tmp_path: Path) -> None:
    train, labels, queries, _, outliers = clusters()
    plain = open_set.PrototypeScore.fit(train, labels)
    (tmp_path / "plain").mkdir()
    plain.save(tmp_path / "plain")
    restored = open_set.PrototypeScore.load(tmp_path / "plain")
    assert (restored.reference, restored.threshold) == (None, None)
    np.testing.assert_array_equal(restored.score(queries), plain.score(queries))

    tuned = plain.with_reference(queries[::2])
    tuned.threshold = 0.42
    tuned.save(tmp_path)
    assert (tmp_path / open_set.SCORER_FILE).is_file()
    loaded = open_set.PrototypeScore.load(tmp_path)
    assert loaded.threshold == 0.42
    both = np.concatenate([queries, outliers])
    np.testing.assert_array_equal(loaded.confidence(both), tuned.confidence(both))
    np.testing.assert_array_equal(loaded.centroids, tuned.centroids)
    # Plain arrays only: the file holds nothing that could run code when read.
    from safetensors.numpy import load_file

    assert set(load_file(str(tmp_path / open_set.SCORER_FILE))) == {
        "centroids", "examples", "class_starts", "reference", "threshold"
    }


def test_a_saved_scorer_with_examples_scores_exactly_as_before(tmp_path: Path) -> None:
    train, labels, queries, _, outliers = clusters()
    scorer = open_set.PrototypeScore.fit(train, labels, keep_examples=True)
    scorer.save(tmp_path)
    loaded = open_set.PrototypeScore.load(tmp_path)
    both = np.concatenate([queries, outliers])
    np.testing.assert_array_equal(loaded.score(both), scorer.score(both))
    assert loaded.examples is not None and loaded.examples.shape == train.shape


def test_examples_saved_without_their_intents_are_refused_with_the_reason(tmp_path: Path) -> None:
    """An earlier release kept the examples without their intents and scored differently:
    its threshold would not fit this score, so loading says so instead of guessing."""
    from safetensors.numpy import save_file

    train, labels, *_ = clusters()
    arrays = open_set.PrototypeScore.fit(train, labels, keep_examples=True).to_arrays()
    del arrays["class_starts"]
    save_file(arrays, str(tmp_path / open_set.SCORER_FILE))
    with pytest.raises(ValueError, match="training examples without their intents"):
        open_set.PrototypeScore.load(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda arrays: arrays.update(class_starts=arrays["class_starts"][:-1]),
        lambda arrays: arrays.update(class_starts=arrays["class_starts"] + len(arrays["examples"])),
        lambda arrays: arrays.update(class_starts=arrays["class_starts"][::-1].copy()),
        lambda arrays: arrays.update(examples=arrays["examples"][:, :-1].copy()),
    ],
    ids=["a class missing", "past the last example", "out of order", "other dimensions"],
)
def test_examples_that_cannot_be_grouped_by_intent_fail_at_load_not_per_message(tmp_path: Path, damage) -> None:
    from safetensors.numpy import save_file

    train, labels, *_ = clusters()
    arrays = open_set.PrototypeScore.fit(train, labels, keep_examples=True).to_arrays()
    damage(arrays)
    save_file(arrays, str(tmp_path / open_set.SCORER_FILE))
    with pytest.raises(ValueError):
        open_set.PrototypeScore.load(tmp_path)


def test_threshold_maximises_in_scope_accuracy_plus_out_of_scope_recall() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.5, 0.3, 0.2])
    in_scope = np.array([True, True, True, True, False, False, False])
    correct = np.ones(7, dtype=bool)
    # Accepting from 0.7 up: 3/4 in-scope right, 3/3 oos rejected (1.75) beats accepting
    # 0.4 too (4/4 + 2/3); the threshold lies halfway between the two scores around it.
    assert open_set.choose_threshold(scores, in_scope, correct) == pytest.approx(0.6)
    # An in-scope question whose intent lost is an error whether accepted or not, so it no
    # longer pulls the threshold down.
    correct[3] = False
    assert open_set.choose_threshold(scores, in_scope, correct) == pytest.approx(0.6)
    # Both kinds count equally whatever their numbers: ten copies of the in-scope 0.4 now
    # outweigh rejecting one oos question at 0.5.
    many = np.concatenate([scores, np.full(10, 0.4)])
    many_in_scope = np.append(in_scope, [True] * 10)
    assert open_set.choose_threshold(many, many_in_scope, np.ones(17, dtype=bool)) == pytest.approx(0.35)


def test_threshold_treats_minus_infinity_as_rejected_and_needs_both_kinds() -> None:
    # An `oos`-class prediction is passed as -inf: it is rejected at any threshold.
    scores = np.array([0.9, 0.8, -np.inf, 0.1])
    in_scope = np.array([True, True, False, False])
    threshold = open_set.choose_threshold(scores, in_scope, np.ones(4, dtype=bool))
    assert 0.1 < threshold < 0.8
    with pytest.raises(ValueError, match="both in-scope and out-of-scope"):
        open_set.choose_threshold(scores[:2], in_scope[:2], np.ones(2, dtype=bool))


def test_auroc_matches_scikit_learn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=300), 1)  # many ties
    in_scope = rng.random(300) < 0.7
    scores[in_scope] += 0.5
    assert open_set.auroc(scores, in_scope) == pytest.approx(roc_auc_score(in_scope, scores))
    assert open_set.auroc(np.array([1.0, 0.0]), np.array([True, False])) == 1.0


def test_temperature_fitted_on_nll_recovers_the_temperature_that_made_the_labels() -> None:
    from benchmarks.clinc150 import fit_temperature

    rng = np.random.default_rng(11)
    logits = rng.normal(scale=3.0, size=(4000, 10))
    probabilities = np.exp(logits / 2.5)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in probabilities])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)
