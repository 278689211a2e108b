"""Handoff events for a helpdesk (Zendesk, Freshdesk, Chatwoot, ...): signed JSON POSTs.

Each event is sent in a background task, so a slow or broken helpdesk never delays or
fails a customer's turn or an agent's click: it is retried (`RETRY_DELAYS_S`, on network
errors, timeouts, 429 and 5xx) and then given up on with a log line. Events of one
conversation go out in order (each waits for the one before); conversations do not
wait for each other.

The receiver checks `X-Lepton-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
with the shared secret and rejects a stale `X-Lepton-Timestamp`; `X-Lepton-Delivery` is
the same on every attempt of one event, to drop duplicates. Schema: docs/handoff.md.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional, Set, Text, Tuple

import aiohttp

from lepton_components.channels.conversation_ids import describe
from lepton_components.operators.handoff.settings import WebhookSettings

logger = logging.getLogger(__name__)

REQUESTED, MESSAGE, CLAIMED, RELEASED = "handoff.requested", "conversation.message", "handoff.claimed", "handoff.released"
# Seconds before each retry: three retries after the first attempt.
RETRY_DELAYS_S: Tuple[float, ...] = (1.0, 4.0, 16.0)
# Events waiting to be sent at once; beyond that new ones are dropped (and logged).
MAX_PENDING = 1000
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Lepton-Signature", "X-Lepton-Timestamp"
EVENT_HEADER, DELIVERY_HEADER = "X-Lepton-Event", "X-Lepton-Delivery"

EventBuilder = Callable[[], Awaitable[Dict[Text, Any]]]


def signature(secret: Text, timestamp: Text, body: bytes) -> Text:
    """The `X-Lepton-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class _Retry(Exception):
    """This attempt failed in a way that another attempt may not."""


class _Refused(Exception):
    """The receiver answered 4xx: another attempt would get the same."""


class WebhookSender:
    """Posts events to `settings.url` in the background, per conversation in order."""

    def __init__(
        self,
        settings: WebhookSettings,
        retry_delays: Tuple[float, ...] = RETRY_DELAYS_S,
        clock: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.settings = settings
        self.retry_delays = retry_delays
        self.clock = clock
        self.max_pending = max_pending
        self._session: Optional[aiohttp.ClientSession] = None
        self._pending: Set["asyncio.Task[bool]"] = set()
        # The last task of each conversation, which the next one waits for.
        self._last: Dict[Text, "asyncio.Task[bool]"] = {}

    def send(self, event_type: Text, conversation_id: Text, build: EventBuilder) -> Optional["asyncio.Task[bool]"]:
        """Schedules the event; `build()` makes its body's fields (it may read the tracker).

        Returns the task (True once delivered), or None if too many events are pending.
        """
        if len(self._pending) >= self.max_pending:
            logger.error(
                f"Handoff webhook: {len(self._pending)} events are waiting for {self.settings.url}; "
                f"the {event_type} event of {describe(conversation_id)} was dropped. Check the receiver."
            )
            return None
        previous = self._last.get(conversation_id)
        task = asyncio.ensure_future(self._after(previous, event_type, conversation_id, build))
        self._pending.add(task)
        self._last[conversation_id] = task

        def forget(done: "asyncio.Task[bool]") -> None:
            self._pending.discard(done)
            if self._last.get(conversation_id) is done:
                del self._last[conversation_id]

        task.add_done_callback(forget)
        return task

    async def _after(
        self, previous: Optional["asyncio.Task[bool]"], event_type: Text, conversation_id: Text, build: EventBuilder
    ) -> bool:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            fields = await build()
        except Exception:
            logger.exception(f"Handoff webhook: the {event_type} event of {describe(conversation_id)} could not be built.")
            return False
        event = {"id": uuid.uuid4().hex, "type": event_type, "created_at": self.clock(), **fields}
        return await self.deliver(event)

    async def deliver(self, event: Dict[Text, Any]) -> bool:
        """POSTs one event, retrying; True once the receiver answered 2xx."""
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        attempts = len(self.retry_delays) + 1
        for attempt in range(attempts):
            try:
                await self._post(event, body)
                return True
            except _Retry as failure:
                if attempt + 1 == attempts:
                    logger.error(
                        f"Handoff webhook: gave up on the {event['type']} event {event['id']} after {attempts} "
                        f"attempts to {self.settings.url}: {failure}"
                    )
                    return False
                logger.warning(
                    f"Handoff webhook: attempt {attempt + 1} of {attempts} for the {event['type']} event "
                    f"{event['id']} failed ({failure}); retrying in {self.retry_delays[attempt]:g} s."
                )
                await asyncio.sleep(self.retry_delays[attempt])
            except _Refused as refusal:
                logger.error(
                    f"Handoff webhook: {self.settings.url} refused the {event['type']} event {event['id']} "
                    f"({refusal}); not retried. Check the URL and the receiver's secret."
                )
                return False
        return False

    async def _post(self, event: Dict[Text, Any], body: bytes) -> None:
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "lepton-handoff-webhook",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(self.settings.secret, timestamp, body),
            EVENT_HEADER: event["type"],
            DELIVERY_HEADER: event["id"],
        }
        try:
            async with self._client().post(self.settings.url, data=body, headers=headers) as reply:
                await reply.read()
                status = reply.status
        except asyncio.TimeoutError:
            raise _Retry(f"no answer within {self.settings.timeout_seconds:g} s") from None
        except aiohttp.ClientError as error:
            raise _Retry(f"{type(error).__name__}: {error}") from None
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}")
        if not 200 <= status < 300:
            raise _Refused(f"HTTP {status}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                # A helpdesk URL never needs cookies; do not keep any between events.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def drain(self, timeout: float) -> None:
        """Waits up to `timeout` seconds for the pending events (tests, shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    async def close(self) -> None:
        """Stops pending retries and closes the HTTP session (server shutdown)."""
        for task in list(self._pending):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
