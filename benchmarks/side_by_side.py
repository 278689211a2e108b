"""The shipped bot against the same bot on Rasa's stock NLU pipeline, side by side in one run.

    python -m benchmarks.side_by_side --out docs/side_by_side.json
    python -m benchmarks.side_by_side --lepton-model models/<archive>.tar.gz --out docs/side_by_side.json

Trains two models, each by `rasa train --force` in its own process, on the same `data/`,
`bot/domain.yml` and policies: `config.yml` as shipped, and `config.yml` with its pipeline
replaced by the one `rasa init` writes (count vectors, DIET with entities,
EntitySynonymMapper, ResponseSelector, FallbackClassifier).
Both are loaded into one process and timed alternately, message by message, on the same
held-out customer texts (`bot/faq_paraphrases.yml`, never trained on), so both see the same
machine state:

- `Agent.parse_message` (NLU alone);
- a whole turn, `Agent.handle_text` in a fresh conversation (NLU, policies, reply): what the
  REST channel runs per message, without the HTTP layer.

Also reported: training time of each, load time of each (archive to first answer) and this
process's peak RSS after loading both. Threads are the models' own settings (config.yml
ships one thread for the encoder); torch and TensorFlow are otherwise left at defaults.
"""

import argparse
import asyncio
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import yaml

from benchmarks.pipelines import diet, rasa_init_featurizers
from benchmarks.reporting import publish

REPO = Path(__file__).resolve().parents[1]
HELD_OUT = REPO / "bot" / "faq_paraphrases.yml"

STOCK_PIPELINE = [
    *rasa_init_featurizers(),
    diet(100),
    {"name": "EntitySynonymMapper"},
    {"name": "ResponseSelector", "epochs": 100, "constrain_similarities": True},
    {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.1},
]


def held_out_texts(limit: int) -> List[str]:
    """Customer texts nobody trained on: first turns of every category of the held-out file."""
    document = yaml.safe_load(HELD_OUT.read_text(encoding="utf-8"))
    texts = [case["text"] for key in ("paraphrases", "intents", "off_topic") for case in document.get(key) or []]
    texts += [turn["text"] for key in ("in_form", "memory") for case in document.get(key) or [] for turn in case["turns"]]
    return texts[:limit]


def stock_config(shipped: Dict[str, Any]) -> Dict[str, Any]:
    return {**shipped, "pipeline": STOCK_PIPELINE}


def train(config_path: Path, output: Path) -> Dict[str, Any]:
    """`rasa train --force` in its own process, as a user runs it: a training's thread pools
    (torch's, TensorFlow's) would otherwise slow the next training in the same process."""
    command = [
        str(Path(sys.executable).parent / "rasa"), "train", "--force",
        "--domain", str(REPO / "bot" / "domain.yml"), "--data", str(REPO / "data"),
        "--config", str(config_path), "--out", str(output),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 1)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    (archive,) = sorted(output.glob("*.tar.gz"))
    return {"model": str(archive), "train_s": seconds}


def archive_or_train(archive: Optional[Path], config_path: Path, output: Path) -> Dict[str, Any]:
    """The given archive (no training time to report), else a fresh training of `config_path`."""
    if archive is not None:
        return {"model": str(archive), "train_s": None}
    return train(config_path, output)


def percentiles(samples: Sequence[float]) -> Dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples, 50)), 2),
        "p95_ms": round(float(np.percentile(samples, 95)), 2),
        "mean_ms": round(float(np.mean(samples)), 2),
    }


def timed(coroutine_factory: Any) -> float:
    started = time.perf_counter()
    asyncio.run(coroutine_factory())
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--models", type=Path, default=None, help="folder to keep the two models in")
    parser.add_argument(
        "--lepton-model", type=Path, default=None,
        help="an archive `make train` already built from config.yml, instead of training it again",
    )
    parser.add_argument(
        "--stock-model", type=Path, default=None,
        help="an archive an earlier run trained with the stock pipeline, instead of training it again",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    # As `rasa run` logs by default: Rasa's debug events of every turn would cost both bots time.
    logging.getLogger().setLevel(logging.INFO)
    configure_structlog(logging.INFO)

    workdir = args.models or Path(tempfile.mkdtemp(prefix="side-by-side-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shipped = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    stock_path = workdir / "config.stock.yml"
    stock_path.write_text(yaml.safe_dump(stock_config(shipped), sort_keys=False), encoding="utf-8")
    lepton = archive_or_train(args.lepton_model, REPO / "config.yml", workdir / "lepton")
    stock = archive_or_train(args.stock_model, stock_path, workdir / "stock")
    systems = {"lepton (config.yml)": lepton, "stock (rasa init NLU pipeline)": stock}
    agents = {}
    for name, system in systems.items():
        started = time.perf_counter()
        agent = Agent.load(system["model"])
        asyncio.run(agent.handle_text("hello", sender_id=uuid.uuid4().hex))
        system["load_to_first_answer_s"] = round(time.perf_counter() - started, 2)
        agents[name] = agent
    texts = held_out_texts(args.messages)
    parse: Dict[str, List[float]] = {name: [] for name in agents}
    turn: Dict[str, List[float]] = {name: [] for name in agents}
    for text in texts[:10]:  # warm-up, not counted
        for agent in agents.values():
            asyncio.run(agent.parse_message(text))
    for text in texts:
        for name, agent in agents.items():
            parse[name].append(timed(lambda: agent.parse_message(text)))
            turn[name].append(timed(lambda: agent.handle_text(text, sender_id=uuid.uuid4().hex)))
    stock_name = "stock (rasa init NLU pipeline)"
    report: Dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.side_by_side", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores",
        "messages": len(texts),
        "peak_rss_mb_both_loaded": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "systems": {},
    }
    for name, system in systems.items():
        row = {
            "train_s": system["train_s"],
            "load_to_first_answer_s": system["load_to_first_answer_s"],
            "parse_message": percentiles(parse[name]),
            "turn": percentiles(turn[name]),
        }
        for kind, samples in (("parse_message", parse), ("turn", turn)):
            for stat in ("p50_ms", "p95_ms"):
                row[kind][f"{stat}_x_stock"] = round(
                    float(np.percentile(samples[name], int(stat[1:3])) / np.percentile(samples[stock_name], int(stat[1:3]))), 2
                )
        report["systems"][name] = row
    publish(report, args.out)


if __name__ == "__main__":
    main()
