"""The live answers of one knowledge-base file and their FAISS index, whatever encodes the texts.

Shared by FaqRetriever (its own sentence-transformers encoder) and JointNluComponent (the
fine-tuned NLU encoder, whose pooled vector of each message comes from the same pass that
classifies it). Both need the same things: the config keys of the index, building it from
the file, a live `reload()` that swaps a new index in atomically and keeps the old one when
the file is invalid, the JSON + FAISS-bytes persistence with the encoder fingerprint that
refuses an index from another encoder, rebuilding at load when the file changed since
training, and turning query vectors into `answer_candidates`.
"""

import dataclasses
import functools
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Text

import numpy as np
from rasa.shared.exceptions import InvalidConfigException, RasaException

from lepton_components import config_validation
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

# Unit-length float32 rows, one per text (cosine similarity is then a dot product).
Encode = Callable[[Sequence[Text]], np.ndarray]


class KnowledgeBaseInvalid(RasaException):
    """The knowledge base file cannot be used; the message says where and how to fix it."""


def search_default_config() -> Dict[Text, Any]:
    """The index and ranking keys every knowledge-base component accepts, with defaults."""
    return {
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
    }


def check_search_config(component: Text, config: Dict[Text, Any]) -> None:
    """Checks the keys of `search_default_config`, naming the fix."""
    check = config_validation
    check.check_choice(component, "index_type", config["index_type"], INDEX_TYPES)
    check.check_number(component, "hnsw_m", config["hnsw_m"], 4, 256, integer=True, example=32)
    check.check_number(component, "hnsw_ef_search", config["hnsw_ef_search"], 1, integer=True, example=64)
    if config["ivf_nlist"] is not None:
        check.check_number(component, "ivf_nlist", config["ivf_nlist"], 1, integer=True, example=256)
    check.check_number(component, "ivf_nprobe", config["ivf_nprobe"], 1, integer=True, example=16)
    check.check_number(component, "top_k", config["top_k"], 1, 20, integer=True, example=3)
    check.check_choice(component, "rebuild_if_changed", config["rebuild_if_changed"], (True, False))


def file_sha256(path: Path) -> Optional[Text]:
    """The file's content hash; None when there is no such file."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@dataclasses.dataclass(frozen=True)
class SearchState:
    """Everything a search reads, swapped as one object so a live reload is atomic."""

    answers: List[Answer]
    questions: List[Text]
    owners: List[int]
    index: Any
    version: int
    knowledge_base_sha256: Text

    @functools.cached_property
    def answer_by_id(self) -> Dict[Text, Answer]:
        """The answers by id, built once per state (not once per message)."""
        return {answer.id: answer for answer in self.answers}

    def summary(self) -> Dict[Text, Any]:
        return {
            "version": self.version,
            "answers": len(self.answers),
            "questions": len(self.questions),
            "knowledge_base_sha256": self.knowledge_base_sha256,
        }


class KnowledgeSearch:
    """One component's knowledge base: build, reload, persist, restore and search.

    `encode` turns texts into unit vectors; it is called only while building an index (at
    training, `reload()` and a rebuild at load), so a component may load its encoder lazily.
    """

    def __init__(self, component: Text, config: Dict[Text, Any], encode: Encode) -> None:
        self._component = component
        self._config = config
        self._encode = encode
        self._state: Optional[SearchState] = None
        self._reload_lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The knowledge base file (relative paths are relative to where `rasa` runs)."""
        return Path(self._config["knowledge_base"])

    @property
    def state(self) -> Optional[SearchState]:
        """The live answers and index (None until built or restored)."""
        return self._state

    def build(self) -> SearchState:
        """Indexes the file as version 1 (training); raises KnowledgeBaseInvalid."""
        self._state = self._build_state(version=1)
        return self._state

    def reload(self) -> Dict[Text, Any]:
        """Rebuilds the index from the knowledge base file and swaps it in.

        The new index is built beside the old one, which keeps serving until the swap and
        stays in place if the file is invalid (KnowledgeBaseInvalid is raised).
        """
        with self._reload_lock:
            version = self._state.version + 1 if self._state else 1
            self._state = self._build_state(version)
            logger.info(f"{self._component} now serves knowledge base version {version}.")
            return self._state.summary()

    def rebuild_if_changed(self) -> None:
        """At load: with `rebuild_if_changed`, indexes the file again if it changed since training.

        An invalid edited file is logged and the trained answers keep serving, so a typo in
        the knowledge base cannot stop the bot from starting.
        """
        current = file_sha256(self.path)
        if not (self._config["rebuild_if_changed"] and current and self._state is not None):
            return
        if current == self._state.knowledge_base_sha256:
            return
        try:
            self.reload()
        except KnowledgeBaseInvalid as error:
            logger.error(f"Keeping the trained answers: the edited knowledge base is invalid. {error}")

    def _build_state(self, version: int) -> SearchState:
        from lepton_components.retrieval.vector_index import build_index

        try:
            answers = load_knowledge_base(self.path)
        except KnowledgeBaseError as error:
            raise KnowledgeBaseInvalid(str(error)) from error
        questions, owners = question_rows(answers)
        config = self._config
        index = build_index(
            self._encode(questions),
            config["index_type"],
            hnsw_m=config["hnsw_m"],
            hnsw_ef_search=config["hnsw_ef_search"],
            ivf_nlist=config["ivf_nlist"],
            ivf_nprobe=config["ivf_nprobe"],
        )
        logger.info(f"{self._component} indexed {len(questions)} questions for {len(answers)} answers.")
        return SearchState(answers, questions, owners, index, version, file_sha256(self.path) or "")

    # ------------------------------------------------------------ persistence

    def write(self, directory: Path, encoder_fingerprint: Text) -> None:
        """The index as FAISS bytes (plain arrays, nothing executable) and the answers as JSON."""
        from lepton_components.retrieval.vector_index import index_to_bytes

        state = self._state
        (directory / INDEX_FILE).write_bytes(index_to_bytes(state.index))
        metadata = {
            "format_version": FORMAT_VERSION,
            "answers": [answer.as_dict() for answer in state.answers],
            "owners": state.owners,
            "knowledge_base_sha256": state.knowledge_base_sha256,
            "encoder_fingerprint": encoder_fingerprint,
        }
        (directory / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")

    def read(self, directory: Path, encoder_fingerprint: Text, mismatch_fix: Text) -> None:
        """Restores what `write` stored; refuses another format or an index of another encoder.

        `mismatch_fix` completes the error when the fingerprints differ: scores of query
        vectors against an index of another encoder would be meaningless.
        """
        from lepton_components.retrieval.vector_index import index_from_bytes

        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        index_bytes = (directory / INDEX_FILE).read_bytes()
        if metadata.get("format_version") != FORMAT_VERSION:
            raise InvalidConfigException(
                f"{self._component}: the model's index has format {metadata.get('format_version')}, "
                f"this version reads {FORMAT_VERSION}. Retrain with `rasa train --force`."
            )
        if metadata["encoder_fingerprint"] != encoder_fingerprint:
            raise InvalidConfigException(
                f"{self._component}: the encoder is not the one the knowledge-base index was built with, "
                f"so scores would be meaningless. {mismatch_fix}"
            )
        answers = [answer_from_dict(data) for data in metadata["answers"]]
        self._state = SearchState(
            answers=answers,
            questions=[question for answer in answers for question in answer.questions],
            owners=metadata["owners"],
            index=index_from_bytes(index_bytes),
            version=1,
            knowledge_base_sha256=metadata["knowledge_base_sha256"],
        )

    # ----------------------------------------------------------------- search

    def candidates(self, query_vectors: np.ndarray) -> List[List[Dict[Text, Any]]]:
        """The best answers per query vector, as JSON-ready dicts, best first.

        Each has the answer `id`, the cosine `score`, the `question` variant that matched
        and the `answer` template with its channel variants, defaults and tags.
        """
        from lepton_components.retrieval.vector_index import best_per_owner, search

        state = self._state  # one read: a concurrent reload cannot mix two versions
        top_k = self._config["top_k"]
        scores, rows = search(state.index, query_vectors, top_k * HITS_PER_ANSWER)
        results = []
        for score_row, id_row in zip(scores, rows):
            results.append(
                [
                    _candidate(state.answers[owner], score, state.questions[row])
                    for owner, score, row in best_per_owner(score_row, id_row, state.owners, top_k)
                ]
            )
        return results

    def with_classifier_scores(
        self, candidates: List[Dict[Text, Any]], answer_probabilities: Dict[Text, float]
    ) -> List[Dict[Text, Any]]:
        """Each answer scored by the better of its cosine and the intent classifier's
        probability for it, best first, `top_k` long.

        The classifier learnt each answer's questions (JointNluComponent's
        `knowledge_base_intent`); the cosine still reaches answers added after training. An
        answer the classifier favours but the search did not list is added with its first
        question; answers removed from the file since training are skipped.
        """
        by_id = self._state.answer_by_id
        merged = {candidate["id"]: dict(candidate) for candidate in candidates}
        for answer_id, probability in answer_probabilities.items():
            if answer_id in merged:
                merged[answer_id]["score"] = round(max(merged[answer_id]["score"], probability), 4)
            elif answer_id in by_id and by_id[answer_id].questions:
                merged[answer_id] = _candidate(by_id[answer_id], probability, by_id[answer_id].questions[0])
        ranked = sorted(merged.values(), key=lambda candidate: -candidate["score"])
        return ranked[: self._config["top_k"]]


def _candidate(answer: Answer, score: float, question: Text) -> Dict[Text, Any]:
    """One `answer_candidates` entry: id, score, the matched question and the answer template."""
    return {
        "id": answer.id,
        "score": round(float(score), 4),
        "question": question,
        **{k: v for k, v in answer.as_dict().items() if k not in ("id", "questions")},
    }
