"""The demo bot's data is valid Rasa data and as rich as the project promises."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

from rasa.shared.nlu.training_data.loading import load_data

REPO = Path(__file__).resolve().parents[1]


def test_rasa_data_validate_passes() -> None:
    rasa = Path(sys.executable).parent / "rasa"
    result = subprocess.run(
        [str(rasa), "data", "validate", "--domain", "bot/domain.yml", "--data", "data", "--config", "config.yml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_demo_nlu_has_many_varied_intents_and_entities() -> None:
    data = load_data(str(REPO / "data" / "nlu.yml"))
    counts = Counter(example.get("intent") for example in data.intent_examples)
    assert len(counts) >= 20 and min(counts.values()) >= 20, counts
    entities = Counter(entity["entity"] for example in data.intent_examples for entity in example.get("entities", []))
    assert {"order_number", "email", "product", "date"} <= set(entities)
    for example in data.intent_examples:
        for entity in example.get("entities", []):
            assert example.get("text")[entity["start"] : entity["end"]] == entity["value"]
