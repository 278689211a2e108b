"""BertEntityExtractor on a tiny random BERT: training, output, windowing, persistence, errors."""

from pathlib import Path
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
from safetensors.torch import load_file

from lepton_components.extractors.bert_entity_extractor import (
    BertEntityExtractor,
    EntityTrainingDataError,
)
from lepton_components.encoder_persistence import ADAPTER_FILE, METADATA_FILE
from tests.conftest import build_training_data

MAX_LENGTH = 16
# Long enough that "where is order" and its number start after the first window's
# MAX_LENGTH - 2 word pieces.
LONG_PREFIX = "hello " * 14

NLU_YAML = f"""
version: "3.1"
nlu:
- intent: order_status
  examples: |
    - where is my order [123456](order_number)
    - where is order [987654](order_number) please
    - my order [555123](order_number)
    - the package [112233](order_number) is late
    - where is my package
    - my order please
    - {LONG_PREFIX}where is order [778899](order_number)
- intent: cancel
  examples: |
    - cancel [2468]{{"entity": "order_number", "role": "old"}} and send [1357]{{"entity": "order_number", "role": "new"}}
    - stop [card](item) payment
- intent: greet
  examples: |
    - hello
    - hi there
"""


def training_data() -> TrainingData:
    return RasaYAMLReader().reads(NLU_YAML)


def annotated_examples() -> List[Message]:
    return [example for example in training_data().nlu_examples if example.get("entities")]


def tiny_config(tiny_bert_path: Path, **override: Any) -> Dict[Text, Any]:
    # A random 32-wide encoder learns slowly: larger steps, small batches and a wider
    # adapter learn every training span for any seed tried (1-5) in about 3 s. One thread:
    # a model this small gains nothing from two, and on a busy machine they spin-wait.
    return {
        **BertEntityExtractor.get_default_config(),
        "model_name_or_path": str(tiny_bert_path),
        "epochs": 60,
        "batch_size": 4,
        "lora_rank": 16,
        "lora_alpha": 32,
        "learning_rate": 5e-3,
        "head_learning_rate": 3e-2,
        "num_threads": 1,
        "training_threads": 1,
        "validation_fraction": 0.0,
        "show_progress_bar": False,
        "max_length": MAX_LENGTH,
        "window_overlap": 4,
        **override,
    }


def context(name: Text = "extractor", is_finetuning: bool = False) -> ExecutionContext:
    return ExecutionContext(node_name=name, graph_schema=None, is_finetuning=is_finetuning)


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads() -> Any:
    """`num_threads` is process-wide in torch; later test modules get the default back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> LocalModelStorage:
    return LocalModelStorage(tmp_path_factory.mktemp("entity-storage"))


@pytest.fixture(scope="module")
def trained(storage: LocalModelStorage, tiny_bert_path: Path) -> BertEntityExtractor:
    """Trained once per module: training is the slow part, every test below only reads it."""
    component = BertEntityExtractor.create(
        tiny_config(tiny_bert_path), storage, Resource("extractor"), context()
    )
    component.train(training_data())
    return component


def parse(component: BertEntityExtractor, texts: List[Text]) -> List[Message]:
    messages = [Message(data={"text": text}) for text in texts]
    component.process(messages)
    return messages


def entity_tuples(entities: List[Dict[Text, Any]]) -> List[tuple]:
    return [
        (e["entity"], e["start"], e["end"], e["value"], e.get("role"), e.get("group")) for e in entities
    ]


def test_finds_the_trained_entities_with_exact_spans(trained: BertEntityExtractor) -> None:
    examples = annotated_examples()
    messages = parse(trained, [example.get("text") for example in examples])
    for example, message in zip(examples, messages):
        assert entity_tuples(message.get("entities")) == entity_tuples(example.get("entities")), example.get("text")


def test_messages_without_entities_get_none(trained: BertEntityExtractor) -> None:
    for message in parse(trained, ["where is my package", "hello", "my order please"]):
        assert message.get("entities") == []


def test_entity_output_has_rasa_shape(trained: BertEntityExtractor) -> None:
    (message,) = parse(trained, ["cancel 2468 and send 1357"])
    entities = message.get("entities")
    assert [(e["value"], e["role"]) for e in entities] == [("2468", "old"), ("1357", "new")]
    for entity in entities:
        assert set(entity) == {"entity", "start", "end", "value", "confidence_entity", "extractor", "role"}
        assert entity["extractor"] == "BertEntityExtractor"
        assert 0.0 < entity["confidence_entity"] <= 1.0
        assert entity["value"] == message.get("text")[entity["start"] : entity["end"]]
    assert "entities" in message.as_dict(only_output_properties=True)


def test_earlier_extractor_wins_an_overlap_by_default(trained: BertEntityExtractor) -> None:
    regex_entity = {
        "entity": "order_number", "start": 18, "end": 24, "value": "123456", "extractor": "RegexEntityExtractor"
    }
    message = Message(data={"text": "where is my order 123456", "entities": [dict(regex_entity)]})
    trained.process([message])
    assert message.get("entities") == [regex_entity]


def test_overlapping_entities_can_be_kept_and_are_appended(trained: BertEntityExtractor) -> None:
    regex_entity = {
        "entity": "order_number", "start": 18, "end": 24, "value": "123456", "extractor": "RegexEntityExtractor"
    }
    message = Message(data={"text": "where is my order 123456", "entities": [dict(regex_entity)]})
    trained.component_config["overlapping_entities"] = "keep"
    try:
        trained.process([message])
    finally:
        trained.component_config["overlapping_entities"] = "skip"
    entities = message.get("entities")
    assert entities[0] == regex_entity
    assert entity_tuples(entities[1:]) == [("order_number", 18, 24, "123456", None, None)]
    assert entities[1]["extractor"] == "BertEntityExtractor"


@pytest.mark.parametrize(
    "text,value",
    [
        (f"{LONG_PREFIX}where is order 778899", "778899"),  # a training example
        (f"{LONG_PREFIX}where is my order 123456", "123456"),  # an unseen one
    ],
)
def test_entity_past_max_length_is_found_through_windows(trained: BertEntityExtractor, text: Text, value: Text) -> None:
    first_window = trained.tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_offsets_mapping=True)
    start = text.index(value)
    assert max(end for _, end in first_window["offset_mapping"]) < start  # truncation would lose it
    (message,) = parse(trained, [text])
    assert entity_tuples(message.get("entities")) == [("order_number", start, start + len(value), value, None, None)]


def test_a_huge_message_is_read_in_at_most_max_windows_encoder_passes(
    trained: BertEntityExtractor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One message cannot make thousands of encoder passes: only its first windows are read."""
    from lepton_components.extractors import token_tagger

    passes: List[int] = []
    predict = token_tagger.predict_tag_probabilities

    def counting(model: Any, input_ids: List[List[int]], *args: Any) -> Any:
        passes.append(len(input_ids))
        return predict(model, input_ids, *args)

    monkeypatch.setattr(token_tagger, "predict_tag_probabilities", counting)
    text = "where is my order 123456 " * 2000
    (message,) = parse(trained, [text])
    assert passes == [trained.component_config["max_windows"]]
    assert entity_tuples(message.get("entities"))[0][3] == "123456"


def test_confidence_threshold_drops_uncertain_entities(trained: BertEntityExtractor) -> None:
    (message,) = parse(trained, ["cancel 2468 and send 1357"])
    lowest = min(e["confidence_entity"] for e in message.get("entities"))
    trained.component_config["confidence_threshold"] = lowest + 1e-6
    try:
        (message,) = parse(trained, ["cancel 2468 and send 1357"])
    finally:
        trained.component_config["confidence_threshold"] = 0.0
    assert all(e["confidence_entity"] > lowest for e in message.get("entities"))
    assert len(message.get("entities")) == 1


def test_persist_then_load_gives_identical_output(trained, storage, tiny_bert_path) -> None:
    loaded = BertEntityExtractor.load(tiny_config(tiny_bert_path), storage, Resource("extractor"), context())
    texts = [example.get("text") for example in annotated_examples()] + ["hello", "my order 42"]
    assert loaded.scheme.labels == trained.scheme.labels
    assert loaded.transition_counts == trained.transition_counts
    assert sum(map(sum, loaded.transition_counts)) > 0
    for mine, theirs in zip(parse(loaded, texts), parse(trained, texts)):
        assert entity_tuples(mine.get("entities")) == entity_tuples(theirs.get("entities"))
        np.testing.assert_allclose(
            [e["confidence_entity"] for e in mine.get("entities")],
            [e["confidence_entity"] for e in theirs.get("entities")],
            atol=1e-5,
        )


def test_onnx_runtime_backend_finds_the_same_entities(trained, storage, tiny_bert_path) -> None:
    from lepton_components.onnx_encoder import OnnxRuntimeEncoder

    served = BertEntityExtractor.load(
        tiny_config(tiny_bert_path, inference_backend="onnxruntime"), storage, Resource("extractor"), context()
    )
    assert isinstance(served.model.encoder, OnnxRuntimeEncoder)
    # Long texts too: they go through the exported graph in several windows.
    texts = [example.get("text") for example in annotated_examples()] + ["hello", "word " * 40 + "order 4455"]
    for mine, theirs in zip(parse(served, texts), parse(trained, texts)):
        assert entity_tuples(mine.get("entities")) == entity_tuples(theirs.get("entities"))
        np.testing.assert_allclose(
            [e["confidence_entity"] for e in mine.get("entities")],
            [e["confidence_entity"] for e in theirs.get("entities")],
            atol=1e-4,
        )


def test_artefacts_are_safetensors_and_json_only(trained, storage) -> None:
    import json

    with storage.read_from(Resource("extractor")) as directory:
        names = sorted(path.name for path in Path(directory).iterdir())
        metadata = json.loads((Path(directory) / METADATA_FILE).read_text())
    assert names == ["adapter.safetensors", "head.safetensors", "metadata.json"]
    assert metadata["tags"] == [
        "O", "B-item", "I-item", "B-order_number", "I-order_number",
        "B-order_number#new", "I-order_number#new", "B-order_number#old", "I-order_number#old",
    ]
    assert metadata["lora"]["r"] == 16


def test_lora_saves_only_trained_adapter_weights(trained, storage) -> None:
    with storage.read_from(Resource("extractor")) as directory:
        adapter = load_file(str(Path(directory) / ADAPTER_FILE))
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    # peft initialises every lora_B to zero: non-zero means training updated the adapter.
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)
    assert all("lora_" in name for name in adapter)


def test_lora_training_changes_only_adapter_weights(tiny_bert_path) -> None:
    import torch

    from lepton_components import torch_encoder
    from lepton_components.encoder_config import EncoderConfig
    from lepton_components.extractors.token_tagger import TokenTagger, fine_tune

    settings = EncoderConfig.from_component_config("test", tiny_config(tiny_bert_path, epochs=3))
    encoder = torch_encoder.prepare_for_training(torch_encoder.load_encoder(tiny_bert_path), settings)
    before = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    tokenizer = torch_encoder.load_tokenizer(tiny_bert_path)
    token_ids = tokenizer(["where is my order 12", "hello"])["input_ids"]
    tags = [[-100, 0, 0, 0, 0, 1, 2, -100], [-100, 0, -100]]
    fine_tune(TokenTagger(encoder, 3), token_ids, tags, [0, 1], settings, tokenizer.pad_token_id, torch.device("cpu"), 3)
    changed = {name for name, p in encoder.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("lora_" in name for name in changed)
    assert any("lora_B" in name for name in changed)


def test_untrained_extractor_leaves_messages_alone(storage, tiny_bert_path) -> None:
    component = BertEntityExtractor.create(tiny_config(tiny_bert_path), storage, Resource("untrained"), context())
    (message,) = parse(component, ["where is my order 123456"])
    assert message.get("entities") is None


def test_data_without_entities_warns_and_trains_nothing(storage, tiny_bert_path, toy_intents) -> None:
    resource = Resource("no-entities")
    component = BertEntityExtractor.create(tiny_config(tiny_bert_path), storage, resource, context())
    with pytest.warns(UserWarning, match="found no entity annotations"):
        component.train(build_training_data(toy_intents))
    assert component.model is None
    (message,) = parse(component, ["where is my order"])
    assert message.get("entities") is None
    loaded = BertEntityExtractor.load(tiny_config(tiny_bert_path), storage, resource, context())
    assert loaded.model is None
    (message,) = parse(loaded, ["where is my order"])
    assert message.get("entities") is None


def test_misaligned_annotation_warns_naming_the_example(storage, tiny_bert_path) -> None:
    text = "order 123456🎉 thanks"
    data = TrainingData(
        [
            Message.build(text="order 42", intent="a", entities=[{"start": 6, "end": 8, "value": "42", "entity": "n"}]),
            Message.build(text=text, intent="a", entities=[{"start": 6, "end": 12, "value": "123456", "entity": "n"}]),
        ]
    )
    component = BertEntityExtractor.create(
        tiny_config(tiny_bert_path, epochs=1), storage, Resource("misaligned"), context()
    )
    with pytest.warns(UserWarning) as warnings:
        component.train(data)
    (warning,) = [w for w in warnings if "word-piece boundaries" in str(w.message)]
    assert f"'123456' (n) in '{text}'" in str(warning.message)
    assert "ends inside the word piece '123456🎉'" in str(warning.message)


def test_finetuning_refuses_new_entity_labels(trained, storage, tiny_bert_path) -> None:
    finetuning = BertEntityExtractor.load(
        tiny_config(tiny_bert_path), storage, Resource("extractor"), context(is_finetuning=True)
    )
    data = TrainingData(
        [Message.build(text="pay 42", intent="a", entities=[{"start": 4, "end": 6, "value": "42", "entity": "amount"}])]
    )
    with pytest.raises(EntityTrainingDataError, match="amount"):
        finetuning.train(data)


def test_finetuning_continues_from_trained_weights(trained, storage, tiny_bert_path) -> None:
    # What Rasa passes for `--finetune --epoch-fraction 0.1` on 60 epochs: it scales `epochs` itself.
    config = tiny_config(tiny_bert_path, epochs=6, finetuning_epoch_fraction=0.1)
    finetuned = BertEntityExtractor.load(config, storage, Resource("extractor"), context(is_finetuning=True))
    finetuned._resource = Resource("finetuned")  # keep the shared trained model intact
    finetuned.train(training_data())
    assert finetuned.training_report["epochs_run"] == 6
    (message,) = parse(finetuned, ["where is my order 123456"])
    assert entity_tuples(message.get("entities")) == [("order_number", 18, 24, "123456", None, None)]


def test_early_stopping_holds_out_whole_messages(storage, tiny_bert_path) -> None:
    config = tiny_config(tiny_bert_path, validation_fraction=0.5, early_stopping_patience=1, min_held_out_examples=1, epochs=8)
    component = BertEntityExtractor.create(config, storage, Resource("early-stopping"), context())
    component.train(training_data())
    report = component.training_report
    # Half of the 5 plain order_number messages and of the 4 without entities; the
    # single-example labels (item, the roles) keep theirs for training.
    assert report["validation_messages"] == 4
    assert 0.0 <= report["best_validation_f1"] <= 1.0
    assert 1 <= report["best_epoch"] <= report["epochs_run"] <= 8


@pytest.mark.parametrize("mode,changes_encoder", [("full", True), ("head_only", False)])
def test_other_training_modes_persist_and_load(storage, tiny_bert_path, mode, changes_encoder) -> None:
    import torch

    from lepton_components import torch_encoder
    from lepton_components.extractors.token_tagger import predict_tag_probabilities

    config = tiny_config(tiny_bert_path, training_mode=mode, epochs=2)
    resource = Resource(f"mode-{mode}")
    component = BertEntityExtractor.create(config, storage, resource, context())
    component.train(training_data())
    original = torch_encoder.load_encoder(tiny_bert_path).state_dict()
    trained_state = component.model.encoder.state_dict()
    assert any(not torch.equal(original[n], trained_state[n]) for n in original) == changes_encoder
    loaded = BertEntityExtractor.load(config, storage, resource, context())
    windows = [w.input_ids for w in component._windows(["where is my order 123456", LONG_PREFIX + "order 1"])]
    for mine, theirs in zip(
        predict_tag_probabilities(loaded.model, windows, 0, torch.device("cpu")),
        predict_tag_probabilities(component.model, windows, 0, torch.device("cpu")),
    ):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "override,message",
    [
        ({"epoch": 5}, "unknown config key `epoch`. Did you mean `epochs`?"),
        ({"confidence_threshold": 1.5}, "`confidence_threshold` must be a number >= 0 and <= 1, got 1.5"),
        ({"window_overlap": 9}, "`window_overlap` must be an integer >= 0 and <= 8, got 9"),
        ({"window_overlap": 2.5}, "`window_overlap` must be an integer, got 2.5"),
        ({"max_windows": 0}, "`max_windows` must be an integer >= 1"),
        ({"head_dropout": -0.1}, "`head_dropout` must be a number >= 0 and <= 0.9, got -0.1"),
        ({"training_mode": "qlora"}, "`training_mode` must be one of 'lora', 'full', 'head_only', got 'qlora'"),
    ],
)
def test_bad_config_is_refused_with_the_fix(storage, tiny_bert_path, override, message) -> None:
    with pytest.raises(InvalidConfigException) as error:
        BertEntityExtractor.create(tiny_config(tiny_bert_path, **override), storage, Resource("bad"), context())
    assert message in str(error.value)
    assert "config.yml" in str(error.value)


@pytest.mark.parametrize("component_class", ["BertEntityExtractor", "BertIntentClassifier"])
def test_max_length_beyond_the_backbone_is_refused_at_creation(storage, tiny_bert_path, component_class) -> None:
    from lepton_components.classifiers.bert_intent_classifier import BertIntentClassifier

    chosen = {"BertEntityExtractor": BertEntityExtractor, "BertIntentClassifier": BertIntentClassifier}[component_class]
    config = {**chosen.get_default_config(), "model_name_or_path": str(tiny_bert_path), "max_length": 256}
    with pytest.raises(InvalidConfigException, match=f"{component_class}: `max_length` is 256.*reads at most 128"):
        chosen.create(config, storage, Resource("too-long"), context())


def test_fingerprint_addon_follows_the_backbone(tiny_bert_path, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert_path, copy)
    first = BertEntityExtractor.fingerprint_addon({"model_name_or_path": str(copy)})
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("}", ', "extra": 1}', 1))
    assert first and BertEntityExtractor.fingerprint_addon({"model_name_or_path": str(copy)}) != first
    assert BertEntityExtractor.fingerprint_addon({"model_name_or_path": str(tmp_path / "missing")}) is None
