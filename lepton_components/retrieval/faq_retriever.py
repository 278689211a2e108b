"""Finds approved answers for a message in the FAQ knowledge base with a FAISS index."""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components import backbone, config_validation
from lepton_components.encoder_component import restore_stored_part
from lepton_components.retrieval.knowledge_search import (  # noqa: F401 (re-exported: the admin routes catch it from here)
    ANSWER_CANDIDATES,
    KnowledgeBaseInvalid,
    KnowledgeSearch,
    SearchState,
    check_search_config,
    file_sha256,
    search_default_config,
)

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class FaqRetriever(GraphComponent):
    """Adds the approved answers closest to the message to the parse result.

    Reads the message `text`; writes `answer_candidates`: up to `top_k` dicts with the
    answer `id`, cosine `score`, the `question` variant that matched and the `answer`
    template (with its channel variants and placeholder defaults), best first. Answers
    come from the knowledge base file, so questions nobody wrote as training examples are
    still answered; dialogue policies decide whether a candidate is good enough. The index,
    reload and persistence are `knowledge_search.KnowledgeSearch`'s, shared with
    JointNluComponent; this component embeds with its own sentence-transformers encoder.
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
            **search_default_config(),
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
        self._search = KnowledgeSearch(type(self).__name__, config, self._encode)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        name = cls.__name__
        config_validation.check_unknown_keys(name, config, cls.get_default_config())
        config_validation.check_text(name, "knowledge_base", config["knowledge_base"], "data/faq.yml")
        check_search_config(name, config)
        config_validation.check_number(name, "batch_size", config["batch_size"], 1, integer=True, example=64)

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
        return file_sha256(Path(str(config.get("knowledge_base") or "")))

    @property
    def state(self) -> Optional[SearchState]:
        """The live answers and index (None until trained or loaded)."""
        return self._search.state

    def _get_encoder(self) -> Any:
        if self._encoder is None:
            from lepton_components.retrieval.sentence_encoder import SentenceEncoder

            self._encoder = SentenceEncoder(self._model_path, batch_size=self.component_config["batch_size"])
        return self._encoder

    def _encode(self, texts: Sequence[Text]) -> np.ndarray:
        return self._get_encoder().encode(texts)

    def train(self, training_data: TrainingData) -> Resource:
        """Embeds every question variant of the knowledge base and indexes them.

        Warns (does not fail) when a question is also an intent example: the owner
        decides which of the two should answer it.
        """
        from lepton_components.training_data_checks import warn_shared_questions

        state = self._search.build()
        warn_shared_questions(
            [(example.get(TEXT), example.get(INTENT)) for example in training_data.intent_examples if example.get(TEXT)],
            [(question, answer.id) for answer in state.answers for question in answer.questions],
            str(self.component_config["knowledge_base"]),
        )
        self.persist()
        return self._resource

    def reload(self) -> Dict[Text, Any]:
        """Rebuilds the index from the knowledge base file and swaps it in.

        The new index is built beside the old one, which keeps serving until the swap and
        stays in place if the file is invalid (KnowledgeBaseInvalid is raised).
        """
        return self._search.reload()

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            self._search.write(directory, backbone.backbone_fingerprint(self._model_path))

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "FaqRetriever":
        component = cls(config, model_storage, resource)
        restored = restore_stored_part(
            model_storage,
            resource,
            cls.__name__,
            lambda directory: component._search.read(
                directory,
                backbone.backbone_fingerprint(component._model_path),
                f"The sentence encoder at '{component._model_path}' differs: point `model_name_or_path` "
                "at the original folder or retrain with `rasa train --force`.",
            ),
        )
        if not restored:
            logger.debug(f"{cls.__name__} has no trained index in '{resource.name}'.")
            return component
        component._get_encoder()  # load now so the first customer does not wait for it
        component._search.rebuild_if_changed()
        return component

    def process(self, messages: List[Message]) -> List[Message]:
        """Adds `answer_candidates` to every message with text."""
        if self.state is None:
            return messages
        with_text = [m for m in messages if (m.get(TEXT) or "").strip()]
        if not with_text:
            return messages
        for message, candidates in zip(with_text, self.search([m.get(TEXT) for m in with_text])):
            message.set(ANSWER_CANDIDATES, candidates, add_to_output=True)
        return messages

    def search(self, texts: List[Text]) -> List[List[Dict[Text, Any]]]:
        """Best answers per text, as JSON-ready dicts."""
        return self._search.candidates(self._encode(texts))
