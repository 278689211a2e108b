"""The pipelines the benchmarks compare: what `config.yml` ships, and Rasa's stock one.

A benchmark of "the defaults" must train what a user gets, not a copy that drifts: this
reads the JointNluComponent entry from `config.yml` itself and only drops what belongs to
the demo's data (its knowledge base). The stock side is the NLU pipeline `rasa init` writes.
"""

from pathlib import Path
from typing import Any, Dict, List

import yaml

REPO = Path(__file__).resolve().parents[1]
JOINT = "lepton_components.joint.joint_nlu_component.JointNluComponent"
# Keys of the entry that point at the demo bot's own files.
DEMO_DATA_KEYS = ("knowledge_base",)


def shipped_joint_entry(with_demo_data: bool = False) -> Dict[str, Any]:
    """config.yml's JointNluComponent entry without progress bars, and without the demo's
    knowledge base unless ``with_demo_data`` (then its path is made absolute)."""
    config = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    entries = [entry for entry in config["pipeline"] if entry["name"] == JOINT]
    if len(entries) != 1:
        raise SystemExit(f"config.yml should have one {JOINT} entry, found {len(entries)}.")
    if with_demo_data:
        entry = {key: str(REPO / value) if key in DEMO_DATA_KEYS else value for key, value in entries[0].items()}
    else:
        entry = {key: value for key, value in entries[0].items() if key not in DEMO_DATA_KEYS}
    return {**entry, "show_progress_bar": False}


def shipped_nlu_pipeline() -> List[Dict[str, Any]]:
    """Tokenizer and the shipped JointNluComponent: intents and entities as config.yml serves them."""
    return [{"name": "WhitespaceTokenizer"}, shipped_joint_entry()]


def rasa_init_featurizers() -> List[Dict[str, Any]]:
    """Tokenizer and featurizers of the NLU pipeline `rasa init` writes."""
    return [
        {"name": "WhitespaceTokenizer"},
        {"name": "RegexFeaturizer"},
        {"name": "LexicalSyntacticFeaturizer"},
        {"name": "CountVectorsFeaturizer"},
        {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
    ]


def diet(epochs: int) -> Dict[str, Any]:
    """`rasa init`'s DIETClassifier (intents and entities) with its epochs capped."""
    return {"name": "DIETClassifier", "epochs": epochs, "constrain_similarities": True}
