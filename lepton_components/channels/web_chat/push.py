"""Bot messages that arrive outside a request (reminders, `trigger_intent`, handoff replies).

Each open widget holds one server-sent-events stream; `PushRegistry` maps a sender id to
the queues of its open streams (`output.WebChatPushOutput` publishes to it). A message
for a browser with no open stream is not lost: it is in the tracker and shows up in the
history on the next load.
Streams are per replica; with several replicas, route each session to one replica
(sticky sessions) if pushed messages must arrive live.
"""

import asyncio
import logging
from collections import defaultdict
from typing import Any, Dict, Set, Text

logger = logging.getLogger(__name__)

# Messages waiting for a slow browser before its stream is dropped (it reconnects
# and reloads the history, so nothing is lost).
STREAM_QUEUE_SIZE = 100


class PushRegistry:
    """Open event streams by sender id, within this server process."""

    def __init__(self) -> None:
        self._streams: Dict[Text, Set["asyncio.Queue[Dict[Text, Any]]"]] = defaultdict(set)

    def open(self, sender_id: Text) -> "asyncio.Queue[Dict[Text, Any]]":
        queue: "asyncio.Queue[Dict[Text, Any]]" = asyncio.Queue(maxsize=STREAM_QUEUE_SIZE)
        self._streams[sender_id].add(queue)
        return queue

    def close(self, sender_id: Text, queue: "asyncio.Queue[Dict[Text, Any]]") -> None:
        streams = self._streams.get(sender_id)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self._streams[sender_id]

    def publish(self, sender_id: Text, message: Dict[Text, Any]) -> int:
        """Queues the message on every open stream of the sender; returns how many."""
        delivered = 0
        for queue in list(self._streams.get(sender_id, ())):
            try:
                queue.put_nowait(message)
                delivered += 1
            except asyncio.QueueFull:
                logger.warning("A web chat stream is not reading; it will reload its history.")
        return delivered

    def open_streams(self, sender_id: Text) -> int:
        return len(self._streams.get(sender_id, ()))
