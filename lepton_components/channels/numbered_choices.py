"""Buttons as a numbered list for channels that cannot show them, and "2" back to a payload.

A reply with buttons sent where buttons do not fit (Messenger shows at most 3, with
20-character titles; stock Rasa then drops them all) becomes one text message::

    I'm not sure which of these you mean. Pick one:
    1. How long does shipping take?
    2. Can I change my delivery address?
    Reply with a number.

The customer answers "2" (or "2.", "#2", or the option's text), and the channel hands
the bot the payload of the second button, exactly as if it had been tapped. The offered
buttons are read back from the tracker (the latest bot message, if the customer has not
written since), so nothing is kept in the channel and every replica resolves the same way.
"""

import re
from typing import Any, Dict, List, Optional, Sequence, Text

from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

Button = Dict[Text, Any]

NUMBER_REPLY = re.compile(r"\s*#?\s*(\d{1,2})\s*[.)]?\s*")
PROMPT = "Reply with a number."


def numbered_text(text: Text, buttons: Sequence[Button]) -> Text:
    """The message text followed by the buttons' titles as a numbered list."""
    lines = [f"{number}. {button.get('title') or button.get('payload')}" for number, button in enumerate(buttons, 1)]
    return "\n".join([text.rstrip(), *lines, PROMPT]) if text.strip() else "\n".join([*lines, PROMPT])


def chosen_button(reply: Text, buttons: Sequence[Button]) -> Optional[Button]:
    """The button a reply picks by number or by its exact title, else None."""
    match = NUMBER_REPLY.fullmatch(reply)
    if match:
        number = int(match.group(1))
        return buttons[number - 1] if 1 <= number <= len(buttons) else None
    wanted = reply.strip().casefold()
    return next((button for button in buttons if str(button.get("title", "")).strip().casefold() == wanted), None)


def buttons_awaiting_reply(tracker: Optional[DialogueStateTracker]) -> List[Button]:
    """Buttons of the bot's latest message, if the customer has not written since."""
    if tracker is None:
        return []
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return []
        if isinstance(event, BotUttered):
            buttons = (event.data or {}).get("buttons") or []
            if buttons:
                return [button for button in buttons if isinstance(button, dict)]
    return []
