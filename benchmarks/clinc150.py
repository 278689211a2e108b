"""CLINC150 out-of-scope detection: which open-set score tells "none of these" best.

    python -m benchmarks.clinc150                       # train (once, cached), score, table
    python -m benchmarks.clinc150 --settings in_scope   # only the model trained without `oos`
    python -m benchmarks.clinc150 --out docs/clinc150.json

Data: ``../shared/benchmarks/clinc150/`` (never copied into the repository; its official test
split is absent on purpose). ``BertIntentClassifier`` trains through Rasa's component API on
``train.csv``; setting ``with_oos`` adds ``oos_train.csv`` as a 151st intent. Everything is
scored on ``val.csv`` (in-scope) and ``oos_val.csv`` (out-of-scope) only.

The trained component is kept under ``results/clinc150/<setting>/`` (git-ignored) with the
sentence vectors and head logits of every split as .npy, so re-scoring never retrains.

Each candidate score (higher = more in-scope) decides "none of these" with one threshold.
oos_val has only 100 questions, so thresholds (and the temperature of temperature-scaled
scores) are chosen by 2-fold cross-fitting: val and oos_val are each split in two seeded,
stratified halves; what is fitted on one half judges the other, and the figures are those
of the held-out halves. In-scope accuracy counts a question only when its own intent wins
and it is not rejected; OOS recall is the share of oos questions rejected (or, with the
`oos` class, predicted as `oos`); AUROC ranks in-scope above oos by the score alone.
A second rule uses no out-of-scope questions at all: reject what scores below the ALPHA
quantile of the tuning half's in-scope questions (`open_set.PrototypeScore.confidence`).
"""

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from lepton_components import open_set

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "benchmarks" / "clinc150"
RESULTS = ROOT / "results" / "clinc150"
SEED = 13
OOS = "oos"
SPLITS = ("train", "val", "oos_train", "oos_val")
SETTINGS = {"in_scope": ("train",), "with_oos": ("train", "oos_train")}

# One training run per setting on 2 CPU cores: CLINC150 questions are short (11 word pieces
# on average, 33 at most), so 32 pieces lose nothing; a head warm-up lets 3 LoRA epochs do.
TRAINING_CONFIG: Dict[str, Any] = {
    "training_mode": "lora",
    "epochs": 3,
    "head_warmup_epochs": 20,
    "max_length": 32,
    "batch_size": 32,
    "validation_fraction": 0,
    "show_progress_bar": False,
}
KNN_KS = (1, 2, 3, 5, 10)
PROTOTYPE = "class-prototype cosine"
# The bot's score from 2026-12-03 to 2026-12-04: the better of the nearest centroid and the
# nearest training example.
PROTOTYPE_OR_NEAREST = "class-prototype or nearest-example cosine, the better of both"
# What JointNluComponent writes as `open_set_score` (`PrototypeScore.fit(..., keep_examples=True)`):
# per intent the mean of its centroid's and its nearest example's cosine, the best intent.
CHOSEN = "per intent, mean of centroid and nearest-example cosine (the bot's open_set_score)"
# The rule that needs no out-of-scope examples: reject what scores below this share of the
# held-out in-scope questions.
ALPHA = 0.05

Example = Tuple[str, str]


# ------------------------------------------------------------------ data


def load_split(data: Path, name: str) -> List[Example]:
    with (data / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return [(row["text"].strip(), row["intent"]) for row in csv.DictReader(handle) if row["text"].strip()]


def load_data(data: Path) -> Dict[str, List[Example]]:
    return {name: load_split(data, name) for name in SPLITS}


def folds(intents: Sequence[str], seed: int = SEED) -> np.ndarray:
    """0/1 per example: a seeded half of every intent (and of the oos questions) per fold."""
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(intents), dtype=int)
    by_intent: Dict[str, List[int]] = {}
    for index, intent in enumerate(intents):
        by_intent.setdefault(intent, []).append(index)
    for intent in sorted(by_intent):
        indices = rng.permutation(by_intent[intent])
        assignment[indices[len(indices) // 2 :]] = 1
    return assignment


# ------------------------------------------------------------------ train and embed


def component_parts(directory: Path) -> Tuple[Any, Any, Any]:
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    (directory / "model_storage").mkdir(parents=True, exist_ok=True)
    return (
        LocalModelStorage(directory / "model_storage"),
        Resource("intent_classifier"),
        ExecutionContext(node_name="intent_classifier", graph_schema=None),
    )


def component_config() -> Dict[str, Any]:
    from lepton_components.classifiers.bert_intent_classifier import BertIntentClassifier

    return {**BertIntentClassifier.get_default_config(), **TRAINING_CONFIG}


def train_component(examples: Sequence[Example], directory: Path) -> Tuple[Any, float]:
    """The real component trained through Rasa's component API, persisted under ``directory``."""
    from rasa.shared.nlu.constants import INTENT, TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from lepton_components.classifiers.bert_intent_classifier import BertIntentClassifier

    component = BertIntentClassifier.create(component_config(), *component_parts(directory))
    data = TrainingData([Message(data={TEXT: text, INTENT: intent}) for text, intent in examples])
    started = time.perf_counter()
    component.train(data)
    return component, time.perf_counter() - started


def load_component(directory: Path) -> Any:
    from lepton_components.classifiers.bert_intent_classifier import BertIntentClassifier

    return BertIntentClassifier.load(component_config(), *component_parts(directory))


def embed(component: Any, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Sentence vectors (as the head sees them) and head logits, in input order."""
    import torch

    from lepton_components.batching import sorted_batches
    from lepton_components.torch_encoder import pad_batch

    token_ids = component._tokenize(list(texts))
    model = component.model
    model.eval()
    vectors = np.zeros((len(texts), model.head.in_features), dtype=np.float32)
    logits = np.zeros((len(texts), model.head.out_features), dtype=np.float32)
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], 128):
            rows = [token_ids[i] for i in batch]
            input_ids, mask = pad_batch(rows, component.tokenizer.pad_token_id, component._device)
            embedded = model.embed(input_ids, mask)
            vectors[batch] = embedded.float().cpu().numpy()
            logits[batch] = model.classify(embedded).float().cpu().numpy()
    return vectors, logits


def features(setting: str, data: Dict[str, List[Example]], retrain: bool) -> Dict[str, Any]:
    """Vectors, logits and labels of every split for one setting: computed once, then read
    from ``results/``. A cache trained with other settings is refused, not reused."""
    directory = RESULTS / setting
    info_path = directory / "training.json"
    wanted = {"setting": setting, "config": TRAINING_CONFIG, "train_splits": list(SETTINGS[setting])}
    if info_path.is_file() and not retrain:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        stale = {key: info.get(key) for key in wanted if info.get(key) != wanted[key]}
        if stale:
            raise SystemExit(
                f"{directory} was trained with other settings ({stale}); pass --retrain or delete that folder."
            )
    else:
        examples = [example for name in SETTINGS[setting] for example in data[name]]
        print(f"[{setting}] training on {len(examples)} questions ...", file=sys.stderr, flush=True)
        component, seconds = train_component(examples, directory)
        info = {
            **wanted,
            "train_examples": len(examples),
            "train_seconds": round(seconds, 1),
            "training_report": component.training_report,
            "labels": component.labels,
            "machine": machine(),
        }
        for name in SPLITS:
            vectors, logits = embed(component, [text for text, _ in data[name]])
            np.save(directory / f"{name}_vectors.npy", vectors)
            np.save(directory / f"{name}_logits.npy", logits)
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        print(f"[{setting}] trained in {seconds:.0f} s", file=sys.stderr, flush=True)
    arrays = {
        name: {
            "vectors": np.load(directory / f"{name}_vectors.npy"),
            "logits": np.load(directory / f"{name}_logits.npy"),
        }
        for name in SPLITS
    }
    return {"info": info, "arrays": arrays}


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, CUDA {'available' if torch.cuda.is_available() else 'not available'}"
    )


# ------------------------------------------------------------------ candidate scores


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]


def max_softmax(logits: np.ndarray, in_scope_columns: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The highest in-scope intent probability (with an `oos` class its share stays in the sum)."""
    return softmax(logits / temperature)[:, in_scope_columns].max(axis=1)


def energy(logits: np.ndarray, in_scope_columns: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy, ``T * logsumexp(logits / T)`` over the in-scope intents (Liu et al., 2020)."""
    return temperature * logsumexp(logits[:, in_scope_columns] / temperature)


def top_cosines(train_vectors: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest cosines to the unit-length training vectors per row, highest first:
    column ``k - 1`` is the cosine to the k-th nearest training example (Sun et al., 2022)."""
    bank = open_set.unit_length(train_vectors)
    similarities = open_set.unit_length(vectors) @ bank.T
    return -np.sort(-np.partition(similarities, -k, axis=1)[:, -k:], axis=1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature that minimises the negative log-likelihood of ``labels``
    (Guo et al., 2017). The NLL is convex in 1/T, so a golden-section search finds it."""
    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(labels))

    def nll(log_inverse: float) -> float:
        scaled = logits * np.exp(log_inverse)
        return float((logsumexp(scaled) - scaled[rows, labels]).mean())

    low, high = np.log(1e-2), np.log(1e2)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):  # brackets 1/T to within a factor of 1 + 1e-7
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if nll(left) < nll(right):
            high = right
        else:
            low = left
    return float(np.exp(-(low + high) / 2))


def mahalanobis(train_vectors: np.ndarray, train_labels: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Minus the smallest Mahalanobis distance to an intent mean, one shared covariance (Lee et al., 2018)."""
    labels = np.unique(train_labels)
    means = np.stack([train_vectors[train_labels == label].mean(axis=0) for label in labels])
    centred = train_vectors - means[np.searchsorted(labels, train_labels)]
    precision = np.linalg.pinv(np.cov(centred, rowvar=False), hermitian=True)
    # |x - m|^2_P = x'Px - 2 x'Pm + m'Pm, for every class mean at once
    projected = vectors @ precision
    distances = (
        (projected * vectors).sum(axis=1, keepdims=True)
        - 2 * projected @ means.T
        + ((means @ precision) * means).sum(axis=1)
    )
    return -distances.min(axis=1)


# ------------------------------------------------------------------ scoring


def score_setting(setting: str, loaded: Dict[str, Any], data: Dict[str, List[Example]]) -> List[Dict[str, Any]]:
    """One row per candidate score: cross-fitted held-out figures on val + oos_val."""
    labels = loaded["info"]["labels"]
    arrays = loaded["arrays"]
    train_splits = SETTINGS[setting]
    train_vectors = np.concatenate([arrays[name]["vectors"] for name in train_splits])
    train_intents = np.array([intent for name in train_splits for _, intent in data[name]])
    in_scope_train = train_intents != OOS
    train_vectors, train_intents = train_vectors[in_scope_train], train_intents[in_scope_train]
    in_scope_columns = np.array([index for index, label in enumerate(labels) if label != OOS])

    vectors = np.concatenate([arrays["val"]["vectors"], arrays["oos_val"]["vectors"]])
    logits = np.concatenate([arrays["val"]["logits"], arrays["oos_val"]["logits"]])
    gold = np.array([intent for name in ("val", "oos_val") for _, intent in data[name]])
    in_scope = gold != OOS
    predicted = np.array(labels)[logits.argmax(axis=1)]
    correct = predicted == gold
    # With an `oos` class, the classifier itself rejects: such a message is out at any threshold.
    said_oos = predicted == OOS
    fold = folds(gold)
    gold_index = np.array([labels.index(intent) if intent in labels else -1 for intent in gold])

    temperatures: Dict[bytes, float] = {}

    def fitted_temperature(tune: np.ndarray) -> float:
        key = tune.tobytes()
        if key not in temperatures:
            mask = tune & in_scope
            temperatures[key] = fit_temperature(logits[mask], gold_index[mask])
        return temperatures[key]

    # Scores that fit nothing on val are computed once; the others refit on each tuning half.
    nearest = top_cosines(train_vectors, vectors, max(KNN_KS))
    prototype = open_set.PrototypeScore.fit(train_vectors, train_intents).score(vectors)
    fixed = {
        "max softmax probability": max_softmax(logits, in_scope_columns),
        "energy (T=1)": energy(logits, in_scope_columns),
        PROTOTYPE: prototype,
        PROTOTYPE_OR_NEAREST: np.maximum(prototype, nearest[:, 0]),
        CHOSEN: open_set.PrototypeScore.fit(train_vectors, train_intents, keep_examples=True).score(vectors),
        "Mahalanobis, shared covariance": mahalanobis(train_vectors, train_intents, vectors),
        **{f"cosine to k-th nearest training example, k={k}": nearest[:, k - 1] for k in KNN_KS},
    }
    candidates: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
        name: (lambda tune, scores=scores: scores) for name, scores in fixed.items()
    }
    candidates["max softmax, temperature fitted on val NLL"] = lambda tune: max_softmax(
        logits, in_scope_columns, fitted_temperature(tune)
    )
    candidates["energy, temperature fitted on val NLL"] = lambda tune: energy(
        logits, in_scope_columns, fitted_temperature(tune)
    )

    rows = []
    for name, candidate in candidates.items():
        accepted = np.zeros(len(gold), dtype=bool)
        accepted_without_oos = np.zeros(len(gold), dtype=bool)
        aurocs, thresholds = [], []
        for held_out in (0, 1):
            tune = fold != held_out
            scores = np.where(said_oos, -np.inf, candidate(tune))
            threshold = open_set.choose_threshold(scores[tune], in_scope[tune], correct[tune])
            held = ~tune
            accepted[held] = scores[held] >= threshold
            accepted_without_oos[held] = scores[held] >= np.quantile(scores[tune & in_scope], ALPHA)
            aurocs.append(open_set.auroc(scores[held], in_scope[held]))
            thresholds.append(threshold)
        all_scores = np.where(said_oos, -np.inf, candidate(np.ones(len(gold), dtype=bool)))
        rows.append(
            {
                "setting": setting,
                "method": name,
                "in_scope_accuracy": round(float((accepted & correct)[in_scope].mean()), 4),
                "oos_recall": round(float((~accepted)[~in_scope].mean()), 4),
                "auroc": round(float(np.mean(aurocs)), 4),
                "without_oos_examples": {
                    "alpha": ALPHA,
                    "in_scope_accuracy": round(float((accepted_without_oos & correct)[in_scope].mean()), 4),
                    "oos_recall": round(float((~accepted_without_oos)[~in_scope].mean()), 4),
                },
                "fold_thresholds": [round(float(t), 4) for t in thresholds],
                "threshold_all_val": round(float(open_set.choose_threshold(all_scores, in_scope, correct)), 4),
                "in_scope_accuracy_at_90_recall": round(at_oos_recall(all_scores, in_scope, correct, 0.9), 4),
                "closed_set_accuracy": round(float(correct[in_scope].mean()), 4),
            }
        )
    return rows


def at_oos_recall(scores: np.ndarray, in_scope: np.ndarray, correct: np.ndarray, recall: float) -> float:
    """In-scope accuracy at the lowest threshold that rejects ``recall`` of the oos
    questions (over all of val: threshold-free, for comparing scores)."""
    oos_sorted = np.sort(scores[~in_scope])
    needed = int(np.ceil(recall * len(oos_sorted)))
    threshold = np.nextafter(oos_sorted[needed - 1], np.inf)
    return float((correct & (scores >= threshold))[in_scope].mean())


# ------------------------------------------------------------------ report


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = [
        "| setting | score | in-scope acc | OOS recall | AUROC | in-scope acc at 90% OOS recall "
        f"| without OOS examples (alpha {ALPHA}): in-scope acc / OOS recall | threshold (all val) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        blind = row["without_oos_examples"]
        lines.append(
            f"| {row['setting']} | {row['method']} | {row['in_scope_accuracy']:.4f} | {row['oos_recall']:.2f} "
            f"| {row['auroc']:.4f} | {row['in_scope_accuracy_at_90_recall']:.4f} "
            f"| {blind['in_scope_accuracy']:.4f} / {blind['oos_recall']:.2f} | {row['threshold_all_val']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated: {', '.join(SETTINGS)}")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--retrain", action="store_true", help="train again even if results/ holds a trained model")
    parser.add_argument("--out", type=Path, default=None, help="JSON report, e.g. docs/clinc150.json")
    args = parser.parse_args()
    missing = [name for name in SPLITS if not (args.data / f"{name}.csv").is_file()]
    if missing:
        parser.error(f"CLINC150 files {missing} not found in {args.data}; pass --data path/to/clinc150")
    settings = args.settings.split(",")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {', '.join(SETTINGS)}")

    data = load_data(args.data)
    report: Dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.clinc150", *sys.argv[1:]]),
        "machine": machine(),
        "seed": SEED,
        "training_config": TRAINING_CONFIG,
        "training": {},
        "results": [],
    }
    for setting in settings:
        loaded = features(setting, data, args.retrain)
        info = loaded["info"]
        report["training"][setting] = {
            key: info[key] for key in ("train_splits", "train_examples", "train_seconds", "training_report", "machine")
        }
        rows = score_setting(setting, loaded, data)
        print(
            f"[{setting}] trained in {info['train_seconds']:.0f} s; closed-set accuracy on val "
            f"{rows[0]['closed_set_accuracy']:.4f}",
            file=sys.stderr,
        )
        report["results"].extend(rows)
    report["chosen"] = {"method": CHOSEN, "rows": [row for row in report["results"] if row["method"] == CHOSEN]}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(report["results"]))


if __name__ == "__main__":
    main()
