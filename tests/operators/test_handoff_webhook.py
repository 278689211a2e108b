"""The helpdesk webhook: signed events of each handoff step, in order, retried when the
receiver fails, and never in the way of the customer's turn."""

import asyncio
import hashlib
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

import pytest
from aiohttp import web

from lepton_components.operators.handoff.settings import WebhookSettings
from lepton_components.operators.handoff.webhook import WebhookSender
from tests.operators.handoff_bot import RecordingInput, RecordingOutput, handoff_part, operator, say

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]
SECRET = "webhook-secret-0123456789-abcdefghij"
FAST_RETRIES = (0.05, 0.05, 0.05)


class Receiver:
    """A helpdesk's webhook endpoint: records each request, answers `statuses` in turn (then 200)."""

    def __init__(self, statuses: Optional[List[int]] = None, delay_s: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.requests: List[Dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"headers": dict(request.headers), "body": body, "at": time.monotonic()})
        await asyncio.sleep(self.delay_s)
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> List[Dict[str, Any]]:
        return [json.loads(request["body"]) for request in self.requests]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests arrived"
            await asyncio.sleep(0.01)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


def sender_for(url: str, timeout_seconds: float = 2.0) -> WebhookSender:
    return WebhookSender(WebhookSettings(url, SECRET, timeout_seconds), retry_delays=FAST_RETRIES)


def expected_signature(headers: Dict[str, str], body: bytes) -> str:
    signed = headers["X-Lepton-Timestamp"].encode() + b"." + body
    return "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()


async def test_each_event_is_signed_with_the_shared_secret() -> None:
    async with receiving(Receiver()) as receiver:
        sender = sender_for(receiver.url)
        event = {"id": "e1", "type": "handoff.claimed", "created_at": 1.0, "conversation": {"id": "rest:1"}}
        assert await sender.deliver(event) is True
        await sender.close()
    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["X-Lepton-Signature"] == expected_signature(headers, body)
    assert abs(int(headers["X-Lepton-Timestamp"]) - time.time()) < 5
    assert (headers["X-Lepton-Event"], headers["X-Lepton-Delivery"]) == ("handoff.claimed", "e1")
    assert headers["Content-Type"] == "application/json" and json.loads(body) == event
    # A forged body does not match.
    assert expected_signature(headers, body.replace(b"rest:1", b"rest:2")) != headers["X-Lepton-Signature"]


async def test_failures_are_retried_with_the_same_delivery_id_then_given_up(caplog: pytest.LogCaptureFixture) -> None:
    async with receiving(Receiver([500, 429, 503])) as receiver:
        sender = sender_for(receiver.url)
        assert await sender.deliver({"id": "e2", "type": "handoff.released"}) is True
        assert [r["headers"]["X-Lepton-Delivery"] for r in receiver.requests] == ["e2"] * 4
        receiver.statuses = [500] * 10
        receiver.requests.clear()
        with caplog.at_level(logging.ERROR):
            assert await sender.deliver({"id": "e3", "type": "handoff.released"}) is False
        assert len(receiver.requests) == 4  # the first attempt and three retries
        assert "gave up on the handoff.released event e3 after 4 attempts" in caplog.text
        # A 4xx means the receiver refuses this event: not retried.
        receiver.statuses, receiver.requests = [401], []
        assert await sender.deliver({"id": "e4", "type": "handoff.released"}) is False
        assert len(receiver.requests) == 1 and "not retried" in caplog.text
        await sender.close()


async def test_a_receiver_that_does_not_answer_in_time_is_retried() -> None:
    async with receiving(Receiver(delay_s=0.5)) as receiver:
        sender = sender_for(receiver.url, timeout_seconds=0.1)
        assert await sender.deliver({"id": "e5", "type": "handoff.claimed"}) is False
        assert len(receiver.requests) == 4
        await sender.close()


async def test_the_handoff_steps_reach_the_helpdesk_in_order(tmp_path: Path) -> None:
    async with receiving(Receiver([503])) as receiver:
        output = RecordingOutput()
        part, agent = handoff_part(
            tmp_path, channels=[RecordingInput("recording", output)], webhook={"url": receiver.url, "secret": SECRET}
        )
        part.sender.retry_delays = FAST_RETRIES
        ada = "recording:ada"
        await say(agent, "recording:ada", "hello", channel="recording")
        await say(agent, ada, "I need a human", channel="recording")
        await say(agent, ada, "my order LP-123456 never came", channel="recording")
        service = await part.service()
        await service.claim(operator("dana"), ada)
        await service.reply(operator("dana"), ada, "Let me look into LP-123456.")
        await service.release(operator("dana"), ada)
        # Six events; the first was answered 503 once and retried, the others waited for it.
        await receiver.wait_for(6)
        await part.sender.drain(5)
        await part.sender.close()
    events = receiver.events()
    assert [event["type"] for event in events] == [
        "handoff.requested", "handoff.requested", "conversation.message", "handoff.claimed", "conversation.message",
        "handoff.released",
    ]
    requested, customer, claimed, agent_message, released = events[1:]
    assert requested["id"] == events[0]["id"]  # the retry
    assert requested["conversation"]["id"] == ada and requested["conversation"]["status"] == "waiting"
    assert requested["conversation"]["reason"] == "customer_asked" and requested["conversation"]["queue"] == "support"
    assert [m["sender"] for m in requested["transcript"]] == ["customer", "bot", "customer", "bot", "bot"]
    assert requested["transcript"][2]["text"] == "I need a human"
    assert customer["message"]["sender"] == "customer"
    assert customer["message"]["text"] == "my order LP-123456 never came"
    assert claimed["operator"] == {"username": "dana", "name": "dana"} and claimed["conversation"]["agent"] == "dana"
    assert agent_message["message"]["sender"] == "agent" and agent_message["message"]["text"] == "Let me look into LP-123456."
    assert released["reason"] == "released" and released["operator"]["username"] == "dana"
    assert len({event["id"] for event in events[1:]}) == 5


async def test_a_slow_or_dead_helpdesk_never_holds_up_the_customer(tmp_path: Path) -> None:
    async with receiving(Receiver(delay_s=3.0)) as receiver:
        part, agent = handoff_part(tmp_path, webhook={"url": receiver.url, "secret": SECRET, "timeout_seconds": 10})
        started = time.monotonic()
        replies = await say(agent, "rest:slow", "human please")
        await say(agent, "rest:slow", "anyone?")
        assert time.monotonic() - started < 1.5 and len(replies) == 2
        await part.sender.close()
    # Nobody listening at all: the customer's turn still succeeds.
    part, agent = handoff_part(tmp_path / "dead", webhook={"url": "http://127.0.0.1:9/hook", "secret": SECRET})
    part.sender.retry_delays = FAST_RETRIES
    assert len(await say(agent, "rest:dead", "human please")) == 2
    await part.sender.drain(5)
    await part.sender.close()
