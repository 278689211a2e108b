"""The conversation as an agent reads it: who said what, from the stored events.

Texts are as the tracker store keeps them, so with Lepton's masking store an agent sees
`[EMAIL]` where the customer typed an address, exactly what the bot kept. Agent messages
are the `BotUttered` events with an operator `reply` record; the other operator records
(joined, left) are shown as the bot's notices with their action.
"""

from typing import Any, Dict, Iterable, List, Optional, Text

from rasa.shared.core.events import BotUttered, Event, UserUttered

from lepton_components.channels.web_chat.transcript import CHANNEL_NAME as WEB_CHAT, DISPLAY_TEXT_KEY
from lepton_components.operators.handoff.conversation import OPERATOR_KEY

REPLY = "reply"
MAX_EVENTS = 200


def customer_message(event: UserUttered) -> Optional[Dict[Text, Any]]:
    # The web chat stores the button title the customer saw when the text is a payload.
    display = (event.metadata or {}).get(DISPLAY_TEXT_KEY) if event.input_channel == WEB_CHAT else None
    text = display if isinstance(display, str) and display else event.text
    if not text:
        return None
    return {"sender": "customer", "text": text, "at": event.timestamp, "intent": event.intent_name}


def _bot(event: BotUttered) -> Optional[Dict[Text, Any]]:
    data = event.data or {}
    buttons = [
        str(button.get("title", ""))
        for button in data.get("buttons") or data.get("quick_replies") or []
        if isinstance(button, dict)
    ]
    if not event.text and not buttons and not data.get("image"):
        return None
    record = (event.metadata or {}).get(OPERATOR_KEY)
    operator = record if isinstance(record, dict) else None
    message: Dict[Text, Any] = {
        "sender": "agent" if operator and operator.get("action") == REPLY else "bot",
        "text": event.text or "",
        "at": event.timestamp,
    }
    if operator:
        message["operator"] = {"username": operator.get("username"), "action": operator.get("action")}
    if buttons:
        message["buttons"] = buttons
    if data.get("image"):
        message["image"] = str(data["image"])
    return message


def messages(events: Iterable[Event], max_events: int = MAX_EVENTS) -> List[Dict[Text, Any]]:
    """The messages among the newest `max_events` events, oldest first."""
    newest = list(events)[-max_events:]
    shown: List[Dict[Text, Any]] = []
    for event in newest:
        message = customer_message(event) if isinstance(event, UserUttered) else _bot(event) if isinstance(event, BotUttered) else None
        if message is not None:
            shown.append(message)
    return shown
