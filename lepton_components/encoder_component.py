"""The base of every Lepton component that fine-tunes a transformer encoder with a head.

The intent classifier and the entity extractor differ only in their head, their labels
and what they write onto a message. Everything else lives here, once: the backbone
(resolving, checking `max_length` against its position limit, loading), training
setup, persistence as safetensors + JSON (`encoder_persistence`), merging LoRA adapters
for serving, the serving backend (`torch_encoder.prepare_for_inference`, or a graph the
subclass stored at training time, `_open_serving_graph`) with a warm-up pass, and loading a
model archive that fails loudly when it is damaged.
"""

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException, RasaException

from lepton_components import backbone, config_validation, encoder_persistence
from lepton_components.encoder_config import EncoderConfig, default_encoder_config
from lepton_components.word_pieces import PieceTokenizer

logger = logging.getLogger(__name__)

# A short text for the warm-up pass that makes the first customer message as fast as the rest.
WARM_UP_TEXT = "where is my order"


class DamagedModelArchive(RasaException):
    """A component's part of the model archive exists but cannot be read."""


def restore_stored_part(
    model_storage: ModelStorage, resource: Resource, component: Text, restore: Callable[[Path], None]
) -> bool:
    """Runs `restore` on the component's stored folder; False if nothing was stored.

    A missing resource is Rasa's way of saying training persisted nothing; anything
    unreadable inside an existing one raises `DamagedModelArchive` with the fix (Rasa's
    own errors, e.g. a fingerprint mismatch naming its fix, pass through).
    """
    with ExitStack() as stack:
        try:
            directory = stack.enter_context(model_storage.read_from(resource))
        except ValueError:  # Rasa's "resource does not exist"
            return False
        try:
            restore(Path(directory))
        except RasaException:
            raise
        except Exception as error:
            raise DamagedModelArchive(
                f"{component} cannot read its part of the model archive ({type(error).__name__}: {error}). "
                "The archive is damaged or was not made by this version of Lepton: train a new one with "
                "`rasa train --force`, or load the archive it came from."
            ) from error
    return True


class EncoderComponent(GraphComponent):
    """Backbone, training set-up, persistence and serving shared by the encoder components.

    Subclasses provide `extra_default_config`, `validate_extra_config`, `_new_model`
    (encoder + head), `_saved_metadata` / `_apply_saved_metadata` and `_warm_up`.
    """

    # A fast (Rust) tokenizer gives character offsets; the entity extractor needs them.
    needs_fast_tokenizer = False

    @staticmethod
    def required_packages() -> List[Text]:
        return ["torch", "transformers", "peft", "safetensors"]

    @classmethod
    def extra_default_config(cls) -> Dict[Text, Any]:
        """The subclass's own keys and defaults, on top of `default_encoder_config`."""
        return {}

    @classmethod
    def get_default_config(cls) -> Dict[Text, Any]:
        return {**default_encoder_config(), **cls.extra_default_config()}

    @classmethod
    def validate_extra_config(cls, config: Dict[Text, Any], settings: EncoderConfig) -> None:
        """Checks the subclass's own keys; raises InvalidConfigException naming the fix."""

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> EncoderConfig:
        """Checks every key and value; raises InvalidConfigException naming the fix."""
        config_validation.check_unknown_keys(cls.__name__, config, cls.get_default_config())
        settings = EncoderConfig.from_component_config(cls.__name__, config)
        cls.validate_extra_config(config, settings)
        return settings

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Retrains when the backbone's weights or the stored format change, not only the config.

        With the format in it, `rasa train` after an upgrade that changed `metadata.json`
        trains anew instead of reusing a cached part the new code refuses at load.
        """
        fingerprint = backbone.fingerprint_for_config(config.get("model_name_or_path"), cls.__name__)
        if fingerprint is None:
            return None
        return f"{fingerprint}:format-{encoder_persistence.FORMAT_VERSION}"

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "EncoderComponent":
        return cls(config, model_storage, resource, execution_context)

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> None:
        self.component_config = config
        self.settings = self.validate_config(config)
        self._model_storage = model_storage
        self._resource = resource
        self._execution_context = execution_context
        self._backbone_path = backbone.resolve_backbone_path(self.settings.model_name_or_path, type(self).__name__)
        self._check_max_length()
        self.model: Optional[Any] = None
        self.tokenizer: Optional[Any] = None
        # With `needs_fast_tokenizer`: the windows of word pieces the model reads (word_pieces).
        self.pieces: Optional[PieceTokenizer] = None
        self.training_report: Optional[Dict[Text, Any]] = None

    def _check_max_length(self) -> None:
        """`max_length` must fit the backbone's position embeddings, read from its config.json."""
        config = json.loads((self._backbone_path / "config.json").read_text(encoding="utf-8"))
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int) and self.settings.max_length > positions:
            raise InvalidConfigException(
                f"{type(self).__name__}: `max_length` is {self.settings.max_length}, but the backbone at "
                f"'{self._backbone_path}' reads at most {positions} word pieces. Set e.g. "
                f"`max_length: {min(64, positions)}` in config.yml."
            )

    # ------------------------------------------------------------------ model

    def _new_model(self, encoder: Any) -> Any:
        """The subclass's module: `encoder` plus a freshly initialised head."""
        raise NotImplementedError

    def _build_model(self, for_training: bool) -> None:
        """Loads tokenizer and backbone and wraps them with the head, ready to train or restore."""
        from lepton_components import torch_encoder

        torch_encoder.seed_everything(self.settings.random_seed)
        # Torch's thread pool is process-wide: a server caps it, training may use every core.
        torch_encoder.apply_thread_setting(self.settings.training_threads if for_training else self.settings.num_threads)
        self._device = torch_encoder.select_device(self.settings.device)
        self.tokenizer = torch_encoder.load_tokenizer(self._backbone_path)
        if self.needs_fast_tokenizer and not getattr(self.tokenizer, "is_fast", False):
            raise InvalidConfigException(
                f"{type(self).__name__} needs a fast (Rust) tokenizer for character offsets, but the backbone at "
                f"'{self._backbone_path}' has none. Add its tokenizer.json "
                "(`AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(folder)`)."
            )
        if self.needs_fast_tokenizer:
            self.pieces = PieceTokenizer.from_transformers(
                self.tokenizer, self.settings.max_length, self.component_config["window_overlap"]
            )
        encoder = torch_encoder.load_encoder(self._backbone_path)
        if for_training:
            encoder = torch_encoder.prepare_for_training(encoder, self.settings)
        self.model = self._new_model(encoder)
        self.model.to(self._device)

    def _serve_trained_model(self) -> None:
        """After training: persist, then serve exactly as a loaded archive would be served."""
        from lepton_components import torch_encoder

        self.persist()
        self.model.encoder = torch_encoder.merged_for_serving(self.model.encoder)
        self.model.eval()

    # ------------------------------------------------------------ persistence

    def _saved_metadata(self) -> Dict[Text, Any]:
        """The subclass's JSON metadata (labels, reports) stored beside the weights."""
        raise NotImplementedError

    def _apply_saved_metadata(self, metadata: Dict[Text, Any]) -> None:
        """Restores the subclass's state from `_saved_metadata`'s output, before the model is built."""
        raise NotImplementedError

    def persist(self) -> None:
        """Writes only what training changed, as safetensors, plus JSON metadata."""
        with self._model_storage.write_to(self._resource) as directory:
            encoder_persistence.save_encoder_model(
                directory, self.model, self.settings, self._backbone_path, self._saved_metadata()
            )

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "EncoderComponent":
        """Rebuilds the trained component; LoRA adapters are merged for fast inference.

        During `rasa train --finetune` the adapters stay separate so training continues.
        No stored part at all (training had nothing to learn, e.g. no entity annotations)
        gives a component that leaves messages alone; a stored part that cannot be read
        stops loading with the fix, so a damaged archive never serves a bot without
        intents.
        """
        component = cls(config, model_storage, resource, execution_context)
        restored = restore_stored_part(
            model_storage,
            resource,
            cls.__name__,
            lambda directory: component._restore(directory, for_training=execution_context.is_finetuning),
        )
        if not restored:
            logger.info(f"{cls.__name__}: the model holds no trained part for it, so it does nothing.")
        return component

    def _restore(self, directory: Path, for_training: bool) -> None:
        metadata = encoder_persistence.read_compatible_metadata(
            directory, type(self).__name__, self.settings, self._backbone_path
        )
        self.training_report = metadata.get("training_report")
        self._apply_saved_metadata(metadata)
        if for_training or not self._open_serving_graph(directory):
            self._restore_torch_model(directory, metadata, for_training)
        if not for_training:
            self._warm_up()

    def _open_serving_graph(self, directory: Path) -> bool:
        """Serves a graph stored at training time instead of rebuilding the PyTorch model;
        False where the component stores none (the default)."""
        return False

    def _restore_torch_model(self, directory: Path, metadata: Dict[Text, Any], for_training: bool) -> None:
        """Backbone plus the stored weights, on the configured serving backend unless training."""
        from lepton_components import torch_encoder

        self._build_model(for_training)
        encoder_persistence.load_encoder_weights(directory, self.model, metadata, for_training)
        self.model.to(self._device)
        self.model.eval()
        if not for_training:
            self.model = torch_encoder.prepare_for_inference(self.model, self.settings, self._device)

    def _warm_up(self) -> None:
        """One pass over a short text, so the first customer does not pay for lazy set-up."""
        raise NotImplementedError
