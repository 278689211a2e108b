"""`/link`, `/link <code>` and `/unlink`: the customer's side of linking, for any channel.

Rasa's `RegexMessageHandler` reads every text starting with "/" as an intent, so these
commands are answered here, before the message reaches the bot: the code never enters
NLU, a tracker, the event broker or a log. Channels call one of:

* `await handle_link_command(text, sender_id, channel)`: the reply text if `text` was a
  link command (the channel sends it and must not pass the message on), else None.
* `intercept_link_commands(on_new_message)`: wraps the `on_new_message` callable a
  channel's `blueprint` receives; commands are answered through the message's own
  output channel, everything else goes on to the bot.

Both do nothing (None / pass through) unless the server runs `LinkedTrackerStore`.
`!link` / `!unlink` work too, for Slack, whose client keeps "/" for its own commands.
Telegram's `/link@botname` form (group chats) is understood.

Linking hands over a conversation's details, so it works only on channels that prove
who is writing (`VERIFIED_CHANNELS`); the issuer is told at once when its code is used
(`link_notice.py`); channel names in replies come from a fixed list, never from a
client; and a text longer than any command is never matched, so the scan stays short.
"""

import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Text

from rasa.core.channels.channel import UserMessage

from lepton_components.identity.link_codes import display_code
from lepton_components.identity.link_notice import notice_text, notify_issuer
from lepton_components.identity.link_registry import ClaimStatus
from lepton_components.identity.linked_tracker_store import LinkedTrackerStore, active_linked_store

logger = logging.getLogger(__name__)

_COMMAND = re.compile(r"[/!](link|unlink)(?:@\w+)?(?:\s+(.*\S))?", re.IGNORECASE | re.DOTALL)
# `/link@a_32_character_bot_username K7QM-2XPA-9ZT3` and some spaces; longer is a message.
MAX_COMMAND_LENGTH = 80

# Channels whose sender ids are proven: the platform's signature, the server-issued web
# chat session, the REST channel's credential. With each, how replies name it.
VERIFIED_CHANNELS = {
    "verified_telegram": "Telegram",
    "verified_facebook": "Messenger",
    "verified_slack": "Slack",
    "rest": "the website",
    "web_chat": "the website chat",
}

UNAVAILABLE = "Sorry, I can't link conversations right now. Please try again in a few minutes."


@dataclass(frozen=True)
class LinkCommand:
    unlink: bool
    code: Optional[Text]


def parse_link_command(text: Optional[Text]) -> Optional[LinkCommand]:
    """The command in `text`, or None when it is an ordinary message."""
    stripped = (text or "").strip()
    match = _COMMAND.fullmatch(stripped) if len(stripped) <= MAX_COMMAND_LENGTH else None
    if match is None:
        return None
    return LinkCommand(unlink=match.group(1).lower() == "unlink", code=match.group(2) or None)


def channel_name(channel: Optional[Text]) -> Text:
    """How a reply names `channel`: from the fixed list, never the raw name a client sent."""
    return VERIFIED_CHANNELS.get(channel or "", "another channel")


UNVERIFIED = (
    "Linking isn't available here, because this channel can't prove who is writing. "
    "Use our website chat, Telegram, Messenger or Slack instead."
)


class LinkCommandHandler:
    """Turns link commands into registry calls and answers in plain words."""

    def __init__(self, store: LinkedTrackerStore) -> None:
        self.store = store
        self.registry = store.registry

    async def handle(self, text: Optional[Text], sender_id: Text, channel: Text) -> Optional[Text]:
        command = parse_link_command(text)
        if command is None:
            return None
        if channel not in VERIFIED_CHANNELS:
            logger.warning(f"Link command refused on the unverified channel '{channel_name(channel)}'.")
            return UNVERIFIED
        if command.unlink:
            return self._unlink(sender_id, channel)
        if command.code is None:
            return self._issue(sender_id, channel)
        return await self._redeem(command.code, sender_id, channel)

    def _issue(self, sender_id: Text, channel: Text) -> Text:
        code = display_code(self.registry.issue_code(sender_id, channel))
        minutes = _minutes(self.registry.limits.code_ttl_s)
        logger.info(f"Link code issued on channel '{channel}'.")
        return (
            f"Your link code is {code}. Within {minutes}, send /link {code} to me from the other app "
            "where you chat with us, and I'll know it's you there too. The code works once. "
            "Don't share it: whoever sends it sees the details of this conversation."
        )

    async def _redeem(self, code: Text, sender_id: Text, channel: Text) -> Text:
        claim = self.registry.claim_code(code, sender_id)
        if claim.status is ClaimStatus.LOCKED_OUT:
            logger.warning(f"Link code refused on channel '{channel}': too many wrong codes.")
            minutes = _minutes(self.registry.limits.failure_window_s)
            return f"Too many wrong codes. Please wait {minutes} and ask for a new code with /link."
        if claim.status is ClaimStatus.INVALID:
            logger.info(f"Wrong, used or expired link code sent on channel '{channel}'.")
            return (
                "That code doesn't work: it may be mistyped, already used, or expired. "
                "Send /link in your other chat for a new one."
            )
        if claim.status is ClaimStatus.OWN_CODE:
            return "Send this code from your other app or chat, not from this one."
        if claim.status is ClaimStatus.ALREADY_LINKED:
            return "This chat is already linked with other conversations. Send /unlink first, then the code again."
        issuer, issuer_channel = str(claim.issuer), str(claim.issuer_channel)
        self.registry.link(
            issuer,
            issuer_channel,
            sender_id,
            channel,
            await self.store.shared_values_of(issuer),
            await self.store.shared_values_of(sender_id),
        )
        logger.info(f"Linked a conversation on '{channel}' with one on '{issuer_channel}'.")
        await notify_issuer(self.store, issuer, issuer_channel, notice_text(channel_name(channel)))
        return (
            f"Done: this chat is now linked with your conversation on {channel_name(issuer_channel)}, "
            "so details like your order number carry over between them. Send /unlink to stop."
        )

    def _unlink(self, sender_id: Text, channel: Text) -> Text:
        if not self.registry.unlink(sender_id):
            return "This chat isn't linked with any other conversation."
        logger.info(f"A conversation on '{channel}' was unlinked.")
        return "This chat is no longer linked: nothing you say here is shared with your other conversations now."


def _minutes(seconds: float) -> Text:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


async def handle_link_command(text: Optional[Text], sender_id: Text, channel: Text) -> Optional[Text]:
    """The reply to a link command, or None for any other message or when linking is off.

    Never raises: when the registry cannot be used the customer is told so, and the
    command (which may hold a code) is still kept away from the bot.
    """
    store = active_linked_store()
    if store is None or parse_link_command(text) is None:
        return None
    try:
        return await LinkCommandHandler(store).handle(text, sender_id, channel)
    except Exception as error:
        # Only the type: the exception text can quote SQL parameters (the code's digest).
        logger.error(f"Link command on channel '{channel}' failed ({type(error).__name__}).")
        return UNAVAILABLE


def intercept_link_commands(
    on_new_message: Callable[[UserMessage], Awaitable[Any]]
) -> Callable[[UserMessage], Awaitable[Any]]:
    """`on_new_message` that answers link commands itself and passes everything else on."""

    async def handle(message: UserMessage) -> Any:
        channel = message.input_channel or message.output_channel.name()
        reply = await handle_link_command(message.text, message.sender_id, channel)
        if reply is None:
            return await on_new_message(message)
        await message.output_channel.send_response(message.sender_id, {"text": reply})
        return None

    return handle
