"""Keep customers from forcing intents and entities with `/intent{"entity": "value"}`.

Rasa runs `RegexMessageHandler` in every model: any message whose text starts with `/`
skips NLU and sets the named intent and entities, e.g. `/order_status{"order_number":
"someone-else's"}`. Buttons need it (a tap sends the button's payload), typed text does
not. So a message starting with `/` reaches the bot unchanged only when it is the payload
of a button of the bot's latest message (read back from the tracker, so every replica
decides alike); otherwise its leading slashes are dropped and NLU reads it as text.

The REST, Telegram, Messenger and Slack channels wrap their `on_new_message` with
`guard_customer_commands`: `guard_intent_commands` *inside* `intercept_link_commands`, so
`/link` still reaches the identity commands first (the web chat strips typed commands itself). `allow_intent_commands: true` in a channel's
credentials turns the guard off for trusted clients.
"""

import logging
from typing import Any, Awaitable, Callable, Collection, Dict, Iterable, Optional, Text

from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import TrackerStore
from rasa.shared.constants import INTENT_MESSAGE_PREFIX
from rasa.shared.exceptions import InvalidConfigException
from sanic import Sanic

from lepton_components.channels.numbered_choices import Button, buttons_awaiting_reply
from lepton_components.identity.link_commands import intercept_link_commands
from lepton_components.identity.link_notice import remember_served_app

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
TrackerStoreLookup = Callable[[], Optional[TrackerStore]]


def is_intent_command(text: Optional[Text]) -> bool:
    """Whether Rasa would read `text` as `/intent{...}` (it strips the text first)."""
    return bool(text) and text.strip().startswith(INTENT_MESSAGE_PREFIX)  # type: ignore[union-attr]


def without_command_prefix(text: Text) -> Text:
    """`text` without the leading slashes, even when spaces separate them (`/ /greet`).

    One pass over the prefix and one slice: stripping a slash at a time copies the rest
    of the text each time, which is quadratic in a text of many slashes.
    """
    position, end = 0, len(text)
    while position < end and (text[position].isspace() or text.startswith(INTENT_MESSAGE_PREFIX, position)):
        position += 1
    return text[position:].strip()


def permitted_text(text: Text, offered: Iterable[Button]) -> Text:
    """`text` itself if it is plain text or an offered button's payload, else without slashes."""
    if not is_intent_command(text):
        return text
    if any(button.get("payload") == text.strip() for button in offered):
        return text
    return without_command_prefix(text)


def pop_allow_intent_commands(channel: Text, credentials: Dict[Text, Any], example: Text) -> bool:
    """Takes the `allow_intent_commands` key out of a channel's credentials, checked."""
    allow = credentials.pop("allow_intent_commands", False)
    if not isinstance(allow, bool):
        raise InvalidConfigException(
            f"{channel}: `allow_intent_commands` must be true or false, got {allow!r}. Leave it "
            "false unless every client is trusted to set intents and entities, e.g.\n"
            f"{example}\n  allow_intent_commands: false"
        )
    return allow


class LoadedTrackerStore:
    """The tracker store of the agent `rasa run` serves right now.

    Register `remember_app` as the blueprint's `before_server_start` listener; the agent
    is looked up on each call because `PUT /model` replaces it.
    """

    def __init__(self) -> None:
        self._app: Optional[Sanic] = None

    async def remember_app(self, app: Sanic, _loop: Any) -> None:
        self._app = app
        # Link notices reach the issuer through the app's channels (identity/link_notice.py).
        remember_served_app(app)

    def __call__(self) -> Optional[TrackerStore]:
        agent = getattr(self._app.ctx, "agent", None) if self._app is not None else None
        return getattr(agent, "tracker_store", None)


def guard_intent_commands(
    on_new_message: OnNewMessage,
    tracker_store: TrackerStoreLookup,
    allow: bool = False,
    always_allowed: Collection[Text] = (),
) -> OnNewMessage:
    """`on_new_message` that lets `/intent{...}` through only as an offered button payload.

    `allow=True` (the channel's `allow_intent_commands`) passes every message unchanged,
    for trusted clients such as a backend that sends intents on purpose. `always_allowed`
    names exact commands any customer may send, such as Telegram's `/restart`, which only
    resets the sender's own conversation.
    """
    if allow:
        return on_new_message

    async def handle(message: UserMessage) -> Any:
        if is_intent_command(message.text) and message.text.strip() not in always_allowed:
            store = tracker_store()
            tracker = await store.retrieve(message.sender_id) if store is not None else None
            text = permitted_text(message.text, buttons_awaiting_reply(tracker))
            if text != message.text:
                logger.info(
                    f"A '{message.input_channel}' message looked like an intent command but was not a "
                    "button the bot offered; it was passed to NLU as text."
                )
                message.text = text
        return await on_new_message(message)

    return handle


def guard_customer_commands(
    on_new_message: OnNewMessage,
    tracker_store: TrackerStoreLookup,
    allow_intent_commands: bool,
    always_allowed: Collection[Text] = (),
) -> OnNewMessage:
    """`on_new_message` behind both guards every public channel needs, in the one right order.

    `/link` and `/unlink` are answered first (docs/identity.md), before `/` is stripped from
    commands that are not offered buttons (`guard_intent_commands`).
    """
    return intercept_link_commands(
        guard_intent_commands(on_new_message, tracker_store, allow_intent_commands, always_allowed)
    )
