"""Conversation ids that name their channel, `<channel>:<platform id>`, and how logs name them.

Kept free of Rasa imports so that stores and the server can name conversations cheaply;
`sender_namespace.py` applies these ids to a channel's messages.
"""

import hashlib
from typing import Optional, Text

SEPARATOR = ":"


def conversation_id(channel: Text, platform_id: Text) -> Text:
    """The tracker's sender id for the id `platform_id` on `channel`."""
    return f"{channel}{SEPARATOR}{platform_id}"


def platform_id(channel: Text, sender_id: Text) -> Text:
    """The id the platform knows, for a sender id made by `conversation_id`.

    An id of another channel (or of none) is returned unchanged: it was not made here,
    e.g. an operator addressing `POST /conversations/<id>/execute` by a raw id.
    """
    prefix = channel + SEPARATOR
    return sender_id[len(prefix):] if sender_id.startswith(prefix) else sender_id


def describe(sender_id: Optional[Text]) -> Text:
    """A sender id for a log line: the channel and a short fingerprint, never the id itself."""
    if not sender_id:
        return "an unknown sender"
    channel, separator, _ = sender_id.partition(SEPARATOR)
    digest = hashlib.sha256(sender_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{channel if separator else 'a'} sender #{digest}"
