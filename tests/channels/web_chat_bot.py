"""A stand-in for Rasa's Agent behind the web chat channel, for tests that need no model.

It has what the channel uses of an `Agent`: a tracker store, a lock store and a
processor whose `handle_message` keeps the conversation in that store exactly as Rasa's
message processor does (a `user` event with the channel's metadata, then `bot` events
with their data) and saves it through `save_tracker`, which Lepton's monitoring wraps.
So the channel's history and de-duplication read what they would read in production.

`web_chat_channel(...)` builds the channel as `credentials.yml` with
`session_secret: ${LEPTON_WEB_CHAT_SECRET}` makes it; the secret is set for the test
session here, so servers started by tests (`rasa run`) read the same one.
"""

import asyncio
import os
from typing import Any, Dict, List, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.lock_store import InMemoryLockStore, LockStore
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.web_chat import WebChatInput, WebChatSettings

WEB_CHAT_SECRET = os.environ.setdefault("LEPTON_WEB_CHAT_SECRET", "test-web-chat-secret-0123456789abcdef")

GREETING = "Hi, I'm the **test** assistant. What can I do for you?"
GREETING_BUTTONS = [
    {"title": "Where is my order?", "payload": "/order_status"},
    {"title": "Return an item", "payload": "/return_item"},
]
ORDER_REPLY = "Sure, what is your order number?"


def web_chat_settings(**settings: Any) -> WebChatSettings:
    """The channel's settings with the test session's secret."""
    return WebChatSettings(**{"session_secret": WEB_CHAT_SECRET, **settings})


def web_chat_channel(**settings: Any) -> WebChatInput:
    """The web chat channel with the test session's secret and `settings`."""
    return WebChatInput(web_chat_settings(**settings))


class ScriptedProcessor:
    """Greets with quick replies, answers the order button, echoes anything else."""

    def __init__(self, agent: "ScriptedAgent") -> None:
        self.agent = agent
        # Replaced by strict mode (lepton_components/server), as on Rasa's processor.
        self.tracker_store = agent.tracker_store

    def _reply(self, text: Text) -> Dict[Text, Any]:
        if text in self.agent.scripted:
            return self.agent.scripted[text]
        if text.lower() in ("hi", "hello"):
            return {"text": GREETING, "buttons": GREETING_BUTTONS}
        if text == "/order_status":
            return {"text": ORDER_REPLY}
        return {"text": f"You said: {text}"}

    async def handle_message(self, message: UserMessage) -> None:
        self.agent.received.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(
            UserUttered(message.text, input_channel=message.input_channel, message_id=message.message_id,
                        metadata=message.metadata)
        )
        reply = dict(self._reply(message.text))
        # Seconds to "think" before answering, to watch the typing indicator or to let
        # a client give up half-way.
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
        await self.save_tracker(tracker)
        self.agent.handled += 1

    async def save_tracker(self, tracker: DialogueStateTracker) -> None:
        await self.tracker_store.save(tracker)


class ScriptedAgent:
    """What the channels use of Rasa's `Agent`, around a `ScriptedProcessor`.

    Give two agents the same tracker store and lock store to stand in for two replicas.
    """

    def __init__(self, tracker_store: Optional[TrackerStore] = None, lock_store: Optional[LockStore] = None) -> None:
        self.tracker_store = tracker_store or InMemoryTrackerStore(Domain.empty())
        self.lock_store = lock_store or InMemoryLockStore()
        self.ready = True
        self.received: List[UserMessage] = []
        # Messages fully processed: replies sent and the tracker saved.
        self.handled = 0
        # Replies for a given text, to put markup, images or delays into the bot's mouth.
        self.scripted: Dict[Text, Dict[Text, Any]] = {}
        self.processor = ScriptedProcessor(self)

    def is_ready(self) -> bool:
        return self.ready

    async def handle_message(self, message: UserMessage) -> None:
        """What Rasa's `Agent.handle_message` does: the conversation lock, then the processor."""
        if not self.is_ready():
            return None
        async with self.lock_store.lock(message.sender_id):
            await self.processor.handle_message(message)
