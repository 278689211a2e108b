"""Intents, entities and knowledge-base candidates from one fine-tuned encoder pass per message."""

import hashlib
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

import numpy as np
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.exceptions import InvalidConfigException

from lepton_components import backbone, config_validation, onnx_graph, open_set
from lepton_components.classifiers.bert_intent_classifier import (
    check_intent_config,
    check_intent_labels,
    intent_default_config,
    messages_to_classify,
    write_intents,
)
from lepton_components.cpu_threads import cap_blas_threads
from lepton_components.encoder_component import WARM_UP_TEXT, EncoderComponent
from lepton_components.encoder_config import EncoderConfig
from lepton_components.encoder_persistence import ADAPTER_FILE, ENCODER_FILE
from lepton_components.extractors import entity_windows, tag_decoding
from lepton_components.extractors.bert_entity_extractor import (
    check_entity_config,
    check_finetuning_labels,
    entity_default_config,
    warn_no_entity_annotations,
)
from lepton_components.extractors.bio_alignment import TagScheme
from lepton_components.extractors.entity_windows import Window
from lepton_components.joint.joint_graph import JointGraph, JointPredictions, export_joint_graph
from lepton_components.retrieval.knowledge_base import KnowledgeBaseError, load_knowledge_base
from lepton_components.retrieval.knowledge_search import (
    ANSWER_CANDIDATES,
    KnowledgeBaseInvalid,
    KnowledgeSearch,
    SearchState,
    check_search_config,
    file_sha256,
    search_default_config,
)
from lepton_components.word_pieces import TOKENIZER_FILE, PieceTokenizer

logger = logging.getLogger(__name__)

# Between `knowledge_base_intent` and an answer id in a class name, as in Rasa's retrieval intents.
RETRIEVAL_SEPARATOR = "/"
# Answer classes below this probability leave the candidates to the cosine search.
MIN_ANSWER_PROBABILITY = 0.05
# What the component's part of the archive holds; bump it when that changes (2: the
# stored serving graph and word-piece tokenizer).
ARCHIVE_LAYOUT = 2


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR],
    is_trainable=True,
)
class JointNluComponent(EncoderComponent, IntentClassifier, EntityExtractorMixin):
    """BertIntentClassifier, BertEntityExtractor and FaqRetriever in one encoder pass per message.

    One LoRA adapter (or `training_mode`) and two heads, trained together. Per message it
    reads the `text` with the encoder's own tokenizer, splits it into windows as the
    extractor does, runs them through the encoder once, and writes what the three
    separate components write, in the same shape:

    * `intent` and `intent_ranking`, from the mean-pooled vector of the first window;
    * entities appended to `entities` (Viterbi decoding over all windows, windows merged,
      `overlapping_entities`, `extractor: JointNluComponent`);
    * with `knowledge_base` set, `answer_candidates` from a FAISS index of the knowledge
      base's questions embedded by this same fine-tuned encoder; the query vector is the
      unit-length pooled vector the intent head reads. `reload()` re-embeds an edited
      file without retraining (the admin routes and the operator console call it).

    With `inference_backend: onnxruntime` (the demo's) training also stores the whole pass,
    heads included, as an ONNX graph (int8 with `inference_quantization: int8`) beside the
    word-piece tokenizer, and a server runs that graph with ONNX Runtime and numpy: serving
    never imports torch or `transformers`. The sentence vectors of the training examples
    (open-set score) and of the knowledge base are computed by that same graph.

    Data without entity annotations trains no tag head (a warning says so) and the
    component then extracts no entities; fewer than two intents stop training.
    """

    needs_fast_tokenizer = True

    @classmethod
    def extra_default_config(cls) -> Dict[Text, Any]:
        return {
            **intent_default_config(),
            **entity_default_config(),
            # The knowledge base file (data/faq.yml in the demo), relative to where `rasa`
            # runs; null searches no knowledge base and writes no `answer_candidates`.
            "knowledge_base": None,
            # Each knowledge-base answer's questions train a class `faq/<answer id>` beside
            # the intents, so intents and answers compete in one softmax: a question shaped
            # like the knowledge base's is no longer forced into the nearest intent. The
            # message's intent is then `faq` with the answers' summed probability, and each
            # candidate's score the better of its cosine and its class probability;
            # FaqAnswerPolicy answers (Rasa's retrieval intents work alike). null keeps the
            # classifier to the NLU data's intents.
            "knowledge_base_intent": "faq",
            **search_default_config(),
            # Open-set confidence ("none of these"), written as `open_set_score`: per trained
            # class (intent or answer) the mean of the cosines between a message's sentence
            # vector and the class's centroid and nearest training example, for the best
            # class, or the cosine to the nearest knowledge-base question if higher. Below
            # this threshold the message gets `open_set_intent` (confidence 1.0, the whole
            # ranking) and no answer candidates, whatever the softmax says: it needs no list
            # of out-of-scope topics (CLINC150 in docs/benchmarks.md). null: never rejects.
            "open_set_threshold": None,
            "open_set_intent": "nlu_fallback",
            # Weight of the cosine distance between the adapted and the frozen backbone's
            # sentence vector in the training loss; it keeps the sentence space the
            # knowledge-base search relies on. 0 trains on intents and tags alone.
            "sentence_vector_weight": 0.5,
        }

    @classmethod
    def validate_extra_config(cls, config: Dict[Text, Any], settings: EncoderConfig) -> None:
        name = cls.__name__
        check_intent_config(name, config)
        check_entity_config(name, config, settings.max_length)
        if config["knowledge_base"] is not None:
            config_validation.check_text(name, "knowledge_base", config["knowledge_base"], "data/faq.yml")
        check_search_config(name, config)
        if config["knowledge_base_intent"] is not None:
            config_validation.check_text(name, "knowledge_base_intent", config["knowledge_base_intent"], "faq")
        config_validation.check_number(
            name, "sentence_vector_weight", config["sentence_vector_weight"], 0, 10, example=0.5
        )
        if config["open_set_threshold"] is not None:
            config_validation.check_number(
                name, "open_set_threshold", config["open_set_threshold"], -1, 1, example=0.45
            )
        config_validation.check_text(name, "open_set_intent", config["open_set_intent"], "out_of_scope")

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Retrains when the backbone or the archive layout changes; a knowledge-base edit
        retrains nothing.

        With ARCHIVE_LAYOUT in the fingerprint, `rasa train` (`make run`) after an upgrade that
        changed what the archive holds trains a new model instead of keeping one the new
        code refuses at load.

        The index is rebuilt at load (`rebuild_if_changed`) or by `reload()`, which costs
        one pass over the questions instead of fine-tuning the encoder again. Only with
        `rebuild_if_changed: false`, where the archive's index is all the bot serves, does
        an edited file retrain.
        """
        fingerprint = super().fingerprint_addon(config)
        if fingerprint is None:
            return None
        fingerprint = f"{fingerprint}:layout-{ARCHIVE_LAYOUT}"
        knowledge_base = config.get("knowledge_base")
        if not knowledge_base or config.get("rebuild_if_changed", True):
            return fingerprint
        return f"{fingerprint}:{file_sha256(Path(str(knowledge_base))) or 'missing'}"

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context)
        self.labels: List[Text] = []
        self.scheme: Optional[TagScheme] = None
        # Tag bigram counts of the training data, for Viterbi decoding (tag_decoding).
        self.transition_counts: Optional[List[List[int]]] = None
        self._log_transitions: Optional[np.ndarray] = None
        # Centroids and vectors of the training examples, for `open_set_score`.
        self._open_set: Optional[open_set.PrototypeScore] = None
        # How the trained model pools sentences; a loaded model keeps what it was trained with.
        self._normalize_embeddings = bool(config["normalize_embeddings"])
        # The stored serving graph, when the component serves one (`_serves_stored_graph`).
        self._graph: Optional[JointGraph] = None
        self._search: Optional[KnowledgeSearch] = (
            KnowledgeSearch(type(self).__name__, config, self.encode) if config["knowledge_base"] is not None else None
        )

    @property
    def state(self) -> Optional[SearchState]:
        """The live knowledge-base answers and index (None without `knowledge_base` or before training)."""
        return self._search.state if self._search is not None else None

    # ------------------------------------------------------------------ training

    def _training_examples(self, training_data: TrainingData) -> List[Message]:
        """NLU examples, texts annotated with entities but no intent (tags only), and the
        knowledge base's questions as examples of `knowledge_base_intent`.

        Rasa files a text without an intent under story messages, so `nlu_examples`
        leaves entity-only examples out.
        """
        entity_only = [
            example
            for example in training_data.training_examples
            if example.get(TEXT) and example.get(ENTITIES) and not example.get(INTENT)
        ]
        return training_data.nlu_examples + entity_only + self._knowledge_base_examples(training_data)

    def _is_answer_class(self, label: Text) -> bool:
        """Whether `label` is a knowledge-base answer's class, not an intent of the NLU data."""
        intent = self.component_config["knowledge_base_intent"]
        return intent is not None and label.startswith(f"{intent}{RETRIEVAL_SEPARATOR}")

    def _knowledge_base_examples(self, training_data: TrainingData) -> List[Message]:
        """The knowledge base's questions, each labelled `<knowledge_base_intent>/<answer id>`
        (none without both keys)."""
        intent = self.component_config["knowledge_base_intent"]
        if self._search is None or intent is None:
            return []
        if intent in training_data.intents:
            raise InvalidConfigException(
                f"{type(self).__name__}: `knowledge_base_intent: {intent}` is also an intent of your NLU data, "
                "so its examples and the knowledge base's questions would train one class. Rename that intent, "
                "or set `knowledge_base_intent` to a name your data does not use."
            )
        try:
            answers = load_knowledge_base(self._search.path)
        except KnowledgeBaseError as error:
            raise KnowledgeBaseInvalid(str(error)) from error
        return [
            Message(data={TEXT: question, INTENT: f"{intent}{RETRIEVAL_SEPARATOR}{answer.id}"})
            for answer in answers
            for question in answer.questions
        ]

    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tunes the encoder and both heads on every example, indexes the knowledge base, persists."""
        from lepton_components.joint import joint_training
        from lepton_components.training_data_checks import warn_shared_questions, warn_small_intents

        name = type(self).__name__
        examples = [
            example
            for example in self.filter_trainable_entities(self._training_examples(training_data))
            if (example.get(TEXT) or "").strip()
        ]
        intents = [example.get(INTENT) for example in examples]
        check_intent_labels(name, sorted({intent for intent in intents if intent}))
        warn_small_intents(intent for intent in intents if intent and not self._is_answer_class(intent))
        annotations = [example.get(ENTITIES) or [] for example in examples]
        if self.model is None:
            self.labels = sorted({intent for intent in intents if intent})
            if any(annotations):
                self.scheme = TagScheme.from_annotations(a for message in annotations for a in message)
            else:
                warn_no_entity_annotations(name, "it trains no entity tagger and will extract no entities")
            self._build_model(for_training=True)
        else:
            # `rasa train --finetune`: Rasa's FinetuningValidator has already refused new
            # intents and scaled `epochs` by --epoch-fraction (default_recipe.py ~L465).
            check_finetuning_labels(name, self.scheme, annotations)
        texts = [example.get(TEXT) for example in examples]
        windows = self._windows(texts)
        tags = None
        if self.scheme is not None:
            tags = entity_windows.window_tags(name, texts, annotations, windows, self.scheme)
            self._set_transition_counts(tag_decoding.count_transitions(tags, self.scheme.num_tags))
        label_index = {label: index for index, label in enumerate(self.labels)}
        report = joint_training.fine_tune(
            self.model,
            joint_training.JointExamples(
                token_ids=[window.input_ids for window in windows],
                message_of_window=[window.message for window in windows],
                intents=[label_index[intent] if intent else joint_training.NO_INTENT for intent in intents],
                tags=tags,
            ),
            self.settings,
            self.pieces.pad_token_id,
            self._device,
            self.settings.epochs_for(len(examples)),
            head_warmup_epochs=self.component_config["head_warmup_epochs"],
            sentence_vector_weight=float(self.component_config["sentence_vector_weight"]),
        )
        self.training_report = report.__dict__
        logger.info(f"{name} trained: {self.training_report}")
        self._persist_model()
        self._start_serving()
        labelled = [(text, intent) for text, intent in zip(texts, intents) if intent]
        self._open_set = open_set.PrototypeScore.fit(
            self.encode([text for text, _ in labelled]), np.array([intent for _, intent in labelled]), keep_examples=True
        )
        if self._search is not None:
            state = self._search.build()
            warn_shared_questions(
                [
                    (example.get(TEXT), example.get(INTENT))
                    for example in examples
                    if example.get(INTENT) and not self._is_answer_class(example.get(INTENT))
                ],
                [(question, answer.id) for answer in state.answers for question in answer.questions],
                str(self.component_config["knowledge_base"]),
            )
        self._persist_scores()
        return self._resource

    def _serves_stored_graph(self) -> bool:
        """ONNX Runtime serves on the CPU; `device: cuda` serves with PyTorch on the GPU."""
        return self.settings.inference_backend == "onnxruntime" and self.settings.device != "cuda"

    def _start_serving(self) -> None:
        """After training: merge LoRA, and with a stored graph export it, store it and serve it,
        so the training process scores and indexes with exactly what a server will run."""
        from lepton_components import torch_encoder

        self.model.encoder = torch_encoder.merged_for_serving(self.model.encoder)
        self.model.eval()
        if not self._serves_stored_graph():
            return
        graph = export_joint_graph(self.model, int8=self.settings.inference_quantization == "int8")
        with self._model_storage.write_to(self._resource) as directory:
            onnx_graph.save_graph(graph, Path(directory))
        self._graph = JointGraph(graph, self.pieces.pad_token_id, self.settings.training_threads)

    def _set_transition_counts(self, counts: Optional[List[List[int]]]) -> None:
        """Keeps the counts for persistence and their log-probabilities for decoding."""
        self.transition_counts = counts
        self._log_transitions = entity_windows.log_transitions_of(counts, self.scheme)

    def _new_model(self, encoder: Any) -> Any:
        from lepton_components.joint.joint_model import JointModel

        return JointModel(
            encoder,
            len(self.labels),
            self.scheme.num_tags if self.scheme is not None else 0,
            self.component_config["head_dropout"],
            normalize=self._normalize_embeddings,
        )

    def _windows(self, texts: List[Text], max_windows: Optional[int] = None) -> List[Window]:
        return entity_windows.split_windows(self.pieces, texts, max_windows)

    # --------------------------------------------------------------- inference

    @property
    def _is_trained(self) -> bool:
        return self._graph is not None or self.model is not None

    def _predict(self, token_ids: Sequence[List[int]]) -> JointPredictions:
        """One pass over windows: the stored graph, or PyTorch without one."""
        if self._graph is not None:
            return self._graph.predict(token_ids)
        from lepton_components.joint.joint_model import predict

        return predict(self.model, token_ids, self.pieces.pad_token_id, self._device)

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets `intent`, `intent_ranking`, appends `entities`, sets `answer_candidates`: one pass."""
        if not self._is_trained:
            return messages
        with_text = messages_to_classify(messages)
        if not with_text:
            return messages
        texts = [message.get(TEXT) for message in with_text]
        windows = self._windows(texts, self.component_config["max_windows"])
        predictions = self._predict([window.input_ids for window in windows])
        first_window: Dict[int, int] = {}
        for position, window in enumerate(windows):
            first_window.setdefault(window.message, position)
        rows = [first_window[index] for index in range(len(with_text))]
        intent_labels, intent_probabilities, answer_probabilities = self._split_answer_classes(
            predictions.intent_probabilities[rows]
        )
        for message, probabilities in zip(with_text, intent_probabilities):
            write_intents(message, probabilities, intent_labels, self.component_config["ranking_length"])
        if predictions.tag_probabilities is not None:
            found = entity_windows.decode_entities(
                texts,
                windows,
                predictions.tag_probabilities,
                self._log_transitions,
                self.scheme,
                self.component_config["confidence_threshold"],
            )
            for message, entities in zip(with_text, found):
                entity_windows.append_entities(
                    message, self.add_extractor_name(entities), self.component_config["overlapping_entities"]
                )
        vectors = predictions.sentence_vectors[rows]
        found_candidates = self._search.candidates(vectors) if self.state is not None else None
        familiarity = self._familiarity(vectors, found_candidates)
        for index, message in enumerate(with_text):
            message.set(open_set.OPEN_SET_SCORE, round(float(familiarity[index]), 4), add_to_output=True)
            unfamiliar = self._is_unfamiliar(float(familiarity[index]))
            if unfamiliar:
                self._write_open_set_intent(message)
            if found_candidates is not None:
                candidates = (
                    []
                    if unfamiliar
                    else self._search.with_classifier_scores(found_candidates[index], answer_probabilities[index])
                )
                message.set(ANSWER_CANDIDATES, candidates, add_to_output=True)
        return messages

    def _familiarity(
        self, vectors: np.ndarray, candidates: Optional[List[List[Dict[Text, Any]]]]
    ) -> np.ndarray:
        """Per message, the better of the trained classes' score (`PrototypeScore`) and the
        cosine to the nearest knowledge-base question: an answer added after training has no
        class, but its questions are in the index."""
        scores = self._open_set.score(vectors)
        if candidates is not None:
            nearest = [max((candidate["score"] for candidate in row), default=-1.0) for row in candidates]
            scores = np.maximum(scores, np.asarray(nearest, dtype=np.float32))
        return scores

    def _is_unfamiliar(self, score: float) -> bool:
        threshold = self.component_config["open_set_threshold"]
        return threshold is not None and score < threshold

    def _write_open_set_intent(self, message: Message) -> None:
        """A message like nothing trained: `open_set_intent` is the whole ranking, and the
        softmax's ranking moves to `open_set_rejected_ranking` for diagnosis. Left in the
        ranking, a runner-up close to 1.0 would make FallbackClassifier call the rejection
        ambiguous and ask the customer to rephrase an off-topic question."""
        rejected = {INTENT_NAME_KEY: self.component_config["open_set_intent"], PREDICTED_CONFIDENCE_KEY: 1.0}
        message.set(open_set.OPEN_SET_REJECTED_RANKING, message.get(INTENT_RANKING_KEY) or [], add_to_output=True)
        message.set(INTENT, rejected, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [rejected], add_to_output=True)

    def _split_answer_classes(
        self, probabilities: np.ndarray
    ) -> Tuple[List[Text], np.ndarray, List[Dict[Text, float]]]:
        """Per message: the intents' probabilities with the answer classes summed into
        `knowledge_base_intent`, and each answer's own probability by answer id.

        Returns (intent labels, one row of intent probabilities per message, one
        {answer id: probability} per message, classes under MIN_ANSWER_PROBABILITY left out).
        """
        answer_columns = [index for index, label in enumerate(self.labels) if self._is_answer_class(label)]
        if not answer_columns:
            return self.labels, probabilities, [{} for _ in probabilities]
        intent_columns = [index for index in range(len(self.labels)) if index not in set(answer_columns)]
        intent = self.component_config["knowledge_base_intent"]
        prefix = f"{intent}{RETRIEVAL_SEPARATOR}"
        intent_labels = [self.labels[index] for index in intent_columns] + [intent]
        summed = np.concatenate(
            [probabilities[:, intent_columns], probabilities[:, answer_columns].sum(axis=1, keepdims=True)], axis=1
        )
        answer_ids = [self.labels[index][len(prefix):] for index in answer_columns]
        by_answer = [
            {answer_id: float(p) for answer_id, p in zip(answer_ids, row[answer_columns]) if p >= MIN_ANSWER_PROBABILITY}
            for row in probabilities
        ]
        return intent_labels, summed, by_answer

    def encode(self, texts: Sequence[Text]) -> np.ndarray:
        """Unit-length sentence vectors of the fine-tuned encoder, from each text's first window.

        The vectors the knowledge-base index holds: the same pooled vector `process`
        searches with, so a question matches itself at a cosine of 1.
        """
        return self._predict(self.pieces.first_window_ids(texts)).sentence_vectors

    def _get_encoder(self) -> "JointNluComponent":
        """The sentence encoder (`encode(texts)`), as FaqRetriever's, for the operator console."""
        return self

    def search(self, texts: List[Text]) -> List[List[Dict[Text, Any]]]:
        """Best knowledge-base answers per text, as `answer_candidates` lists them."""
        return self._search.candidates(self.encode(texts))

    def reload(self) -> Dict[Text, Any]:
        """Re-embeds the knowledge base file with this encoder and swaps the new index in.

        The old index keeps serving until the swap and stays in place if the file is invalid
        (KnowledgeBaseInvalid is raised). No retraining: the encoder stays as trained.
        """
        if self._search is None or not self._is_trained:
            raise KnowledgeBaseInvalid(
                f"{type(self).__name__} has no knowledge base to reload: it needs `knowledge_base: data/faq.yml` "
                "(your file) in its config.yml entry and a model trained with it (`rasa train`)."
            )
        return self._search.reload()

    def _warm_up(self) -> None:
        self.process([Message(data={TEXT: WARM_UP_TEXT})])

    # ------------------------------------------------------------- persistence

    def _encoder_fingerprint(self, directory: Path) -> Text:
        """The backbone's fingerprint plus the hash of what training changed in the encoder.

        Stored with the index and checked at load: vectors of another adapter live in
        another space, so the index would answer at random.
        """
        parts = [backbone.backbone_fingerprint(self._backbone_path)]
        trained = {"lora": ADAPTER_FILE, "full": ENCODER_FILE}.get(self.settings.training_mode)
        if trained is not None:
            parts.append(hashlib.sha256((directory / trained).read_bytes()).hexdigest())
        return "+".join(parts)

    def persist(self) -> None:
        """Everything `train` writes: the model, then the scores built with it."""
        self._persist_model()
        self._persist_scores()

    def _persist_model(self) -> None:
        """Weights and metadata (EncoderComponent) and the word-piece tokenizer as JSON."""
        super().persist()
        with self._model_storage.write_to(self._resource) as directory:
            (Path(directory) / TOKENIZER_FILE).write_text(self.pieces.to_json(), encoding="utf-8")

    def _persist_scores(self) -> None:
        """The class centroids and examples as safetensors, then the index as FAISS bytes and
        its answers as JSON."""
        with self._model_storage.write_to(self._resource) as directory:
            self._open_set.save(directory)
            if self.state is not None:
                self._search.write(directory, self._encoder_fingerprint(Path(directory)))

    def _restore(self, directory: Path, for_training: bool) -> None:
        self._open_set = open_set.PrototypeScore.load(directory)
        super()._restore(directory, for_training)
        if self._search is None:
            return
        self._search.read(
            directory,
            self._encoder_fingerprint(directory),
            "The archive's adapter or the backbone changed since the index was built: retrain with "
            "`rasa train --force`, or load the archive it came from.",
        )
        if not for_training:
            self._search.rebuild_if_changed()

    def _open_serving_graph(self, directory: Path) -> bool:
        """The stored graph and tokenizer, when this config serves them: no backbone, no torch."""
        if not self._serves_stored_graph():
            return False
        graph = onnx_graph.load_graph(directory)
        self.pieces = PieceTokenizer.from_json(
            (directory / TOKENIZER_FILE).read_text(encoding="utf-8"),
            self.settings.max_length,
            self.component_config["window_overlap"],
        )
        cap_blas_threads(self.settings.num_threads)
        self._graph = JointGraph(graph, self.pieces.pad_token_id, self.settings.num_threads)
        if self._graph.has_tagger != (self.scheme is not None):
            raise ValueError("the serving graph and metadata.json disagree on whether there is a tag head")
        return True

    def _saved_metadata(self) -> Dict[Text, Any]:
        return {
            "labels": self.labels,
            "normalize_embeddings": self._normalize_embeddings,
            "entity_labels": self.scheme.to_json() if self.scheme is not None else None,
            "tags": self.scheme.tag_names if self.scheme is not None else None,
            "tag_transitions": self.transition_counts,
            "training_report": self.training_report,
        }

    def _apply_saved_metadata(self, metadata: Dict[Text, Any]) -> None:
        self.labels = metadata["labels"]
        self._normalize_embeddings = bool(metadata["normalize_embeddings"])
        if metadata["entity_labels"] is not None:
            self.scheme = TagScheme.from_json(metadata["entity_labels"])
            self._set_transition_counts(metadata["tag_transitions"])
