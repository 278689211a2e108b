"""BertIntentClassifier on a tiny random BERT: training, output shape, persistence, errors."""

from pathlib import Path
from typing import Any, Dict, List, Text

import numpy as np
import pytest
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from safetensors.torch import load_file

from lepton_components.classifiers.bert_intent_classifier import (
    BertIntentClassifier,
    IntentTrainingDataError,
)
from lepton_components.encoder_persistence import ADAPTER_FILE
from tests.conftest import build_training_data

TEXTS = ["hello", "bye see you", "where is my order", "hey good morning", "goodbye"]


@pytest.fixture
def tiny_config(tiny_bert_path: Path) -> Dict[Text, Any]:
    # A random 32-wide encoder learns slowly: larger steps keep the test to seconds.
    return {
        "model_name_or_path": str(tiny_bert_path),
        "epochs": 25,
        "learning_rate": 5e-3,
        "head_learning_rate": 3e-2,
        "validation_fraction": 0.0,
        "show_progress_bar": False,
    }


def _parse(component: BertIntentClassifier, texts: List[Text]) -> List[Message]:
    messages = [Message(data={"text": text}) for text in texts]
    component.process(messages)
    return messages


def _confidences(messages: List[Message]) -> List[List[float]]:
    return [[entry["confidence"] for entry in m.get("intent_ranking")] for m in messages]


@pytest.fixture
def trained(create_component, tiny_config, toy_intents) -> BertIntentClassifier:
    component = create_component(BertIntentClassifier, tiny_config)
    component.train(build_training_data(toy_intents))
    return component


def test_learns_the_training_intents(trained: BertIntentClassifier, toy_intents) -> None:
    texts = [text for examples in toy_intents.values() for text in examples]
    expected = [intent for intent, examples in toy_intents.items() for _ in examples]
    predicted = [m.get("intent")["name"] for m in _parse(trained, texts)]
    accuracy = np.mean([p == e for p, e in zip(predicted, expected)])
    assert accuracy >= 0.9


def test_output_has_rasa_shape(trained: BertIntentClassifier) -> None:
    for message in _parse(trained, TEXTS):
        intent, ranking = message.get("intent"), message.get("intent_ranking")
        assert set(intent) == {"name", "confidence"}
        assert intent == ranking[0]
        confidences = [entry["confidence"] for entry in ranking]
        assert confidences == sorted(confidences, reverse=True)
        assert all(0.0 <= c <= 1.0 for c in confidences)
        assert sum(confidences) == pytest.approx(1.0, abs=1e-4)
        assert {entry["name"] for entry in ranking} == {"greet", "goodbye", "order_status"}
        assert "intent" in message.as_dict(only_output_properties=True)


def test_ranking_length_truncates(create_component, tiny_config, toy_intents) -> None:
    component = create_component(BertIntentClassifier, {**tiny_config, "ranking_length": 2, "epochs": 2})
    component.train(build_training_data(toy_intents))
    for message in _parse(component, TEXTS):
        assert len(message.get("intent_ranking")) == 2
        assert message.get("intent") == message.get("intent_ranking")[0]


def test_persist_then_load_gives_identical_output(trained, load_component, tiny_config) -> None:
    loaded = load_component(BertIntentClassifier, tiny_config)
    assert loaded.labels == trained.labels
    np.testing.assert_allclose(
        _confidences(_parse(loaded, TEXTS)), _confidences(_parse(trained, TEXTS)), atol=1e-5
    )


def test_int8_inference_quantizes_linear_layers_and_keeps_the_answers(
    trained, load_component, tiny_config, toy_intents
) -> None:
    import torch

    quantized = load_component(BertIntentClassifier, {**tiny_config, "inference_quantization": "int8"})
    linear_types = {type(m) for m in quantized.model.modules() if type(m).__name__ == "Linear"}
    assert linear_types == {torch.ao.nn.quantized.dynamic.Linear}
    texts = [text for examples in toy_intents.values() for text in examples]
    full, int8 = _parse(trained, texts), _parse(quantized, texts)
    agreement = np.mean([a.get("intent")["name"] == b.get("intent")["name"] for a, b in zip(full, int8)])
    print(f"int8 agrees with fp32 on {agreement:.2f} of the training messages")
    assert agreement >= 0.8  # a random 32-wide encoder; the real model: docs/benchmarks.md
    assert not np.allclose(_confidences(int8), _confidences(full), atol=1e-6)  # really int8


def test_onnx_runtime_backend_gives_the_same_answers(trained, load_component, tiny_config, toy_intents) -> None:
    from lepton_components.onnx_encoder import OnnxRuntimeEncoder

    served = load_component(BertIntentClassifier, {**tiny_config, "inference_backend": "onnxruntime"})
    assert isinstance(served.model.encoder, OnnxRuntimeEncoder)
    texts = [text for examples in toy_intents.values() for text in examples] + ["word " * 100]
    np.testing.assert_allclose(_confidences(_parse(served, texts)), _confidences(_parse(trained, texts)), atol=1e-4)


def test_onnx_runtime_int8_keeps_the_answers(trained, load_component, tiny_config, toy_intents) -> None:
    served = load_component(
        BertIntentClassifier, {**tiny_config, "inference_backend": "onnxruntime", "inference_quantization": "int8"}
    )
    assert served.model.encoder.precision == "int8"
    texts = [text for examples in toy_intents.values() for text in examples]
    full, int8 = _parse(trained, texts), _parse(served, texts)
    agreement = np.mean([a.get("intent")["name"] == b.get("intent")["name"] for a, b in zip(full, int8)])
    assert agreement >= 0.8
    assert not np.allclose(_confidences(int8), _confidences(full), atol=1e-6)  # really int8


def test_artefacts_are_safetensors_and_json_only(trained, model_storage) -> None:
    from rasa.engine.storage.resource import Resource

    with model_storage.read_from(Resource("component")) as directory:
        names = sorted(path.name for path in Path(directory).iterdir())
    assert names == ["adapter.safetensors", "head.safetensors", "metadata.json"]


def test_same_seed_same_result(create_component, tiny_config, toy_intents, tmp_path) -> None:
    results = []
    for _ in range(2):
        component = create_component(BertIntentClassifier, {**tiny_config, "epochs": 5})
        component.train(build_training_data(toy_intents))
        results.append(_confidences(_parse(component, TEXTS)))
    np.testing.assert_array_equal(results[0], results[1])


def test_different_seed_different_result(create_component, tiny_config, toy_intents) -> None:
    results = []
    for seed in (1, 2):
        component = create_component(BertIntentClassifier, {**tiny_config, "epochs": 5, "random_seed": seed})
        component.train(build_training_data(toy_intents))
        results.append(_confidences(_parse(component, TEXTS)))
    assert not np.allclose(results[0], results[1])


def test_lora_trains_adapters_and_leaves_base_weights(trained, model_storage, tiny_bert_path) -> None:
    from rasa.engine.storage.resource import Resource

    with model_storage.read_from(Resource("component")) as directory:
        adapter = load_file(str(Path(directory) / ADAPTER_FILE))
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    # peft initialises every lora_B to zero: non-zero means training updated the adapter.
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)
    assert not any("lora" not in name for name in adapter)


def test_lora_keeps_base_weights_frozen_during_training(tiny_bert_path, tiny_config, toy_intents) -> None:
    import torch

    from lepton_components import torch_encoder
    from lepton_components.classifiers.sentence_classifier import SentenceClassifier, fine_tune
    from lepton_components.encoder_config import EncoderConfig

    settings = EncoderConfig.from_component_config(
        "test", {**BertIntentClassifier.get_default_config(), **tiny_config, "epochs": 3}
    )
    encoder = torch_encoder.prepare_for_training(torch_encoder.load_encoder(tiny_bert_path), settings)
    before = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    tokenizer = torch_encoder.load_tokenizer(tiny_bert_path)
    texts = [t for examples in toy_intents.values() for t in examples]
    labels = [i for i, examples in enumerate(toy_intents.values()) for _ in examples]
    model = SentenceClassifier(encoder, 3)
    fine_tune(model, tokenizer(texts)["input_ids"], labels, settings, tokenizer.pad_token_id, torch.device("cpu"), 3)
    changed = {name for name, p in encoder.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all("lora_" in name for name in changed)
    assert any("lora_B" in name for name in changed)


@pytest.mark.parametrize("mode,changes_encoder", [("full", True), ("head_only", False)])
def test_training_modes(create_component, tiny_config, toy_intents, tiny_bert_path, mode, changes_encoder, load_component) -> None:
    import torch

    from lepton_components import torch_encoder

    config = {**tiny_config, "training_mode": mode, "epochs": 3}
    component = create_component(BertIntentClassifier, config)
    component.train(build_training_data(toy_intents))
    original = torch_encoder.load_encoder(tiny_bert_path).state_dict()
    trained_state = component.model.encoder.state_dict()
    differs = any(not torch.equal(original[name], trained_state[name]) for name in original)
    assert differs == changes_encoder
    loaded = load_component(BertIntentClassifier, config)
    np.testing.assert_allclose(
        _confidences(_parse(loaded, TEXTS)), _confidences(_parse(component, TEXTS)), atol=1e-5
    )


def test_head_warmup_trains_the_head_before_the_encoder(tiny_bert_path, tiny_config, toy_intents) -> None:
    import torch

    from lepton_components import torch_encoder
    from lepton_components.classifiers.sentence_classifier import SentenceClassifier, fine_tune
    from lepton_components.encoder_config import EncoderConfig

    settings = EncoderConfig.from_component_config("test", {**BertIntentClassifier.get_default_config(), **tiny_config})
    tokenizer = torch_encoder.load_tokenizer(tiny_bert_path)
    texts = [t for examples in toy_intents.values() for t in examples]
    labels = [i for i, examples in enumerate(toy_intents.values()) for _ in examples]

    def train_head_only_for(warmup_epochs: int) -> float:
        """Training loss after the warm-up and one epoch in which nothing but the head trains."""
        torch_encoder.seed_everything(7)
        encoder = torch_encoder.prepare_for_training(torch_encoder.load_encoder(tiny_bert_path), settings)
        model = SentenceClassifier(encoder, 3)
        for parameter in torch_encoder.trainable_parameters(model.encoder):
            parameter.requires_grad_(False)
        report = fine_tune(model, tokenizer(texts)["input_ids"], labels, settings, tokenizer.pad_token_id,
                           torch.device("cpu"), 1, head_warmup_epochs=warmup_epochs)
        return report.final_training_loss

    # After 20 warm-up epochs the first joint epoch starts from a fitted head.
    assert train_head_only_for(20) < 0.75 * train_head_only_for(0)


def test_head_warmup_then_lora_learns_the_intents(create_component, tiny_config, toy_intents) -> None:
    component = create_component(BertIntentClassifier, {**tiny_config, "head_warmup_epochs": 10})
    component.train(build_training_data(toy_intents))
    texts = [text for examples in toy_intents.values() for text in examples]
    expected = [intent for intent, examples in toy_intents.items() for _ in examples]
    predicted = [m.get("intent")["name"] for m in _parse(component, texts)]
    assert np.mean([p == e for p, e in zip(predicted, expected)]) >= 0.9


def test_normalised_sentence_vectors_are_unit_length(create_component, tiny_config, toy_intents) -> None:
    import torch

    from lepton_components.torch_encoder import pad_batch

    component = create_component(BertIntentClassifier, {**tiny_config, "normalize_embeddings": True, "epochs": 2})
    component.train(build_training_data(toy_intents))
    input_ids, mask = pad_batch(component._tokenize(TEXTS), component.tokenizer.pad_token_id, torch.device("cpu"))
    with torch.inference_mode():
        norms = component.model.embed(input_ids, mask).norm(dim=-1)
    np.testing.assert_allclose(norms.numpy(), 1.0, atol=1e-5)


def test_archive_serves_as_trained_whatever_normalisation_config_says(
    create_component, load_component, tiny_config, toy_intents
) -> None:
    config = {**tiny_config, "normalize_embeddings": True, "epochs": 2}
    component = create_component(BertIntentClassifier, config)
    component.train(build_training_data(toy_intents))
    loaded = load_component(BertIntentClassifier, {**config, "normalize_embeddings": False})
    assert loaded.model.normalize is True
    np.testing.assert_allclose(_confidences(_parse(loaded, TEXTS)), _confidences(_parse(component, TEXTS)), atol=1e-5)


def test_early_stopping_holds_out_examples(create_component, tiny_config, toy_intents) -> None:
    component = create_component(
        BertIntentClassifier, {**tiny_config, "validation_fraction": 0.25, "early_stopping_patience": 1, "min_held_out_examples": 1, "epochs": 30}
    )
    component.train(build_training_data(toy_intents))
    report = component.training_report
    assert report["validation_examples"] == 3 * 2  # a quarter of 8 examples per intent
    assert report["best_validation_accuracy"] is not None
    assert report["epochs_run"] <= 30


def test_empty_message_gets_no_intent(trained) -> None:
    (message,) = _parse(trained, ["   "])
    assert message.get("intent") == {"name": None, "confidence": 0.0}
    assert message.get("intent_ranking") == []


def test_very_long_message_is_truncated_not_rejected(trained) -> None:
    (message,) = _parse(trained, ["where is my order " * 600])
    assert len(message.get("text")) > 10_000
    assert message.get("intent")["name"] in {"greet", "goodbye", "order_status"}


def test_untrained_component_leaves_messages_alone(create_component, tiny_config) -> None:
    component = create_component(BertIntentClassifier, tiny_config)
    (message,) = _parse(component, ["hello"])
    assert message.get("intent") is None


def test_finetuning_continues_from_trained_weights(trained, load_component, tiny_config, toy_intents) -> None:
    # What Rasa passes for `--finetune --epoch-fraction 0.2` on 25 epochs: it scales `epochs` itself.
    config = {**tiny_config, "epochs": 5, "finetuning_epoch_fraction": 0.2}
    finetuned = load_component(BertIntentClassifier, config, is_finetuning=True)
    assert finetuned.model is not None
    finetuned.train(build_training_data(toy_intents))
    assert finetuned.training_report["epochs_run"] == 5
    assert [m.get("intent")["name"] for m in _parse(finetuned, ["hello", "bye"])] == ["greet", "goodbye"]


@pytest.mark.parametrize(
    "override,message",
    [
        ({"epoch": 5}, "unknown config key `epoch`. Did you mean `epochs`?"),
        ({"training_mode": "qlora"}, "`training_mode` must be one of 'lora', 'full', 'head_only', got 'qlora'"),
        ({"epochs": 0}, "`epochs` must be an integer >= 1, got 0"),
        ({"lora_rank": 2.5}, "`lora_rank` must be an integer, got 2.5"),
        ({"validation_fraction": 0.9}, "`validation_fraction` must be a number >= 0 and <= 0.5, got 0.9"),
        ({"lora_target_modules": []}, "`lora_target_modules` must be a non-empty list"),
        ({"device": "tpu"}, "`device` must be one of 'auto', 'cpu', 'cuda', got 'tpu'"),
        ({"inference_quantization": "int4"}, "`inference_quantization` must be one of 'none', 'int8', got 'int4'"),
        ({"inference_backend": "tensorrt"}, "`inference_backend` must be one of 'torch', 'onnxruntime', got 'tensorrt'"),
        ({"head_warmup_epochs": -1}, "`head_warmup_epochs` must be an integer >= 0, got -1"),
        ({"normalize_embeddings": "yes"}, "`normalize_embeddings` must be one of True, False, got 'yes'"),
    ],
)
def test_bad_config_is_refused_with_the_fix(create_component, tiny_config, override, message) -> None:
    with pytest.raises(InvalidConfigException, match=None) as error:
        create_component(BertIntentClassifier, {**tiny_config, **override})
    assert message in str(error.value)
    assert "config.yml" in str(error.value)


def test_missing_model_folder_is_named(create_component, tmp_path) -> None:
    with pytest.raises(InvalidConfigException) as error:
        create_component(BertIntentClassifier, {"model_name_or_path": str(tmp_path / "nope")})
    assert "no such folder exists" in str(error.value)
    assert str(tmp_path / "nope") in str(error.value)


def test_folder_without_config_is_not_a_model(create_component, tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(InvalidConfigException, match="has no config.json"):
        create_component(BertIntentClassifier, {"model_name_or_path": str(tmp_path)})


def test_lora_target_that_matches_nothing_lists_layer_names(create_component, tiny_config, toy_intents) -> None:
    component = create_component(BertIntentClassifier, {**tiny_config, "lora_target_modules": ["q_proj"]})
    with pytest.raises(InvalidConfigException) as error:
        component.train(build_training_data(toy_intents))
    assert "q_proj" in str(error.value) and "query" in str(error.value)


@pytest.mark.parametrize("intents", [{}, {"greet": ["hello", "hi"]}])
def test_fewer_than_two_intents_is_refused(create_component, tiny_config, intents) -> None:
    component = create_component(BertIntentClassifier, tiny_config)
    with pytest.raises(IntentTrainingDataError, match="at least two intents"):
        component.train(build_training_data(intents))


def test_changed_backbone_is_detected_at_load(trained, load_component, tiny_config, tiny_bert_path, tmp_path) -> None:
    import shutil

    import torch
    from transformers import AutoModel

    changed = tmp_path / "changed-bert"
    shutil.copytree(tiny_bert_path, changed)
    model = AutoModel.from_pretrained(str(changed))
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.add_(1.0)
    model.save_pretrained(str(changed))
    with pytest.raises(InvalidConfigException, match="is not the one"):
        load_component(BertIntentClassifier, {**tiny_config, "model_name_or_path": str(changed)})


def test_changed_backbone_changes_the_training_fingerprint(tiny_bert_path, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy-bert"
    shutil.copytree(tiny_bert_path, copy)
    before = BertIntentClassifier.fingerprint_addon({"model_name_or_path": str(copy)})
    assert before == BertIntentClassifier.fingerprint_addon({"model_name_or_path": str(tiny_bert_path)})
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("}", ', "note": 1}', 1))
    assert BertIntentClassifier.fingerprint_addon({"model_name_or_path": str(copy)}) != before
    assert BertIntentClassifier.fingerprint_addon({"model_name_or_path": str(tmp_path / "missing")}) is None


def test_a_new_stored_format_makes_rasa_train_retrain(tiny_bert_path, monkeypatch) -> None:
    """After an upgrade that changes metadata.json, `rasa train` does not reuse a cached part
    the new code refuses at load."""
    from lepton_components import encoder_persistence

    config = {"model_name_or_path": str(tiny_bert_path)}
    before = BertIntentClassifier.fingerprint_addon(config)
    monkeypatch.setattr(encoder_persistence, "FORMAT_VERSION", encoder_persistence.FORMAT_VERSION + 1)
    assert BertIntentClassifier.fingerprint_addon(config) != before


def _component_folder(model_storage) -> Path:
    from rasa.engine.storage.resource import Resource

    with model_storage.read_from(Resource("component")) as directory:
        return Path(directory)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "metadata.json").write_text("{not json", encoding="utf-8"),
        lambda folder: (folder / "metadata.json").write_text('{"format_version": 1}', encoding="utf-8"),
        lambda folder: (folder / "head.safetensors").write_bytes(b"\x00" * 16),
        lambda folder: (folder / "adapter.safetensors").unlink(),
    ],
    ids=["metadata-not-json", "metadata-incomplete", "head-truncated", "adapter-missing"],
)
def test_a_damaged_archive_stops_loading_with_the_fix(trained, model_storage, load_component, tiny_config, damage) -> None:
    """Not a bot without intents and a DEBUG line: the load fails and says what to do."""
    from lepton_components.encoder_component import DamagedModelArchive

    damage(_component_folder(model_storage))
    with pytest.raises(DamagedModelArchive, match=r"BertIntentClassifier cannot read .*rasa train --force"):
        load_component(BertIntentClassifier, tiny_config)


def test_nothing_stored_gives_a_component_that_leaves_messages_alone(load_component, tiny_config) -> None:
    component = load_component(BertIntentClassifier, tiny_config, resource_name="never-trained")
    assert component.model is None
    assert _parse(component, ["hello"])[0].get("intent") is None


def test_loading_warms_the_model_up(trained, load_component, tiny_config, monkeypatch) -> None:
    """The first customer message after start-up must not pay for lazy initialisation."""
    seen: List[Text] = []
    original = BertIntentClassifier.process

    def recording(self, messages):
        seen.extend(message.get("text") for message in messages)
        return original(self, messages)

    monkeypatch.setattr(BertIntentClassifier, "process", recording)
    load_component(BertIntentClassifier, tiny_config)
    assert len(seen) == 1 and seen[0].strip()


def test_backbone_is_hashed_once_per_process_until_its_files_change(tiny_bert_path, tmp_path) -> None:
    import shutil

    from lepton_components import backbone

    copy = tmp_path / "backbone"
    shutil.copytree(tiny_bert_path, copy)
    before = backbone._hash_files.cache_info().misses
    first = backbone.backbone_fingerprint(copy)
    for _ in range(3):
        assert backbone.backbone_fingerprint(copy) == first
    assert backbone._hash_files.cache_info().misses == before + 1
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("}", ', "edited": 1}', 1))
    assert backbone.backbone_fingerprint(copy) != first
