"""The conversation as the widget shows it, rebuilt from the tracker after a page reload.

The tracker store is the one record of the conversation, so history needs no second
copy in the browser or the server: user turns come from `user` events (showing the
button title the customer clicked rather than its payload), bot turns from `bot` events
with their buttons and images.
"""

from typing import Any, Dict, Iterable, List, Optional, Text

from rasa.shared.core.events import BotUttered, Event, UserUttered

# Metadata key under which the widget sends the text the customer saw (a button title)
# when the message text is a payload such as `/order_status`.
DISPLAY_TEXT_KEY = "display_text"


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
    display = (event.metadata or {}).get(DISPLAY_TEXT_KEY)
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
