"""Intent classifier that fine-tunes a BERT-family encoder on the bot's own intents."""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components import backbone, config_validation, encoder_persistence
from lepton_components.encoder_config import EncoderConfig, default_encoder_config

logger = logging.getLogger(__name__)



class IntentTrainingDataError(RasaException):
    """The NLU data cannot train an intent classifier."""


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class BertIntentClassifier(IntentClassifier, GraphComponent):
    """Classifies intents with a fine-tuned transformer encoder and a linear head.

    Reads the message `text` (no tokenizer or featurizer output is needed: the encoder
    brings its own word-piece tokenizer). Writes `intent` and `intent_ranking` exactly as
    Rasa's own classifiers do, so FallbackClassifier and the policies work unchanged.
    """

    @staticmethod
    def required_packages() -> List[Text]:
        return ["torch", "transformers", "peft", "safetensors"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **default_encoder_config(),
            # Number of intents listed in `intent_ranking`; 0 lists all of them.
            "ranking_length": LABEL_RANKING_LENGTH,
            # Dropout before the classification layer.
            "head_dropout": 0.1,
            # Epochs that train the output layer alone on cached sentence vectors before
            # the encoder trains too (lora, full); 0 skips this warm-up. Costs one encoder
            # pass over the data and lets fewer full epochs reach the same accuracy.
            "head_warmup_epochs": 0,
            # Scale each sentence vector to unit length before the output layer, as
            # sentence encoders compare sentences by cosine (helps few-shot data most).
            "normalize_embeddings": False,
        }

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
        self._backbone_path = backbone.resolve_backbone_path(
            self.settings.model_name_or_path, type(self).__name__
        )
        self.labels: List[Text] = []
        self.model: Optional[Any] = None
        self.tokenizer: Optional[Any] = None
        self.training_report: Optional[Dict[Text, Any]] = None

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> EncoderConfig:
        """Checks every key and value; raises InvalidConfigException naming the fix."""
        name = cls.__name__
        config_validation.check_unknown_keys(name, config, cls.get_default_config())
        config_validation.check_number(name, "ranking_length", config["ranking_length"], 0, integer=True, example=10)
        config_validation.check_number(name, "head_dropout", config["head_dropout"], 0, 0.9, example=0.1)
        config_validation.check_number(
            name, "head_warmup_epochs", config["head_warmup_epochs"], 0, integer=True, example=20
        )
        config_validation.check_choice(name, "normalize_embeddings", config["normalize_embeddings"], (True, False))
        return EncoderConfig.from_component_config(name, config)

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Retrains when the backbone's weights change, not only when the config does."""
        return backbone.fingerprint_for_config(config.get("model_name_or_path"), cls.__name__)

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "BertIntentClassifier":
        return cls(config, model_storage, resource, execution_context)

    # ------------------------------------------------------------------ training

    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tunes on every intent example with text and persists the result."""
        from lepton_components.classifiers import sentence_classifier
        from lepton_components.training_data_checks import warn_small_intents

        examples = [
            example
            for example in training_data.intent_examples
            if example.get(INTENT) and (example.get(TEXT) or "").strip()
        ]
        labels = sorted({example.get(INTENT) for example in examples})
        self._check_training_labels(labels)
        warn_small_intents(example.get(INTENT) for example in examples)
        epochs = self.settings.epochs
        if self.model is None:
            self.labels = labels
            self._build_model(for_training=True, normalize_embeddings=self.component_config["normalize_embeddings"])
        # Under `rasa train --finetune` the model was loaded with its trained weights;
        # Rasa's FinetuningValidator has already refused new intents, and Rasa has already
        # scaled `epochs` by --epoch-fraction (engine/recipes/default_recipe.py ~L465).
        label_index = {label: index for index, label in enumerate(self.labels)}
        token_ids = self._tokenize([example.get(TEXT) for example in examples])
        report = sentence_classifier.fine_tune(
            self.model,
            token_ids,
            [label_index[example.get(INTENT)] for example in examples],
            self.settings,
            self.tokenizer.pad_token_id,
            self._device,
            epochs,
            head_warmup_epochs=self.component_config["head_warmup_epochs"],
        )
        self.training_report = report.__dict__
        logger.info(f"{type(self).__name__} trained: {self.training_report}")
        self.persist()
        if self.settings.training_mode == "lora":
            self._merge_trained_adapter()
        return self._resource

    def _check_training_labels(self, labels: List[Text]) -> None:
        if len(labels) >= 2:
            return
        found = f"only '{labels[0]}'" if labels else "none"
        raise IntentTrainingDataError(
            f"{type(self).__name__} needs training examples for at least two intents, "
            f"found {found}. Add examples for more intents to your NLU data "
            f"(e.g. data/nlu.yml):\n"
            "  nlu:\n  - intent: greet\n    examples: |\n      - hello\n"
            "  - intent: goodbye\n    examples: |\n      - bye\n"
            f"or remove {type(self).__name__} from the pipeline in config.yml."
        )

    def _build_model(self, for_training: bool, normalize_embeddings: bool) -> None:
        from lepton_components import torch_encoder
        from lepton_components.classifiers.sentence_classifier import SentenceClassifier

        torch_encoder.seed_everything(self.settings.random_seed)
        # For training and serving alike; torch's thread pool is process-wide.
        torch_encoder.apply_thread_setting(self.settings.num_threads)
        self._device = torch_encoder.select_device(self.settings.device)
        self.tokenizer = torch_encoder.load_tokenizer(self._backbone_path)
        encoder = torch_encoder.load_encoder(self._backbone_path)
        if for_training:
            encoder = torch_encoder.prepare_for_training(encoder, self.settings)
        self.model = SentenceClassifier(
            encoder, len(self.labels), self.component_config["head_dropout"], normalize=normalize_embeddings
        )
        self.model.to(self._device)

    def _merge_trained_adapter(self) -> None:
        """Serves the freshly trained model with LoRA merged in, as a loaded one would be."""
        self.model.encoder = self.model.encoder.merge_and_unload()

    def _tokenize(self, texts: List[Text]) -> List[List[int]]:
        return self.tokenizer(
            texts, truncation=True, max_length=self.settings.max_length
        )["input_ids"]

    # --------------------------------------------------------------- inference

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets `intent` and `intent_ranking` on each message with text."""
        if self.model is None:
            return messages
        from lepton_components.classifiers.sentence_classifier import predict_probabilities

        with_text = []
        for message in messages:
            if (message.get(TEXT) or "").strip():
                with_text.append(message)
                continue
            # Rasa's FallbackClassifier reads `intent`, so an empty message gets an
            # explicit "no intent" and ends in the fallback, not in an exception.
            message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [], add_to_output=True)
        if not with_text:
            return messages
        probabilities = predict_probabilities(
            self.model,
            self._tokenize([m.get(TEXT) for m in with_text]),
            self.tokenizer.pad_token_id,
            self._device,
        )
        ranking_length = self.component_config["ranking_length"]
        for message, row in zip(with_text, probabilities):
            ranking = [
                {INTENT_NAME_KEY: self.labels[index], PREDICTED_CONFIDENCE_KEY: float(row[index])}
                for index in row.argsort()[::-1]
            ]
            message.set(INTENT, ranking[0], add_to_output=True)
            if ranking_length > 0:
                ranking = ranking[:ranking_length]
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    # ------------------------------------------------------------- persistence

    def persist(self) -> None:
        """Writes only what training changed, as safetensors, plus JSON metadata."""
        with self._model_storage.write_to(self._resource) as directory:
            encoder_persistence.save_encoder_model(
                directory,
                self.model,
                self.settings,
                self._backbone_path,
                {
                    "labels": self.labels,
                    "normalize_embeddings": self.model.normalize,
                    "training_report": self.training_report,
                },
            )

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "BertIntentClassifier":
        """Rebuilds the trained classifier; LoRA adapters are merged for fast inference.

        During `rasa train --finetune` the adapters stay separate so training continues.
        """
        component = cls(config, model_storage, resource, execution_context)
        try:
            with model_storage.read_from(resource) as directory:
                component._restore(directory, for_training=execution_context.is_finetuning)
        except ValueError as error:
            if isinstance(error, RasaException):  # InvalidConfigException is a ValueError too
                raise
            logger.debug(f"{cls.__name__} has no trained model in '{resource.name}'; it will not classify.")
        return component

    def _restore(self, directory: Path, for_training: bool) -> None:
        metadata = encoder_persistence.read_compatible_metadata(
            directory, type(self).__name__, self.settings, self._backbone_path
        )
        self.labels = metadata["labels"]
        self.training_report = metadata.get("training_report")
        # Served as trained, whatever config.yml says now (archives from before the key: no).
        self._build_model(for_training, normalize_embeddings=metadata.get("normalize_embeddings", False))
        encoder_persistence.load_encoder_weights(directory, self.model, metadata, for_training)
        self.model.to(self._device)
        self.model.eval()
        if not for_training:
            from lepton_components import torch_encoder

            self.model = torch_encoder.prepare_for_inference(self.model, self.settings, self._device)
