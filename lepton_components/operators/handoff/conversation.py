"""What a handoff writes into the conversation itself: the audit trail and the messages.

The tracker is the one record of a conversation that every replica, export and event
broker shares, so every change of hands and every agent message is an event there:
`SlotSet("handoff_status", ...)` and `BotUttered`, each with `metadata` saying who did
what when (`{"lepton_operator": {"username", "action", "at"}}`; the bot's own queueing
and a timed-out wait use `lepton_handoff`). Writes from the inbox take the conversation
lock first, as the message processor does, so they never race a customer's turn.
"""

import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from rasa.core.actions.action import create_bot_utterance
from rasa.shared.core.events import BotUttered, Event, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException

STATUS_SLOT = "handoff_status"
OPERATOR_KEY = "lepton_operator"
HANDOFF_KEY = "lepton_handoff"

QUEUED, JOINED, CLOSED, TIMEOUT, LEFT = (
    "utter_handoff_queued",
    "utter_agent_joined",
    "utter_handoff_closed",
    "utter_handoff_timeout",
    "utter_agent_left",
)
RESPONSES = (QUEUED, JOINED, CLOSED, TIMEOUT, LEFT)


class MissingResponse(RasaException):
    """The bot's domain lacks a response the handoff sends."""


def operator_metadata(username: Text, action: Text, at: Optional[float] = None, **extra: Any) -> Dict[Text, Any]:
    """The audit record of one operator action."""
    return {OPERATOR_KEY: {"username": username, "action": action, "at": at if at is not None else time.time(), **extra}}


def handoff_metadata(action: Text, at: float, **extra: Any) -> Dict[Text, Any]:
    """The record of what the bot itself did about a handoff (queued, closed, timed out)."""
    return {HANDOFF_KEY: {"action": action, "at": at, **extra}}


def status_event(status: Optional[Text], metadata: Dict[Text, Any]) -> SlotSet:
    return SlotSet(STATUS_SLOT, status, metadata=metadata)


async def response(nlg: Any, tracker: DialogueStateTracker, name: Text, channel: Text, **variables: Any) -> Dict[Text, Any]:
    """The domain response `name` for `channel`, `{agent}` and slots filled (Rasa's NLG)."""
    message = await nlg.generate(name, tracker, channel, **variables)
    if message is None:
        raise MissingResponse(
            f"The bot's domain has no response `{name}`, which the operator console's handoff sends. Add "
            f"{', '.join(RESPONSES)} to domain.yml (see bot/domain.yml and docs/handoff.md) and train again."
        )
    message["utter_action"] = name
    return message


def bot_uttered(message: Dict[Text, Any], metadata: Dict[Text, Any]) -> BotUttered:
    """The event for a message as Rasa records a response it sent, plus `metadata`."""
    event = create_bot_utterance(dict(message))
    event.metadata = {**event.metadata, **metadata}
    return event


def sendable(message: Dict[Text, Any]) -> Dict[Text, Any]:
    """`message` without the bookkeeping keys an output channel does not need."""
    return {key: value for key, value in message.items() if key != "utter_action"}


Builder = Callable[[DialogueStateTracker], Awaitable[List[Event]]]


async def append(tracker_store: Any, conversation_id: Text, build: Builder) -> DialogueStateTracker:
    """Adds `await build(tracker)` to the stored conversation; the caller holds its lock."""
    tracker = await tracker_store.retrieve(conversation_id)
    if tracker is None:
        tracker = tracker_store.init_tracker(conversation_id)
    for event in await build(tracker):
        tracker.update(event)
    await tracker_store.save(tracker)
    return tracker


async def append_locked(agent: Any, conversation_id: Text, build: Builder) -> DialogueStateTracker:
    """`append` under the conversation's lock, as every write outside a customer's turn."""
    async with agent.lock_store.lock(conversation_id):
        return await append(agent.tracker_store, conversation_id, build)
