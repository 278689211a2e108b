"""The Restaurants-8K benchmark scores exact spans on a seeded split it never trains on, and
trains the pipeline config.yml ships."""

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from benchmarks import restaurant8k
from benchmarks.pipelines import JOINT, shipped_joint_entry


def record(text: str, labels: List[Dict[str, Any]], requested: List[str] = ()) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"userInput": {"text": text}, "labels": labels}
    if requested:
        entry["context"] = {"requestedSlots": list(requested)}
    return entry


@pytest.fixture
def dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(restaurant8k, "VALIDATION_TURNS", 20)
    everything = [
        record(f"table for {n} people", [{"slot": "people", "valueSpan": {"startIndex": 10, "endIndex": 11}}])
        for n in range(2, 10)
    ] + [
        record(f"at {h} pm", [{"slot": "time", "valueSpan": {"startIndex": 3, "endIndex": 3 + len(f'{h} pm')}}], ["time"])
        for h in range(1, 13)
    ] + [record(f"hello number {n}", []) for n in range(40)]
    (tmp_path / "train_0.json").write_text(json.dumps(everything), encoding="utf-8")
    (tmp_path / "train_4.json").write_text(json.dumps(everything[:6]), encoding="utf-8")
    return tmp_path


def test_validation_excludes_the_512_subset_and_the_full_training_turns(dataset: Path) -> None:
    small, validation = restaurant8k.splits(dataset, "512")
    full, same_validation = restaurant8k.splits(dataset, "full")
    assert len(small) == 6 and len(validation) == 20 and validation == same_validation
    texts = {turn["text"] for turn in validation}
    assert not texts & {turn["text"] for turn in small}
    assert not texts & {turn["text"] for turn in full}
    assert len(full) + len(validation) == 60 and all(turn in full for turn in small)
    assert restaurant8k.splits(dataset, "512") == (small, validation)  # seeded


def test_a_missing_start_index_means_zero_and_the_intent_is_the_requested_slot(dataset: Path) -> None:
    path = dataset / "one.json"
    path.write_text(json.dumps([record("6 a.m.", [{"slot": "time", "valueSpan": {"endIndex": 6}}], ["time"])]))
    (turn,) = restaurant8k.load_turns(path)
    assert turn == {"text": "6 a.m.", "intent": "requested_time", "spans": [("time", 0, 6)]}


def test_training_drops_a_span_that_overlaps_an_earlier_one() -> None:
    assert restaurant8k.without_overlaps([("people", 18, 19), ("time", 18, 22), ("date", 23, 30)]) == [
        ("time", 18, 22), ("date", 23, 30)
    ]


def test_exact_span_f1_counts_only_exact_matches() -> None:
    gold = [{("people", 10, 11)}, {("time", 3, 7)}]
    assert restaurant8k.span_f1(gold, gold)["f1"] == 1.0
    shifted = [{("people", 10, 11)}, {("time", 3, 6)}]
    assert restaurant8k.span_f1(gold, shifted) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert restaurant8k.span_f1(gold, [set(), set()])["f1"] == 0.0


def test_the_shipped_entry_is_config_yml_without_the_demo_knowledge_base() -> None:
    shipped = next(
        entry for entry in yaml.safe_load(Path("config.yml").read_text(encoding="utf-8"))["pipeline"]
        if entry["name"] == JOINT
    )
    entry = shipped_joint_entry()
    assert "knowledge_base" in shipped and "knowledge_base" not in entry
    assert {key: value for key, value in shipped.items() if key != "knowledge_base"} == {
        key: value for key, value in entry.items() if key != "show_progress_bar"
    }
