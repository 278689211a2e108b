"""Entity extractor that fine-tunes a BERT-family encoder to tag word pieces (BIO)."""

import logging
from typing import Any, Dict, List, NamedTuple, Optional, Text, Tuple

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
from lepton_components.extractors import bio_alignment, tag_decoding
from lepton_components.extractors.bio_alignment import EntityLabel, Span, TagScheme

logger = logging.getLogger(__name__)

# Misaligned annotations named in the training warning; the rest are only counted.
MISALIGNED_EXAMPLES_SHOWN = 5


class EntityTrainingDataError(RasaException):
    """The NLU data cannot (further) train the entity extractor."""


class _Window(NamedTuple):
    """At most ``max_length`` word pieces of one message, with their character spans."""

    message: int
    input_ids: List[int]
    spans: List[Optional[Span]]  # None for special tokens


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

    @classmethod
    def validate_extra_config(cls, config: Dict[Text, Any], settings: EncoderConfig) -> None:
        name = cls.__name__
        config_validation.check_number(name, "head_dropout", config["head_dropout"], 0, 0.9, example=0.1)
        config_validation.check_number(
            name, "confidence_threshold", config["confidence_threshold"], 0, 1, example=0.5
        )
        config_validation.check_number(
            name, "window_overlap", config["window_overlap"], 0, settings.max_length // 2,
            integer=True, example=settings.max_length // 4,
        )
        config_validation.check_number(
            name, "max_windows", config["max_windows"], 1, 10_000, integer=True, example=8
        )
        config_validation.check_choice(name, "overlapping_entities", config["overlapping_entities"], ("skip", "keep"))

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
            rasa.shared.utils.io.raise_warning(
                f"{type(self).__name__} found no entity annotations in the NLU training data, "
                f"so it trains nothing and will extract no entities. Annotate entities in "
                f"your examples, e.g. `- where is [LP-123456](order_number)`, or remove "
                f"{type(self).__name__} from the pipeline in config.yml."
            )
            return self._resource
        epochs = self.settings.epochs
        if self.model is None:
            self.scheme = TagScheme.from_annotations(a for message in annotations for a in message)
            self._build_model(for_training=True)
        else:
            # `rasa train --finetune`: Rasa has already scaled `epochs` by --epoch-fraction
            # (engine/recipes/default_recipe.py ~L465).
            self._check_finetuning_labels(annotations)
        texts = [example.get(TEXT) for example in examples]
        windows = self._windows(texts)
        tags = self._window_tags(texts, annotations, windows)
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
        self._log_transitions = tag_decoding.transition_log_probabilities(
            counts or np.zeros((self.scheme.num_tags + 1, self.scheme.num_tags)), self.scheme.num_tags
        )

    def _check_finetuning_labels(self, annotations: List[List[Dict[Text, Any]]]) -> None:
        new = sorted(
            {EntityLabel.of(a) for message in annotations for a in message} - set(self.scheme.labels),
            key=lambda label: label.name,
        )
        if new:
            raise EntityTrainingDataError(
                f"{type(self).__name__} cannot learn new entities, roles or groups while "
                f"fine-tuning (`rasa train --finetune`): {', '.join(label.name for label in new)}. "
                f"Train from scratch with `rasa train` to add them."
            )

    def _window_tags(
        self,
        texts: List[Text],
        annotations: List[List[Dict[Text, Any]]],
        windows: List[_Window],
    ) -> List[List[int]]:
        """Tag ids for every window, aligned once per message over all its pieces."""
        spans_by_message: Dict[int, List[List[Optional[Span]]]] = {}
        for window in windows:
            spans_by_message.setdefault(window.message, []).append(window.spans)
        tag_by_span: List[Dict[Span, int]] = []
        misaligned: List[Tuple[Text, bio_alignment.Misalignment]] = []
        for message, text in enumerate(texts):
            pieces = bio_alignment.unique_piece_spans(spans_by_message[message])
            alignment = bio_alignment.align_annotations(text, pieces, annotations[message], self.scheme)
            tag_by_span.append(dict(zip(pieces, alignment.tags)))
            misaligned.extend((text, problem) for problem in alignment.misaligned)
        if misaligned:
            self._warn_misaligned(misaligned)
        return [
            [
                bio_alignment.IGNORE_INDEX if span is None else tag_by_span[window.message][span]
                for span in window.spans
            ]
            for window in windows
        ]

    def _warn_misaligned(self, misaligned: List[Tuple[Text, bio_alignment.Misalignment]]) -> None:
        lines = []
        for text, (annotation, reason) in misaligned[:MISALIGNED_EXAMPLES_SHOWN]:
            value = annotation.get("value", text[annotation["start"] : annotation["end"]])
            lines.append(f"  - '{value}' ({annotation['entity']}) in '{text}': {reason}")
        if len(misaligned) > MISALIGNED_EXAMPLES_SHOWN:
            lines.append(f"  ... and {len(misaligned) - MISALIGNED_EXAMPLES_SHOWN} more")
        rasa.shared.utils.io.raise_warning(
            f"{type(self).__name__} left {len(misaligned)} entity annotation(s) out of "
            f"training because they do not start and end on word-piece boundaries of the "
            f"backbone's tokenizer (or overlap another annotation):\n" + "\n".join(lines) + "\n"
            "Move the annotation to cover whole word pieces, e.g. annotate "
            "`[LP-123456](order_number)` rather than part of it."
        )

    def _new_model(self, encoder: Any) -> Any:
        from lepton_components.extractors.token_tagger import TokenTagger

        return TokenTagger(encoder, self.scheme.num_tags, self.component_config["head_dropout"])

    def _windows(self, texts: List[Text], max_windows: Optional[int] = None) -> List[_Window]:
        """Overlapping windows of at most ``max_length`` pieces (the tokenizer's overflow).

        With `max_windows`, only the first that many windows of each message.
        """
        encoding = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.settings.max_length,
            stride=self.component_config["window_overlap"],
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        windows: List[_Window] = []
        per_message: Dict[int, int] = {}
        for message, input_ids, offsets, special in zip(
            encoding["overflow_to_sample_mapping"],
            encoding["input_ids"],
            encoding["offset_mapping"],
            encoding["special_tokens_mask"],
        ):
            per_message[message] = per_message.get(message, 0) + 1
            if max_windows is not None and per_message[message] > max_windows:
                continue
            spans = [
                None if is_special or start >= end else (start, end)
                for (start, end), is_special in zip(offsets, special)
            ]
            windows.append(_Window(message, input_ids, spans))
        return windows

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
        pieces_by_message: Dict[int, List[List[bio_alignment.PiecePrediction]]] = {}
        for window, window_probabilities in zip(windows, probabilities):
            real = [position for position, span in enumerate(window.spans) if span is not None]
            piece_probabilities = window_probabilities[real]
            tag_ids = tag_decoding.viterbi(piece_probabilities, self._log_transitions)
            pieces_by_message.setdefault(window.message, []).append(
                [
                    bio_alignment.PiecePrediction(
                        window.spans[position][0], window.spans[position][1], tag_id, float(row[tag_id])
                    )
                    for position, tag_id, row in zip(real, tag_ids, piece_probabilities)
                ]
            )
        threshold = self.component_config["confidence_threshold"]
        for index, message in enumerate(with_text):
            pieces = bio_alignment.merge_windows(pieces_by_message[index])
            entities = [
                entity
                for entity in bio_alignment.decode_entities(texts[index], pieces, self.scheme)
                if entity["confidence_entity"] >= threshold
            ]
            existing = message.get(ENTITIES, [])
            if self.component_config["overlapping_entities"] == "skip":
                entities = bio_alignment.drop_overlapping(entities, existing)
            message.set(ENTITIES, existing + self.add_extractor_name(entities), add_to_output=True)
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
