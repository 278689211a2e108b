"""Telling a customer that their link code was just used, in the conversation that asked for it.

Whoever sends a code sees the details of the issuer's conversation from then on, so
the issuer must learn at once that it happened, and how to undo it if it was not them.
The notice is written into the issuer's conversation as a bot message (so it is in the
web chat's history and in every transcript, whichever replica serves the issuer next)
and, where the issuer's channel can push messages (Telegram, Messenger, Slack, a web
chat event stream), sent to it right away.
"""

import logging
from typing import Any, Optional, Text

from rasa.core.channels.channel import InputChannel, OutputChannel
from rasa.shared.core.events import BotUttered
from sanic import Sanic

from lepton_components.channels.conversation_ids import describe
from lepton_components.channels.sender_namespace import NamespacedOutputChannel

logger = logging.getLogger(__name__)

# The app `rasa run` serves, remembered by the channels' `before_server_start` listeners.
_served_app: Optional[Sanic] = None


def remember_served_app(app: Sanic) -> None:
    global _served_app
    _served_app = app


def notice_text(redeemer_channel_name: Text) -> Text:
    return (
        f"Your link code was just used: this conversation is now linked with one on {redeemer_channel_name}, "
        "which can see details like your order number. If that wasn't you, send /unlink now."
    )


def _output_channel_for(channel: Text) -> Optional[OutputChannel]:
    """An output channel that reaches conversations of `channel` outside a request, if any."""
    channels = getattr(getattr(_served_app, "ctx", None), "input_channels", None) or []
    for input_channel in channels:
        if isinstance(input_channel, InputChannel) and input_channel.name() == channel:
            output = input_channel.get_output_channel()
            # Ids without the channel's prefix (the web chat's) pass through unchanged.
            return None if output is None else NamespacedOutputChannel(channel, output)
    return None


async def notify_issuer(store: Any, issuer: Text, issuer_channel: Text, text: Text) -> None:
    """Records `text` in the issuer's conversation and pushes it where its channel can.

    Never raises: the link is made either way, and the redeemer must get its answer.
    """
    try:
        tracker = await store.retrieve(issuer)
        if tracker is None:
            tracker = store.init_tracker(issuer)
        tracker.update(BotUttered(text))
        await store.save(tracker)
    except Exception as error:
        logger.error(f"Could not record the link notice for {describe(issuer)} ({type(error).__name__}).")
    output = _output_channel_for(issuer_channel)
    if output is None:
        return
    try:
        await output.send_response(issuer, {"text": text})
    except Exception as error:
        logger.warning(f"Could not push the link notice to {describe(issuer)} ({type(error).__name__}).")
