"""JointNluComponent on a tiny random BERT: one encoder pass gives intents, entities and answers."""

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Text

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components.classifiers.bert_intent_classifier import BertIntentClassifier, IntentTrainingDataError
from lepton_components.encoder_component import DamagedModelArchive
from lepton_components.extractors.bert_entity_extractor import BertEntityExtractor
from lepton_components.joint.joint_nlu_component import JointNluComponent
from lepton_components.retrieval.faq_retriever import ANSWER_CANDIDATES, FaqRetriever, KnowledgeBaseInvalid
from tests.conftest import build_training_data

MAX_LENGTH = 16
# Long enough that the order number starts after the first window's MAX_LENGTH - 2 pieces.
LONG_PREFIX = "hello " * 14

NLU_YAML = f"""
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi
    - hey
    - good morning
    - hello there
    - hi good evening
    - hey hello
    - good evening
- intent: goodbye
  examples: |
    - bye
    - goodbye
    - see you later
    - bye bye
    - goodbye see you
    - later
    - see you
    - bye see you later
- intent: order_status
  examples: |
    - where is my order [123456](order_number)
    - where is order [987654](order_number) please
    - my order [555123](order_number)
    - the package [112233](order_number) is late
    - where is my package
    - my parcel where is it
    - where is the parcel [445566](order_number)
    - {LONG_PREFIX}where is order [778899](order_number)
"""
# A text with an entity and no intent: it teaches tags only.
ENTITY_ONLY = Message(
    data={"text": "order 246810", "entities": [{"start": 6, "end": 12, "value": "246810", "entity": "order_number"}]}
)

KB = """\
version: "1"
answers:
  - id: shipping_cost
    questions: [how much is shipping, what does delivery cost]
    answer: "Standard delivery is free over $50."
  - id: refund_time
    questions: [when do i get my money back, how do i get a refund]
    answer: "Refunds reach your card within 5 days."
  - id: account_help
    questions: [i want to change my password, help with my account login]
    answer: "Reset your password under {page}."
    defaults: {page: Account settings}
"""
NEW_ANSWER = """\
  - id: human_agent
    questions: [can i talk to a human agent please]
    answer: "Type 'agent' and a colleague takes over."
"""
INTENT_TEXTS = ["hello", "bye see you", "where is my order", "hey good morning", "goodbye"]


def training_data() -> TrainingData:
    data = RasaYAMLReader().reads(NLU_YAML)
    return TrainingData(data.training_examples + [ENTITY_ONLY])


def annotated_examples() -> List[Message]:
    return [example for example in training_data().nlu_examples if example.get("entities")]


def tiny_config(tiny_bert_path: Path, knowledge_base: Any, **override: Any) -> Dict[Text, Any]:
    # A random 32-wide encoder learns slowly: large steps, small batches and a wide adapter
    # learn every training intent and span in a few seconds (seeds 1, 2 and 42 tried; the
    # heads need twice the extractor's step and 80 epochs to tag "please" after a number `O`
    # once decoding stopped favouring `O`, tag_decoding). One thread:
    # a model this small gains nothing from two, and on a busy machine they spin-wait.
    return {
        **JointNluComponent.get_default_config(),
        "model_name_or_path": str(tiny_bert_path),
        "epochs": 80,
        "batch_size": 4,
        "lora_rank": 16,
        "lora_alpha": 32,
        "learning_rate": 5e-3,
        "head_learning_rate": 6e-2,
        "num_threads": 1,
        "training_threads": 1,
        "validation_fraction": 0.0,
        "show_progress_bar": False,
        "max_length": MAX_LENGTH,
        "window_overlap": 4,
        "knowledge_base": None if knowledge_base is None else str(knowledge_base),
        **override,
    }


def context(name: Text = "joint", is_finetuning: bool = False) -> ExecutionContext:
    return ExecutionContext(node_name=name, graph_schema=None, is_finetuning=is_finetuning)


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads() -> Any:
    """`num_threads` is process-wide (torch's and the BLAS pool); later test modules get the defaults back."""
    import threadpoolctl
    import torch

    threads = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=None):  # restores the BLAS pool on exit
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("knowledge-base") / "faq.yml"
    path.write_text(KB, encoding="utf-8")
    return path


@pytest.fixture
def kb_restored(kb_path: Path) -> Any:
    """Tests that edit the shared knowledge base put it back afterwards."""
    yield kb_path
    kb_path.write_text(KB, encoding="utf-8")


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> LocalModelStorage:
    return LocalModelStorage(tmp_path_factory.mktemp("joint-storage"))


@pytest.fixture(scope="module")
def config(tiny_bert_path: Path, kb_path: Path) -> Dict[Text, Any]:
    # Answer classes have their own test below: with them the toy tag head needs other steps.
    return tiny_config(tiny_bert_path, kb_path, knowledge_base_intent=None)


@pytest.fixture(scope="module")
def trained(storage: LocalModelStorage, config: Dict[Text, Any]) -> JointNluComponent:
    """Trained once per module: training is the slow part, most tests below only read it."""
    component = JointNluComponent.create(config, storage, Resource("joint"), context())
    component.train(training_data())
    return component


def load(storage: LocalModelStorage, config: Dict[Text, Any], **override: Any) -> JointNluComponent:
    return JointNluComponent.load({**config, **override}, storage, Resource("joint"), context())


def parse(component: Any, texts: List[Text]) -> List[Message]:
    messages = [Message(data={"text": text}) for text in texts]
    component.process(messages)
    return messages


def entity_tuples(entities: List[Dict[Text, Any]]) -> List[tuple]:
    return [(e["entity"], e["start"], e["end"], e["value"], e.get("role")) for e in entities]


def confidences(messages: List[Message]) -> List[List[float]]:
    return [[entry["confidence"] for entry in m.get("intent_ranking")] for m in messages]


def intent_texts_and_labels() -> List[tuple]:
    return [(example.get("text"), example.get("intent")) for example in training_data().nlu_examples]


class EncoderCalls:
    """Counts forward calls of an encoder module (a forward hook), per `process` call."""

    def __init__(self, encoder: Any) -> None:
        self.count = 0
        self._handle = encoder.register_forward_hook(self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def per_message(self, component: Any, texts: List[Text]) -> List[int]:
        counts = []
        for text in texts:
            self.count = 0
            parse(component, [text])
            counts.append(self.count)
        return counts

    def close(self) -> None:
        self._handle.remove()


# ------------------------------------------------------------------ what it learns


def test_learns_the_toy_intents_and_entities(trained: JointNluComponent) -> None:
    pairs = intent_texts_and_labels()
    predicted = [m.get("intent")["name"] for m in parse(trained, [text for text, _ in pairs])]
    assert np.mean([p == expected for p, (_, expected) in zip(predicted, pairs)]) >= 0.9
    assert trained.labels == ["goodbye", "greet", "order_status"]  # the entity-only text adds no intent
    examples = annotated_examples() + [ENTITY_ONLY]
    messages = parse(trained, [example.get("text") for example in examples])
    for example, message in zip(examples, messages):
        assert entity_tuples(message.get("entities")) == entity_tuples(example.get("entities")), example.get("text")
    for message in parse(trained, ["where is my package", "hello", "bye see you"]):
        assert message.get("entities") == []


def test_knowledge_base_questions_win_their_own_intent_over_the_nearest_one(storage, tiny_bert_path, kb_path) -> None:
    component = JointNluComponent.create(tiny_config(tiny_bert_path, kb_path), storage, Resource("joint-faq"), context())
    component.train(training_data())
    # Each knowledge-base answer's questions train a class beside the intents.
    assert component.labels == [
        "faq/account_help", "faq/refund_time", "faq/shipping_cost", "goodbye", "greet", "order_status"
    ]
    questions = ["how much is shipping", "when do i get my money back", "help with my account login"]
    messages = parse(component, questions)
    # The answers' classes show as one intent, `faq`, with their summed probability.
    assert [message.get("intent")["name"] for message in messages] == ["faq"] * 3
    for message in messages:
        ranking = message.get("intent_ranking")
        assert [entry["name"] for entry in ranking].count("faq") == 1
        assert not any("/" in entry["name"] for entry in ranking)
        assert sum(entry["confidence"] for entry in ranking) == pytest.approx(1.0, abs=1e-4)
    assert [message.get("answer_candidates")[0]["id"] for message in messages] == [
        "shipping_cost", "refund_time", "account_help"
    ]
    # The classifier's certainty about the answer counts where it beats the cosine.
    assert all(message.get("answer_candidates")[0]["score"] >= 0.5 for message in messages)


def test_a_knowledge_base_intent_that_is_also_a_data_intent_is_refused(storage, tiny_bert_path, kb_path) -> None:
    component = JointNluComponent.create(
        tiny_config(tiny_bert_path, kb_path, knowledge_base_intent="greet"), storage, Resource("joint-clash"), context()
    )
    with pytest.raises(InvalidConfigException, match="`knowledge_base_intent: greet` is also an intent of your NLU data"):
        component.train(training_data())


def test_an_entity_past_max_length_is_found_through_windows(trained: JointNluComponent) -> None:
    text = f"{LONG_PREFIX}where is order 778899"
    (message,) = parse(trained, [text])
    start = text.index("778899")
    assert entity_tuples(message.get("entities")) == [("order_number", start, start + 6, "778899", None)]


def test_output_has_the_shape_of_the_separate_components(
    trained: JointNluComponent, storage: LocalModelStorage, tiny_bert_path: Path, kb_path: Path
) -> None:
    """Whatever reads the parse result (FallbackClassifier, policies, `rasa test`) sees no difference."""
    data = training_data()
    classifier = BertIntentClassifier.create(
        {**BertIntentClassifier.get_default_config(), "model_name_or_path": str(tiny_bert_path), "epochs": 1,
         "show_progress_bar": False},
        storage, Resource("classifier"), context("classifier"),
    )
    classifier.train(data)
    extractor = BertEntityExtractor.create(
        {key: value for key, value in tiny_config(tiny_bert_path, None, epochs=30).items()
         if key in BertEntityExtractor.get_default_config()},
        storage, Resource("extractor"), context("extractor"),
    )
    extractor.train(data)
    retriever = FaqRetriever.create(
        {**FaqRetriever.get_default_config(), "knowledge_base": str(kb_path), "model_name_or_path": str(tiny_bert_path)},
        storage, Resource("retriever"), context("retriever"),
    )
    retriever.train(data)
    text = "where is my order 123456"
    separate = Message(data={"text": text})
    for component in (classifier, extractor, retriever):
        component.process([separate])
    (joint,) = parse(trained, [text])
    mine, theirs = joint.as_dict(only_output_properties=True), separate.as_dict(only_output_properties=True)
    # Plus the open-set score, which the separate components never had.
    assert set(mine) - {"open_set_score"} == set(theirs) == {"text", "intent", "intent_ranking", "entities", ANSWER_CANDIDATES}
    assert set(mine["intent"]) == set(theirs["intent"]) == {"name", "confidence"}
    assert mine["intent"] == mine["intent_ranking"][0]
    assert [set(entry) for entry in mine["intent_ranking"]] == [set(entry) for entry in theirs["intent_ranking"]]
    assert len(mine["intent_ranking"]) == len(theirs["intent_ranking"]) == 3
    assert sum(entry["confidence"] for entry in mine["intent_ranking"]) == pytest.approx(1.0, abs=1e-4)
    assert [set(e) for e in mine["entities"]] == [set(e) for e in theirs["entities"]] == [
        {"entity", "start", "end", "value", "confidence_entity", "extractor"}
    ]
    assert mine["entities"][0]["extractor"] == "JointNluComponent"
    assert [set(c) for c in mine[ANSWER_CANDIDATES]] == [set(c) for c in theirs[ANSWER_CANDIDATES]]
    assert len(mine[ANSWER_CANDIDATES]) == len(theirs[ANSWER_CANDIDATES]) == 3
    assert [(set(c), type(c["score"])) for c in mine[ANSWER_CANDIDATES]] == [
        (set(c), type(c["score"])) for c in theirs[ANSWER_CANDIDATES]
    ]


# ------------------------------------------------------------------ one pass


def test_exactly_one_encoder_forward_per_message(trained: JointNluComponent) -> None:
    """The point of the component: intents, entities and the search vector share one pass."""
    calls = EncoderCalls(trained.model.encoder)
    try:
        texts = ["hello", "where is my order 123456", f"{LONG_PREFIX}where is order 778899", "order 42 " * 500]
        assert len(trained._windows([texts[2]])) >= 2  # several windows, still one pass
        assert calls.per_message(trained, texts) == [1, 1, 1, 1]
        calls.count = 0
        messages = parse(trained, texts)
        assert calls.count == 1  # a batch of messages shares the pass too
    finally:
        calls.close()
    assert all(m.get("intent") and m.get(ANSWER_CANDIDATES) for m in messages)


def test_empty_message_gets_no_intent_and_no_pass(trained: JointNluComponent) -> None:
    calls = EncoderCalls(trained.model.encoder)
    try:
        (message,) = parse(trained, ["   "])
    finally:
        calls.close()
    assert calls.count == 0
    assert message.get("intent") == {"name": None, "confidence": 0.0} and message.get("intent_ranking") == []
    assert message.get("entities") is None and message.get(ANSWER_CANDIDATES) is None


# ------------------------------------------------------------------ "none of these"

GIBBERISH = "zebra quantum violin marmalade"


def test_every_message_gets_an_open_set_score_and_training_texts_score_high(trained: JointNluComponent) -> None:
    familiar, unlike = parse(trained, ["bye see you later", GIBBERISH])
    assert -1.0 <= unlike.get("open_set_score") < familiar.get("open_set_score") <= 1.0
    # Nothing is rejected without a threshold: the softmax's intent stands.
    assert unlike.get("intent")["name"] in trained.labels


def test_below_the_open_set_threshold_a_message_is_none_of_these(trained, storage, config) -> None:
    scores = [m.get("open_set_score") for m in parse(trained, ["bye see you later", GIBBERISH])]
    threshold = (scores[0] + scores[1]) / 2
    loaded = load(storage, config, open_set_threshold=threshold, open_set_intent="out_of_scope")
    familiar, unlike = parse(loaded, ["bye see you later", GIBBERISH])
    assert familiar.get("intent")["name"] == "goodbye" and familiar.get(ANSWER_CANDIDATES)
    assert unlike.get("intent") == {"name": "out_of_scope", "confidence": 1.0}
    assert unlike.get("intent_ranking") == [unlike.get("intent")]
    # What the softmax would have said stays visible for diagnosis.
    assert {entry["name"] for entry in unlike.get("open_set_rejected_ranking")} <= set(trained.labels)
    # "None of these" covers the answers too: no candidate for the policy to answer with.
    assert unlike.get(ANSWER_CANDIDATES) == []


def test_num_threads_caps_the_blas_pool_numpy_uses_too(trained, storage, config) -> None:
    import threadpoolctl

    threadpoolctl.threadpool_limits(limits=2, user_api="blas")
    load(storage, config, num_threads=1)
    blas = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert blas and set(blas) == {1}


def test_a_rejected_message_stays_out_of_scope_through_the_fallback_classifier(trained, storage, config) -> None:
    from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier

    scores = [m.get("open_set_score") for m in parse(trained, ["bye see you later", GIBBERISH])]
    loaded = load(storage, config, open_set_threshold=(scores[0] + scores[1]) / 2, open_set_intent="out_of_scope")
    (unlike,) = parse(loaded, [GIBBERISH])
    # ambiguity_threshold 1.0: any runner-up in the ranking at all would count as ambiguous.
    fallback = FallbackClassifier({**FallbackClassifier.get_default_config(), "threshold": 0.5, "ambiguity_threshold": 1.0})
    (after,) = fallback.process([unlike])
    assert after.get("intent")["name"] == "out_of_scope"


def test_an_answer_added_after_training_is_familiar_through_its_questions(trained, storage, config, kb_restored) -> None:
    question = "can i talk to a human agent please"
    before = parse(trained, [question])[0].get("open_set_score")
    kb_restored.write_text(KB + NEW_ANSWER, encoding="utf-8")
    loaded = load(storage, config, open_set_threshold=min(0.99, before + 1e-3))
    (message,) = parse(loaded, [question])
    assert message.get("open_set_score") == pytest.approx(1.0, abs=1e-3)
    assert message.get(ANSWER_CANDIDATES)[0]["id"] == "human_agent"


# ------------------------------------------------------------------ knowledge base


def test_knowledge_base_candidates_come_from_the_joint_encoder(trained: JointNluComponent, tiny_bert_path) -> None:
    import torch

    from lepton_components import torch_encoder

    state = trained.state
    stored = np.stack([state.index.reconstruct(row) for row in range(state.index.ntotal)])
    np.testing.assert_allclose(stored, trained.encode(state.questions), atol=1e-5)
    # Fine-tuning moved the vectors: the index is not the raw backbone's.
    backbone = torch_encoder.load_encoder(tiny_bert_path).eval()
    input_ids, mask = torch_encoder.pad_batch(
        trained.tokenizer(state.questions)["input_ids"], trained.tokenizer.pad_token_id, torch.device("cpu")
    )
    with torch.inference_mode():
        raw = torch.nn.functional.normalize(
            torch_encoder.mean_pool(backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask), dim=-1
        ).numpy()
    assert np.abs(stored - raw).max() > 1e-3
    # The message's vector from the one pass is the one the index holds for the same text.
    for question, answer_id in [("how much is shipping", "shipping_cost"), ("how do i get a refund", "refund_time")]:
        (message,) = parse(trained, [question])
        best = message.get(ANSWER_CANDIDATES)[0]
        assert (best["id"], best["question"]) == (answer_id, question)
        assert best["score"] == pytest.approx(1.0, abs=1e-3)
        assert best["answer"] and "channels" in best and "defaults" in best
    (message,) = parse(trained, ["i want to change my password"])
    assert message.get(ANSWER_CANDIDATES)[0]["defaults"] == {"page": "Account settings"}


def test_an_edited_file_and_reload_make_a_new_answer_reachable_without_retraining(
    trained: JointNluComponent, kb_restored: Path
) -> None:
    import torch

    weights = {name: tensor.clone() for name, tensor in trained.model.state_dict().items()}
    question = "can i talk to a human agent please"
    assert "human_agent" not in [c["id"] for c in parse(trained, [question])[0].get(ANSWER_CANDIDATES)]
    version = trained.state.version
    kb_restored.write_text(KB + NEW_ANSWER, encoding="utf-8")
    summary = trained.reload()
    assert summary["version"] == version + 1 and summary["answers"] == 4
    best = parse(trained, [question])[0].get(ANSWER_CANDIDATES)[0]
    assert best["id"] == "human_agent" and best["score"] == pytest.approx(1.0, abs=1e-3)
    assert all(torch.equal(weights[name], tensor) for name, tensor in trained.model.state_dict().items())
    # An invalid file keeps the answers that serve now.
    kb_restored.write_text(KB + NEW_ANSWER + "  - id: broken\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseInvalid, match="missing the field"):
        trained.reload()
    assert trained.state.version == version + 1
    assert parse(trained, [question])[0].get(ANSWER_CANDIDATES)[0]["id"] == "human_agent"
    kb_restored.write_text(KB, encoding="utf-8")
    trained.reload()
    assert [answer.id for answer in trained.state.answers] == ["shipping_cost", "refund_time", "account_help"]


def test_loading_rebuilds_the_index_when_the_file_changed_since_training(trained, storage, config, kb_restored) -> None:
    kb_restored.write_text(KB + NEW_ANSWER, encoding="utf-8")
    loaded = load(storage, config)
    assert loaded.state.version == 2 and len(loaded.state.answers) == 4
    assert parse(loaded, ["can i talk to a human agent please"])[0].get(ANSWER_CANDIDATES)[0]["id"] == "human_agent"
    kept = load(storage, config, rebuild_if_changed=False)
    assert kept.state.version == 1 and len(kept.state.answers) == 3


def test_the_admin_routes_find_joint_components_and_retrievers(trained, tiny_bert_path, kb_path) -> None:
    from lepton_components.channels.faq_admin import _loaded_retrievers

    retriever = FaqRetriever(
        {**FaqRetriever.get_default_config(), "knowledge_base": str(kb_path), "model_name_or_path": str(tiny_bert_path)},
        None, Resource("retriever"),
    )
    without_knowledge_base = SimpleNamespace(component_config={"knowledge_base": None}, state=None, reload=lambda: {})
    nodes = {
        name: SimpleNamespace(_component=component)
        for name, component in [
            ("run_FaqRetriever", retriever), ("run_policy", None), ("run_other", without_knowledge_base),
            ("run_JointNluComponent", trained),
        ]
    }
    request = SimpleNamespace(
        app=SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(
            processor=SimpleNamespace(graph_runner=SimpleNamespace(_instantiated_nodes=nodes))
        )))
    )
    assert _loaded_retrievers(request) == [retriever, trained]


# ------------------------------------------------------------------ persistence and serving


def test_persist_then_load_gives_identical_outputs(trained, storage, config) -> None:
    loaded = load(storage, config)
    assert (loaded.labels, loaded.scheme.labels) == (trained.labels, trained.scheme.labels)
    assert loaded.transition_counts == trained.transition_counts
    texts = [example.get("text") for example in annotated_examples()] + INTENT_TEXTS + ["how much is shipping"]
    mine, theirs = parse(loaded, texts), parse(trained, texts)
    np.testing.assert_allclose(confidences(mine), confidences(theirs), atol=1e-5)
    for a, b in zip(mine, theirs):
        assert entity_tuples(a.get("entities")) == entity_tuples(b.get("entities"))
        assert [c["id"] for c in a.get(ANSWER_CANDIDATES)] == [c["id"] for c in b.get(ANSWER_CANDIDATES)]
        np.testing.assert_allclose(
            [c["score"] for c in a.get(ANSWER_CANDIDATES)], [c["score"] for c in b.get(ANSWER_CANDIDATES)], atol=2e-4
        )


GRAPH_FILES = ["serving_graph.json", "serving_graph.safetensors", "word_pieces.json"]


@pytest.fixture(scope="module")
def graph_storage(tmp_path_factory: pytest.TempPathFactory, config: Dict[Text, Any]) -> LocalModelStorage:
    """The same training with the demo's serving settings: ONNX Runtime, int8, stored graph."""
    storage = LocalModelStorage(tmp_path_factory.mktemp("joint-graph-storage"))
    component = JointNluComponent.create(
        {**config, "inference_backend": "onnxruntime", "inference_quantization": "int8"},
        storage,
        Resource("joint"),
        context(),
    )
    component.train(training_data())
    return storage


def graph_config(config: Dict[Text, Any]) -> Dict[Text, Any]:
    return {**config, "inference_backend": "onnxruntime", "inference_quantization": "int8"}


class SessionRuns:
    """Counts an ONNX Runtime session's `run` calls."""

    def __init__(self, component: JointNluComponent) -> None:
        self.count = 0
        session = component._graph.session
        original = session.run

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        component._graph.session = SimpleNamespace(run=counting, get_outputs=session.get_outputs)


def test_the_stored_int8_graph_keeps_the_answers_in_one_pass(trained, graph_storage, config) -> None:
    served = load(graph_storage, graph_config(config))
    assert served.model is None and served._graph is not None  # no PyTorch model was built
    texts = [text for text, _ in intent_texts_and_labels()]
    full, int8 = parse(trained, texts), parse(served, texts)
    assert np.mean([a.get("intent")["name"] == b.get("intent")["name"] for a, b in zip(full, int8)]) >= 0.8
    assert not np.allclose(confidences(int8), confidences(full), atol=1e-6)  # really int8
    same_entities = [entity_tuples(a.get("entities")) == entity_tuples(b.get("entities")) for a, b in zip(full, int8)]
    assert np.mean(same_entities) >= 0.8
    # The index was built by the graph the server runs, so a question matches itself exactly.
    for question in ["how much is shipping", "when do i get my money back"]:
        best = parse(served, [question])[0].get(ANSWER_CANDIDATES)[0]
        assert best["question"] == question and best["score"] == pytest.approx(1.0, abs=1e-3)
    runs = SessionRuns(served)
    parse(served, ["hello"])
    parse(served, [f"{LONG_PREFIX}where is order 778899"])
    assert runs.count == 2


def test_the_stored_graph_computes_what_pytorch_computes(graph_storage, config) -> None:
    from lepton_components.joint.joint_graph import JointGraph, export_joint_graph
    from lepton_components.joint.joint_model import predict

    trained_here = load(graph_storage, {**config, "inference_backend": "torch"})  # the same weights in PyTorch
    token_ids = [window.input_ids for window in trained_here._windows(INTENT_TEXTS + [f"{LONG_PREFIX}order 778899"])]
    pad = trained_here.pieces.pad_token_id
    expected = predict(trained_here.model, token_ids, pad, trained_here._device)
    fp32 = JointGraph(export_joint_graph(trained_here.model, int8=False), pad, 1).predict(token_ids)
    np.testing.assert_allclose(fp32.intent_probabilities, expected.intent_probabilities, atol=1e-4)
    np.testing.assert_allclose(fp32.sentence_vectors, expected.sentence_vectors, atol=1e-4)
    for mine, theirs in zip(fp32.tag_probabilities, expected.tag_probabilities):
        np.testing.assert_allclose(mine, theirs, atol=1e-4)


def test_a_server_on_the_stored_graph_never_imports_torch_or_transformers(graph_storage, config, tmp_path) -> None:
    """What makes serving lighter: the archive alone, ONNX Runtime and numpy."""
    import subprocess
    import sys

    settings = tmp_path / "config.json"
    settings.write_text(json.dumps(graph_config(config)), encoding="utf-8")
    with graph_storage.read_from(Resource("joint")) as directory:
        script = f"""
import json, sys
from pathlib import Path
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from lepton_components.joint.joint_nlu_component import JointNluComponent
config = json.load(open({str(settings)!r}))
storage = LocalModelStorage(Path({str(Path(directory).parent)!r}))
component = JointNluComponent.load(config, storage, Resource("joint"), ExecutionContext(None, "joint"))
message = Message(data={{"text": "where is my order 123456"}})
component.process([message])
print(json.dumps({{
    "intent": message.get("intent")["name"],
    "entities": [e["value"] for e in message.get("entities")],
    "imported": sorted(name for name in ("torch", "transformers", "peft") if name in sys.modules),
}}))
"""
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
        )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"intent": "order_status", "entities": ["123456"], "imported": []}


def test_the_stored_graph_is_json_and_safetensors(graph_storage) -> None:
    from safetensors.numpy import load_file

    with graph_storage.read_from(Resource("joint")) as directory:
        folder = Path(directory)
        names = sorted(path.name for path in folder.iterdir())
        graph = json.loads((folder / "serving_graph.json").read_text())
        weights = load_file(str(folder / "serving_graph.safetensors"))
        pieces = json.loads((folder / "word_pieces.json").read_text())
    assert set(GRAPH_FILES) <= set(names)
    assert "initializer" not in graph["graph"]  # every weight is in the safetensors file
    assert [output["name"] for output in graph["graph"]["output"]] == [
        "intent_probabilities", "sentence_vectors", "tag_probabilities"
    ]
    assert any(value.dtype == np.int8 for value in weights.values())
    assert pieces["pad_token_id"] == 0 and pieces["tokenizer"]["model"]["type"] == "WordPiece"


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "serving_graph.json").unlink(),
        lambda folder: (folder / "serving_graph.json").write_text('{"graph": {"node": [', encoding="utf-8"),
        lambda folder: (folder / "serving_graph.safetensors").write_bytes(b"\x00" * 16),
        lambda folder: (folder / "word_pieces.json").unlink(),
    ],
    ids=["graph-missing", "graph-not-json", "weights-truncated", "tokenizer-missing"],
)
def test_a_damaged_serving_graph_stops_loading_with_the_fix(graph_storage, config, tmp_path, damage) -> None:
    copy = _copy_of_the_archive(graph_storage, tmp_path)
    damage(tmp_path / "joint")
    with pytest.raises(DamagedModelArchive, match=r"JointNluComponent cannot read .*rasa train --force"):
        load(copy, graph_config(config))


def test_a_new_archive_layout_makes_rasa_train_retrain(config, monkeypatch) -> None:
    """After an upgrade that changes what the archive holds, `rasa train` trains anew instead of
    keeping a model the new code would refuse at load."""
    from lepton_components.joint import joint_nlu_component

    before = JointNluComponent.fingerprint_addon(config)
    monkeypatch.setattr(joint_nlu_component, "ARCHIVE_LAYOUT", joint_nlu_component.ARCHIVE_LAYOUT + 1)
    assert JointNluComponent.fingerprint_addon(config) != before


def test_an_archive_trained_for_pytorch_is_refused_by_a_graph_config(storage, config) -> None:
    with pytest.raises(DamagedModelArchive, match="serving_graph.json"):
        load(storage, graph_config(config))


def test_loading_warms_the_model_up(trained, storage, config, monkeypatch) -> None:
    seen: List[Text] = []
    original = JointNluComponent.process

    def recording(self, messages):
        seen.extend(message.get("text") for message in messages)
        return original(self, messages)

    monkeypatch.setattr(JointNluComponent, "process", recording)
    load(storage, config)
    assert len(seen) == 1 and seen[0].strip()


def test_artefacts_are_safetensors_json_and_index_bytes_only(trained, storage, kb_path, tiny_bert_path) -> None:
    import faiss
    from safetensors.torch import load_file

    from lepton_components import backbone

    with storage.read_from(Resource("joint")) as directory:
        folder = Path(directory)
        names = sorted(path.name for path in folder.iterdir())
        head = load_file(str(folder / "head.safetensors"))
        index = faiss.deserialize_index(np.frombuffer((folder / "index.faiss").read_bytes(), dtype=np.uint8))
        index_metadata = json.loads((folder / "knowledge_base.json").read_text())
        adapter_hash = hashlib.sha256((folder / "adapter.safetensors").read_bytes()).hexdigest()
        metadata = json.loads((folder / "metadata.json").read_text())
    assert names == [
        "adapter.safetensors", "head.safetensors", "index.faiss", "knowledge_base.json", "metadata.json",
        "open_set.safetensors", "word_pieces.json",
    ]
    assert sorted(head) == ["intent.bias", "intent.weight", "tags.bias", "tags.weight"]
    assert index.ntotal == 6
    assert index_metadata["knowledge_base_sha256"] == hashlib.sha256(KB.encode()).hexdigest()
    assert index_metadata["encoder_fingerprint"] == f"{backbone.backbone_fingerprint(tiny_bert_path)}+{adapter_hash}"
    assert metadata["labels"] == ["goodbye", "greet", "order_status"]
    assert metadata["tags"] == ["O", "B-order_number", "I-order_number"]


def _copy_of_the_archive(storage: LocalModelStorage, tmp_path: Path) -> LocalModelStorage:
    with storage.read_from(Resource("joint")) as directory:
        shutil.copytree(directory, tmp_path / "joint")
    return LocalModelStorage(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "metadata.json").write_text("{not json", encoding="utf-8"),
        lambda folder: (folder / "head.safetensors").write_bytes(b"\x00" * 16),
        lambda folder: (folder / "adapter.safetensors").unlink(),
        lambda folder: (folder / "index.faiss").write_bytes((folder / "index.faiss").read_bytes()[:40]),
        lambda folder: (folder / "knowledge_base.json").write_text("[", encoding="utf-8"),
        lambda folder: (folder / "index.faiss").unlink(),
        lambda folder: (folder / "open_set.safetensors").unlink(),
    ],
    ids=[
        "metadata-not-json", "head-truncated", "adapter-missing", "index-truncated", "answers-not-json",
        "index-missing", "centroids-missing",
    ],
)
def test_a_damaged_archive_stops_loading_with_the_fix(trained, storage, config, tmp_path, damage) -> None:
    copy = _copy_of_the_archive(storage, tmp_path)
    damage(tmp_path / "joint")
    with pytest.raises(DamagedModelArchive, match=r"JointNluComponent cannot read .*rasa train --force"):
        load(copy, config)


def test_an_index_of_another_encoder_is_refused(trained, storage, config, tmp_path) -> None:
    copy = _copy_of_the_archive(storage, tmp_path)
    path = tmp_path / "joint" / "knowledge_base.json"
    metadata = json.loads(path.read_text())
    path.write_text(json.dumps({**metadata, "encoder_fingerprint": "another+adapter"}), encoding="utf-8")
    with pytest.raises(InvalidConfigException, match="not the one the knowledge-base index was built with"):
        load(copy, config)


# ------------------------------------------------------------------ training variants


def _drift(component: JointNluComponent, tiny_bert_path: Path, texts: List[Text]) -> float:
    """Mean cosine distance between the trained encoder's sentence vectors and the backbone's."""
    import torch

    from lepton_components import torch_encoder

    backbone = torch_encoder.load_encoder(tiny_bert_path).eval()
    input_ids, mask = torch_encoder.pad_batch(
        component.tokenizer(texts)["input_ids"], component.tokenizer.pad_token_id, torch.device("cpu")
    )
    with torch.inference_mode():
        raw = torch.nn.functional.normalize(
            torch_encoder.mean_pool(backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask), dim=-1
        ).numpy()
    return float(np.mean(1.0 - np.sum(raw * component.encode(texts), axis=1)))


def test_sentence_vector_weight_changes_the_loss_and_keeps_the_sentence_space(
    create_component, tiny_bert_path, toy_intents
) -> None:
    texts = [text for examples in toy_intents.values() for text in examples]
    results = {}
    for weight in (0.0, 5.0):
        component = create_component(
            JointNluComponent, tiny_config(tiny_bert_path, None, epochs=15, sentence_vector_weight=weight),
            resource_name=f"weight-{weight}",
        )
        with pytest.warns(UserWarning, match="found no entity annotations"):
            component.train(build_training_data(toy_intents))
        results[weight] = (component.training_report, _drift(component, tiny_bert_path, texts))
    (free, free_drift), (anchored, anchored_drift) = results[0.0], results[5.0]
    assert free["sentence_vector_weight"] == 0.0 and anchored["sentence_vector_weight"] == 5.0
    assert anchored["final_training_loss"] != pytest.approx(free["final_training_loss"], rel=1e-3)
    assert anchored_drift < 0.5 * free_drift


def test_data_without_entities_trains_no_tag_head(create_component, load_component, tiny_bert_path, toy_intents) -> None:
    config = tiny_config(tiny_bert_path, None, epochs=25)
    component = create_component(JointNluComponent, config)
    with pytest.warns(UserWarning, match="JointNluComponent found no entity annotations"):
        component.train(build_training_data(toy_intents))
    assert not component.model.has_tagger and component.state is None
    loaded = load_component(JointNluComponent, config)
    for message in parse(loaded, INTENT_TEXTS):
        assert message.get("intent")["name"] in toy_intents
        assert message.get("entities") is None and message.get(ANSWER_CANDIDATES) is None
    predicted = [m.get("intent")["name"] for m in parse(loaded, ["hello", "goodbye", "where is my parcel"])]
    assert predicted == ["greet", "goodbye", "order_status"]


@pytest.mark.parametrize("intents", [{}, {"greet": ["hello", "hi"]}])
def test_fewer_than_two_intents_is_refused(create_component, tiny_bert_path, intents) -> None:
    component = create_component(JointNluComponent, tiny_config(tiny_bert_path, None))
    with pytest.raises(IntentTrainingDataError, match="JointNluComponent needs training examples for at least two"):
        component.train(build_training_data(intents))


def test_early_stopping_holds_out_messages_and_scores_intents_and_entities(storage, tiny_bert_path) -> None:
    config = tiny_config(tiny_bert_path, None, validation_fraction=0.25, early_stopping_patience=1, min_held_out_examples=1, epochs=6)
    component = JointNluComponent.create(config, storage, Resource("early-stopping"), context())
    component.train(training_data())
    report = component.training_report
    assert report["validation_messages"] == 6  # a quarter of each intent's 8 examples
    assert 0.0 <= report["validation_intent_accuracy"] <= 1.0 and 0.0 <= report["validation_entity_f1"] <= 1.0
    assert report["best_validation_score"] == pytest.approx(
        (report["validation_intent_accuracy"] + report["validation_entity_f1"]) / 2
    )
    assert 1 <= report["best_epoch"] <= report["epochs_run"] <= 6


def test_head_only_with_a_knowledge_base_persists_and_loads(storage, tiny_bert_path, kb_path) -> None:
    from lepton_components import backbone

    config = tiny_config(tiny_bert_path, kb_path, training_mode="head_only", epochs=3)
    component = JointNluComponent.create(config, storage, Resource("head-only"), context())
    component.train(training_data())
    with storage.read_from(Resource("head-only")) as directory:
        names = sorted(path.name for path in Path(directory).iterdir())
        fingerprint = json.loads((Path(directory) / "knowledge_base.json").read_text())["encoder_fingerprint"]
    assert names == [
        "head.safetensors", "index.faiss", "knowledge_base.json", "metadata.json", "open_set.safetensors",
        "word_pieces.json",
    ]
    assert fingerprint == backbone.backbone_fingerprint(tiny_bert_path)
    loaded = JointNluComponent.load(config, storage, Resource("head-only"), context())
    texts = INTENT_TEXTS + ["how much is shipping"]
    np.testing.assert_allclose(confidences(parse(loaded, texts)), confidences(parse(component, texts)), atol=1e-5)


def test_finetuning_continues_from_trained_weights(trained, storage, config) -> None:
    finetuned = JointNluComponent.load({**config, "epochs": 2}, storage, Resource("joint"), context(is_finetuning=True))
    finetuned._resource = Resource("finetuned")  # keep the shared trained model intact
    finetuned.train(training_data())
    assert finetuned.training_report["epochs_run"] == 2
    (message,) = parse(finetuned, ["where is my order 123456"])
    assert message.get("intent")["name"] == "order_status"
    assert entity_tuples(message.get("entities")) == [("order_number", 18, 24, "123456", None)]


def test_untrained_component_leaves_messages_alone(create_component, tiny_bert_path, kb_path) -> None:
    component = create_component(JointNluComponent, tiny_config(tiny_bert_path, kb_path))
    (message,) = parse(component, ["hello"])
    assert message.get("intent") is None and message.get(ANSWER_CANDIDATES) is None


@pytest.mark.parametrize(
    "override,message",
    [
        ({"sentence_vector_wieght": 1}, "unknown config key `sentence_vector_wieght`. Did you mean `sentence_vector_weight`?"),
        ({"sentence_vector_weight": -0.1}, "`sentence_vector_weight` must be a number >= 0 and <= 10, got -0.1"),
        ({"knowledge_base": ""}, "`knowledge_base` must be a non-empty text"),
        ({"index_type": "annoy"}, "`index_type` must be one of 'flat', 'hnsw', 'ivf', got 'annoy'"),
        ({"top_k": 0}, "`top_k` must be an integer >= 1 and <= 20, got 0"),
        ({"window_overlap": 9}, "`window_overlap` must be an integer >= 0 and <= 8, got 9"),
        ({"max_windows": 0}, "`max_windows` must be an integer >= 1"),
        ({"ranking_length": -1}, "`ranking_length` must be an integer >= 0, got -1"),
        ({"overlapping_entities": "merge"}, "`overlapping_entities` must be one of 'skip', 'keep', got 'merge'"),
        ({"inference_backend": "tensorrt"}, "`inference_backend` must be one of 'torch', 'onnxruntime'"),
        ({"open_set_threshold": 1.5}, "`open_set_threshold` must be a number >= -1 and <= 1, got 1.5"),
        ({"open_set_intent": ""}, "`open_set_intent` must be a non-empty text"),
    ],
)
def test_bad_config_is_refused_with_the_fix(create_component, tiny_bert_path, kb_path, override, message) -> None:
    with pytest.raises(InvalidConfigException) as error:
        create_component(JointNluComponent, {**tiny_config(tiny_bert_path, kb_path), **override})
    assert message in str(error.value)
    assert "config.yml" in str(error.value)


def test_max_length_beyond_the_backbone_is_refused(create_component, tiny_bert_path) -> None:
    with pytest.raises(InvalidConfigException, match=r"JointNluComponent: `max_length` is 256.*reads at most 128"):
        create_component(JointNluComponent, tiny_config(tiny_bert_path, None, max_length=256, window_overlap=4))
