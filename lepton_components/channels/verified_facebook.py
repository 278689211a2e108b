"""Facebook Messenger webhook that accepts only events signed with X-Hub-Signature-256.

Stock `rasa.core.channels.facebook.FacebookInput` reads the legacy `X-Hub-Signature`
header, takes the hash algorithm from the header itself (any `hashlib` name the sender
chooses), compares with `==`, and answers 200 "not validated" to a forged request, so
neither the sender nor monitoring sees the refusal. This channel checks Meta's
HMAC-SHA256 signature of the raw body in constant time, never falls back to SHA-1 and
answers 403. Parsing and replies reuse stock's `Messenger` and `MessengerBot`.

Enabled by a `credentials.yml` entry (same keys as stock `facebook`)::

    lepton_components.channels.verified_facebook.VerifiedFacebookInput:
      verify: ${FACEBOOK_VERIFY_TOKEN}       # the "Verify Token" typed into the app dashboard
      secret: ${FACEBOOK_APP_SECRET}         # App settings > Basic > App Secret
      page-access-token: ${FACEBOOK_PAGE_ACCESS_TOKEN}
      # api_url: https://graph.facebook.com  (the Graph API host; a test stand-in in tests)
      # allow_intent_commands: false         (true lets anyone send `/intent{...}`)

Typed `/intent{"entity": "value"}` messages reach NLU as text; only the payloads of the
bot's latest buttons pass as commands (`lepton_components.channels.intent_commands`).

Routes (under `/webhooks/verified_facebook/`): `GET /` health, `GET /webhook` (Meta's
hub.challenge handshake) and `POST /webhook`.
"""

import hashlib
import hmac
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from fbmessenger import MessengerClient
from rasa.core.channels.channel import UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from rasa.core.tracker_store import TrackerStore
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.intent_commands import (
    LoadedTrackerStore,
    guard_customer_commands,
    pop_allow_intent_commands,
)
from lepton_components.channels.numbered_choices import buttons_awaiting_reply, chosen_button, numbered_text

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://graph.facebook.com"
SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="
REQUIRED_KEYS = ("verify", "secret", "page-access-token")
# Messenger's button template limits.
MAX_TEMPLATE_BUTTONS = 3
MAX_BUTTON_TITLE = 20

CREDENTIALS_EXAMPLE = """\
lepton_components.channels.verified_facebook.VerifiedFacebookInput:
  verify: ${FACEBOOK_VERIFY_TOKEN}
  secret: ${FACEBOOK_APP_SECRET}
  page-access-token: ${FACEBOOK_PAGE_ACCESS_TOKEN}"""


def signature_is_valid(app_secret: Text, body: bytes, header: Optional[Text]) -> bool:
    """True only for `sha256=<hex HMAC-SHA256 of the raw body>`; no other algorithm is accepted."""
    if not header:
        return False
    expected = SIGNATURE_PREFIX + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    # Sanic decodes headers with surrogateescape; this gives back the bytes sent.
    return hmac.compare_digest(expected.encode("ascii"), header.encode("utf-8", "surrogateescape"))


def graph_client(page_access_token: Text, api_url: Text) -> MessengerClient:
    """A MessengerClient for the given Graph API host, keeping fbmessenger's API version."""
    client = MessengerClient(page_access_token)
    # fbmessenger joins every endpoint onto `graph_url`, fixed to graph.facebook.com in __init__.
    client.graph_url = f"{api_url.rstrip('/')}/v{client.api_version}"
    return client


class VerifiedMessengerBot(MessengerBot):
    """Stock Messenger output, except that buttons Messenger cannot show become a numbered list.

    Messenger's button template takes at most 3 buttons with titles of at most 20
    characters; for more, stock Rasa drops every button and sends the text alone.
    """

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        fits = len(buttons) <= MAX_TEMPLATE_BUTTONS and all(
            len(str(button.get("title", ""))) <= MAX_BUTTON_TITLE for button in buttons
        )
        if fits:
            await super().send_text_with_buttons(recipient_id, text, buttons, **kwargs)
        else:
            await self.send_text_message(recipient_id, numbered_text(text, buttons), **kwargs)


class VerifiedMessenger(Messenger):
    """Stock event parsing; replies through a client for the configured Graph API host."""

    @classmethod
    def name(cls) -> Text:
        # Recorded as the message's input channel: Rasa finds the output channel by it.
        return VerifiedFacebookInput.name()

    def __init__(
        self,
        page_access_token: Text,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        api_url: Text,
        tracker_store: Optional[TrackerStore] = None,
    ) -> None:
        super().__init__(page_access_token, on_new_message)
        self.client = graph_client(page_access_token, api_url)
        self.tracker_store = tracker_store

    async def _as_chosen_button(self, text: Text, sender_id: Text, metadata: Dict[Text, Any]) -> Text:
        """The payload of the numbered option the customer picked, else the text itself."""
        if self.tracker_store is None:
            return text
        button = chosen_button(text, buttons_awaiting_reply(await self.tracker_store.retrieve(sender_id)))
        if button is None or not button.get("payload"):
            return text
        metadata["display_text"] = text
        return str(button["payload"])

    async def _handle_user_message(
        self, text: Text, sender_id: Text, metadata: Optional[Dict[Text, Any]]
    ) -> None:
        """Stock's hand-over to the bot, with our output and numbered replies resolved."""
        out_channel = VerifiedMessengerBot(self.client)
        await out_channel.send_action(sender_id, sender_action="mark_seen")
        metadata = dict(metadata or {})
        await out_channel.send_action(sender_id, sender_action="typing_on")
        try:
            text = await self._as_chosen_button(text, sender_id, metadata)
            await self.on_new_message(
                UserMessage(text, out_channel, sender_id, input_channel=self.name(), metadata=metadata or None)
            )
        except Exception:
            logger.exception("Exception when trying to handle a Facebook message.")
        finally:
            await out_channel.send_action(sender_id, sender_action="typing_off")


class VerifiedFacebookInput(FacebookInput):
    """Facebook input channel that refuses events without a valid X-Hub-Signature-256."""

    @classmethod
    def name(cls) -> Text:
        return "verified_facebook"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedFacebookInput":
        credentials = dict(credentials or {})
        allow_intent_commands = pop_allow_intent_commands("verified_facebook", credentials, CREDENTIALS_EXAMPLE)
        for key in REQUIRED_KEYS:
            if not credentials.get(key):
                # Stock accepts a missing secret and then fails every request with a TypeError.
                raise InvalidConfigException(
                    f"The verified_facebook channel needs `{key}` in credentials.yml, e.g.\n{CREDENTIALS_EXAMPLE}"
                )
        return cls(
            str(credentials["verify"]),
            str(credentials["secret"]),
            str(credentials["page-access-token"]),
            api_url=str(credentials.get("api_url") or DEFAULT_API_URL),
            allow_intent_commands=allow_intent_commands,
        )

    def __init__(
        self,
        fb_verify: Text,
        fb_secret: Text,
        fb_access_token: Text,
        api_url: Text = DEFAULT_API_URL,
        allow_intent_commands: bool = False,
    ) -> None:
        super().__init__(fb_verify, fb_secret, fb_access_token)
        self.api_url = api_url
        self.allow_intent_commands = allow_intent_commands

    def get_output_channel(self) -> MessengerBot:
        return VerifiedMessengerBot(graph_client(self.fb_access_token, self.api_url))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        fb_webhook = Blueprint("verified_facebook_webhook", __name__)
        tracker_store = LoadedTrackerStore()
        fb_webhook.listener("before_server_start")(tracker_store.remember_app)
        # A tapped numbered choice has become its button's payload before the guards run.
        on_new_message = guard_customer_commands(on_new_message, tracker_store, self.allow_intent_commands)

        @fb_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @fb_webhook.route("/webhook", methods=["GET"])
        async def token_verification(request: Request) -> HTTPResponse:
            """Meta's subscription handshake: echo hub.challenge only for our verify token."""
            presented = request.args.get("hub.verify_token") or ""
            if request.args.get("hub.mode") == "subscribe" and hmac.compare_digest(
                presented.encode("utf-8"), self.fb_verify.encode("utf-8")
            ):
                return response.text(request.args.get("hub.challenge") or "")
            logger.warning("Refused a Facebook webhook handshake with a wrong verify token.")
            return response.text("failure, invalid verify token", status=403)

        @fb_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not signature_is_valid(self.fb_secret, request.body, request.headers.get(SIGNATURE_HEADER)):
                logger.warning(f"Refused a Facebook event without a valid {SIGNATURE_HEADER} header.")
                return response.text(f"missing or invalid {SIGNATURE_HEADER}", status=403)

            payload = request.json
            if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
                return response.text("expected a Messenger webhook event", status=400)
            messenger = VerifiedMessenger(self.fb_access_token, on_new_message, self.api_url, tracker_store())
            try:
                await messenger.handle(payload, self.get_metadata(request))
            except (KeyError, TypeError, AttributeError):
                # Signed but of a shape stock cannot parse (e.g. handover `standby` events):
                # a 200 keeps Meta from redelivering it.
                logger.warning("Ignored a signed Facebook event the Messenger parser does not handle.")
                logger.debug("Unparsed Facebook event.", exc_info=True)
            return response.text("success")

        return fb_webhook
