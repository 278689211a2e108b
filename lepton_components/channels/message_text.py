"""What every channel checks in a customer's text before any work is done on it.

Rasa passes any text to NLU, however long or odd. A 100,000-character message held
the event loop, and so every conversation on the replica, for 13.7 s; `json.loads`
accepts lone surrogates (`"\\ud83d"`), which only fail later when the text is encoded
for the tracker store, as a 500. So each channel refuses such text at its edge with a
reason the client can act on, and checks the length first, so that nothing costs more
than one linear pass over at most `max_length` characters.
"""

import re
from typing import Any, Dict, Optional, Text

from rasa.shared.exceptions import InvalidConfigException

from lepton_components.strict_json import LONE_SURROGATE

DEFAULT_MAX_MESSAGE_LENGTH = 2000
MAX_MESSAGE_LENGTH_KEY = "max_message_length"
# C0 controls other than tab, line feed and carriage return, DEL, and the C1 controls:
# no keyboard types them, and they corrupt logs and terminals.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def without_control_characters(text: Text) -> Text:
    """`text` without the control characters `text_problem` refuses (one linear pass).

    For messaging apps, where refusing would only make the platform deliver the same
    message again: no keyboard types these characters, so dropping them loses nothing.
    """
    return _CONTROL.sub("", text)


def text_problem(text: Text) -> Optional[Text]:
    """Why `text` cannot be a customer's message, or None when it can (linear time)."""
    if LONE_SURROGATE.search(text):
        return "The text contains an unpaired UTF-16 surrogate (e.g. \\ud83d); send valid Unicode."
    if _CONTROL.search(text):
        return "The text contains control characters; send printable text (tabs and line breaks are fine)."
    return None


def pop_max_message_length(channel: Text, credentials: Dict[Text, Any], example: Text) -> int:
    """Takes `max_message_length` out of a channel's credentials, checked (default 2000)."""
    value = credentials.pop(MAX_MESSAGE_LENGTH_KEY, None)
    if value is None:
        return DEFAULT_MAX_MESSAGE_LENGTH
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigException(
            f"{channel}: `{MAX_MESSAGE_LENGTH_KEY}` must be a whole number of characters >= 1, got {value!r}. "
            f"Longer messages never reach the bot, e.g.\n{example}\n  {MAX_MESSAGE_LENGTH_KEY}: "
            f"{DEFAULT_MAX_MESSAGE_LENGTH}"
        )
    return value
