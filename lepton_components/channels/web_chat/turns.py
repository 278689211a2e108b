"""One customer message, processed exactly once, whichever replica gets it and however often.

The widget retries a message under the same id until some attempt is answered. Two
things used to make that run the turn twice: Sanic 21.12 cancels a request's handler
when the client disconnects (`sanic/server/protocols/base_protocol.py` ~L119-124), so
the first attempt died half-way and was forgotten, and the record of answered ids lived
in one process, which a retry sent to another replica never saw.

So a turn runs in its own task (`replies.RecentTurns`), which the handler only waits
for, and the decision "already processed?" is made where every replica sees the same
answer: under the conversation's lock, from the tracker. `run_turn` takes the lock from
the agent's lock store, reads the conversation, returns the replies recorded after a
`user` event with this message id if there is one, and otherwise calls the message
processor while still holding the lock. That is what Rasa's `Agent.handle_message`
does (lock, then `processor.handle_message`), with the check in between; the lock is
not re-entrant, so the processor is called directly rather than through the channel's
`on_new_message`. Lepton's monitoring wraps `processor.handle_message` on the
processor instance, so every processed message is still counted, once.
"""

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.intent_commands import is_intent_command, without_command_prefix
from lepton_components.channels.numbered_choices import buttons_awaiting_reply
from lepton_components.channels.web_chat.output import CHANNEL_NAME, WebChatReplyOutput
from lepton_components.channels.web_chat.replies import Replies
from lepton_components.channels.web_chat.revocation import refuse_if_revoked
from lepton_components.channels.web_chat.transcript import DISPLAY_TEXT_KEY, bot_message, replies_after
from lepton_components.identity.link_commands import handle_link_command

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WidgetMessage:
    """A checked `POST /messages` body."""

    text: Text
    payload: Optional[Text]
    id: Text


class NoModelLoaded(Exception):
    """The agent lost its model between the request's check and the turn."""


def text_for_bot(tracker: Optional[DialogueStateTracker], message: WidgetMessage, allow_typed_commands: bool) -> Text:
    """What the bot receives: a button's payload only if the bot offered that button.

    Rasa reads any text starting with `/` as an intent with entities
    (`/order_status{"order_number": "x"}`), which would let a customer skip NLU and
    set slots at will. Payloads are therefore accepted only from the buttons of the
    bot's latest message, and typed text loses its leading slashes unless
    `allow_typed_commands` is set.
    """
    if message.payload is not None:
        offered = buttons_awaiting_reply(tracker)
        if any(button.get("payload") == message.payload for button in offered):
            return message.payload
        logger.info("web_chat: a payload the bot did not offer was sent as the customer's text.")
    if allow_typed_commands or not is_intent_command(message.text):
        return message.text
    # A text of nothing but slashes becomes empty; Rasa then predicts no intent.
    return without_command_prefix(message.text)


async def run_turn(agent: Any, sender_id: Text, message: WidgetMessage, allow_typed_commands: bool) -> Replies:
    """The replies to `message`: from the tracker if it was processed before, else by processing it."""
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.tracker_store.retrieve_full_tracker(sender_id)
        events = list(tracker.events) if tracker is not None else []
        refuse_if_revoked(events)
        earlier = replies_after(events, message.id)
        if earlier is not None:
            logger.debug("web_chat: a retried message was answered from the conversation's record.")
            return earlier
        # `/link` and `/unlink` are answered here and never reach the bot (docs/identity.md).
        # They leave no trace in the tracker (the code must not), so only the in-process
        # fast path de-duplicates them.
        link_reply = await handle_link_command(message.text, sender_id, CHANNEL_NAME)
        if link_reply is not None:
            return [{"sender": "bot", "text": link_reply}]
        if not agent.is_ready():
            raise NoModelLoaded()
        text = text_for_bot(tracker, message, allow_typed_commands)
        metadata: Optional[Dict[Text, Any]] = {DISPLAY_TEXT_KEY: message.text} if text != message.text else None
        collector = WebChatReplyOutput()
        await agent.processor.handle_message(
            UserMessage(
                text, collector, sender_id, input_channel=CHANNEL_NAME, message_id=message.id, metadata=metadata
            )
        )
        return [bot_message(reply) for reply in collector.messages]
