"""Conversation ids that name their channel: `rest:42`, `verified_telegram:1234567`.

Rasa keys conversations by sender id alone, and every channel passes on the id its
platform (or its client) gives. So the REST client that sends `"sender": "1234567"`
writes into the Telegram customer 1234567's conversation and reads the replies. Every
Lepton channel therefore stores its conversations under `<channel>:<platform id>`: no
channel can name a conversation of another one, whatever id it is given.

The platform still needs its own id to deliver a reply, so the output channel a message
carries is wrapped: `NamespacedOutputChannel` takes the prefix off before each send.
The web chat does not need this: its ids (`web-<hash of the session token>`) are made by
the server and cannot be chosen by anybody.
"""

from typing import Any, Awaitable, Callable, Dict, List, Text

from rasa.core.channels.channel import OutputChannel, UserMessage

from lepton_components.channels.conversation_ids import conversation_id, platform_id

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class NamespacedOutputChannel(OutputChannel):
    """The platform's output channel, addressed with platform ids.

    Rasa and Lepton code address replies by the tracker's sender id; this hands the
    wrapped channel the id its platform knows. Anything else (`name()`, Messenger's
    `send_action`, the REST collector's `messages`) is the wrapped channel's own.
    """

    def __init__(self, channel: Text, inner: OutputChannel) -> None:
        self.channel = channel
        self.inner = inner

    def name(self) -> Text:
        return self.inner.name()

    def __getattr__(self, attribute: Text) -> Any:
        # Only called for attributes this object lacks; `inner` itself may be missing
        # while `copy` or `pickle` rebuild an instance.
        if attribute in ("inner", "channel"):
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def _to(self, recipient_id: Text) -> Text:
        return platform_id(self.channel, recipient_id)

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        await self.inner.send_response(self._to(recipient_id), message)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self.inner.send_text_message(self._to(recipient_id), text, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self.inner.send_image_url(self._to(recipient_id), image, **kwargs)

    async def send_attachment(self, recipient_id: Text, attachment: Text, **kwargs: Any) -> None:
        await self.inner.send_attachment(self._to(recipient_id), attachment, **kwargs)

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.inner.send_text_with_buttons(self._to(recipient_id), text, buttons, **kwargs)

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.inner.send_quick_replies(self._to(recipient_id), text, quick_replies, **kwargs)

    async def send_elements(self, recipient_id: Text, elements: Any, **kwargs: Any) -> None:
        await self.inner.send_elements(self._to(recipient_id), elements, **kwargs)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        await self.inner.send_custom_json(self._to(recipient_id), json_message, **kwargs)


def namespaced_message(channel: Text, message: UserMessage) -> UserMessage:
    """`message` moved into `channel`'s namespace: sender id and output channel."""
    message.sender_id = conversation_id(channel, message.sender_id)
    message.output_channel = NamespacedOutputChannel(channel, message.output_channel)
    message.input_channel = channel
    return message


def namespace_senders(channel: Text, on_new_message: OnNewMessage) -> OnNewMessage:
    """`on_new_message` for a channel whose messages carry platform ids.

    Apply it outermost, so everything after it (command guards, linking, the bot) sees
    only namespaced ids.
    """

    async def handle(message: UserMessage) -> Any:
        return await on_new_message(namespaced_message(channel, message))

    return handle
