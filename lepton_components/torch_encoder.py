"""Loads a transformer encoder for training or inference and prepares it for a training mode.

This module holds everything torch/transformers/peft specific that the intent classifier
and the entity extractor share: device choice, seeding, LoRA wrapping, adapter export and
merging adapters back into the base weights at load time for inference speed.
"""

import contextlib
import logging
import random
from pathlib import Path
from typing import Dict, Iterator, List, Text, Tuple

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lepton_components.batching import pad_ids
from lepton_components.cpu_threads import cap_blas_threads
from lepton_components.encoder_config import EncoderConfig

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seeds every random generator training touches, so a seed gives one result."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(choice: Text) -> torch.device:
    """``auto`` trains on a CUDA GPU when one is present, otherwise on the CPU."""
    if choice == "cuda" and not torch.cuda.is_available():
        logger.warning("`device: cuda` was asked for but no CUDA GPU is available; using the CPU.")
        return torch.device("cpu")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def apply_thread_setting(num_threads: int) -> None:
    """Caps the process's CPU thread pools, torch's and the BLAS numpy calls
    (`cpu_threads`), e.g. to leave cores to other server processes."""
    if num_threads:
        torch.set_num_threads(num_threads)
        cap_blas_threads(num_threads)


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """Loads the backbone's fast tokenizer from disk only."""
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Silences transformers' load report and progress bar while a model loads.

    The report lists harmless leftovers such as a checkpoint's unused `position_ids`
    buffer on every start; callers check what matters (missing weights) themselves.
    """
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        transformers_logging.enable_progress_bar()


def load_encoder(path: Path) -> PreTrainedModel:
    """Loads the backbone's encoder (no task head) from disk only.

    Encoder weights missing from the folder (a different architecture, a truncated file)
    stop loading with a clear error instead of a silently random layer.
    """
    with quiet_model_loading():
        encoder, info = AutoModel.from_pretrained(
            str(path), local_files_only=True, output_loading_info=True
        )
    missing = [key for key in info.get("missing_keys", []) if not key.startswith("pooler.")]
    if missing:
        from rasa.shared.exceptions import InvalidConfigException

        raise InvalidConfigException(
            f"The model folder '{path}' lacks encoder weights ({', '.join(sorted(missing)[:5])}"
            f"{', ...' if len(missing) > 5 else ''}): it does not hold a complete pretrained "
            f"encoder. Point `model_name_or_path` at a folder saved with `save_pretrained`."
        )
    logger.debug(f"Loaded encoder from '{path}'; unused weights: {info.get('unexpected_keys')}")
    return encoder


def lora_config_dict(config: EncoderConfig) -> Dict:
    """The LoRA settings stored next to an adapter, enough to rebuild it at load time."""
    return {
        "r": config.lora_rank,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": list(config.lora_target_modules),
        # The pooler is unused by mean pooling; adapting it would only cost time.
        "exclude_modules": ["pooler.dense"],
    }


def prepare_for_training(
    encoder: PreTrainedModel, config: EncoderConfig
) -> torch.nn.Module:
    """Sets which encoder weights train: LoRA adapters, all weights, or none."""
    if config.training_mode == "lora":
        from peft import LoraConfig, get_peft_model

        try:
            return get_peft_model(encoder, LoraConfig(**lora_config_dict(config)))
        except ValueError as error:
            from rasa.shared.exceptions import InvalidConfigException

            linear_names = sorted(
                {
                    name.split(".")[-1]
                    for name, module in encoder.named_modules()
                    if isinstance(module, torch.nn.Linear)
                }
            )
            raise InvalidConfigException(
                f"{config.component}: `lora_target_modules` {config.lora_target_modules} "
                f"matches no layer of this encoder ({error}). Its linear layers are "
                f"named: {', '.join(linear_names)}. Set e.g. "
                f"`lora_target_modules: [{', '.join(linear_names[:2])}]`."
            ) from error
    encoder.requires_grad_(config.training_mode == "full")
    return encoder


def adapter_state_dict(model: torch.nn.Module) -> Dict[Text, torch.Tensor]:
    """Only the LoRA weights of a peft-wrapped encoder: all that LoRA training changed."""
    from peft import get_peft_model_state_dict

    return {key: value.detach().cpu().contiguous() for key, value in get_peft_model_state_dict(model).items()}


def merge_adapter(
    encoder: PreTrainedModel, lora_settings: Dict, adapter: Dict[Text, torch.Tensor]
) -> PreTrainedModel:
    """Applies saved LoRA weights to a fresh base encoder and merges them in.

    Merged weights make inference exactly as fast as the plain encoder: no adapter
    matmuls remain at parse time.
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    peft_model = get_peft_model(encoder, LoraConfig(**lora_settings))
    result = set_peft_model_state_dict(peft_model, adapter)
    if result.unexpected_keys:
        raise ValueError(f"Saved adapter has weights the encoder lacks: {result.unexpected_keys[:5]}")
    return merged_for_serving(peft_model)


def merged_for_serving(encoder: torch.nn.Module) -> torch.nn.Module:
    """The encoder with any LoRA adapters merged into its base weights (others unchanged)."""
    merge = getattr(encoder, "merge_and_unload", None)
    return merge() if callable(merge) else encoder


def trainable_parameters(module: torch.nn.Module) -> List[torch.nn.Parameter]:
    """Parameters the optimiser updates."""
    return [parameter for parameter in module.parameters() if parameter.requires_grad]


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Averages token vectors over real tokens, the pooling MiniLM was trained with."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def pad_batch(
    sequences: List[List[int]], pad_token_id: int, device: torch.device
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pads token id lists to the longest one in the batch (`batching.pad_ids`), on `device`."""
    input_ids, attention_mask = pad_ids(sequences, pad_token_id)
    return torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device)


def prepare_for_inference(model: torch.nn.Module, config: EncoderConfig, device: torch.device) -> torch.nn.Module:
    """The loaded model as it should serve: on the configured backend, int8 if asked.

    A single message through a 6-layer encoder on a CPU is bound by reading the fp32
    weights from memory and by per-operator overhead; int8 weights are a quarter of the
    bytes, and ONNX Runtime (`onnx_encoder`) runs the graph with fused kernels. CUDA
    keeps PyTorch in full precision.
    """
    int8 = config.inference_quantization == "int8"
    if device.type != "cpu":
        if int8 or config.inference_backend != "torch":
            logger.info(
                f"{config.component}: `inference_quantization` and `inference_backend: onnxruntime` "
                f"apply to the CPU only; serving with PyTorch in full precision on {device}."
            )
        return model
    if config.inference_backend == "onnxruntime":
        from lepton_components.onnx_encoder import onnx_runtime_encoder

        model.encoder = onnx_runtime_encoder(model.encoder, int8, config.num_threads)
        return model
    if not int8:
        return model
    import warnings

    # torch.ao's eager quantization is deprecated for torchao from torch 2.10 on; the
    # pinned torch (constraints.txt) still ships it, and the warning says nothing to users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
