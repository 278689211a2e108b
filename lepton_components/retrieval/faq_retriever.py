"""Finds approved answers for a message in the FAQ knowledge base with a FAISS index."""

import dataclasses
import hashlib
import json
import threading
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException, RasaException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components import backbone, config_validation
from lepton_components.retrieval.knowledge_base import (
    Answer,
    KnowledgeBaseError,
    answer_from_dict,
    load_knowledge_base,
    question_rows,
)

logger = logging.getLogger(__name__)

ANSWER_CANDIDATES = "answer_candidates"
INDEX_FILE = "index.faiss"
METADATA_FILE = "knowledge_base.json"
FORMAT_VERSION = 1
INDEX_TYPES = ("flat", "hnsw", "ivf")
# Question hits fetched per requested answer: several variants of one answer often
# crowd the top, and they collapse to one candidate.
HITS_PER_ANSWER = 8


class KnowledgeBaseInvalid(RasaException):
    """The knowledge base file cannot be used; the message says where and how to fix it."""


@dataclasses.dataclass(frozen=True)
class SearchState:
    """Everything a search reads, swapped as one object so a live reload is atomic."""

    answers: List[Answer]
    questions: List[Text]
    owners: List[int]
    index: Any
    version: int
    knowledge_base_sha256: Text

    def summary(self) -> Dict[Text, Any]:
        return {
            "version": self.version,
            "answers": len(self.answers),
            "questions": len(self.questions),
            "knowledge_base_sha256": self.knowledge_base_sha256,
        }


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class FaqRetriever(GraphComponent):
    """Adds the approved answers closest to the message to the parse result.

    Reads the message `text`; writes `answer_candidates`: up to `top_k` dicts with the
    answer `id`, cosine `score`, the `question` variant that matched and the `answer`
    template (with its channel variants and placeholder defaults), best first. Answers
    come from the knowledge base file, so questions nobody wrote as training examples are
    still answered; dialogue policies decide whether a candidate is good enough.
    """

    @staticmethod
    def required_packages() -> List[Text]:
        # Rasa reads these both as import names and, for fingerprints, as distribution
        # names; faiss fails the latter (its distribution is faiss-cpu), so it is left out.
        return ["sentence_transformers"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # The knowledge base file, relative to where `rasa` runs.
            "knowledge_base": "data/faq.yml",
            # Local sentence-transformers or Hugging Face folder; null uses the
            # packaged all-MiniLM-L6-v2.
            "model_name_or_path": None,
            # "flat": exact search; "hnsw" or "ivf": approximate, for large bases.
            "index_type": "flat",
            "hnsw_m": 32,
            "hnsw_ef_search": 64,
            # IVF lists; null picks about 4 * sqrt(number of questions).
            "ivf_nlist": None,
            "ivf_nprobe": 16,
            # Answers listed in `answer_candidates`.
            "top_k": 3,
            # At server start, rebuild the index when the knowledge base file changed
            # since training, so edited answers go live without `rasa train`.
            "rebuild_if_changed": True,
            "batch_size": 64,
        }

    def __init__(
        self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource
    ) -> None:
        self.validate_config(config)
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self._model_path = backbone.resolve_backbone_path(config["model_name_or_path"], type(self).__name__)
        self._encoder: Optional[Any] = None
        self._state: Optional[SearchState] = None
        self._reload_lock = threading.Lock()

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        name = cls.__name__
        config_validation.check_unknown_keys(name, config, cls.get_default_config())
        config_validation.check_text(name, "knowledge_base", config["knowledge_base"], "data/faq.yml")
        config_validation.check_choice(name, "index_type", config["index_type"], INDEX_TYPES)
        config_validation.check_number(name, "hnsw_m", config["hnsw_m"], 4, 256, integer=True, example=32)
        config_validation.check_number(name, "hnsw_ef_search", config["hnsw_ef_search"], 1, integer=True, example=64)
        if config["ivf_nlist"] is not None:
            config_validation.check_number(name, "ivf_nlist", config["ivf_nlist"], 1, integer=True, example=256)
        config_validation.check_number(name, "ivf_nprobe", config["ivf_nprobe"], 1, integer=True, example=16)
        config_validation.check_number(name, "top_k", config["top_k"], 1, 20, integer=True, example=3)
        config_validation.check_number(name, "batch_size", config["batch_size"], 1, integer=True, example=64)
        config_validation.check_choice(name, "rebuild_if_changed", config["rebuild_if_changed"], (True, False))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "FaqRetriever":
        return cls(config, model_storage, resource)

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Retrains when the knowledge base file changes, though it is not Rasa training data."""
        return _file_sha256(Path(str(config.get("knowledge_base") or "")))

    @property
    def state(self) -> Optional[SearchState]:
        """The live answers and index (None until trained or loaded)."""
        return self._state

    def _get_encoder(self) -> Any:
        if self._encoder is None:
            from lepton_components.retrieval.sentence_encoder import SentenceEncoder

            self._encoder = SentenceEncoder(self._model_path, batch_size=self.component_config["batch_size"])
        return self._encoder

    def train(self, training_data: TrainingData) -> Resource:
        """Embeds every question variant of the knowledge base and indexes them.

        Warns (does not fail) when a question is also an intent example: the owner
        decides which of the two should answer it.
        """
        from lepton_components.training_data_checks import warn_shared_questions

        self._state = self._build_state(version=1)
        warn_shared_questions(
            [(example.get(TEXT), example.get(INTENT)) for example in training_data.intent_examples if example.get(TEXT)],
            [(question, answer.id) for answer in self._state.answers for question in answer.questions],
            str(self.component_config["knowledge_base"]),
        )
        self.persist()
        return self._resource

    def reload(self) -> Dict[Text, Any]:
        """Rebuilds the index from the knowledge base file and swaps it in.

        The new index is built beside the old one, which keeps serving until the swap and
        stays in place if the file is invalid (KnowledgeBaseInvalid is raised).
        """
        with self._reload_lock:
            version = self._state.version + 1 if self._state else 1
            self._state = self._build_state(version)
            logger.info(f"{type(self).__name__} now serves knowledge base version {version}.")
            return self._state.summary()

    def _build_state(self, version: int) -> SearchState:
        from lepton_components.retrieval.vector_index import build_index

        path = Path(self.component_config["knowledge_base"])
        try:
            answers = load_knowledge_base(path)
        except KnowledgeBaseError as error:
            raise KnowledgeBaseInvalid(str(error)) from error
        questions, owners = question_rows(answers)
        config = self.component_config
        index = build_index(
            self._get_encoder().encode(questions),
            config["index_type"],
            hnsw_m=config["hnsw_m"],
            hnsw_ef_search=config["hnsw_ef_search"],
            ivf_nlist=config["ivf_nlist"],
            ivf_nprobe=config["ivf_nprobe"],
        )
        logger.info(f"{type(self).__name__} indexed {len(questions)} questions for {len(answers)} answers.")
        return SearchState(answers, questions, owners, index, version, _file_sha256(path) or "")

    def persist(self) -> None:
        from lepton_components.retrieval.vector_index import index_to_bytes

        state = self._state
        with self._model_storage.write_to(self._resource) as directory:
            (directory / INDEX_FILE).write_bytes(index_to_bytes(state.index))
            metadata = {
                "format_version": FORMAT_VERSION,
                "answers": [answer.as_dict() for answer in state.answers],
                "owners": state.owners,
                "knowledge_base_sha256": state.knowledge_base_sha256,
                "encoder_fingerprint": backbone.backbone_fingerprint(self._model_path),
            }
            (directory / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "FaqRetriever":
        from lepton_components.retrieval.vector_index import index_from_bytes

        component = cls(config, model_storage, resource)
        try:
            with model_storage.read_from(resource) as directory:
                metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
                index_bytes = (directory / INDEX_FILE).read_bytes()
        except ValueError:
            logger.debug(f"{cls.__name__} has no trained index in '{resource.name}'.")
            return component
        if metadata.get("format_version") != FORMAT_VERSION:
            raise InvalidConfigException(
                f"{cls.__name__}: the model's index has format {metadata.get('format_version')}, "
                f"this version reads {FORMAT_VERSION}. Retrain with `rasa train --force`."
            )
        if metadata["encoder_fingerprint"] != backbone.backbone_fingerprint(component._model_path):
            raise InvalidConfigException(
                f"{cls.__name__}: the sentence encoder at '{component._model_path}' is not the one "
                f"the index was built with, so scores would be meaningless. Point "
                f"`model_name_or_path` at the original folder or retrain with `rasa train --force`."
            )
        answers = [answer_from_dict(data) for data in metadata["answers"]]
        component._state = SearchState(
            answers=answers,
            questions=[question for answer in answers for question in answer.questions],
            owners=metadata["owners"],
            index=index_from_bytes(index_bytes),
            version=1,
            knowledge_base_sha256=metadata["knowledge_base_sha256"],
        )
        component._get_encoder()  # load now so the first customer does not wait for it
        current = _file_sha256(Path(config["knowledge_base"]))
        if config["rebuild_if_changed"] and current and current != metadata["knowledge_base_sha256"]:
            try:
                component.reload()
            except KnowledgeBaseInvalid as error:
                logger.error(f"Keeping the trained answers: the edited knowledge base is invalid. {error}")
        return component

    def process(self, messages: List[Message]) -> List[Message]:
        """Adds `answer_candidates` to every message with text."""
        if self._state is None:
            return messages
        with_text = [m for m in messages if (m.get(TEXT) or "").strip()]
        if not with_text:
            return messages
        for message, candidates in zip(with_text, self.search([m.get(TEXT) for m in with_text])):
            message.set(ANSWER_CANDIDATES, candidates, add_to_output=True)
        return messages

    def search(self, texts: List[Text]) -> List[List[Dict[Text, Any]]]:
        """Best answers per text, as JSON-ready dicts."""
        from lepton_components.retrieval.vector_index import best_per_owner, search

        state = self._state  # one read: a concurrent reload cannot mix two versions
        top_k = self.component_config["top_k"]
        scores, rows = search(state.index, self._get_encoder().encode(texts), top_k * HITS_PER_ANSWER)
        results = []
        for score_row, id_row in zip(scores, rows):
            results.append(
                [
                    {
                        "id": state.answers[owner].id,
                        "score": round(score, 4),
                        "question": state.questions[row],
                        **{k: v for k, v in state.answers[owner].as_dict().items() if k not in ("id", "questions")},
                    }
                    for owner, score, row in best_per_owner(score_row, id_row, state.owners, top_k)
                ]
            )
        return results


def _file_sha256(path: Path) -> Optional[Text]:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
