"""Saving and restoring a fine-tuned encoder with its head, shared by the encoder components.

Only what training changed is written, as safetensors plus JSON: the head, and either the
LoRA adapter (`training_mode: lora`) or the whole encoder (`full`). Nothing is pickled, so
a swapped model archive cannot run code. At load the adapter is merged into the base
weights, except while `rasa train --finetune` continues training it.
"""

import json
from pathlib import Path
from typing import Any, Dict, Text

from rasa.shared.exceptions import InvalidConfigException

from lepton_components import backbone
from lepton_components.encoder_config import EncoderConfig

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILE = "adapter.safetensors"
ENCODER_FILE = "encoder.safetensors"


def save_encoder_model(
    directory: Path, model: Any, settings: EncoderConfig, backbone_path: Path, metadata: Dict[Text, Any]
) -> None:
    """Writes ``model.head``, the trained encoder part and ``metadata`` plus the shared fields."""
    from safetensors.torch import save_file, save_model

    from lepton_components import torch_encoder

    mode = settings.training_mode
    save_file(
        {key: value.detach().cpu().contiguous() for key, value in model.head.state_dict().items()},
        str(directory / HEAD_FILE),
    )
    if mode == "lora":
        save_file(torch_encoder.adapter_state_dict(model.encoder), str(directory / ADAPTER_FILE))
    elif mode == "full":
        save_model(model.encoder, str(directory / ENCODER_FILE))
    full_metadata = {
        "format_version": FORMAT_VERSION,
        "training_mode": mode,
        "lora": torch_encoder.lora_config_dict(settings) if mode == "lora" else None,
        "backbone_fingerprint": backbone.backbone_fingerprint(backbone_path),
        **metadata,
    }
    (directory / METADATA_FILE).write_text(json.dumps(full_metadata, indent=2), encoding="utf-8")


def read_compatible_metadata(
    directory: Path, component: Text, settings: EncoderConfig, backbone_path: Path
) -> Dict[Text, Any]:
    """The saved metadata; refuses weights of another format, training mode or backbone."""
    metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    if metadata.get("format_version") != FORMAT_VERSION:
        raise InvalidConfigException(
            f"This model was saved by an incompatible version of {component} "
            f"(format {metadata.get('format_version')}, expected {FORMAT_VERSION}). "
            f"Retrain it with `rasa train --force`."
        )
    if metadata["training_mode"] != settings.training_mode:
        raise InvalidConfigException(
            f"The model was trained with `training_mode: {metadata['training_mode']}` "
            f"but config.yml now says `{settings.training_mode}`. Retrain with "
            f"`rasa train --force`."
        )
    if backbone.backbone_fingerprint(backbone_path) != metadata["backbone_fingerprint"]:
        raise InvalidConfigException(
            f"The backbone model at '{backbone_path}' is not the one {component} was "
            f"trained on (its weights or config changed). Point `model_name_or_path` at "
            f"the original folder or retrain with `rasa train --force`."
        )
    return metadata


def load_encoder_weights(directory: Path, model: Any, metadata: Dict[Text, Any], for_training: bool) -> None:
    """Puts the saved weights into a freshly built ``model`` (encoder + head).

    For serving, LoRA adapters are merged so inference costs one plain encoder pass; for
    `rasa train --finetune` they stay separate so training continues on them.
    """
    from safetensors.torch import load_file, load_model

    from lepton_components import torch_encoder

    mode = metadata["training_mode"]
    if mode == "lora":
        adapter = load_file(str(directory / ADAPTER_FILE))
        if for_training:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model.encoder, adapter)
        else:
            model.encoder = torch_encoder.merge_adapter(model.encoder, metadata["lora"], adapter)
    elif mode == "full":
        load_model(model.encoder, str(directory / ENCODER_FILE))
    model.head.load_state_dict(load_file(str(directory / HEAD_FILE)))
