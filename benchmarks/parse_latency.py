"""Per-message parse latency of a trained model, in total and per Lepton component.

    python -m benchmarks.parse_latency --model models --messages 200 --threads 1

Answers "one encoder pass or two?": the intent classifier and the entity extractor each
run their own MiniLM pass; the FAQ retriever runs a third (sentence embedding). Each is
timed alone on single messages (as a chat server sees them) next to the whole
`Agent.parse_message`.
"""

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import yaml

SAMPLE_LIMIT = 200


def demo_messages(limit: int) -> List[str]:
    nlu = yaml.safe_load(Path("data/nlu.yml").read_text(encoding="utf-8"))
    texts = []
    for block in nlu["nlu"]:
        if "intent" in block:
            for line in block["examples"].splitlines():
                if line.startswith("- "):
                    texts.append(line[2:].replace("[", "").replace("]", "").split("(")[0].strip())
    rng = np.random.default_rng(0)
    return [texts[i] for i in rng.permutation(len(texts))[:limit]]


def percentiles(samples: List[float]) -> Dict[str, float]:
    return {"p50_ms": round(float(np.percentile(samples, 50)), 2), "p95_ms": round(float(np.percentile(samples, 95)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models", help="model archive or folder of archives (latest is used)")
    parser.add_argument("--messages", type=int, default=SAMPLE_LIMIT)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from rasa.core.agent import Agent
    from rasa.model import get_latest_model
    from rasa.shared.nlu.training_data.message import Message

    if args.threads:
        torch.set_num_threads(args.threads)
    agent = Agent.load(get_latest_model(args.model) if Path(args.model).is_dir() else args.model)
    texts = demo_messages(args.messages)
    for text in texts[:10]:  # warm-up
        asyncio.run(agent.parse_message(text))
    totals = []
    for text in texts:
        started = time.perf_counter()
        asyncio.run(agent.parse_message(text))
        totals.append((time.perf_counter() - started) * 1000)
    report = {"machine": f"{platform.machine()}, torch threads {torch.get_num_threads()}", "parse_message": percentiles(totals)}
    nodes = agent.processor.graph_runner._instantiated_nodes
    for node in nodes.values():
        component = getattr(node, "_component", None)
        name = type(component).__name__
        if name not in {"BertIntentClassifier", "BertEntityExtractor", "FaqRetriever"}:
            continue
        samples = []
        for text in texts:
            message = Message(data={"text": text})
            started = time.perf_counter()
            component.process([message])
            samples.append((time.perf_counter() - started) * 1000)
        report[name] = percentiles(samples)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
