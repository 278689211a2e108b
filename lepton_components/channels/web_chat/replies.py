"""Exactly-once handling of widget messages that the browser sends again.

After a dropped connection the widget cannot tell whether its message reached the bot,
so it sends it again under the same client message id. The first request's replies are
kept for a while and returned to the retry; a retry that arrives while the first is
still being processed waits for it. The customer sees every reply once and the
tracker holds the message once.
"""

import asyncio
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Dict, List, Text, Tuple

Replies = List[Dict[Text, Any]]
# Remembered (sender, message id) pairs in this process; oldest forgotten first.
DEFAULT_CAPACITY = 10_000


class RecentReplies:
    """Replies by (sender id, client message id), in memory of one server process."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._replies: "OrderedDict[Tuple[Text, Text], asyncio.Future[Replies]]" = OrderedDict()

    async def once(self, sender_id: Text, message_id: Text, handle: Callable[[], Awaitable[Replies]]) -> Replies:
        """Runs `handle` the first time this message id is seen, else returns its replies."""
        key = (sender_id, message_id)
        known = self._replies.get(key)
        if known is not None:
            self._replies.move_to_end(key)
            return await asyncio.shield(known)
        future: "asyncio.Future[Replies]" = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        while len(self._replies) > self._capacity:
            self._replies.popitem(last=False)
        try:
            replies = await handle()
        except BaseException as error:
            # A failed attempt is not remembered: the retry processes the message anew.
            self._replies.pop(key, None)
            if isinstance(error, Exception):
                future.set_exception(error)
                # Nobody else may be waiting; mark the exception as retrieved.
                future.exception()
            else:
                future.cancel()
            raise
        future.set_result(replies)
        return replies
