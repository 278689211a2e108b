"""An agent's message, sent to the customer on the channel the conversation came in through.

The conversation id names the channel (`verified_telegram:1234567`, `rest:42`; web chat
ids are `web-<hash>`), and the channel `rasa run` serves under that name makes the
output channel (`InputChannel.get_output_channel()`, as Rasa's `?output_channel=` does),
addressed by platform id (`sender_namespace.NamespacedOutputChannel`):

* web chat: `WebChatPushOutput` pushes to the customer's open widget streams (a widget
  opened later shows it from the history);
* Telegram, Messenger: their Bot API clients; Slack: the channel (and thread, with
  `use_threads`) of the customer's latest message, from that message's metadata;
* REST (and any channel whose output only collects replies for an HTTP response) has
  no way to reach the customer outside a request: the message is in the tracker and,
  with a webhook, went to the helpdesk; `Delivery.pushed` is False and says so.

A send that fails raises `DeliveryFailed` with a message for the agent (HTTP 502); the
message is already in the conversation's tracker by then.
"""

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Text

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel
from rasa.core.channels.slack import SlackInput
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.conversation_ids import SEPARATOR, describe
from lepton_components.channels.sender_namespace import NamespacedOutputChannel
from lepton_components.channels.web_chat.output import CHANNEL_NAME as WEB_CHAT, WebChatPushOutput
from lepton_components.channels.web_chat.sessions import SENDER_ID_PATTERN as WEB_CHAT_SENDER

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The message could not be sent; `str()` is the explanation for the agent."""


@dataclass(frozen=True)
class Delivery:
    """Where a message went: `pushed` False when the channel cannot push (`note` says why)."""

    channel: Text
    pushed: bool
    note: Optional[Text] = None

    def as_json(self) -> Dict[Text, Any]:
        return {"channel": self.channel, "pushed": self.pushed, "note": self.note}


def channel_of(conversation_id: Text, served: Sequence[Text], input_channel: Optional[Text] = None) -> Text:
    """The channel of a conversation: its id's prefix if a served channel has that name.

    Ids without a served channel's prefix come from channels that do not namespace
    their ids (stock Rasa channels); their messages name the channel (`input_channel`).
    """
    if WEB_CHAT_SENDER.fullmatch(conversation_id):
        return WEB_CHAT
    prefix, separator, _ = conversation_id.partition(SEPARATOR)
    if separator and prefix in served:
        return prefix
    return input_channel or prefix or "unknown"


def _latest_user_metadata(tracker: Optional[DialogueStateTracker], channel: Text) -> Dict[Text, Any]:
    for event in reversed(tracker.events if tracker is not None else []):
        if isinstance(event, UserUttered) and event.input_channel == channel and isinstance(event.metadata, dict):
            return event.metadata
    return {}


def _output_channel(
    input_channel: InputChannel, tracker: Optional[DialogueStateTracker]
) -> Optional[OutputChannel]:
    if isinstance(input_channel, SlackInput):
        # A Slack reply goes to a Slack channel id, which the conversation id does not hold.
        metadata = _latest_user_metadata(tracker, input_channel.name())
        thread_id = metadata.get("thread_id") if input_channel.use_threads else None
        return input_channel.get_output_channel(metadata.get("out_channel"), thread_id)
    return input_channel.get_output_channel()


def _can_push(output: OutputChannel) -> bool:
    inner = output.inner if isinstance(output, NamespacedOutputChannel) else output
    # A collector only gathers replies for an HTTP response that was sent long ago.
    return isinstance(inner, WebChatPushOutput) or not isinstance(inner, CollectingOutputChannel)


@dataclass(frozen=True)
class Recipient:
    """How to reach one customer: the output channel, or why there is none."""

    channel: Text
    output: Optional[OutputChannel] = None
    # Why sending must fail (the channel is not served, or could not make an output).
    problem: Optional[Text] = None

    @property
    def response_channel(self) -> Text:
        """The output channel name Rasa picks response variants by (`channel: web_chat`)."""
        return self.output.name() if self.output is not None else self.channel


def recipient(
    channels: Sequence[InputChannel], channel: Text, tracker: Optional[DialogueStateTracker] = None
) -> Recipient:
    """The customer's side of `channel`, among the channels this server serves."""
    served = {input_channel.name(): input_channel for input_channel in channels}
    input_channel = served.get(channel)
    if input_channel is None:
        return Recipient(
            channel,
            problem=(
                f"The conversation came in through the `{channel}` channel, which this server does not serve "
                f"(it serves {sorted(served) or 'no chat channel'}); the message is saved in the conversation but "
                "did not reach the customer. Add the channel back to credentials.yml to reach them."
            ),
        )
    try:
        output = _output_channel(input_channel, tracker)
    except Exception as error:
        logger.exception(f"Handoff: the {channel} channel could not make an output channel.")
        return Recipient(
            channel,
            problem=(
                f"The {channel} channel could not send ({type(error).__name__}: {error}); the message is saved in "
                "the conversation but did not reach the customer."
            ),
        )
    if output is not None and not isinstance(output, NamespacedOutputChannel):
        output = NamespacedOutputChannel(channel, output)
    return Recipient(channel, output)


async def send(to: Recipient, conversation_id: Text, messages: List[Dict[Text, Any]]) -> Delivery:
    """Sends `messages` (Rasa response dicts: text, buttons, image, ...) to the customer."""
    if to.problem is not None:
        raise DeliveryFailed(to.problem)
    if to.output is None or not _can_push(to.output):
        return Delivery(
            to.channel,
            pushed=False,
            note=(
                f"The {to.channel} channel cannot send messages outside a customer's request: the customer's client "
                "sees this message in the conversation (its tracker) and the helpdesk webhook gets it, if set."
            ),
        )
    try:
        for message in messages:
            await to.output.send_response(conversation_id, dict(message))
    except Exception as error:
        logger.warning(f"Handoff: sending to {describe(conversation_id)} on {to.channel} failed: {error!r}")
        raise DeliveryFailed(
            f"The {to.channel} channel did not take the message ({type(error).__name__}: {error}); it is saved in "
            "the conversation but did not reach the customer. Try again, or tell them another way."
        ) from error
    return Delivery(to.channel, pushed=True)
