"""Shared fixtures: a tiny randomly initialised BERT built in-process (no download)."""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Text

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Sets LEPTON_REST_TOKEN for the session, before any test starts a server.
import tests.rest_client  # noqa: E402,F401

# Servers started by tests (bot/credentials.yml) sign web chat sessions with this.
os.environ.setdefault("LEPTON_WEB_CHAT_SECRET", "test-web-chat-secret-0123456789abcdef")
# ... and create the operator console's first `admin` account with this password.
os.environ.setdefault("LEPTON_OPERATOR_PASSWORD", "test-operator-password-0123")

TINY_VOCABULARY = (
    "hello hi hey good morning evening bye goodbye see you later thanks thank "
    "where is my order package parcel refund money back return item cancel stop "
    "card payment pay declined the a an i want to please can how do what when "
    "shipping delivery cost time account password login email address help human agent"
).split()


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a word-piece vocabulary; seeded, so identical per run."""
    import string

    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocabulary = (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + characters
        + [f"##{c}" for c in string.ascii_lowercase + string.digits]
        + TINY_VOCABULARY
    )
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocabulary))}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def packaged_minilm_path() -> Path:
    from lepton_components.backbone import packaged_backbone_path

    return packaged_backbone_path()


def build_training_data(examples: Dict[Text, List[Text]]) -> Any:
    """TrainingData from {intent: [texts]}."""
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    return TrainingData(
        [Message.build(text=text, intent=intent) for intent, texts in examples.items() for text in texts]
    )


@pytest.fixture
def toy_intents() -> Dict[Text, List[Text]]:
    """Three intents whose examples share no content words."""
    return {
        "greet": ["hello", "hi", "hey", "good morning", "hello there", "hi good evening", "hey hello", "good evening"],
        "goodbye": ["bye", "goodbye", "see you later", "bye bye", "goodbye see you", "later", "see you", "bye see you later"],
        "order_status": [
            "where is my order", "where is my package", "where is my parcel", "my order",
            "where is the package", "order where", "my parcel where is it", "the order",
        ],
    }


@pytest.fixture
def model_storage(tmp_path: Path) -> Any:
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    storage_path = tmp_path / "model_storage"
    storage_path.mkdir()
    return LocalModelStorage(storage_path)


@pytest.fixture
def create_component(model_storage: Any) -> Callable[..., Any]:
    """Factory like Rasa's `create_diet`: builds a component with a config override."""
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.resource import Resource

    def create(component_class: Any, config: Dict[Text, Any], resource_name: Text = "component") -> Any:
        return component_class.create(
            {**component_class.get_default_config(), **config},
            model_storage,
            Resource(resource_name),
            ExecutionContext(node_name=resource_name, graph_schema=None),
        )

    return create


@pytest.fixture
def load_component(model_storage: Any) -> Callable[..., Any]:
    """Loads a persisted component from the same model storage."""
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.resource import Resource

    def load(
        component_class: Any, config: Dict[Text, Any], resource_name: Text = "component", is_finetuning: bool = False
    ) -> Any:
        return component_class.load(
            {**component_class.get_default_config(), **config},
            model_storage,
            Resource(resource_name),
            ExecutionContext(node_name=resource_name, graph_schema=None, is_finetuning=is_finetuning),
        )

    return load
