"""The web chat's output channels, named `web_chat` so `channel: web_chat` response variants apply.

Rasa picks a response variant by the output channel's name (`ActionBotResponse` passes
`output_channel.name()` to the NLG), so a plain `CollectingOutputChannel` ("collector")
would never see the variants written for the widget.
"""

from typing import Any, Dict, Text

from rasa.core.channels.channel import CollectingOutputChannel

from lepton_components.channels.web_chat.push import PushRegistry
from lepton_components.channels.web_chat.transcript import CHANNEL_NAME, bot_message

__all__ = ["CHANNEL_NAME", "WebChatPushOutput", "WebChatReplyOutput"]


class WebChatReplyOutput(CollectingOutputChannel):
    """Collects the replies to one widget request; they go back in its HTTP response."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME


class WebChatPushOutput(WebChatReplyOutput):
    """Sends each bot message to the customer's open widget streams as it is produced.

    Rasa's HTTP API uses it for `?output_channel=web_chat` (`trigger_intent`, `execute`).
    """

    def __init__(self, registry: PushRegistry) -> None:
        super().__init__()
        self._registry = registry

    async def _persist_message(self, message: Dict[Text, Any]) -> None:
        await super()._persist_message(message)
        self._registry.publish(message["recipient_id"], bot_message(message))
