"""The handoff around each customer message: queue it when the bot hands off, keep the bot
quiet while a person has the conversation.

* `before_turn`: a conversation that waits for or is held by a person is logged (NLU
  still parses the message, for review) but the bot says nothing; the agent sees it in
  the inbox (one more unread) and the helpdesk gets it (`conversation.message`). A wait
  that has gone on too long ends first, with the bot's notice, and the bot answers.
* `before_save`: a turn that ran a handoff action (`handoff_actions`) puts the
  conversation in the queue inside opening hours and tells the customer so
  (`utter_handoff_queued`); outside them it gives the email route (`utter_handoff_closed`)
  and queues nothing. The messages go out on the turn's own output channel and are
  recorded as the bot's, so the customer sees the three in a row.
* `after_save`: the helpdesk hears of the new handoff once the turn is stored, so the
  transcript it gets is the stored (masked) one.
"""

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Text

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.conversation_ids import describe
from lepton_components.operators.handoff import conversation
from lepton_components.operators.handoff.conversation import STATUS_SLOT
from lepton_components.operators.handoff.delivery import channel_of
from lepton_components.operators.handoff.queue import BOT_GAVE_UP, CUSTOMER_ASKED, WAITING, Handoff

if TYPE_CHECKING:
    from lepton_components.operators.handoff.part import HandoffPart

logger = logging.getLogger(__name__)


class HandoffHooks:
    """`TurnHooks` of the handoff part; each call asks the part for the current bot's service."""

    def __init__(self, part: "HandoffPart") -> None:
        self.part = part
        # Handoffs opened by a turn being saved, announced once it is stored.
        self._opened: Dict[Text, Handoff] = {}

    async def before_turn(self, processor: Any, message: UserMessage) -> bool:
        service = await self.part.service()
        handoff = await service.queue.status_of(message.sender_id)
        if handoff is None:
            return False
        if service.is_overdue(handoff) and await self._end_overdue_wait(service, processor, message, handoff):
            return False
        await processor.log_message(message, should_save_tracker=True)
        await service.queue.touch(message.sender_id)
        service.notify_customer_message(handoff, message.message_id)
        return True

    async def _end_overdue_wait(self, service: Any, processor: Any, message: UserMessage, handoff: Handoff) -> bool:
        """Ends the wait within the customer's turn (the lock is held); False if it was claimed meanwhile."""
        if not await service.queue.expire(handoff.conversation_id, service.overdue_before()):
            return False
        notices: List[Dict[Text, Any]] = []

        async def timed_out(tracker: DialogueStateTracker) -> List[Event]:
            events, messages = await service.timeout_events(handoff, tracker, message.output_channel.name())
            notices.extend(conversation.sendable(item) for item in messages)
            return events

        await conversation.append(processor.tracker_store, message.sender_id, timed_out)
        for notice in notices:
            await message.output_channel.send_response(message.sender_id, notice)
        service.notify_expired(handoff)
        return True

    async def before_save(
        self, processor: Any, message: UserMessage, tracker: DialogueStateTracker, events: List[Event]
    ) -> None:
        settings = self.part.settings
        handoff_ran = any(
            isinstance(event, ActionExecuted) and event.action_name in settings.handoff_actions for event in events
        )
        if not handoff_ran or any(isinstance(event, SlotSet) and event.key == STATUS_SLOT for event in events):
            return
        service = await self.part.service()
        if await service.queue.status_of(tracker.sender_id) is not None:
            return
        now = service.clock()
        channel = message.output_channel.name()
        if not settings.opening_hours.is_open(now):
            closed = await conversation.response(processor.nlg, tracker, conversation.CLOSED, channel)
            await self._say(message, tracker, closed, conversation.handoff_metadata("closed", now))
            return
        queued = await conversation.response(processor.nlg, tracker, conversation.QUEUED, channel)
        served = [input_channel.name() for input_channel in service.channels]
        handoff = await service.queue.open(
            tracker.sender_id,
            settings.queue,
            channel_of(tracker.sender_id, served, message.input_channel),
            _reason(events, settings.handoff_intents),
        )
        if handoff is None:
            return
        metadata = conversation.handoff_metadata("queued", now, queue=handoff.queue, reason=handoff.reason)
        tracker.update(conversation.status_event(WAITING, metadata))
        await self._say(message, tracker, queued, metadata)
        self._opened[tracker.sender_id] = handoff
        logger.info(f"Handoff: {describe(tracker.sender_id)} waits in the queue `{handoff.queue}` ({handoff.reason}).")

    @staticmethod
    async def _say(
        message: UserMessage, tracker: DialogueStateTracker, response: Dict[Text, Any], metadata: Dict[Text, Any]
    ) -> None:
        await message.output_channel.send_response(tracker.sender_id, conversation.sendable(response))
        tracker.update(conversation.bot_uttered(response, metadata))

    async def after_save(
        self, processor: Any, message: UserMessage, tracker: DialogueStateTracker, events: List[Event]
    ) -> None:
        handoff = self._opened.pop(tracker.sender_id, None)
        if handoff is not None:
            (await self.part.service()).notify_requested(handoff)


def _reason(events: List[Event], handoff_intents: Any) -> Text:
    user = next((event for event in events if isinstance(event, UserUttered)), None)
    return CUSTOMER_ASKED if user is not None and user.intent_name in handoff_intents else BOT_GAVE_UP
