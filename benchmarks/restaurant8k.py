"""Restaurants-8K span extraction: the shipped JointNluComponent next to Rasa DIET, exact-span F1.

    python -m benchmarks.restaurant8k --out docs/restaurant8k.json                # 512 turns
    python -m benchmarks.restaurant8k --train full --out docs/restaurant8k_full.json

Data: ``../shared/benchmarks/restaurant8k/`` (PolyAI, CC BY 4.0; never copied into the
repository). The validation split is a seeded 1,000 turns of ``train_0.json`` (all 8,198)
that are not in ``train_4.json`` (the 512-turn subset); ``512`` trains on ``train_4.json``,
``full`` on every other turn of ``train_0.json`` (the 512 included; a turn whose
text is also a validation turn is left out). An entity counts when its slot, start and end all
match the gold span (micro-averaged over the five slots).

Both systems train through Rasa (``train_nlu``) on the same Rasa YAML and are scored through
a Rasa ``Agent`` on the same texts. The turns carry no intent, and both need one, so each
turn's intent is the slot the bot had just asked for (``requested_<slot>``, or
``no_request``): the same labels for both. Lepton is config.yml's JointNluComponent entry
as shipped (benchmarks/pipelines.py); DIET is the `rasa init` pipeline's DIET with
its default 100 epochs.
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np
import yaml

from benchmarks.pipelines import diet, rasa_init_featurizers, shipped_nlu_pipeline
from benchmarks.reporting import publish

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "restaurant8k"
SEED = 13
VALIDATION_TURNS = 1000
DIET_EPOCHS = 100

Span = Tuple[str, int, int]  # slot, start, end


def load_turns(path: Path) -> List[Dict[str, Any]]:
    """Each turn as text, intent (the requested slot) and gold spans."""
    turns = []
    for record in json.loads(path.read_text(encoding="utf-8")):
        text = record["userInput"]["text"]
        requested = (record.get("context") or {}).get("requestedSlots") or []
        spans = sorted(
            (label["slot"], label["valueSpan"].get("startIndex", 0), label["valueSpan"]["endIndex"])
            for label in record.get("labels") or []
        )
        turns.append({"text": text, "intent": f"requested_{requested[0]}" if requested else "no_request", "spans": spans})
    return turns


def key(turn: Dict[str, Any]) -> Tuple[str, Tuple[Span, ...]]:
    return turn["text"], tuple(turn["spans"])


def splits(data: Path, setting: str) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """``(train, validation)``: validation never overlaps the 512-turn subset or the training turns."""
    small = load_turns(data / "train_4.json")
    small_keys = {key(turn) for turn in small}
    everything = load_turns(data / "train_0.json")
    rest = [turn for turn in everything if key(turn) not in small_keys]
    order = np.random.default_rng(SEED).permutation(len(rest))
    validation = [rest[index] for index in order[:VALIDATION_TURNS]]
    validation_texts = {turn["text"] for turn in validation}
    if setting == "512":
        return small, validation
    return [turn for turn in everything if turn["text"] not in validation_texts], validation


def without_overlaps(spans: Sequence[Span]) -> List[Span]:
    """The spans left to right, each dropped that overlaps one kept before it. A few turns
    label one number twice ("8" as people inside "8:45" as time), which Rasa's training
    data refuses; validation keeps every gold span, so such a turn costs a miss there."""
    kept: List[Span] = []
    for span in sorted(spans, key=lambda span: (span[1], -span[2])):
        if not kept or span[1] >= kept[-1][2]:
            kept.append(span)
    return kept


def write_nlu_yaml(turns: Sequence[Dict[str, Any]], path: Path) -> None:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    messages = [
        Message(
            data={
                "text": turn["text"],
                "intent": turn["intent"],
                "entities": [
                    {"entity": slot, "start": start, "end": end, "value": turn["text"][start:end]}
                    for slot, start, end in without_overlaps(turn["spans"])
                ],
            }
        )
        for turn in turns
    ]
    RasaYAMLWriter().dump(path, TrainingData(messages))


def diet_pipeline() -> List[Dict[str, Any]]:
    """The `rasa init` NLU featurizers and DIET (intents and entities), default epochs."""
    return [*rasa_init_featurizers(), diet(DIET_EPOCHS)]


SYSTEMS = {
    "lepton": ("Lepton JointNluComponent (config.yml as shipped)", shipped_nlu_pipeline),
    "diet": (f"Rasa DIET (rasa init pipeline, {DIET_EPOCHS} epochs)", diet_pipeline),
}


def span_f1(gold: Sequence[Set[Span]], predicted: Sequence[Set[Span]]) -> Dict[str, float]:
    """Micro precision, recall and F1 of exact spans (slot, start, end)."""
    true_positive = sum(len(g & p) for g, p in zip(gold, predicted))
    predicted_count = sum(len(p) for p in predicted)
    gold_count = sum(len(g) for g in gold)
    precision = true_positive / predicted_count if predicted_count else 0.0
    recall = true_positive / gold_count if gold_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def run_system(system: str, train: Sequence[Dict[str, Any]], validation: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    label, pipeline = SYSTEMS[system]
    with tempfile.TemporaryDirectory(prefix=f"restaurant8k-{system}-") as workdir:
        folder = Path(workdir)
        write_nlu_yaml(train, folder / "nlu.yml")
        config = {"recipe": "default.v1", "language": "en", "pipeline": pipeline()}
        (folder / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        started = time.perf_counter()
        model = train_nlu(str(folder / "config.yml"), str(folder / "nlu.yml"), str(folder / "models"))
        train_seconds = time.perf_counter() - started
        agent = Agent.load(model)

        async def parse_all() -> List[Set[Span]]:
            found = []
            for turn in validation:
                parsed = await agent.parse_message(turn["text"])
                found.append({(entity["entity"], entity["start"], entity["end"]) for entity in parsed["entities"]})
            return found

        predicted = asyncio.run(parse_all())
    gold = [set(turn["spans"]) for turn in validation]
    per_slot = {
        slot: span_f1(
            [{span for span in spans if span[0] == slot} for spans in gold],
            [{span for span in spans if span[0] == slot} for spans in predicted],
        )["f1"]
        for slot in sorted({span[0] for spans in gold for span in spans})
    }
    return {
        "system": label,
        "key": system,
        "train_turns": len(train),
        "train_seconds": round(train_seconds, 1),
        **span_f1(gold, predicted),
        "f1_per_slot": per_slot,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", choices=["512", "full"], default="512")
    parser.add_argument("--systems", default="lepton,diet", help="comma-separated: lepton, diet")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (args.data / "train_0.json").is_file():
        parser.error(f"Restaurants-8K not found in {args.data}; pass --data path/to/restaurant8k")
    os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")  # every system trains from scratch
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # else Rasa logs every parse at debug level

    train, validation = splits(args.data, args.train)
    report: Dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.restaurant8k", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "seed": SEED,
        "validation_turns": len(validation),
        "validation_spans": sum(len(turn["spans"]) for turn in validation),
        "results": [],
    }
    for system in args.systems.split(","):
        print(f"training {SYSTEMS[system][0]} on {len(train)} turns ...", flush=True)
        row = run_system(system, train, validation)
        print(json.dumps(row), flush=True)
        report["results"].append(row)
    publish(report, args.out)


if __name__ == "__main__":
    main()
