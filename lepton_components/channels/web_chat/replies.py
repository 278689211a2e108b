"""The fast path for retries that reach the same replica: join the turn already running.

After a dropped connection the widget cannot tell whether its message reached the bot,
so it sends it again under the same message id. A retry that arrives here while the
first attempt is still running (or shortly after it finished) waits for that attempt's
task and gets exactly its replies, without touching the lock or the tracker store.

This is only a shortcut: correctness does not depend on it. The turn itself checks the
tracker for the message id under the conversation lock (`turns.py`), which is what
makes a retry on another replica, or after this process forgot the id, safe too.
"""

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Dict, List, Text, Tuple, Type

logger = logging.getLogger(__name__)

Replies = List[Dict[Text, Any]]
# Remembered (sender, message id) pairs in this process; oldest forgotten first.
DEFAULT_CAPACITY = 10_000


class RecentTurns:
    """Turn tasks by (sender id, client message id), in memory of one server process."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._turns: "OrderedDict[Tuple[Text, Text], asyncio.Future[Replies]]" = OrderedDict()

    def start(
        self, sender_id: Text, message_id: Text, turn: Callable[[], Awaitable[Replies]]
    ) -> "asyncio.Future[Replies]":
        """The task of this message's turn: the known one, or `turn()` started now.

        The task is independent of the request that started it: Sanic cancels a
        handler when its client disconnects, and the turn must still finish, so that
        the tracker holds it and the retry finds it. Await it with `asyncio.shield`.
        """
        key = (sender_id, message_id)
        known = self._turns.get(key)
        if known is not None:
            self._turns.move_to_end(key)
            return known
        task = asyncio.ensure_future(turn())
        self._turns[key] = task
        task.add_done_callback(lambda done: self._forget_if_failed(key, done))
        while len(self._turns) > self._capacity:
            # A forgotten turn that is still running keeps running; its retry is then
            # answered from the tracker.
            self._turns.popitem(last=False)
        return task

    def _forget_if_failed(self, key: Tuple[Text, Text], task: "asyncio.Future[Replies]") -> None:
        # A failed attempt is not remembered: the retry processes the message anew.
        if (task.cancelled() or task.exception() is not None) and self._turns.get(key) is task:
            del self._turns[key]


def log_if_failed_unseen(task: "asyncio.Future[Replies]", refusals: Tuple[Type[BaseException], ...] = ()) -> None:
    """Done callback for a turn whose client left: nobody else will report its failure.

    `refusals` are the errors that are answers (a revoked session), not failures.
    """
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not isinstance(error, refusals):
        logger.error("A web chat turn failed after its client had disconnected.", exc_info=error)
