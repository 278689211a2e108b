"""Live figures on `/metrics` of `rasa run` with the trained demo bot, after a short chat."""

import uuid
from typing import Text

import pytest
import requests
from rasa.shared.core.domain import Domain

# The same `rasa run` server as test_http_server.py, started afresh for this module.
from tests.integration.test_http_server import _say, server_dir, server_url  # noqa: F401
from tests.integration.conftest import REPO
from tests.monitoring.scrape import label_values, sample

pytestmark = pytest.mark.slow

COMPONENT_COUNT = "lepton_component_duration_seconds_count"


def test_metrics_after_a_chat_over_rest(server_url: Text) -> None:  # noqa: F811
    sender = uuid.uuid4().hex
    assert "order number" in " ".join(_say(server_url, sender, "where is my order?"))
    _say(server_url, uuid.uuid4().hex, "are there vacancies at your company?")
    assert any("human agent" in text for text in _say(server_url, uuid.uuid4().hex, "i want to talk to a human"))

    reply = requests.get(f"{server_url}/metrics", timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    text = reply.text

    assert sample(text, "lepton_messages_total", channel="rest") == 3
    assert sample(text, "lepton_intents_total", intent="order_status") == 1
    assert sample(text, "lepton_intents_total", intent="human_handoff") == 1
    assert sample(text, "lepton_faq_retrievals_total", outcome="answered") == 1
    assert sample(text, "lepton_handoffs_total", trigger="intent") == 1
    domain = Domain.load(str(REPO / "bot" / "domain.yml"))
    assert label_values(text, "lepton_intents_total", "intent") <= set(domain.intents) | {"other"}
    components = label_values(text, COMPONENT_COUNT, "component")
    assert {"JointNluComponent", "FaqAnswerPolicy", "RulePolicy"} <= components
    assert sample(text, COMPONENT_COUNT, component="JointNluComponent") == 3  # one NLU pass per message
    assert sample(text, "lepton_component_duration_seconds_sum", component="JointNluComponent") > 0
    webhook = {"channel": "rest", "route": "/webhooks/rest/webhook", "status_class": "2xx"}
    assert sample(text, "lepton_http_request_duration_seconds_count", **webhook) == 3
    assert sample(text, "lepton_http_request_duration_seconds_sum", **webhook) > 0
    assert sample(text, "process_resident_memory_bytes") > 0
