"""What agents (and the helpdesk) do with handed-off conversations, and a wait that times out.

Each action goes the same way: check who may (`permissions`), change hands atomically in
the queue (`queue`), record it in the tracker under the conversation lock with the
operator's name (`conversation`), tell the customer on their channel (`delivery`), and
tell the helpdesk (`webhook`). Once the queue and the tracker agree, a failed delivery
no longer undoes anything: the agent is told (HTTP 502) and the message stays recorded.
"""

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Text, Tuple

from rasa.core.channels.channel import InputChannel
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.conversation_ids import describe
from lepton_components.operators.handoff import conversation, transcript, webhook
from lepton_components.operators.handoff.delivery import Delivery, DeliveryFailed, Recipient, recipient, send
from lepton_components.operators.handoff.permissions import (
    Refusal,
    check_may_answer,
    check_may_see,
    is_admin,
    not_in_queue,
)
from lepton_components.operators.handoff.queue import HELD, WAITING, Handoff, HandoffQueue
from lepton_components.operators.handoff.settings import HandoffSettings
from lepton_components.operators.handoff.webhook import WebhookSender

logger = logging.getLogger(__name__)

# Messages of a conversation sent with `handoff.requested`, for the helpdesk's context.
WEBHOOK_TRANSCRIPT_MESSAGES = 20
MakeMessages = Callable[[DialogueStateTracker, Text], Awaitable[Tuple[List[Event], List[Dict[Text, Any]]]]]


@dataclass(frozen=True)
class Outcome:
    """What an action did: the conversation's handoff now (None: the bot has it) and the delivery."""

    handoff: Optional[Handoff]
    delivery: Optional[Delivery] = None
    # Why the customer did not get the message (the action itself was done).
    failure: Optional[Text] = None
    # The action had been done before (a second click on "Take conversation").
    already: bool = False

    def as_json(self) -> Dict[Text, Any]:
        return {
            "handoff": self.handoff.as_json() if self.handoff else None,
            "delivery": self.delivery.as_json() if self.delivery else None,
            "already": self.already,
        }


def conversation_json(handoff: Handoff) -> Dict[Text, Any]:
    """The conversation part of every webhook event."""
    return {
        "id": handoff.conversation_id,
        "channel": handoff.channel,
        "queue": handoff.queue,
        "status": handoff.status,
        "agent": handoff.agent,
        "reason": handoff.reason,
        "opened_at": handoff.opened_at,
        "claimed_at": handoff.claimed_at,
    }


class HandoffService:
    """The handoff actions on the loaded bot (`agent`) and the console's database (`queue`)."""

    def __init__(
        self,
        settings: HandoffSettings,
        queue: HandoffQueue,
        agent: Any,
        channels: Sequence[InputChannel],
        sender: Optional[WebhookSender] = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.agent = agent
        self.channels = list(channels)
        self.sender = sender

    @property
    def clock(self) -> Callable[[], float]:
        return self.queue.clock

    # Reading -------------------------------------------------------------------------

    async def inbox(self, operator: Any) -> Dict[Text, Any]:
        """The queue as `operator` sees it: waiting in their queues, held by them, others' (admins)."""
        admin = is_admin(operator)
        waiting = await self.queue.waiting_for(None if admin else tuple(operator.queues))
        mine = await self.queue.held_by(operator.username)
        others = await self.queue.held_by_others(operator.username) if admin else []
        now = self.clock()
        return {
            "now": now,
            "wait_timeout_seconds": self.settings.wait_timeout_seconds,
            "waiting": [handoff.as_json() for handoff in waiting],
            "held_by_me": [handoff.as_json() for handoff in mine],
            "held_by_others": [handoff.as_json() for handoff in others],
        }

    async def conversation(self, operator: Any, conversation_id: Text) -> Dict[Text, Any]:
        """The handoff and the newest messages of a conversation `operator` may see."""
        handoff = check_may_see(operator, await self.queue.status_of(conversation_id), conversation_id)
        tracker = await self.agent.tracker_store.retrieve_full_tracker(conversation_id)
        if handoff.status == HELD and handoff.agent == operator.username and handoff.unread:
            await self.queue.mark_read(conversation_id, operator.username)
        return {
            "handoff": handoff.as_json(),
            "messages": transcript.messages(tracker.events if tracker is not None else []),
        }

    # Acting --------------------------------------------------------------------------

    async def claim(self, operator: Any, conversation_id: Text, name: Optional[Text] = None) -> Outcome:
        """`operator` takes a waiting conversation; the customer is told who joined."""
        handoff = check_may_see(operator, await self.queue.status_of(conversation_id), conversation_id)
        if handoff.status == HELD:
            if handoff.agent == operator.username:
                return Outcome(handoff, already=True)
            raise Refusal(409, "already_claimed", f"{handoff.agent} took this conversation already.")
        if not await self.queue.claim(conversation_id, operator.username):
            now = await self.queue.status_of(conversation_id)
            if now is None:
                raise not_in_queue(conversation_id)
            raise Refusal(409, "already_claimed", f"{now.agent} took this conversation a moment before you.")
        held = await self.queue.status_of(conversation_id)
        if held is None:
            raise not_in_queue(conversation_id)
        at = self.clock()
        audit = conversation.operator_metadata(operator.username, "claim", at, **_named(operator, name))

        async def joined(tracker: DialogueStateTracker, channel: Text) -> Tuple[List[Event], List[Dict[Text, Any]]]:
            message = await conversation.response(self._nlg(), tracker, conversation.JOINED, channel, agent=name or operator.username)
            return [conversation.status_event(HELD, audit), conversation.bot_uttered(message, audit)], [message]

        try:
            delivery, failure = await self._record_and_send(held, joined)
        except Exception:
            # Not recorded: the conversation waits again rather than being held silently.
            await self.queue.unclaim(conversation_id, operator.username)
            raise
        self._notify(webhook.CLAIMED, held, {"operator": _operator_json(operator, name)})
        return Outcome(held, delivery, failure)

    async def reply(self, operator: Any, conversation_id: Text, text: Text, name: Optional[Text] = None) -> Outcome:
        """An agent message to the customer, as a bot message on their channel."""
        handoff = check_may_answer(operator, await self.queue.status_of(conversation_id), conversation_id)
        if handoff.status != HELD:
            raise Refusal(409, "not_held", "Nobody holds this conversation yet: take it first (\"Take conversation\").")
        at = self.clock()
        audit = conversation.operator_metadata(operator.username, transcript.REPLY, at, **_named(operator, name))
        message = {"text": text}

        async def agent_message(tracker: DialogueStateTracker, channel: Text) -> Tuple[List[Event], List[Dict[Text, Any]]]:
            return [conversation.bot_uttered(message, audit)], [message]

        delivery, failure = await self._record_and_send(handoff, agent_message)
        if handoff.agent == operator.username:
            await self.queue.mark_read(conversation_id, operator.username)
        fields = {"message": {"sender": "agent", "agent": name or operator.username, "text": text, "at": at}}
        self._notify(webhook.MESSAGE, handoff, fields)
        return Outcome(handoff, delivery, failure)

    async def release(self, operator: Any, conversation_id: Text, name: Optional[Text] = None) -> Outcome:
        """Hands the conversation back to the bot, which goes on with the same slots and form."""
        handoff = check_may_answer(operator, await self.queue.status_of(conversation_id), conversation_id)
        if not await self.queue.release(handoff):
            raise Refusal(409, "changed", "Someone else changed this conversation meanwhile; reload the inbox.")
        at = self.clock()
        audit = conversation.operator_metadata(operator.username, "release", at, **_named(operator, name))

        async def left(tracker: DialogueStateTracker, channel: Text) -> Tuple[List[Event], List[Dict[Text, Any]]]:
            message = await conversation.response(
                self._nlg(), tracker, conversation.LEFT, channel, agent=name or handoff.agent or operator.username
            )
            return [conversation.status_event(None, audit), conversation.bot_uttered(message, audit)], [message]

        delivery, failure = await self._record_and_send(handoff, left)
        self._notify(webhook.RELEASED, handoff, {"operator": _operator_json(operator, name), "reason": "released"})
        return Outcome(None, delivery, failure)

    # Timeouts ------------------------------------------------------------------------

    def overdue_before(self) -> float:
        """Waits opened before this time have waited too long."""
        return self.clock() - self.settings.wait_timeout_seconds

    def is_overdue(self, handoff: Handoff) -> bool:
        return handoff.status == WAITING and handoff.opened_at < self.overdue_before()

    async def timeout_events(
        self, handoff: Handoff, tracker: DialogueStateTracker, channel: Text
    ) -> Tuple[List[Event], List[Dict[Text, Any]]]:
        """What a timed-out wait adds to the conversation: the status and the bot's notice."""
        metadata = conversation.handoff_metadata("timed_out", self.clock(), queue=handoff.queue)
        message = await conversation.response(self._nlg(), tracker, conversation.TIMEOUT, channel)
        return [conversation.status_event(None, metadata), conversation.bot_uttered(message, metadata)], [message]

    async def expire(self, handoff: Handoff) -> bool:
        """Gives an overdue wait back to the bot (outside a turn); False if someone took it meanwhile."""
        if not await self.queue.expire(handoff.conversation_id, self.overdue_before()):
            return False

        async def timed_out(tracker: DialogueStateTracker, channel: Text) -> Tuple[List[Event], List[Dict[Text, Any]]]:
            return await self.timeout_events(handoff, tracker, channel)

        _, failure = await self._record_and_send(handoff, timed_out)
        if failure:
            logger.warning(f"Handoff: the timeout notice did not reach {describe(handoff.conversation_id)}: {failure}")
        self.notify_expired(handoff)
        return True

    def notify_expired(self, handoff: Handoff) -> None:
        self._notify(webhook.RELEASED, handoff, {"operator": None, "reason": "timeout"})

    async def expire_overdue(self) -> int:
        """Gives every overdue wait back to the bot; how many."""
        expired = 0
        for handoff in await self.queue.overdue(self.overdue_before()):
            try:
                expired += await self.expire(handoff)
            except Exception:
                logger.exception(f"Handoff: the overdue wait of {describe(handoff.conversation_id)} could not be ended.")
        return expired

    # Webhook -------------------------------------------------------------------------

    def notify_requested(self, handoff: Handoff) -> None:
        """`handoff.requested`, with the conversation so far as stored (masked)."""

        async def build() -> Dict[Text, Any]:
            tracker = await self.agent.tracker_store.retrieve(handoff.conversation_id)
            messages = transcript.messages(tracker.events if tracker is not None else [])
            return {"conversation": conversation_json(handoff), "transcript": messages[-WEBHOOK_TRANSCRIPT_MESSAGES:]}

        self._send(webhook.REQUESTED, handoff, build)

    def notify_customer_message(self, handoff: Handoff, message_id: Optional[Text]) -> None:
        """`conversation.message` for a customer message, its text as stored (masked)."""

        async def build() -> Dict[Text, Any]:
            tracker = await self.agent.tracker_store.retrieve(handoff.conversation_id)
            events = tracker.events if tracker is not None else []
            stored = next(
                (
                    event
                    for event in reversed(events)
                    if isinstance(event, UserUttered) and (message_id is None or event.message_id == message_id)
                ),
                None,
            )
            message = transcript.customer_message(stored) if stored is not None else None
            return {"conversation": conversation_json(handoff), "message": message}

        self._send(webhook.MESSAGE, handoff, build)

    def _notify(self, event_type: Text, handoff: Handoff, fields: Dict[Text, Any]) -> None:
        async def build() -> Dict[Text, Any]:
            return {"conversation": conversation_json(handoff), **fields}

        self._send(event_type, handoff, build)

    def _send(self, event_type: Text, handoff: Handoff, build: Callable[[], Awaitable[Dict[Text, Any]]]) -> None:
        if self.sender is not None:
            self.sender.send(event_type, handoff.conversation_id, build)

    # Helpers -------------------------------------------------------------------------

    def _nlg(self) -> Any:
        return self.agent.processor.nlg

    async def _record_and_send(
        self, handoff: Handoff, make: MakeMessages
    ) -> Tuple[Optional[Delivery], Optional[Text]]:
        """Records `make`'s events under the lock, then sends its messages to the customer."""
        sent: List[Dict[Text, Any]] = []
        to: List[Recipient] = []

        async def build(tracker: DialogueStateTracker) -> List[Event]:
            to.append(recipient(self.channels, handoff.channel, tracker))
            events, messages = await make(tracker, to[0].response_channel)
            sent.extend(conversation.sendable(message) for message in messages)
            return events

        await conversation.append_locked(self.agent, handoff.conversation_id, build)
        try:
            return await send(to[0], handoff.conversation_id, sent), None
        except DeliveryFailed as failure:
            return None, str(failure)


def _named(operator: Any, name: Optional[Text]) -> Dict[Text, Any]:
    """The audit record's extra field for a helpdesk agent's own name."""
    return {"name": name} if name and name != operator.username else {}


def _operator_json(operator: Any, name: Optional[Text]) -> Dict[Text, Any]:
    return {"username": operator.username, "name": name or operator.username}
