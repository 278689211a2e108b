"""The BANKING77 benchmark reports on a fixed, stratified validation split it never trains on."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.banking77 import load_examples, macro_f1, split


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        for intent, count in (("card_arrival", 120), ("top_up_failed", 45), ("lost_card", 30)):
            for index in range(count):
                writer.writerow([f"{intent} question {index}", intent])
        writer.writerow(["   ", "lost_card"])  # blank rows are skipped
    return path


def test_validation_split_is_stratified_seeded_and_disjoint(dataset: Path) -> None:
    examples = load_examples(dataset)
    assert len(examples) == 195
    train, validation = split(examples, "full")
    assert Counter(intent for _, intent in validation) == {"card_arrival": 12, "top_up_failed": 4, "lost_card": 3}
    assert not set(train) & set(validation)
    assert len(train) + len(validation) == len(examples)
    assert split(examples, "full") == (train, validation)


def test_ten_shot_trains_on_ten_per_intent_and_keeps_the_same_validation(dataset: Path) -> None:
    examples = load_examples(dataset)
    few, validation = split(examples, "10shot")
    assert Counter(intent for _, intent in few) == {"card_arrival": 10, "top_up_failed": 10, "lost_card": 10}
    assert validation == split(examples, "full")[1]


def test_macro_f1_weights_every_intent_equally() -> None:
    gold = ["a"] * 8 + ["b"] * 2
    assert macro_f1(gold, gold) == 1.0
    always_a = ["a"] * 10
    assert macro_f1(gold, always_a) == pytest.approx((2 * 0.8 / 1.8 + 0.0) / 2)


def test_lepton_config_applies_to_every_mode_or_per_mode() -> None:
    from benchmarks.banking77 import lepton_overrides

    assert lepton_overrides("lora", '{"epochs": 5}') == {"epochs": 5}
    assert lepton_overrides("full", '{"epochs": 5}') == {"epochs": 5}
    per_mode = '{"lora": {"epochs": 5}, "head_only": {"epochs": 40}}'
    assert lepton_overrides("lora", per_mode) == {"epochs": 5}
    assert lepton_overrides("head_only", per_mode) == {"epochs": 40}
    assert lepton_overrides("full", per_mode) == {}
    assert lepton_overrides("lora", None) == {}


def test_tuning_script_trains_on_the_training_part_and_scores_the_validation_part(
    dataset: Path, tiny_bert_path: Path
) -> None:
    from benchmarks.banking77_tuning import tune

    config = {"model_name_or_path": str(tiny_bert_path), "training_mode": "head_only", "epochs": 30,
              "head_learning_rate": 0.05, "validation_fraction": 0, "show_progress_bar": False}
    result = tune("full", config, dataset)
    assert result["report"]["epochs_run"] == 30
    # Three intents whose questions name them: even a tiny random encoder separates them.
    assert result["accuracy"] > 0.6

