"""Tune BertIntentClassifier's training settings on BANKING77 without Rasa in the loop.

    python -m benchmarks.banking77_tuning --setting full --config '{"epochs": 4, "head_warmup_epochs": 20}'

Trains the Rasa-free training core (`classifiers.sentence_classifier.fine_tune`) on the same
seeded split as `benchmarks.banking77` and prints one JSON line: training seconds, accuracy
on the validation split and the training report. Per-epoch progress goes to stderr. A
setting found here is then measured through Rasa, next to DIET, with `benchmarks.banking77`.
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from benchmarks.banking77 import DATA, load_examples, split


def tune(setting: str, overrides: Dict[str, Any], data: Path) -> Dict[str, Any]:
    from lepton_components import backbone, torch_encoder
    from lepton_components.classifiers.bert_intent_classifier import BertIntentClassifier
    from lepton_components.classifiers.sentence_classifier import (
        SentenceClassifier,
        fine_tune,
        predict_probabilities,
    )
    from lepton_components.encoder_config import EncoderConfig

    config = {**BertIntentClassifier.get_default_config(), **overrides}
    BertIntentClassifier.validate_config(config)
    settings = EncoderConfig.from_component_config("BertIntentClassifier", config)
    train, validation = split(load_examples(data), setting)
    path = backbone.resolve_backbone_path(settings.model_name_or_path, "BertIntentClassifier")
    torch_encoder.seed_everything(settings.random_seed)
    torch_encoder.apply_thread_setting(settings.num_threads)
    device = torch_encoder.select_device(settings.device)
    tokenizer = torch_encoder.load_tokenizer(path)
    encoder = torch_encoder.prepare_for_training(torch_encoder.load_encoder(path), settings)
    labels = sorted({intent for _, intent in train})
    model = SentenceClassifier(encoder, len(labels), config["head_dropout"], config["normalize_embeddings"])

    def token_ids(texts: Any) -> Any:
        return tokenizer(list(texts), truncation=True, max_length=settings.max_length)["input_ids"]

    started = time.perf_counter()
    report = fine_tune(
        model,
        token_ids(text for text, _ in train),
        [labels.index(intent) for _, intent in train],
        settings,
        tokenizer.pad_token_id,
        device,
        settings.epochs,
        head_warmup_epochs=config["head_warmup_epochs"],
    )
    seconds = time.perf_counter() - started
    probabilities = predict_probabilities(model, token_ids(text for text, _ in validation), tokenizer.pad_token_id, device)
    predicted = [labels[index] for index in probabilities.argmax(axis=1)]
    return {
        "setting": setting,
        "config": overrides,
        "train_seconds": round(seconds, 1),
        "accuracy": round(float(np.mean([p == intent for p, (_, intent) in zip(predicted, validation)])), 4),
        "report": report.__dict__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=["full", "10shot"], default="full")
    parser.add_argument("--config", default="{}", help='JSON of BertIntentClassifier keys, e.g. \'{"epochs": 4}\'')
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"BANKING77 not found at {args.data}; pass --data path/to/train.csv")
    print(json.dumps(tune(args.setting, json.loads(args.config), args.data)))


if __name__ == "__main__":
    main()
