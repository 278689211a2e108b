"""Entity extractor that fine-tunes a BERT-family encoder to tag word pieces (BIO)."""

import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components import config_validation
from lepton_components.encoder_component import WARM_UP_TEXT, EncoderComponent
from lepton_components.encoder_config import EncoderConfig
from lepton_components.extractors import entity_windows, tag_decoding
from lepton_components.extractors.bio_alignment import EntityLabel, TagScheme
from lepton_components.extractors.entity_windows import Window

logger = logging.getLogger(__name__)


class EntityTrainingDataError(RasaException):
    """The NLU data cannot (further) train the entity extractor."""


def entity_default_config() -> Dict[Text, Any]:
    """How entities are read from tag scores; keys and defaults shared with JointNluComponent."""
    return {
        # Entities whose confidence (the lowest tag probability among their word
        # pieces) is below this are dropped; 0 keeps every predicted entity.
        "confidence_threshold": 0.0,
        # Word pieces shared by consecutive windows when a message is longer than
        # `max_length`; at most half of `max_length`.
        "window_overlap": 16,
        # Windows read per message at prediction time; the rest of a longer message is
        # not searched for entities. Caps the work one message can cause (at 1 MiB of
        # text, windowing made about 5,000 encoder passes). 8 windows of 64 pieces cover
        # about 2,000 characters, the channels' message limit.
        "max_windows": 8,
        # "skip": drop a predicted entity whose characters overlap an entity an
        # earlier pipeline component already found (earlier extractors win);
        # "keep": add it anyway, so both appear in `entities`.
        "overlapping_entities": "skip",
    }


def check_entity_config(component: Text, config: Dict[Text, Any], max_length: int) -> None:
    """Checks the keys of `entity_default_config`; raises InvalidConfigException naming the fix."""
    config_validation.check_number(
        component, "confidence_threshold", config["confidence_threshold"], 0, 1, example=0.5
    )
    config_validation.check_number(
        component, "window_overlap", config["window_overlap"], 0, max_length // 2,
        integer=True, example=max_length // 4,
    )
    config_validation.check_number(
        component, "max_windows", config["max_windows"], 1, 10_000, integer=True, example=8
    )
    config_validation.check_choice(
        component, "overlapping_entities", config["overlapping_entities"], ("skip", "keep")
    )


def warn_no_entity_annotations(component: Text, consequence: Text) -> None:
    """Training data without a single entity annotation: say what that means and how to fix it."""
    rasa.shared.utils.io.raise_warning(
        f"{component} found no entity annotations in the NLU training data, "
        f"so {consequence}. Annotate entities in "
        f"your examples, e.g. `- where is [LP-123456](order_number)`, or remove "
        f"{component} from the pipeline in config.yml."
    )


def check_finetuning_labels(component: Text, scheme: Optional[TagScheme], annotations: List[List[Dict[Text, Any]]]) -> None:
    """`rasa train --finetune` keeps the tag layer's size: refuses entities, roles or groups it lacks."""
    known = set(scheme.labels) if scheme is not None else set()
    new = sorted(
        {EntityLabel.of(a) for message in annotations for a in message} - known,
        key=lambda label: label.name,
    )
    if new:
        raise EntityTrainingDataError(
            f"{component} cannot learn new entities, roles or groups while "
            f"fine-tuning (`rasa train --finetune`): {', '.join(label.name for label in new)}. "
            f"Train from scratch with `rasa train` to add them."
        )


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class BertEntityExtractor(EncoderComponent, EntityExtractorMixin):
    """Extracts entities by tagging every word piece with a fine-tuned transformer encoder.

    Reads only the message `text` (the encoder brings its own word-piece tokenizer, so any
    Rasa tokenizer may precede it). Appends to `entities`, never replacing entities other
    extractors (e.g. RegexEntityExtractor) found: each has exact character `start`/`end`,
    `value` (= text[start:end]), `entity`, `confidence_entity`, `extractor` and, when the
    training data had them, `role` and `group`.

    Messages longer than `max_length` word pieces are not truncated: they are split into
    windows that overlap by `window_overlap` pieces, in training and in prediction, so
    entities near the end of a long message are learned and found.

    Training data without any entity annotation trains nothing: a warning says so,
    nothing is persisted and `process` leaves messages untouched. Failing instead would
    make a pipeline that lists this extractor "just in case" unusable before the first
    entity is annotated, while training an all-`O` tagger would cost minutes for a model
    that can only ever say "no entity".
    """

    needs_fast_tokenizer = True

    @classmethod
    def extra_default_config(cls) -> Dict[Text, Any]:
        return {
            # Dropout before the tagging layer.
            "head_dropout": 0.1,
            **entity_default_config(),
        }

    @classmethod
    def validate_extra_config(cls, config: Dict[Text, Any], settings: EncoderConfig) -> None:
        name = cls.__name__
        config_validation.check_number(name, "head_dropout", config["head_dropout"], 0, 0.9, example=0.1)
        check_entity_config(name, config, settings.max_length)

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context)
        self.scheme: Optional[TagScheme] = None
        # Tag bigram counts of the training data, for Viterbi decoding (tag_decoding).
        self.transition_counts: Optional[List[List[int]]] = None
        self._log_transitions: Optional[np.ndarray] = None

    # ------------------------------------------------------------------ training

    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tunes on every NLU example (with or without entities) and persists the result."""
        from lepton_components.extractors import token_tagger

        examples = [
            example
            for example in self.filter_trainable_entities(training_data.nlu_examples)
            if (example.get(TEXT) or "").strip()
        ]
        annotations = [example.get(ENTITIES) or [] for example in examples]
        if not any(annotations):
            warn_no_entity_annotations(type(self).__name__, "it trains nothing and will extract no entities")
            return self._resource
        epochs = self.settings.epochs_for(len(examples))
        if self.model is None:
            self.scheme = TagScheme.from_annotations(a for message in annotations for a in message)
            self._build_model(for_training=True)
        else:
            # `rasa train --finetune`: Rasa has already scaled `epochs` by --epoch-fraction
            # (engine/recipes/default_recipe.py ~L465).
            check_finetuning_labels(type(self).__name__, self.scheme, annotations)
        texts = [example.get(TEXT) for example in examples]
        windows = self._windows(texts)
        tags = entity_windows.window_tags(type(self).__name__, texts, annotations, windows, self.scheme)
        self._set_transition_counts(tag_decoding.count_transitions(tags, self.scheme.num_tags))
        report = token_tagger.fine_tune(
            self.model,
            [window.input_ids for window in windows],
            tags,
            [window.message for window in windows],
            self.settings,
            self.tokenizer.pad_token_id,
            self._device,
            epochs,
        )
        self.training_report = report.__dict__
        logger.info(f"{type(self).__name__} trained: {self.training_report}")
        self._serve_trained_model()
        return self._resource

    def _set_transition_counts(self, counts: Optional[List[List[int]]]) -> None:
        """Keeps the counts for persistence and their log-probabilities for decoding."""
        self.transition_counts = counts
        self._log_transitions = entity_windows.log_transitions_of(counts, self.scheme)

    def _new_model(self, encoder: Any) -> Any:
        from lepton_components.extractors.token_tagger import TokenTagger

        return TokenTagger(encoder, self.scheme.num_tags, self.component_config["head_dropout"])

    def _windows(self, texts: List[Text], max_windows: Optional[int] = None) -> List[Window]:
        """Overlapping windows of at most ``max_length`` pieces; with `max_windows`, only the first ones."""
        return entity_windows.split_windows(self.pieces, texts, max_windows)

    # --------------------------------------------------------------- inference

    def process(self, messages: List[Message]) -> List[Message]:
        """Appends the entities found in each message's text to its `entities`."""
        if self.model is None:
            return messages
        from lepton_components.extractors.token_tagger import predict_tag_probabilities

        with_text = [message for message in messages if (message.get(TEXT) or "").strip()]
        if not with_text:
            return messages
        texts = [message.get(TEXT) for message in with_text]
        windows = self._windows(texts, self.component_config["max_windows"])
        probabilities = predict_tag_probabilities(
            self.model, [window.input_ids for window in windows], self.tokenizer.pad_token_id, self._device
        )
        found = entity_windows.decode_entities(
            texts, windows, probabilities, self._log_transitions, self.scheme, self.component_config["confidence_threshold"]
        )
        for message, entities in zip(with_text, found):
            entity_windows.append_entities(
                message, self.add_extractor_name(entities), self.component_config["overlapping_entities"]
            )
        return messages

    def _warm_up(self) -> None:
        self.process([Message(data={TEXT: WARM_UP_TEXT})])

    # ------------------------------------------------------------- persistence

    def _saved_metadata(self) -> Dict[Text, Any]:
        return {
            "entity_labels": self.scheme.to_json(),
            "tags": self.scheme.tag_names,
            "training_report": self.training_report,
            "tag_transitions": self.transition_counts,
        }

    def _apply_saved_metadata(self, metadata: Dict[Text, Any]) -> None:
        self.scheme = TagScheme.from_json(metadata["entity_labels"])
        self._set_transition_counts(metadata.get("tag_transitions"))
