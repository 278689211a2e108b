"""Bot messages that arrive outside a request (reminders, `trigger_intent`, handoff replies).

Each open widget holds one server-sent-events stream; `PushRegistry` maps a sender id to
its open streams (`output.WebChatPushOutput` publishes to it). A message for a browser
with no open stream is not lost: it is in the tracker and shows up in the history on
the next load.

A session may hold at most `max_per_sender` streams at once on a replica; opening one
more ends the oldest with the reason `replaced` (the widget in a background tab then
waits until it is looked at again before reconnecting). So one token cannot hold
hundreds of connections open, and a customer with many tabs still gets pushes in the
tab in front.
Streams are per replica; with several replicas, route each session to one replica
(sticky sessions) if pushed messages must arrive live.
"""

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Dict, Optional, Text

logger = logging.getLogger(__name__)

# Messages waiting for a slow browser before its stream is dropped (it reconnects
# and reloads the history, so nothing is lost).
STREAM_QUEUE_SIZE = 100
REPLACED, REVOKED, EXPIRED, SLOW = "replaced", "revoked", "expired", "slow"


class StreamClosed(Exception):
    """The stream was ended by the server; `reason` is sent to the browser."""

    def __init__(self, reason: Text) -> None:
        super().__init__(reason)
        self.reason = reason


class Stream:
    """One open event stream: the messages waiting for it, or why it was closed."""

    def __init__(self) -> None:
        self._queue: "asyncio.Queue[Dict[Text, Any]]" = asyncio.Queue(maxsize=STREAM_QUEUE_SIZE)
        self.closed_reason: Optional[Text] = None
        self._closed = asyncio.Event()

    def offer(self, message: Dict[Text, Any]) -> bool:
        if self.closed_reason is not None:
            return False
        try:
            self._queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            logger.warning("A web chat stream is not reading; it is closed and will reload its history.")
            self.close(SLOW)
            return False

    def close(self, reason: Text) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self._closed.set()

    async def next(self, timeout: float) -> Optional[Dict[Text, Any]]:
        """The next message; None after `timeout` seconds; `StreamClosed` once closed."""
        if self.closed_reason is None and not self._queue.empty():
            return self._queue.get_nowait()
        if self.closed_reason is not None:
            raise StreamClosed(self.closed_reason)
        getter = asyncio.ensure_future(self._queue.get())
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({getter, closer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (getter, closer):
                waiter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        if self.closed_reason is not None:
            raise StreamClosed(self.closed_reason)
        return None


class PushRegistry:
    """Open event streams by sender id, within this server process."""

    def __init__(self, max_per_sender: int = 3) -> None:
        self.max_per_sender = max_per_sender
        # Oldest first, per sender.
        self._streams: Dict[Text, "OrderedDict[Stream, None]"] = {}

    def open(self, sender_id: Text) -> Stream:
        """A new stream for the sender; its oldest ones end if it would hold too many."""
        streams = self._streams.setdefault(sender_id, OrderedDict())
        while len(streams) >= self.max_per_sender:
            oldest, _ = streams.popitem(last=False)
            oldest.close(REPLACED)
        stream = Stream()
        streams[stream] = None
        return stream

    def close(self, sender_id: Text, stream: Stream) -> None:
        streams = self._streams.get(sender_id)
        if streams is not None:
            streams.pop(stream, None)
            if not streams:
                del self._streams[sender_id]

    def close_all(self, sender_id: Text, reason: Text) -> int:
        """Ends every stream of the sender (its session was revoked); returns how many."""
        streams = self._streams.pop(sender_id, OrderedDict())
        for stream in streams:
            stream.close(reason)
        return len(streams)

    def publish(self, sender_id: Text, message: Dict[Text, Any]) -> int:
        """Queues the message on every open stream of the sender; returns how many."""
        return sum(stream.offer(message) for stream in list(self._streams.get(sender_id, ())))

    def open_streams(self, sender_id: Text) -> int:
        return len(self._streams.get(sender_id, ()))
