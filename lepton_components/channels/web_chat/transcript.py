"""The conversation as the widget shows it, rebuilt from the tracker after a page reload.

The tracker store is the one record of the conversation, so history needs no second
copy in the browser or the server: user turns come from `user` events (showing the
button title the customer clicked rather than its payload), bot turns from `bot` events
with their buttons and images. The same events answer a retried message whose first
attempt finished on another replica (`replies_after`).
"""

from typing import Any, Dict, Iterable, List, Optional, Sequence, Text

from rasa.shared.core.events import BotUttered, Event, UserUttered

# Metadata key under which the web chat stores the text the customer saw (a button
# title) when the message text is a payload such as `/order_status`.
DISPLAY_TEXT_KEY = "display_text"
# Only events the web chat created carry a display text it set; another channel's
# client could put anything under that key.
CHANNEL_NAME = "web_chat"


def bot_message(data: Dict[Text, Any]) -> Dict[Text, Any]:
    """One bot message in the widget's format, from Rasa's output-channel fields."""
    message: Dict[Text, Any] = {"sender": "bot"}
    if data.get("text"):
        message["text"] = str(data["text"])
    if data.get("image"):
        message["image"] = str(data["image"])
    buttons = [
        {"title": str(button.get("title", "")), "payload": str(button.get("payload", ""))}
        for button in data.get("buttons") or data.get("quick_replies") or []
        if isinstance(button, dict)
    ]
    if buttons:
        message["buttons"] = buttons
    if isinstance(data.get("custom"), dict):
        message["custom"] = data["custom"]
    return message


def _user_message(event: UserUttered) -> Optional[Dict[Text, Any]]:
    display = (event.metadata or {}).get(DISPLAY_TEXT_KEY) if event.input_channel == CHANNEL_NAME else None
    text = display if isinstance(display, str) and display else event.text
    return {"sender": "user", "text": text} if text else None


def _bot_messages(event: BotUttered) -> List[Dict[Text, Any]]:
    data = dict(event.data or {})
    data["text"] = event.text
    message = bot_message(data)
    return [message] if len(message) > 1 else []


def transcript(events: Iterable[Event], limit: int) -> List[Dict[Text, Any]]:
    """The last `limit` user and bot messages of a conversation, oldest first."""
    messages: List[Dict[Text, Any]] = []
    for event in events:
        if isinstance(event, UserUttered):
            user = _user_message(event)
            messages.extend([user] if user else [])
        elif isinstance(event, BotUttered):
            messages.extend(_bot_messages(event))
    return messages[-limit:] if limit > 0 else messages


def replies_after(events: Sequence[Event], message_id: Text) -> Optional[List[Dict[Text, Any]]]:
    """The bot messages that answered the user message `message_id`, or None if it is not there.

    The answer is every `bot` event between that message and the next one, as the
    history shows them.
    """
    replies: Optional[List[Dict[Text, Any]]] = None
    for event in events:
        if isinstance(event, UserUttered):
            if replies is not None:
                break
            if event.message_id == message_id and event.input_channel == CHANNEL_NAME:
                replies = []
        elif replies is not None and isinstance(event, BotUttered):
            replies.extend(_bot_messages(event))
    return replies
