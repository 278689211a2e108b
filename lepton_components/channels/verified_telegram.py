"""Telegram webhook that accepts only updates signed with the secret token Telegram was given.

Stock `rasa.core.channels.telegram.TelegramInput` authenticates no request: anyone who
learns the webhook URL can post a forged update under any chat id. Its one check (the
bot's own `getMe` username against `verify`) costs an API call per update and says
nothing about who sent the request, and its open `/set_webhook` route re-registers the
webhook. Since Bot API 6.1, `setWebhook` takes a `secret_token` that Telegram then sends
in `X-Telegram-Bot-Api-Secret-Token` with every update; this channel registers it at
start-up and refuses updates without it before they reach the bot.

Enabled by a `credentials.yml` entry::

    lepton_components.channels.verified_telegram.VerifiedTelegramInput:
      access_token: ${TELEGRAM_ACCESS_TOKEN}
      verify: lepton_support_bot      # the bot's username, checked once at start-up
      webhook_url: https://bot.example.com/webhooks/verified_telegram/webhook
      secret_token: ${TELEGRAM_SECRET_TOKEN}
      # api_url: https://api.telegram.org   (a local Bot API server, or a test stand-in)
      # allow_intent_commands: false        (true lets anyone send `/intent{...}`)
      # max_message_length: 2000            (longer texts get a polite reply, not NLU)

Typed `/intent{"entity": "value"}` messages reach NLU as text; only the payloads of the
bot's latest buttons, and `/restart` (which Telegram users type to start over), pass as
commands (`lepton_components.channels.intent_commands`).

Conversations are stored as `verified_telegram:<chat id>` (`sender_namespace`), so no
other channel can name them; replies still go to the chat id. An update the bot could
not process (a store outage, no model loaded, any error) is answered 503 or 500, and
Telegram delivers it again; stock answers 200 and the message is lost. Updates the bot
ignores on purpose (members joining, stickers) get 200; a body that is not a Telegram
Update (not JSON, not UTF-8, lone surrogates, wrong types) gets 400.

Listing the channel switches on the server extensions (`lepton_components.server`):
API tokens, body limits, JSON errors, strict stores, `/metrics`.

Routes (under `/webhooks/verified_telegram/`): `GET /` health, `POST /webhook`.
"""

import hmac
import logging
import re
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple

from aiogram.bot import api
from aiogram.bot.api import TelegramAPIServer
from aiogram.types import Update
from aiogram.utils.exceptions import TelegramAPIError, ValidationError
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.telegram import TelegramInput, TelegramOutput
from rasa.shared.constants import INTENT_MESSAGE_PREFIX
from rasa.shared.core.constants import USER_INTENT_RESTART
from rasa.shared.exceptions import InvalidConfigException, RasaException
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.intent_commands import (
    LoadedTrackerStore,
    guard_customer_commands,
    pop_allow_intent_commands,
)
from lepton_components.channels.message_text import DEFAULT_MAX_MESSAGE_LENGTH, pop_max_message_length
from lepton_components.channels.conversation_ids import conversation_id, describe
from lepton_components.channels.sender_namespace import NamespacedOutputChannel, namespace_senders
from lepton_components.channels.webhook_body import BadWebhookBody, json_object
from lepton_components.channels.webhook_turns import finish_turn, screen_customer_texts
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response
from lepton_components.server.strict_mode import ensure_strict_agent

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
REQUIRED_KEYS = ("access_token", "verify", "webhook_url", "secret_token")
MIN_SECRET_LENGTH = 16
# Telegram's own rule for secret_token: 1-256 characters from A-Z, a-z, 0-9, _ and -.
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Stock turns a typed `/restart` into `/restart` then `/start`; it only resets the sender's
# own conversation, so customers may always send it.
ALWAYS_ALLOWED_COMMANDS = (INTENT_MESSAGE_PREFIX + USER_INTENT_RESTART,)

CREDENTIALS_EXAMPLE = """\
lepton_components.channels.verified_telegram.VerifiedTelegramInput:
  access_token: ${TELEGRAM_ACCESS_TOKEN}
  verify: <your bot's username>
  webhook_url: https://<your host>/webhooks/verified_telegram/webhook
  secret_token: ${TELEGRAM_SECRET_TOKEN}"""


class VerifiedTelegramOutput(TelegramOutput):
    """Rasa's Telegram output, pointed at a configurable Bot API server."""

    def __init__(self, access_token: Optional[Text], api_url: Text = DEFAULT_API_URL) -> None:
        super().__init__(access_token)
        # aiogram builds every method URL from `server`: a local Bot API server or a
        # test stand-in then receives exactly what api.telegram.org would.
        self.server = TelegramAPIServer.from_base(api_url)

    async def register_webhook(self, url: Text, secret_token: Text) -> bool:
        """Calls setWebhook directly: aiogram 2.15 predates its `secret_token` parameter."""
        return bool(await self.request(api.Methods.SET_WEBHOOK, {"url": url, "secret_token": secret_token}))


class VerifiedTelegramInput(TelegramInput):
    """Telegram input channel that refuses updates without the registered secret token."""

    @classmethod
    def name(cls) -> Text:
        return "verified_telegram"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedTelegramInput":
        credentials = dict(credentials or {})
        allow_intent_commands = pop_allow_intent_commands("verified_telegram", credentials, CREDENTIALS_EXAMPLE)
        max_message_length = pop_max_message_length("verified_telegram", credentials, CREDENTIALS_EXAMPLE)
        for key in REQUIRED_KEYS:
            if not credentials.get(key):
                raise InvalidConfigException(
                    f"The verified_telegram channel needs `{key}` in credentials.yml, e.g.\n"
                    f"{CREDENTIALS_EXAMPLE}"
                )
        try:
            api.check_token(str(credentials["access_token"]))
        except ValidationError as error:
            raise InvalidConfigException(
                f"The verified_telegram `access_token` is not a bot token ({error}); copy it from "
                "@BotFather, it looks like `123456789:AA...`."
            ) from error
        secret = str(credentials["secret_token"])
        if len(secret) < MIN_SECRET_LENGTH or not SECRET_PATTERN.fullmatch(secret):
            raise InvalidConfigException(
                f"The verified_telegram `secret_token` must be {MIN_SECRET_LENGTH} to 256 characters "
                f"from A-Z, a-z, 0-9, _ and - (Telegram's rule), got {len(secret)} characters. Generate "
                "one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        return cls(
            str(credentials["access_token"]),
            str(credentials["verify"]),
            str(credentials["webhook_url"]),
            secret,
            api_url=str(credentials.get("api_url") or DEFAULT_API_URL),
            allow_intent_commands=allow_intent_commands,
            max_message_length=max_message_length,
        )

    def __init__(
        self,
        access_token: Text,
        verify: Text,
        webhook_url: Text,
        secret_token: Text,
        api_url: Text = DEFAULT_API_URL,
        allow_intent_commands: bool = False,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    ) -> None:
        # debug_mode=False: stock's flag for re-raising handler errors; this channel answers
        # failures itself (503/500, so Telegram redelivers) and never re-raises.
        super().__init__(access_token, verify, webhook_url, debug_mode=False)
        self.api_url = api_url
        self.allow_intent_commands = allow_intent_commands
        self.max_message_length = max_message_length
        self._secret = secret_token.encode("utf-8")

    def _bot_client(self) -> VerifiedTelegramOutput:
        return VerifiedTelegramOutput(self.access_token, self.api_url)

    def get_output_channel(self) -> OutputChannel:
        """A Bot client addressed by conversation id, for Rasa's API (`trigger_intent`, ...).

        Conversations are `verified_telegram:<chat id>`; the wrapper sends to the chat id.
        Unlike stock, no setWebhook call (it ran `asyncio.run` here, which fails inside the
        running server).
        """
        return NamespacedOutputChannel(self.name(), self._bot_client())

    def _secret_status(self, request: Request) -> Optional[int]:
        """401 when the header is missing, 403 when it is wrong, None when it matches."""
        presented = request.headers.get(SECRET_HEADER)
        if presented is None:
            return 401
        # Sanic decodes headers with surrogateescape; this gives back the bytes sent.
        if not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self._secret):
            return 403
        return None

    async def _register_webhook(self, out_channel: VerifiedTelegramOutput) -> None:
        """Fails start-up when the token is not the configured bot's or setWebhook is refused:
        without the registered secret every genuine update would be rejected."""
        try:
            me = await out_channel.get_me()
            # Telegram usernames are case-insensitive; people also write them with an @.
            if (me.username or "").lower() != self.verify.lstrip("@").lower():
                raise RasaException(
                    f"The Telegram access_token belongs to bot '{me.username}', but credentials.yml "
                    f"says verify: {self.verify}."
                )
            await out_channel.register_webhook(self.webhook_url, self._secret.decode("utf-8"))
        except TelegramAPIError as error:
            raise RasaException(f"Failed to set the Telegram webhook: {error}") from error
        logger.info(f"Telegram webhook registered for {self.webhook_url} with a secret token.")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        telegram_webhook = Blueprint("verified_telegram_webhook", __name__)
        tracker_store = LoadedTrackerStore()
        telegram_webhook.listener("before_server_start")(tracker_store.remember_app)
        # Runs before Rasa loads the agent and before any request is accepted.
        telegram_webhook.listener("before_server_start")(install_server_extensions)
        # Outermost, so the length cap, the guards and the bot see only namespaced ids.
        on_new_message = namespace_senders(
            self.name(),
            screen_customer_texts(
                guard_customer_commands(
                    on_new_message, tracker_store, self.allow_intent_commands, ALWAYS_ALLOWED_COMMANDS
                ),
                self.max_message_length,
            ),
        )
        out_channel = self._bot_client()

        @telegram_webhook.listener("before_server_start")
        async def register_webhook(_: Sanic, __: Any) -> None:
            await self._register_webhook(out_channel)

        @telegram_webhook.listener("after_server_stop")
        async def close_session(_: Sanic, __: Any) -> None:
            await out_channel.session.close()

        @telegram_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @telegram_webhook.route("/webhook", methods=["POST"])
        async def message(request: Request) -> HTTPResponse:
            refusal = self._secret_status(request)
            if refusal is not None:
                logger.warning(f"Refused a Telegram update without the right {SECRET_HEADER} header.")
                return response.json({"error": f"missing or wrong {SECRET_HEADER}"}, status=refusal)
            try:
                extracted = self._text_and_sender(json_object(request.body, "a Telegram Update object"))
            except BadWebhookBody as error:
                return error_response(400, "bad_request", str(error))
            if extracted is None:
                # Member updates, stickers, channel posts: nothing for the bot to answer.
                return response.text("success")
            if not agent_ready(request):
                return no_model_response()
            # `PUT /model` may have swapped the agent since the strict-mode middleware ran.
            ensure_strict_agent(request.app)
            text, chat_id = extracted
            what = f"a Telegram update from {describe(conversation_id(self.name(), chat_id))}"
            metadata = self.get_metadata(request)
            messages = [
                UserMessage(part, out_channel, chat_id, input_channel=self.name(), metadata=metadata)
                for part in self._texts_for(text)
            ]
            try:
                await finish_turn(self._handle_in_order(on_new_message, messages), what)
            except Exception as error:
                # Telegram redelivers an update answered with anything but 2xx (a `/restart`
                # whose `/start` failed is restarted again: harmless).
                return failure_response(error, what)
            return response.text("success")

        return telegram_webhook

    @staticmethod
    def _texts_for(text: Text) -> List[Text]:
        """Stock turns a typed `/restart` into `/restart` then `/start`."""
        return [text, "/start"] if text == INTENT_MESSAGE_PREFIX + USER_INTENT_RESTART else [text]

    @staticmethod
    async def _handle_in_order(
        on_new_message: Callable[[UserMessage], Awaitable[Any]], messages: List[UserMessage]
    ) -> None:
        for message in messages:
            await on_new_message(message)

    def _text_and_sender(self, payload: Dict[Text, Any]) -> Optional[Tuple[Text, Text]]:
        """The user's text and chat id, as stock reads them; None for updates with nothing to
        answer; `BadWebhookBody` for a body of the wrong shape (stock fails on it with a 500)."""
        try:
            extracted = self._read_update(Update(**payload))
        except BadWebhookBody:
            raise
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            # aiogram builds its objects from the JSON as it is: wrong types surface here.
            raise BadWebhookBody(f"Not a Telegram Update object ({type(error).__name__}).") from error
        if extracted is None:
            return None
        text, chat_id = extracted
        if not isinstance(text, str) or isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise BadWebhookBody("A Telegram message needs a string `text` and an integer `chat.id`.")
        return text, str(chat_id)

    def _read_update(self, update: Update) -> Optional[Tuple[Any, Any]]:
        if self._is_button(update):
            msg, text = update.callback_query.message, update.callback_query.data
        elif self._is_edited_message(update):
            msg, text = update.edited_message, update.edited_message.text
        else:
            msg = update.message
            if msg is None:
                return None
            if self._is_user_message(msg):
                text = msg.text.replace("/bot", "")
            elif self._is_location(msg):
                longitude, latitude = msg.location.longitude, msg.location.latitude
                if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in (longitude, latitude)):
                    raise BadWebhookBody("A Telegram location needs numeric `longitude` and `latitude`.")
                text = '{{"lng":{0}, "lat":{1}}}'.format(longitude, latitude)
            else:
                return None
        if msg is None or not text:
            return None
        return text, msg.chat.id
