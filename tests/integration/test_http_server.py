"""The demo bot behind `rasa run`, talked to over HTTP like a website backend would."""

import uuid
from pathlib import Path
from typing import Iterator, Text

import pytest
import requests

from tests.integration.conftest import REPO, approved_answer
from tests.integration.rasa_server import rasa_run, server_folder
from tests.rest_client import REST_AUTH

pytestmark = pytest.mark.slow


ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's working directory, with its own copy of data/faq.yml to edit live."""
    return server_folder(tmp_path_factory, "server")


@pytest.fixture(scope="module")
def server_url(demo_model_path: Path, server_dir: Path) -> Iterator[Text]:
    with rasa_run(demo_model_path, server_dir, REPO / "bot" / "credentials.yml", {"LEPTON_ADMIN_TOKEN": ADMIN_TOKEN}) as url:
        yield url


def _say(url: Text, sender: Text, text: Text) -> list:
    response = requests.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, headers=REST_AUTH, timeout=60)
    assert response.status_code == 200
    return [message.get("text") for message in response.json()]


def test_conversation_over_rest(server_url: Text) -> None:
    sender = uuid.uuid4().hex
    assert "order number" in " ".join(_say(server_url, sender, "where is my order?"))
    assert any("LP-482913" in text for text in _say(server_url, sender, "LP-482913"))


def test_unseen_question_answered_over_rest(server_url: Text) -> None:
    assert _say(server_url, uuid.uuid4().hex, "are there vacancies at your company?") == [approved_answer("careers")]


def test_oversized_and_empty_messages_do_not_break_the_server(server_url: Text) -> None:
    sender = uuid.uuid4().hex
    oversized = requests.post(f"{server_url}/webhooks/rest/webhook", json={"sender": sender, "message": "a" * 10_000},
                              headers=REST_AUTH, timeout=60)
    assert oversized.status_code == 413 and "the limit is 2000" in oversized.json()["message"]
    assert _say(server_url, sender, "")
    assert "order number" in " ".join(_say(server_url, sender, "where is my order?"))


NEW_ANSWER = """
  - id: pet_policy
    questions: [Can I bring my dog into your stores?, Are pets allowed in the shop?]
    answer: "Well-behaved dogs on a lead are welcome in all Lepton stores."
"""


def _reload(url: Text, token: Text) -> requests.Response:
    return requests.post(f"{url}/webhooks/faq_admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=120)


def test_admin_routes_refuse_missing_and_wrong_tokens(server_url: Text) -> None:
    assert requests.post(f"{server_url}/webhooks/faq_admin/reload", timeout=10).status_code == 401
    assert _reload(server_url, "not-the-token").status_code == 401
    assert requests.get(f"{server_url}/webhooks/faq_admin/status", timeout=10).status_code == 401


def test_edited_answers_go_live_without_retraining(server_url: Text, server_dir: Path) -> None:
    faq = server_dir / "data" / "faq.yml"
    original = faq.read_text(encoding="utf-8")
    sender = uuid.uuid4().hex
    faq.write_text(original + NEW_ANSWER, encoding="utf-8")
    reply = _reload(server_url, ADMIN_TOKEN)
    assert reply.status_code == 200, reply.text
    version = reply.json()["knowledge_bases"][0]["version"]
    assert version >= 2
    assert _say(server_url, sender, "can my dog come with me into the store?") == [
        "Well-behaved dogs on a lead are welcome in all Lepton stores."
    ]

    faq.write_text(original + "  - id: broken\n", encoding="utf-8")
    refused = _reload(server_url, ADMIN_TOKEN)
    assert refused.status_code == 422 and "missing the field" in refused.json()["error"]
    status = requests.get(
        f"{server_url}/webhooks/faq_admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    ).json()
    assert status["knowledge_bases"][0]["version"] == version
    assert _say(server_url, uuid.uuid4().hex, "can my dog come with me into the store?") == [
        "Well-behaved dogs on a lead are welcome in all Lepton stores."
    ]
