"""A stand-in for Rasa's Agent behind the web chat channel, for tests that need no model.

It keeps the conversation in a real Rasa tracker store exactly as the message processor
does (a `user` event with the channel's metadata, then `bot` events with their data),
so the channel's history route reads what it would read in production.
"""

import asyncio
from typing import Any, Dict, List, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered

GREETING = "Hi, I'm the **test** assistant. What can I do for you?"
GREETING_BUTTONS = [
    {"title": "Where is my order?", "payload": "/order_status"},
    {"title": "Return an item", "payload": "/return_item"},
]
ORDER_REPLY = "Sure, what is your order number?"


class ScriptedAgent:
    """Greets with quick replies, answers the order button, echoes anything else."""

    def __init__(self, tracker_store: Optional[TrackerStore] = None) -> None:
        self.tracker_store = tracker_store or InMemoryTrackerStore(Domain.empty())
        self.ready = True
        # Like Agent: strict mode (lepton_components/server) rewraps the processor's store too.
        self.processor = None
        self.received: List[UserMessage] = []
        # Replies for a given text, to put markup or images into the bot's mouth.
        self.scripted: Dict[Text, Dict[Text, Any]] = {}

    def is_ready(self) -> bool:
        return self.ready

    def _reply(self, text: Text) -> Dict[Text, Any]:
        if text in self.scripted:
            return self.scripted[text]
        if text.lower() in ("hi", "hello"):
            return {"text": GREETING, "buttons": GREETING_BUTTONS}
        if text == "/order_status":
            return {"text": ORDER_REPLY}
        return {"text": f"You said: {text}"}

    async def handle_message(self, message: UserMessage) -> None:
        self.received.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(
            UserUttered(message.text, input_channel=message.input_channel, message_id=message.message_id,
                        metadata=message.metadata)
        )
        reply = dict(self._reply(message.text))
        # Seconds to "think" before answering, to watch the typing indicator.
        await asyncio.sleep(reply.pop("delay", 0))
        channel = message.output_channel
        if reply.get("buttons"):
            await channel.send_text_with_buttons(message.sender_id, reply["text"], reply["buttons"])
        elif reply.get("text"):
            await channel.send_text_message(message.sender_id, reply["text"])
        if reply.get("image"):
            await channel.send_image_url(message.sender_id, reply["image"])
        data = {key: value for key, value in reply.items() if key != "text"}
        tracker.update(BotUttered(reply.get("text"), data=data))
        await self.tracker_store.save(tracker)
