"""BANKING77 intent classification: Lepton's classifier in each training mode next to stock
Rasa DIET, trained and served through Rasa in one run on one machine.

    python -m benchmarks.banking77 --setting full --out docs/banking77_full.json
    python -m benchmarks.banking77 --setting 10shot --out docs/banking77_10shot.json
    python -m benchmarks.banking77 --quick          # a few minutes: 10-shot, 2 systems
    python -m benchmarks.banking77 --systems shipped --out docs/banking77_shipped.json  # config.yml's defaults
    python -m benchmarks.banking77 --reports docs/banking77_*.json --plot docs/banking77.png

Data: ``../shared/benchmarks/banking77/train.csv`` (never copied into the repository). A
seeded, stratified 10% of every intent is held out as the validation split all numbers are
reported on; ``full`` trains on the rest, ``10shot`` on 10 examples per intent drawn from it.

Each system is trained by ``rasa train nlu`` machinery in a child process (so its peak memory
is its own), then loaded into a Rasa ``Agent`` in a second child that parses every validation
message one at a time (latency p50/p95, accuracy, macro-F1) and then a burst of concurrent
requests (throughput). DIET is the `rasa init` pipeline; its epochs are capped with
``--diet-epochs`` and the cap is part of the system's name in the report.
"""

import argparse
import asyncio
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.pipelines import diet, rasa_init_featurizers, shipped_nlu_pipeline

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "banking77" / "train.csv"
SEED = 13
VALIDATION_FRACTION = 0.1
SHOTS = 10
CONCURRENT_REQUESTS = 64

Example = Tuple[str, str]


# ------------------------------------------------------------------ data


def load_examples(path: Path) -> List[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"].strip(), row["category"]) for row in csv.DictReader(handle) if row["text"].strip()]


def split(examples: Sequence[Example], setting: str) -> Tuple[List[Example], List[Example]]:
    """``(train, validation)``: a stratified, seeded 10% per intent is validation;
    ``10shot`` keeps 10 random training examples per intent."""
    rng = np.random.default_rng(SEED)
    by_intent: Dict[str, List[Example]] = {}
    for example in examples:
        by_intent.setdefault(example[1], []).append(example)
    train: List[Example] = []
    validation: List[Example] = []
    for intent in sorted(by_intent):
        items = [by_intent[intent][i] for i in rng.permutation(len(by_intent[intent]))]
        cut = max(1, round(len(items) * VALIDATION_FRACTION))
        validation.extend(items[:cut])
        rest = items[cut:]
        train.extend(rest[:SHOTS] if setting == "10shot" else rest)
    return train, validation


def write_nlu_yaml(examples: Sequence[Example], path: Path) -> None:
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    data = TrainingData([Message(data={"text": text, "intent": intent}) for text, intent in examples])
    RasaYAMLWriter().dump(path, data)


# ------------------------------------------------------------------ systems


def diet_pipeline(epochs: int) -> List[Dict[str, Any]]:
    """The NLU pipeline `rasa init` writes (ResponseSelector and fallback left out: no
    retrieval intents here, and accuracy is scored on the raw intent)."""
    return [*rasa_init_featurizers(), diet(epochs)]


LEPTON_MODES = ("head_only", "lora", "full")
# config.yml's JointNluComponent entry exactly as shipped (its knowledge base left out):
# what a user who brings this data without tuning anything gets.
SHIPPED = "shipped"


def lepton_pipeline(mode: str, overrides: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [
        {"name": "WhitespaceTokenizer"},
        {
            "name": "lepton_components.classifiers.bert_intent_classifier.BertIntentClassifier",
            "training_mode": mode,
            "show_progress_bar": False,
            **overrides,
        },
    ]


def pipeline_for(system: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    if system == "diet":
        return diet_pipeline(args.diet_epochs)
    if system == SHIPPED:
        return shipped_nlu_pipeline()
    return lepton_pipeline(system, lepton_overrides(system, args.lepton_config))


def lepton_overrides(mode: str, lepton_config: Optional[str]) -> Dict[str, Any]:
    """BertIntentClassifier keys for one training mode from ``--lepton-config``: a JSON object
    of keys for every mode, or one keyed by mode (``{"lora": {"epochs": 5}}``)."""
    overrides = json.loads(lepton_config) if lepton_config else {}
    if set(overrides) & set(LEPTON_MODES):
        return dict(overrides.get(mode, {}))
    return overrides


def system_label(system: str, args: argparse.Namespace) -> str:
    if system == "diet":
        return f"Rasa DIET (rasa init pipeline, {args.diet_epochs} epochs)"
    if system == SHIPPED:
        return "Lepton JointNluComponent, config.yml as shipped"
    return f"Lepton BertIntentClassifier, {system}"


# ------------------------------------------------------------------ child: train


def train_child(system: str, setting: str, workdir: Path, args: argparse.Namespace) -> Dict[str, Any]:
    import yaml
    from rasa.model_training import train_nlu

    train, _ = split(load_examples(args.data), setting)
    nlu_path = workdir / "nlu.yml"
    write_nlu_yaml(train, nlu_path)
    config_path = workdir / "config.yml"
    config_path.write_text(
        yaml.safe_dump({"recipe": "default.v1", "language": "en", "pipeline": pipeline_for(system, args)}),
        encoding="utf-8",
    )
    started = time.perf_counter()
    model = train_nlu(str(config_path), str(nlu_path), str(workdir / "models"), fixed_model_name=system)
    seconds = time.perf_counter() - started
    return {
        "train_seconds": round(seconds, 1),
        "train_examples": len(train),
        "model_mb": round(Path(model).stat().st_size / 2**20, 1),
        "train_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "model_path": str(model),
    }


# ------------------------------------------------------------------ child: serve and score


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    scores = []
    for label in sorted(set(gold)):
        true_positive = sum(g == label == p for g, p in zip(gold, predicted))
        predicted_count = sum(p == label for p in predicted)
        gold_count = sum(g == label for g in gold)
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / gold_count
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


# Ways to serve the same trained classifier, compared side by side (config keys).
SERVING_VARIANTS = {
    "int8": {"inference_quantization": "int8"},
    "onnx": {"inference_backend": "onnxruntime"},
    "onnx-int8": {"inference_backend": "onnxruntime", "inference_quantization": "int8"},
    # What docs/benchmarks.md recommends for a server: one thread, scale with replicas.
    "onnx-int8-1thread": {"inference_backend": "onnxruntime", "inference_quantization": "int8", "num_threads": 1},
}


# Ways to serve DIET (environment of the serving process): Rasa reads TensorFlow's thread
# settings from these variables (rasa/utils/tensorflow/environment.py).
DIET_SERVING_VARIANTS = {
    "1thread": {"TF_INTER_OP_PARALLELISM_THREADS": "1", "TF_INTRA_OP_PARALLELISM_THREADS": "1", "OMP_NUM_THREADS": "1"},
}


def serve_as(agent: Any, variant: str) -> None:
    """Serves the loaded model as the variant's config keys would: same weights."""
    import dataclasses

    from lepton_components import torch_encoder

    for node in agent.processor.graph_runner._instantiated_nodes.values():
        component = getattr(node, "_component", None)
        if type(component).__name__ == "BertIntentClassifier":
            settings = dataclasses.replace(component.settings, **SERVING_VARIANTS[variant])
            torch_encoder.apply_thread_setting(settings.num_threads)
            component.model = torch_encoder.prepare_for_inference(component.model, settings, component._device)


def evaluate_child(setting: str, model_path: str, variant: Optional[str], args: argparse.Namespace) -> Dict[str, Any]:
    from rasa.core.agent import Agent

    _, validation = split(load_examples(args.data), setting)
    agent = Agent.load(model_path)
    if variant:
        serve_as(agent, variant)

    async def one_at_a_time() -> Tuple[List[float], List[str]]:
        for text, _ in validation[:20]:  # warm-up: first calls allocate
            await agent.parse_message(text)
        latencies, predicted = [], []
        for text, _ in validation:
            started = time.perf_counter()
            parsed = await agent.parse_message(text)
            latencies.append((time.perf_counter() - started) * 1000)
            predicted.append(parsed["intent"]["name"])
        return latencies, predicted

    latencies, predicted = asyncio.run(one_at_a_time())
    gold = [intent for _, intent in validation]

    async def burst() -> float:
        texts = [validation[i % len(validation)][0] for i in range(CONCURRENT_REQUESTS * 4)]
        semaphore = asyncio.Semaphore(CONCURRENT_REQUESTS)

        async def one(text: str) -> None:
            async with semaphore:
                await agent.parse_message(text)

        started = time.perf_counter()
        await asyncio.gather(*(one(text) for text in texts))
        return len(texts) / (time.perf_counter() - started)

    throughput = asyncio.run(burst())
    return {
        "validation_examples": len(validation),
        "accuracy": round(float(np.mean([g == p for g, p in zip(gold, predicted)])), 4),
        "macro_f1": round(macro_f1(gold, predicted), 4),
        "parse_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "parse_p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "throughput_msg_per_s": round(throughput, 1),
        "serve_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


# ------------------------------------------------------------------ report


def markdown_table(report: Dict[str, Any]) -> str:
    """The rows of one run as a Markdown table, parse latency also as a ratio to DIET's."""
    diet = next((row for row in report["results"] if row["key"] == "diet"), None)
    lines = [
        "| system | accuracy | macro-F1 | train s | model MB | parse p50 ms (x DIET) | p95 ms | msg/s at 64 concurrent | train / serve peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        ratio = f" ({row['parse_p50_ms'] / diet['parse_p50_ms']:.2f}x)" if diet else ""
        lines.append(
            f"| {row['system']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {row['train_seconds']:.0f} "
            f"| {row['model_mb']} | {row['parse_p50_ms']}{ratio} | {row['parse_p95_ms']} "
            f"| {row['throughput_msg_per_s']} | {row['train_peak_rss_mb']} / {row['serve_peak_rss_mb']} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ plot


def plot(reports: Sequence[Path], path: Path) -> None:
    """Validation accuracy against training time, one marker per system and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    markers = {"full": "o", "10shot": "s"}
    for report_path in reports:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        for row in report["results"]:
            if "+" in row["key"]:  # a serving variant: same training as its first row
                continue
            axis.scatter(row["train_seconds"] / 60, row["accuracy"], marker=markers[report["setting"]], s=40)
            axis.annotate(
                f"{row['key']} ({report['setting']})",
                (row["train_seconds"] / 60, row["accuracy"]),
                textcoords="offset points", xytext=(5, 4 if row["key"] != "lora" else -10), fontsize=8,
            )
    # The targets: 10-shot >= 0.85; full data >= 0.935 within 10 minutes of training.
    axis.axhline(0.85, color="grey", linestyle=":", linewidth=1)
    axis.axhline(0.935, color="grey", linestyle="--", linewidth=1)
    axis.axvline(10, color="grey", linestyle="--", linewidth=1)
    axis.set_xlabel("training wall time, minutes (2 CPU cores)")
    axis.set_ylabel("validation accuracy")
    axis.set_title("BANKING77: Lepton BertIntentClassifier modes vs Rasa DIET")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


# ------------------------------------------------------------------ parent


def run_child(arguments: List[str], extra_environment: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    # Rasa's training cache would answer a repeated training in seconds; every system
    # must train from scratch for its training time to mean anything.
    environment = {**os.environ, "RASA_MAX_CACHE_SIZE": "0", **(extra_environment or {})}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.banking77", *arguments], capture_output=True, text=True, env=environment
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child {arguments[:3]} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def shared_arguments(args: argparse.Namespace) -> List[str]:
    forwarded = ["--data", str(args.data), "--diet-epochs", str(args.diet_epochs)]
    if args.lepton_config:
        forwarded += ["--lepton-config", args.lepton_config]
    return forwarded


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, CUDA {'available' if torch.cuda.is_available() else 'not available'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=["full", "10shot"], default="full")
    parser.add_argument("--systems", default="diet,head_only,lora,full", help="comma-separated: diet, head_only, lora, full, shipped")
    parser.add_argument("--diet-epochs", type=int, default=100)
    parser.add_argument(
        "--lepton-config",
        default=None,
        help='JSON of BertIntentClassifier keys for every mode, e.g. \'{"epochs": 5}\', '
        'or keyed by mode, e.g. \'{"lora": {"epochs": 5}, "full": {"epochs": 3}}\'',
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--quick", action="store_true", help="10-shot, DIET (20 epochs) and LoRA only: a few minutes")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of accuracy vs training time from --reports")
    parser.add_argument("--reports", type=Path, nargs="*", default=[], help="JSON reports of earlier runs: print their tables (and --plot them)")
    parser.add_argument("--_train", nargs=2, metavar=("SYSTEM", "WORKDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--_evaluate", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--_serve", choices=sorted(SERVING_VARIANTS), default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--serving", default=",".join(SERVING_VARIANTS),
        help="extra rows serving each trained Lepton model differently: "
        f"comma-separated subset of {', '.join(SERVING_VARIANTS)}; empty for none",
    )
    parser.add_argument(
        "--diet-serving", default="",
        help=f"extra rows serving the trained DIET model differently: comma-separated subset of "
        f"{', '.join(DIET_SERVING_VARIANTS)}; empty for none",
    )
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"BANKING77 not found at {args.data}; pass --data path/to/train.csv")

    if args.reports:
        for report_path in args.reports:
            print(f"{report_path}:\n{markdown_table(json.loads(report_path.read_text(encoding='utf-8')))}\n")
        if args.plot:
            plot(args.reports, args.plot)
        return
    if args._train:
        system, workdir = args._train
        print(json.dumps(train_child(system, args.setting, Path(workdir), args)))
        return
    if args._evaluate:
        print(json.dumps(evaluate_child(args.setting, args._evaluate, args._serve, args)))
        return

    if args.quick:
        args.setting, args.systems = "10shot", "diet,lora"
        args.diet_epochs = min(args.diet_epochs, 20)
    report: Dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.banking77", *sys.argv[1:]]),
        "machine": machine(),
        "setting": args.setting,
        "seed": SEED,
        "results": [],
    }
    for system in args.systems.split(","):
        with tempfile.TemporaryDirectory(prefix=f"banking77-{system}-") as workdir:
            print(f"training {system_label(system, args)} ...", file=sys.stderr, flush=True)
            trained = run_child(["--_train", system, workdir, "--setting", args.setting, *shared_arguments(args)])
            print(f"  {trained['train_seconds']} s; evaluating ...", file=sys.stderr, flush=True)
            model_path = trained.pop("model_path")
            evaluate = ["--_evaluate", model_path, "--setting", args.setting, *shared_arguments(args)]
            rows = [{"system": system_label(system, args), "key": system, **trained, **run_child(evaluate)}]
            # DIET is served differently through its process's environment, ours through config.
            # The shipped entry is already served as config.yml serves it.
            variants = {"diet": args.diet_serving, SHIPPED: ""}.get(system, args.serving)
            for variant in (variant for variant in variants.split(",") if variant):
                if system == "diet":
                    scored = run_child(evaluate, DIET_SERVING_VARIANTS[variant])
                else:
                    scored = run_child([*evaluate, "--_serve", variant])
                rows.append(
                    {
                        "system": f"{system_label(system, args)}, served {variant}",
                        "key": f"{system}+{variant}",
                        **trained,
                        **scored,
                    }
                )
        for row in rows:
            print(json.dumps(row), file=sys.stderr, flush=True)
            report["results"].append(row)
        if args.out:  # keep partial results of a long run
            args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(markdown_table(report), file=sys.stderr)


if __name__ == "__main__":
    main()
