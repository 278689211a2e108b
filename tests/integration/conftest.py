"""Fixtures that train with the real packaged all-MiniLM-L6-v2 (minutes, marked slow)."""

from pathlib import Path
from typing import Any, Text

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`rasa train` of the demo bot exactly as `make train` runs it, done once per session."""
    from rasa.model_training import train

    output = tmp_path_factory.mktemp("demo-model")
    result = train(
        domain=str(REPO / "bot" / "domain.yml"),
        config=str(REPO / "config.yml"),
        training_files=[str(REPO / "data")],
        output=str(output),
    )
    assert result.code == 0, "rasa train of the demo bot failed"
    return Path(result.model)


@pytest.fixture(scope="session")
def demo_agent(demo_model_path: Path) -> Any:
    from rasa.core.agent import Agent

    return Agent.load(str(demo_model_path))


def approved_answer(answer_id: Text, **values: Text) -> Text:
    """The knowledge base's answer `answer_id`, rendered as the bot would."""
    from lepton_components.retrieval.knowledge_base import load_knowledge_base

    (answer,) = [a for a in load_knowledge_base(REPO / "data" / "faq.yml") if a.id == answer_id]
    return answer.render(values)
