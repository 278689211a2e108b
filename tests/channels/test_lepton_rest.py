"""LeptonRestInput and strict mode, served by a real Sanic server on 127.0.0.1.

The outages here are raised by stand-in stores; tests/integration/test_outages.py
stops the real PostgreSQL and Redis under `rasa run`.
"""

import json
import logging
from types import SimpleNamespace
from typing import Any, List, Text

import aiohttp
import pytest
import redis.exceptions
import sqlalchemy.exc
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.lock_store import LockError
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.server import ErrorResponse
from rasa.shared.core.domain import Domain
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.rest import LeptonRestInput
from lepton_components.server.extensions import install_server_extensions
from lepton_components.stores.atomic_redis_lock_store import LockStoreUnavailable
from lepton_components.stores.strict_tracker_store import TrackerStoreUnavailable, is_strict
from tests.rest_client import REST_JSON, rest_channel, rest_credentials
from tests.channels.webhook_harness import TIMEOUT_S, get, post, serve_channel

DATABASE = "postgresql://postgres@10.1.2.3:5432/lepton_secret_db"
TRACKER_STORE_DOWN = TrackerStoreUnavailable(f"The SQL tracker store at {DATABASE} cannot be used (refused).")
LOCK_STORE_DOWN = LockStoreUnavailable("Cannot reach the Redis lock store at 10.1.2.3:6379 db 1: refused.")


class ReadyAgent(SimpleNamespace):
    """Enough of an Agent for the channel: a ready agent with a tracker store."""

    def __init__(self, tracker_store: Any = None) -> None:
        from rasa.core.tracker_store import FailSafeTrackerStore

        store = FailSafeTrackerStore(tracker_store or InMemoryTrackerStore(Domain.empty()))
        super().__init__(tracker_store=store, processor=SimpleNamespace(tracker_store=store))

    def is_ready(self) -> bool:
        return True


class BrokenTrackerStore(InMemoryTrackerStore):
    """A tracker store whose database is down."""

    async def retrieve(self, sender_id: Text) -> Any:
        raise TRACKER_STORE_DOWN

    async def save(self, tracker: Any) -> None:
        raise TRACKER_STORE_DOWN


def failing_bot(error: BaseException) -> Any:
    async def bot(message: UserMessage) -> None:
        raise error

    return bot


async def replying_bot(message: UserMessage) -> None:
    await message.output_channel.send_text_message(message.sender_id, f"You said: {message.text}")


def body(sender: Text = "customer-1", message: Text = "where is my order?") -> bytes:
    return json.dumps({"sender": sender, "message": message}).encode("utf-8")


JSON = REST_JSON


def outage_log_lines(caplog: pytest.LogCaptureFixture) -> List[Text]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.asyncio
async def test_replies_keep_rasas_url_and_json() -> None:
    async with serve_channel(rest_channel(), replying_bot, agent=ReadyAgent()) as url:
        assert url.endswith("/webhooks/rest")
        status, text = await post(url + "/webhook", body(message="hi"), JSON)
        assert (status, json.loads(text)) == (200, [{"recipient_id": "customer-1", "text": "You said: hi"}])
        assert await get(url + "/") == (200, '{"status":"ok"}')


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "error, service, logged",
    [
        (TRACKER_STORE_DOWN, "tracker_store", DATABASE),
        (LOCK_STORE_DOWN, "lock_store", "10.1.2.3:6379 db 1"),
        (redis.exceptions.ConnectionError("Error 111 connecting to 10.1.2.3:6379."), "redis", "10.1.2.3:6379"),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed the connection")), "database",
         "server closed the connection"),
        (LockError("Could not acquire lock for conversation_id 'rest:customer-1'"), "lock_store",
         "conversation_id of rest sender #"),
    ],
)
async def test_an_outage_answers_503_naming_the_service_and_logs_one_line(
    caplog: pytest.LogCaptureFixture, error: Exception, service: Text, logged: Text
) -> None:
    async with serve_channel(rest_channel(), failing_bot(error), agent=ReadyAgent()) as url:
        caplog.clear()
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url + "/webhook", data=body(), headers=JSON) as reply:
                status, headers, answer = reply.status, reply.headers, await reply.json()

    assert status == 503
    assert headers["Retry-After"] == "5"
    assert answer["error"] == "service_unavailable" and answer["service"] == service
    assert "Resend it in a few seconds" in answer["message"]
    # Addresses are for operators: in the log, not in the answer to the client.
    assert "10.1.2.3" not in json.dumps(answer)
    lines = outage_log_lines(caplog)
    assert len(lines) == 1, lines
    # The sender is named by a fingerprint only: ids must not leak into logs.
    assert lines[0].startswith("HTTP 503 for a REST message from rest sender #") and logged in lines[0]
    assert "customer-1" not in lines[0]


@pytest.mark.asyncio
async def test_rasas_rest_channel_answers_200_for_the_same_outage() -> None:
    """What LeptonRestInput replaces (rasa/core/channels/rest.py L160-181)."""
    async with serve_channel(RestInput(), failing_bot(TRACKER_STORE_DOWN), agent=ReadyAgent()) as url:
        assert await post(url + "/webhook", body(), JSON) == (200, "[]")


@pytest.mark.asyncio
async def test_an_outage_wrapped_in_another_error_is_still_503() -> None:
    try:
        raise TRACKER_STORE_DOWN
    except TrackerStoreUnavailable as cause:
        wrapped = RuntimeError("processing failed")
        wrapped.__cause__ = cause
    async with serve_channel(rest_channel(), failing_bot(wrapped), agent=ReadyAgent()) as url:
        status, text = await post(url + "/webhook", body(), JSON)
    assert status == 503 and json.loads(text)["service"] == "tracker_store"


@pytest.mark.asyncio
async def test_any_other_failure_is_a_500_not_an_empty_reply(caplog: pytest.LogCaptureFixture) -> None:
    async with serve_channel(rest_channel(), failing_bot(ValueError("bug")), agent=ReadyAgent()) as url:
        status, text = await post(url + "/webhook", body(), JSON)
    assert status == 500 and json.loads(text)["error"] == "internal_error"
    assert any(record.exc_info and record.exc_info[0] is ValueError for record in caplog.records)


@pytest.mark.asyncio
@pytest.mark.parametrize("has_agent", [False, True])
async def test_without_a_loaded_model_the_answer_is_503_not_an_empty_list(has_agent: bool) -> None:
    from rasa.core.agent import Agent

    # Rasa's server before the model is loaded, and after a failed load or DELETE /model.
    agent = Agent() if has_agent else None
    async with serve_channel(rest_channel(), replying_bot, agent=agent) as url:
        status, text = await post(url + "/webhook", body(), JSON)
    assert status == 503 and json.loads(text)["error"] == "no_model_loaded"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [
        b"[]", b'{"sender": "x"}', b'{"sender": "x", "message": 42}', b"", b"nope",
        # Rasa's processor fails on these with a 500 (a schemathesis finding against `rasa run`).
        b'{"sender": "", "message": "", "metadata": [null, null]}', b'{"sender": 7, "message": "hi"}',
    ],
)
async def test_a_body_without_a_text_message_is_a_400(payload: bytes) -> None:
    async with serve_channel(rest_channel(), replying_bot, agent=ReadyAgent()) as url:
        status, text = await post(url + "/webhook", payload, JSON)
    assert status == 400 and json.loads(text)["error"] == "bad_request"


@pytest.mark.asyncio
async def test_streaming_sends_json_lines_and_a_503_before_the_first_line() -> None:
    async with serve_channel(rest_channel(), replying_bot, agent=ReadyAgent()) as url:
        status, text = await post(url + "/webhook?stream=true", body(message="hi"), JSON)
        assert status == 200
        lines = [json.loads(line) for line in text.splitlines()]
        assert lines == [{"recipient_id": "customer-1", "text": "You said: hi"}]
    async with serve_channel(rest_channel(), failing_bot(LOCK_STORE_DOWN), agent=ReadyAgent()) as url:
        status, text = await post(url + "/webhook?stream=true", body(), JSON)
        assert status == 503 and json.loads(text)["service"] == "lock_store"


@pytest.mark.asyncio
async def test_a_failure_after_the_first_streamed_line_ends_the_stream_with_an_error_line() -> None:
    async def reply_then_fail(message: UserMessage) -> None:
        await replying_bot(message)
        raise TRACKER_STORE_DOWN

    async with serve_channel(rest_channel(), reply_then_fail, agent=ReadyAgent()) as url:
        status, text = await post(url + "/webhook?stream=true", body(message="hi"), JSON)
    lines = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and lines[0]["text"] == "You said: hi"
    assert lines[1]["status"] == 503 and lines[1]["service"] == "tracker_store"


@pytest.mark.asyncio
async def test_the_channel_makes_the_agents_tracker_store_errors_reach_the_client() -> None:
    """Without strict mode Rasa's FailSafeTrackerStore would hand back a new, empty tracker."""
    agent = ReadyAgent(BrokenTrackerStore(Domain.empty()))
    assert not is_strict(agent.tracker_store)
    seen: List[Any] = []

    async def bot(message: UserMessage) -> None:
        # What Agent.handle_message does first: load the conversation.
        seen.append(await agent.processor.tracker_store.get_or_create_tracker(message.sender_id))

    async with serve_channel(rest_channel(), bot, agent=agent) as url:
        status, text = await post(url + "/webhook", body(), JSON)
    assert status == 503 and json.loads(text)["service"] == "tracker_store"
    assert seen == [] and is_strict(agent.tracker_store) and agent.processor.tracker_store is agent.tracker_store


class StrictModeProbe(InputChannel):
    """Routes standing in for Rasa's HTTP API, on a server with strict mode switched on."""

    @classmethod
    def name(cls) -> Text:
        return "probe"

    def blueprint(self, on_new_message: Any) -> Blueprint:
        probe = Blueprint("strict_mode_probe")
        probe.listener("before_server_start")(install_server_extensions)

        @probe.get("/strict")
        async def strict(request: Request) -> HTTPResponse:
            agent = request.app.ctx.agent
            return response.json({"strict": is_strict(agent.tracker_store), "name": agent.name})

        @probe.put("/model")
        async def replace_agent(request: Request) -> HTTPResponse:
            # What Rasa's PUT /model does: a new Agent with a new, lenient wrapper.
            request.app.ctx.agent = SimpleNamespace(**vars(ReadyAgent()), name="replaced")
            return response.empty()

        @probe.get("/tracker")
        async def tracker(request: Request) -> HTTPResponse:
            raise TRACKER_STORE_DOWN  # escapes the route, as in Rasa's GET /conversations/<id>/tracker

        @probe.get("/api-outage")
        async def api_outage(request: Request) -> HTTPResponse:
            try:
                raise redis.exceptions.ConnectionError("Error 111 connecting to 10.1.2.3:6379.")
            except redis.exceptions.ConnectionError as error:
                raise ErrorResponse(500, "ConversationError", f"An unexpected error occurred. Error: {error}")

        @probe.get("/api-error")
        async def api_error(request: Request) -> HTTPResponse:
            raise ErrorResponse(400, "BadRequest", "No text message defined in request_body.")

        return probe


@pytest.mark.asyncio
async def test_strict_mode_covers_agents_replaced_by_put_model_and_api_errors() -> None:
    agent = SimpleNamespace(**vars(ReadyAgent()), name="first")
    async with serve_channel(StrictModeProbe(), replying_bot, agent=agent) as url:
        assert json.loads((await get(url + "/strict"))[1]) == {"strict": True, "name": "first"}

        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.put(url + "/model") as reply:
                assert reply.status == 204
        assert json.loads((await get(url + "/strict"))[1]) == {"strict": True, "name": "replaced"}

        status, text = await get(url + "/tracker")
        assert status == 503 and json.loads(text)["service"] == "tracker_store"
        status, text = await get(url + "/api-outage")
        assert status == 503 and json.loads(text)["service"] == "redis"
        status, text = await get(url + "/api-error")
        assert status == 400 and json.loads(text)["reason"] == "BadRequest"
