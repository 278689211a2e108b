"""Intent classifier that fine-tunes a BERT-family encoder on the bot's own intents."""

import logging
from typing import Any, Dict, List, Sequence, Text

import numpy as np
from rasa.engine.graph import ExecutionContext
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

from lepton_components import config_validation
from lepton_components.encoder_component import WARM_UP_TEXT, EncoderComponent
from lepton_components.encoder_config import EncoderConfig

logger = logging.getLogger(__name__)


class IntentTrainingDataError(RasaException):
    """The NLU data cannot train an intent classifier."""


def intent_default_config() -> Dict[Text, Any]:
    """The intent head's keys and defaults, shared with JointNluComponent."""
    return {
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


def check_intent_config(component: Text, config: Dict[Text, Any]) -> None:
    """Checks the keys of `intent_default_config`; raises InvalidConfigException naming the fix."""
    config_validation.check_number(component, "ranking_length", config["ranking_length"], 0, integer=True, example=10)
    config_validation.check_number(component, "head_dropout", config["head_dropout"], 0, 0.9, example=0.1)
    config_validation.check_number(
        component, "head_warmup_epochs", config["head_warmup_epochs"], 0, integer=True, example=20
    )
    config_validation.check_choice(component, "normalize_embeddings", config["normalize_embeddings"], (True, False))


def check_intent_labels(component: Text, labels: List[Text]) -> None:
    """Refuses training data with fewer than two intents, with an example of the fix."""
    if len(labels) >= 2:
        return
    found = f"only '{labels[0]}'" if labels else "none"
    raise IntentTrainingDataError(
        f"{component} needs training examples for at least two intents, "
        f"found {found}. Add examples for more intents to your NLU data "
        f"(e.g. data/nlu.yml):\n"
        "  nlu:\n  - intent: greet\n    examples: |\n      - hello\n"
        "  - intent: goodbye\n    examples: |\n      - bye\n"
        f"or remove {component} from the pipeline in config.yml."
    )


def write_no_intent(message: Message) -> None:
    """An explicit "no intent" for a message without text.

    Rasa's FallbackClassifier reads `intent`, so an empty message ends in the fallback,
    not in an exception.
    """
    message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [], add_to_output=True)


def messages_to_classify(messages: List[Message]) -> List[Message]:
    """The messages with text; each of the others gets an explicit "no intent" (`write_no_intent`)."""
    with_text = []
    for message in messages:
        if (message.get(TEXT) or "").strip():
            with_text.append(message)
        else:
            write_no_intent(message)
    return with_text


def write_intents(message: Message, probabilities: Sequence[float], labels: List[Text], ranking_length: int) -> None:
    """Sets `intent` (the best) and `intent_ranking` (best first, `ranking_length` long; 0: all)
    exactly as Rasa's own classifiers do, so FallbackClassifier and the policies work unchanged."""
    row = np.asarray(probabilities)
    ranking = [
        {INTENT_NAME_KEY: labels[index], PREDICTED_CONFIDENCE_KEY: float(row[index])}
        for index in row.argsort()[::-1]
    ]
    message.set(INTENT, ranking[0], add_to_output=True)
    if ranking_length > 0:
        ranking = ranking[:ranking_length]
    message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class BertIntentClassifier(EncoderComponent, IntentClassifier):
    """Classifies intents with a fine-tuned transformer encoder and a linear head.

    Reads the message `text` (no tokenizer or featurizer output is needed: the encoder
    brings its own word-piece tokenizer). Writes `intent` and `intent_ranking` exactly as
    Rasa's own classifiers do, so FallbackClassifier and the policies work unchanged.
    """

    @classmethod
    def extra_default_config(cls) -> Dict[Text, Any]:
        return intent_default_config()

    @classmethod
    def validate_extra_config(cls, config: Dict[Text, Any], settings: EncoderConfig) -> None:
        check_intent_config(cls.__name__, config)

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context)
        self.labels: List[Text] = []
        # How the trained model pools sentences; a loaded model keeps what it was trained with.
        self._normalize_embeddings = bool(config["normalize_embeddings"])

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
        check_intent_labels(type(self).__name__, labels)
        warn_small_intents(example.get(INTENT) for example in examples)
        epochs = self.settings.epochs_for(len(examples))
        if self.model is None:
            self.labels = labels
            self._build_model(for_training=True)
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
        self._serve_trained_model()
        return self._resource

    def _new_model(self, encoder: Any) -> Any:
        from lepton_components.classifiers.sentence_classifier import SentenceClassifier

        return SentenceClassifier(
            encoder, len(self.labels), self.component_config["head_dropout"], normalize=self._normalize_embeddings
        )

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

        with_text = messages_to_classify(messages)
        if not with_text:
            return messages
        probabilities = predict_probabilities(
            self.model,
            self._tokenize([m.get(TEXT) for m in with_text]),
            self.tokenizer.pad_token_id,
            self._device,
        )
        for message, row in zip(with_text, probabilities):
            write_intents(message, row, self.labels, self.component_config["ranking_length"])
        return messages

    def _warm_up(self) -> None:
        self.process([Message(data={TEXT: WARM_UP_TEXT})])

    # ------------------------------------------------------------- persistence

    def _saved_metadata(self) -> Dict[Text, Any]:
        return {
            "labels": self.labels,
            "normalize_embeddings": self.model.normalize,
            "training_report": self.training_report,
        }

    def _apply_saved_metadata(self, metadata: Dict[Text, Any]) -> None:
        self.labels = metadata["labels"]
        # Served as trained, whatever config.yml says now (archives from before the key: no).
        self._normalize_embeddings = bool(metadata.get("normalize_embeddings", False))
