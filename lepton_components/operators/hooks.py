"""The console's view of every customer message: before the bot answers and as it is saved.

Like Lepton's monitoring (`monitoring/processor_hooks.py`), this wraps
`MessageProcessor.handle_message` and `save_tracker` on the processor *instance*: the one
path every channel's message takes, under the conversation lock. Each console part may
contribute `TurnHooks`:

* `before_turn` may take the message over (a conversation an agent holds is logged but
  the bot stays silent), returning True;
* `before_save` may append events to the finished turn (a handoff's queue position);
* `after_save` sees the turn as stored (the turn log behind review and analytics).

A failing hook is logged and never fails the customer's message, except `before_turn`,
whose failure fails the turn: answering a conversation an agent holds would be worse.
"""

import logging
from contextvars import ContextVar
from typing import Any, Callable, List, Optional, Protocol, Sequence

import sqlalchemy as sa
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.monitoring.processor_hooks import turn_events
from lepton_components.stores.strict_tracker_store import TrackerStoreUnavailable, _describe

logger = logging.getLogger(__name__)

_STATE = "_lepton_operator_hooks"
# The message whose turn is being processed, so only that turn's save is seen.
_current_message: ContextVar[Optional[UserMessage]] = ContextVar("lepton_operator_message", default=None)


class TurnHooks(Protocol):
    """What a console part does around a customer message (every method may be a no-op)."""

    async def before_turn(self, processor: Any, message: UserMessage) -> bool:
        """True if the part handled the message and the bot must not run."""

    async def before_save(
        self, processor: Any, message: UserMessage, tracker: DialogueStateTracker, events: List[Event]
    ) -> None:
        """Called with the turn's events before they are stored; may append events."""

    async def after_save(
        self, processor: Any, message: UserMessage, tracker: DialogueStateTracker, events: List[Event]
    ) -> None:
        """Called once the turn is stored."""


def _wrap_handle_message(processor: Any, original: Callable) -> Callable:
    async def handle_message(message: UserMessage) -> Any:
        hooks: Sequence[TurnHooks] = getattr(processor, _STATE)
        token = _current_message.set(message)
        try:
            for hook in hooks:
                try:
                    taken = await hook.before_turn(processor, message)
                except sa.exc.SQLAlchemyError as error:
                    # The console's tables live in the tracker store's database, so this
                    # is that database's outage (HTTP 503 naming `tracker_store`).
                    from lepton_components.operators.database import sql_engine_of

                    database = _describe(sql_engine_of(processor.tracker_store).url)
                    raise TrackerStoreUnavailable(
                        f"The conversation database {database} cannot be used ({type(error).__name__}: {error})."
                    ) from error
                if taken:
                    return []
            return await original(message)
        finally:
            _current_message.reset(token)

    return handle_message


def _wrap_save_tracker(processor: Any, original: Callable) -> Callable:
    async def save_tracker(tracker: DialogueStateTracker) -> None:
        message = _current_message.get()
        if message is None or tracker.sender_id != message.sender_id:
            await original(tracker)
            return
        hooks: Sequence[TurnHooks] = getattr(processor, _STATE)
        for hook in hooks:
            try:
                await hook.before_save(processor, message, tracker, turn_events(tracker))
            except Exception:
                logger.exception(f"{type(hook).__name__}.before_save failed; the turn is saved without it.")
        await original(tracker)
        _current_message.set(None)  # a second save in the same turn is not a new turn
        events = turn_events(tracker)
        for hook in hooks:
            try:
                await hook.after_save(processor, message, tracker, events)
            except Exception:
                logger.exception(f"{type(hook).__name__}.after_save failed; the customer was not affected.")

    return save_tracker


def install_turn_hooks(processor: Any, hooks: Sequence[TurnHooks]) -> bool:
    """Runs `hooks` around every message `processor` handles; False if they already are."""
    current = getattr(processor, _STATE, None)
    if current is not None:
        if list(current) != list(hooks):
            setattr(processor, _STATE, list(hooks))
        return False
    setattr(processor, _STATE, list(hooks))
    processor.handle_message = _wrap_handle_message(processor, processor.handle_message)
    processor.save_tracker = _wrap_save_tracker(processor, processor.save_tracker)
    return True
