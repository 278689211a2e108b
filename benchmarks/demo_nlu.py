"""The demo's NLU on held-out examples: intent accuracy and exact-span entity F1.

    python -m benchmarks.demo_nlu                          # config.yml's JointNluComponent
    python -m benchmarks.demo_nlu --extractor              # and BertEntityExtractor, same split
    python -m benchmarks.demo_nlu --extractor --out docs/demo_nlu.json
    python -m benchmarks.demo_nlu --data path/to/your/nlu.yml      # your own data, config.yml's entry

The split: a seeded 20% of every intent's examples in ``data/nlu.yml`` is held out and never
trained on; the rest trains config.yml's JointNluComponent entry as shipped, with the demo's
knowledge base (so the answers' classes compete as they do in the bot). An entity counts only
when entity, start and end all match. ``tests/integration/test_demo_bot.py`` asserts floors on
the same split, so the figures here are the ones the suite guards.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np

from benchmarks.pipelines import REPO, shipped_joint_entry
from benchmarks.reporting import publish
from benchmarks.restaurant8k import Span, span_f1
from lepton_components.open_set import OPEN_SET_REJECTED_RANKING, OPEN_SET_SCORE

SEED = 7
HELD_OUT_SHARE = 5  # one example in five per intent
DEMO_DATA = REPO / "data" / "nlu.yml"


def held_out_split(path: Path = DEMO_DATA, seed: int = SEED) -> Tuple[List[Any], List[Any]]:
    """``(train, held_out)`` Rasa messages: the first fifth of a seeded shuffle of each intent
    (at least one) is held out."""
    from rasa.shared.nlu.training_data.loading import load_data

    by_intent: Dict[str, List[Any]] = defaultdict(list)
    for example in load_data(str(path)).intent_examples:
        by_intent[example.get("intent")].append(example)
    rng = np.random.default_rng(seed)
    train, held_out = [], []
    for intent in sorted(by_intent):
        examples = [by_intent[intent][i] for i in rng.permutation(len(by_intent[intent]))]
        cut = max(1, len(examples) // HELD_OUT_SHARE)
        held_out += examples[:cut]
        train += examples[cut:]
    return train, held_out


def parse(component: Any, held_out: Sequence[Any]) -> List[Any]:
    """The held-out texts as new messages, processed by ``component``."""
    from rasa.shared.nlu.training_data.message import Message

    messages = [Message(data={"text": example.get("text")}) for example in held_out]
    component.process(messages)
    return messages


def spans(message: Any) -> Set[Span]:
    return {(entity["entity"], entity["start"], entity["end"]) for entity in message.get("entities") or []}


def score(held_out: Sequence[Any], parsed: Sequence[Any]) -> Dict[str, Any]:
    """Intent accuracy over every held-out example, with each miss named and those the
    open-set score turned away ("none of these": the bot defers, it does not answer wrongly)
    counted apart; entity precision / recall / F1 over the ones with entities, with each
    missed and spurious span named."""
    predicted = [(p.get("intent") or {}).get("name") for p in parsed]
    accuracy = float(np.mean([name == e.get("intent") for name, e in zip(predicted, held_out)]))
    turned_away = [p.get(OPEN_SET_REJECTED_RANKING) is not None for p in parsed]
    intent_misses = [
        f"'{e.get('text')}': {e.get('intent')} -> {name}"
        + (f" (none of these, open-set score {p.get(OPEN_SET_SCORE)})" if away else "")
        for e, p, name, away in zip(held_out, parsed, predicted, turned_away)
        if name != e.get("intent")
    ]
    with_entities = [(e, p) for e, p in zip(held_out, parsed) if e.get("entities")]
    gold = [spans(e) for e, _ in with_entities]
    found = [spans(p) for _, p in with_entities]

    def named(example: Any, span_set: Set[Span]) -> List[str]:
        text = example.get("text")
        return [f"{entity} '{text[start:end]}' in '{text}'" for entity, start, end in sorted(span_set)]

    return {
        "intent_examples": len(held_out),
        "intent_accuracy": round(accuracy, 4),
        "intent_misses_none_of_these": sum(
            away and name != e.get("intent") for away, name, e in zip(turned_away, predicted, held_out)
        ),
        "intent_misses": intent_misses,
        "entities": sum(len(g) for g in gold),
        **span_f1(gold, found),
        "missed": [m for (e, _), g, f in zip(with_entities, gold, found) for m in named(e, g - f)],
        "spurious": [m for (e, _), g, f in zip(with_entities, gold, found) for m in named(e, f - g)],
    }


def train_and_score(component_class: Any, config: Dict[str, Any], data: Path = DEMO_DATA) -> Dict[str, Any]:
    """Trains through Rasa's component API on the training part, scores the held-out part."""
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.training_data import TrainingData

    train, held_out = held_out_split(data)
    with tempfile.TemporaryDirectory(prefix="demo-nlu-") as directory:
        component = component_class.create(
            {**component_class.get_default_config(), **{k: v for k, v in config.items() if k != "name"}},
            LocalModelStorage(Path(directory)),
            Resource("demo_nlu"),
            ExecutionContext(node_name="demo_nlu", graph_schema=None),
        )
        started = time.perf_counter()
        component.train(TrainingData(train))
        seconds = time.perf_counter() - started
        result = score(held_out, parse(component, held_out))
    return {"component": component_class.__name__, "train_examples": len(train), "train_seconds": round(seconds, 1), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEMO_DATA, help="Rasa NLU data to split")
    parser.add_argument("--extractor", action="store_true", help="also train BertEntityExtractor on the same split")
    parser.add_argument("--out", type=Path, default=None, help="JSON report, e.g. docs/demo_nlu.json")
    args = parser.parse_args()
    from lepton_components.extractors.bert_entity_extractor import BertEntityExtractor
    from lepton_components.joint.joint_nlu_component import JointNluComponent

    results = [train_and_score(JointNluComponent, shipped_joint_entry(with_demo_data=True), args.data)]
    if args.extractor:
        # The extractor tags only: its intent accuracy is not a figure (it sets no intent).
        extractor = train_and_score(BertEntityExtractor, {"show_progress_bar": False}, args.data)
        for key in ("intent_accuracy", "intent_misses_none_of_these", "intent_misses"):
            extractor.pop(key)
        results.append(extractor)
    report = {
        "command": "python -m benchmarks.demo_nlu" + (" --extractor" if args.extractor else ""),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "data": os.path.relpath(args.data, REPO),
        "seed": SEED,
        "results": results,
    }
    publish(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
