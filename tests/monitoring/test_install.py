"""`/metrics` on a real Sanic server with the Lepton REST channel, as `rasa run` mounts it."""

import json
from pathlib import Path
from typing import Dict, Optional, Text, Tuple

import asyncio

import aiohttp
import pytest
from rasa.core.channels.channel import InputChannel
from sanic import Blueprint
from sanic.request import Request

from lepton_components.server.extensions import install_server_extensions
from tests.channels.webhook_harness import TIMEOUT_S, post, serve_channel
from tests.monitoring.graph_bot import CLASSIFIER_NODE, TurnAgent, TurnProcessor, keyword_graph_runner
from tests.monitoring.scrape import label_values, sample
from tests.rest_client import REST_JSON, rest_channel

KEYWORDS = {"hello": "greet", "human": "human_handoff", "joke": "out_of_scope"}
TOKEN = "scrape-token-0123456789"
JSON = {"Content-Type": "application/json"}
LATENCY = "lepton_http_request_duration_seconds_count"
WEBHOOK = "/webhooks/rest/webhook"


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEPTON_METRICS_ALLOW", "LEPTON_METRICS_TOKEN", "LEPTON_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)


def _root(channel_url: Text) -> Text:
    return channel_url.split("/webhooks/")[0]


async def _get(url: Text, headers: Optional[Dict[Text, Text]] = None) -> Tuple[int, Text]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        async with session.get(url, headers=headers or {}) as reply:
            return reply.status, await reply.text()


async def _say(url: Text, text: Text, **extra: Text) -> int:
    status, _ = await post(url + "/webhook", json.dumps({"sender": "c1", "message": text, **extra}).encode(), REST_JSON)
    return status


@pytest.mark.asyncio
async def test_latency_messages_and_turn_outcomes_are_exported(tmp_path: Path) -> None:
    processor = TurnProcessor(keyword_graph_runner(tmp_path, KEYWORDS, pause_s=0.0))
    agent = TurnAgent(processor)
    async with serve_channel(rest_channel(), agent.handle_message, agent=agent) as url:
        for text in ("hello", "I want a human", "how long does shipping take?", "tell me a joke"):
            assert await _say(url, text) == 200
        # The body may name any input channel: the channel ignores it, so the label stays `rest`.
        assert await _say(url, "hello", input_channel="attacker-chosen") == 200
        assert (await post(url + "/webhook", b"not json", REST_JSON))[0] == 400
        assert (await _get(_root(url) + "/no/such/route"))[0] == 404
        status, text = await _get(_root(url) + "/metrics")
        assert status == 200
        _, later = await _get(_root(url) + "/metrics")

    assert sample(text, LATENCY, channel="rest", route=WEBHOOK, status_class="2xx") == 5
    assert sample(text, LATENCY, channel="rest", route=WEBHOOK, status_class="4xx") == 1
    assert sample(text, LATENCY, channel="unmatched", route="unmatched", status_class="4xx") == 1
    assert sample(text, "lepton_http_request_duration_seconds_sum", channel="rest", route=WEBHOOK, status_class="2xx") > 0
    assert sample(text, "lepton_messages_total", channel="rest") == 5
    assert label_values(text, "lepton_messages_total", "channel") == {"rest"}
    assert sample(text, "lepton_intents_total", intent="greet") == 2
    assert sample(text, "lepton_intents_total", intent="human_handoff") == 1
    assert sample(text, "lepton_intents_total", intent="nlu_fallback") == 1
    assert sample(text, "lepton_handoffs_total", trigger="intent") == 1
    assert sample(text, "lepton_faq_retrievals_total", outcome="answered") == 1
    assert sample(text, "lepton_fallbacks_total", kind="nlu_fallback") == 1
    assert sample(text, "lepton_fallbacks_total", kind="action_default_fallback") == 1
    assert sample(text, "lepton_component_duration_seconds_count", node=CLASSIFIER_NODE, component="KeywordClassifier") == 5
    # The first scrape shows up in the second, under its own channel.
    assert sample(later, LATENCY, channel="metrics", route="/metrics", status_class="2xx") == 1
    assert len(processor.saved) == 5


@pytest.mark.asyncio
async def test_a_replaced_model_is_instrumented_on_the_next_request(tmp_path: Path) -> None:
    agent = TurnAgent(TurnProcessor(keyword_graph_runner(tmp_path / "a", KEYWORDS, pause_s=0.0)))
    async with serve_channel(rest_channel(), agent.handle_message, agent=agent) as url:
        assert await _say(url, "hello") == 200
        # What `PUT /model` amounts to here: a new processor with a new graph runner.
        agent.processor = TurnProcessor(keyword_graph_runner(tmp_path / "b", KEYWORDS, pause_s=0.0))
        assert await _say(url, "hello") == 200
        assert await _say(url, "hello") == 200
        _, text = await _get(_root(url) + "/metrics")
    assert sample(text, "lepton_intents_total", intent="greet") == 3
    assert sample(text, "lepton_component_duration_seconds_count", node=CLASSIFIER_NODE) == 3


@pytest.mark.asyncio
async def test_proxied_scrapes_need_the_token(tmp_path: Path) -> None:
    agent = TurnAgent(TurnProcessor(keyword_graph_runner(tmp_path, KEYWORDS)))
    async with serve_channel(rest_channel(), agent.handle_message, agent=agent) as url:
        assert (await _get(_root(url) + "/metrics"))[0] == 200
        status, body = await _get(_root(url) + "/metrics", {"X-Forwarded-For": "8.8.8.8"})
    assert status == 403 and json.loads(body)["error"] == "forbidden"
    assert "LEPTON_METRICS_TOKEN" in json.loads(body)["message"]


@pytest.mark.asyncio
async def test_token_only_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_METRICS_ALLOW", "token")
    monkeypatch.setenv("LEPTON_METRICS_TOKEN", TOKEN)
    agent = TurnAgent(TurnProcessor(keyword_graph_runner(tmp_path, KEYWORDS)))
    async with serve_channel(rest_channel(), agent.handle_message, agent=agent) as url:
        refused = await _get(_root(url) + "/metrics")
        wrong = await _get(_root(url) + "/metrics", {"Authorization": "Bearer wrong-token-0123456789"})
        served = await _get(_root(url) + "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert refused[0] == 401 and wrong[0] == 401
    assert served[0] == 200 and "lepton_http_request_duration_seconds" in served[1]
    assert "lepton_http_request_duration_seconds" not in refused[1] + wrong[1]


class SlowFailure(InputChannel):
    """A route that fails after 0.2 s: Sanic 21.12 then runs the request middleware again."""

    @classmethod
    def name(cls) -> Text:
        return "slow_failure"

    def blueprint(self, on_new_message: object) -> Blueprint:
        probe = Blueprint("slow_failure_probe")
        probe.listener("before_server_start")(install_server_extensions)

        @probe.get("/fail")
        async def fail(request: Request) -> None:
            await asyncio.sleep(0.2)
            raise RuntimeError("broken on purpose")

        return probe


@pytest.mark.asyncio
async def test_a_failing_route_is_timed_from_the_start(tmp_path: Path) -> None:
    agent = TurnAgent(TurnProcessor(keyword_graph_runner(tmp_path, KEYWORDS)))
    async with serve_channel(SlowFailure(), agent.handle_message, agent=agent) as url:
        assert (await _get(url + "/fail"))[0] == 500
        _, text = await _get(_root(url) + "/metrics")
    labels = {"channel": "slow_failure", "route": "/webhooks/slow_failure/fail", "status_class": "5xx"}
    assert sample(text, LATENCY, **labels) == 1
    assert sample(text, "lepton_http_request_duration_seconds_sum", **labels) >= 0.2


@pytest.mark.asyncio
async def test_an_authorization_header_that_is_not_utf8_gets_400_not_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.server.raw_http import raw_request

    monkeypatch.setenv("LEPTON_METRICS_TOKEN", TOKEN)
    agent = TurnAgent(TurnProcessor(keyword_graph_runner(tmp_path, KEYWORDS)))
    async with serve_channel(rest_channel(), agent.handle_message, agent=agent) as url:
        reply = await raw_request(_root(url), "GET", b"/metrics", [(b"Authorization", b"Bearer " + TOKEN.encode() + b"\xff")])
        served = await raw_request(_root(url), "GET", b"/metrics", [(b"Authorization", b"Bearer " + TOKEN.encode())])
    assert reply.status == 400 and reply.json()["error"] == "bad_request"
    assert served.status == 200
