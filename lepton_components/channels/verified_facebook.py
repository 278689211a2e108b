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
      # max_message_length: 2000             (longer texts get a polite reply, not NLU)

Typed `/intent{"entity": "value"}` messages reach NLU as text; only the payloads of the
bot's latest buttons pass as commands (`lepton_components.channels.intent_commands`).

Conversations are stored as `verified_facebook:<PSID>` (`sender_namespace`), so no other
channel can name them; replies still go to the PSID.

Meta batches events: stock handles only the first of `entry[*].messaging[*]` and drops
the rest. Here every event of every entry is handled, in order. A failure (a store
outage, no model loaded, any error) stops the batch and is answered 503 or 500, so Meta
delivers the whole batch again (stock answers 200 and the messages are lost). Events the
batch had already handled are then skipped: each message is stored with its Messenger
`mid` as its message id, and a `mid` the conversation already holds is not handled twice
(replicas agree, since the tracker is shared). Not de-duplicated: events without a `mid`
(old postbacks), messages refused for their length and link commands (none is stored), a
turn that failed after sending its reply, and a redelivery that arrives while the first
delivery is still being handled (the check runs before the conversation lock). Events
the bot ignores on purpose (deliveries, reads, echoes, shapes it does not parse) are
skipped and answered 200; a body that is not a Messenger event (not JSON, not UTF-8,
lone surrogates) gets 400.

Listing the channel switches on the server extensions (`lepton_components.server`):
API tokens, body limits, JSON errors, strict stores, `/metrics`.

Routes (under `/webhooks/verified_facebook/`): `GET /` health, `GET /webhook` (Meta's
hub.challenge handshake) and `POST /webhook`.
"""

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

import requests
from fbmessenger import MessengerClient
from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.facebook import FacebookInput, Messenger, MessengerBot
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.channels.intent_commands import (
    LoadedTrackerStore,
    OnNewMessage,
    TrackerStoreLookup,
    guard_customer_commands,
    pop_allow_intent_commands,
)
from lepton_components.channels.message_text import DEFAULT_MAX_MESSAGE_LENGTH, pop_max_message_length
from lepton_components.channels.numbered_choices import buttons_awaiting_reply, chosen_button, numbered_text
from lepton_components.channels.conversation_ids import conversation_id, describe
from lepton_components.channels.sender_namespace import NamespacedOutputChannel, namespace_senders
from lepton_components.channels.webhook_body import BadWebhookBody, json_object
from lepton_components.channels.webhook_turns import finish_turn, screen_customer_texts
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response
from lepton_components.server.strict_mode import ensure_strict_agent

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


@dataclass(frozen=True)
class MessengerTurn:
    """One customer event of a webhook batch: who wrote, what, and its Messenger `mid`."""

    psid: Text
    text: Text
    mid: Optional[Text]


def event_text(event: Dict[Text, Any]) -> Optional[Text]:
    """The text stock hands the bot for a messaging event, else None (it ignores the event).

    Stock's order: a quick reply's payload, the typed text, an attachment's URL, a
    postback's payload. The page's own messages echoed back (`is_echo`) are ignored:
    stock would answer its own images.
    """
    message = event.get("message")
    if message:
        if message.get("is_echo"):
            return None
        if Messenger._is_quick_reply_message(event):
            return message["quick_reply"]["payload"]
        if Messenger._is_user_message(event):
            return message["text"]
        attachment_checks = (
            Messenger._is_audio_message, Messenger._is_image_message,
            Messenger._is_video_message, Messenger._is_file_message,
        )
        if any(check(event) for check in attachment_checks):
            return message["attachments"][0]["payload"]["url"]
        return None
    postback = event.get("postback")
    return postback["payload"] if postback else None


def messenger_turns(payload: Dict[Text, Any]) -> List[MessengerTurn]:
    """Every customer event of a webhook body, in order.

    `BadWebhookBody` when the envelope is not Messenger's. A single event of a shape this
    cannot read is skipped, not refused: Meta would redeliver the whole batch for ever.
    """
    entries = payload.get("entry")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise BadWebhookBody('Expected a Messenger webhook event: {"object": "page", "entry": [...]}.')
    turns = []
    for entry in entries:
        events = entry.get("messaging")
        if not isinstance(events, list):
            continue  # e.g. handover `standby` entries: nothing for the bot
        for event in events:
            turn = _turn_of(event)
            if turn is not None:
                turns.append(turn)
    return turns


def _turn_of(event: Any) -> Optional[MessengerTurn]:
    try:
        text = event_text(event)
        sender = event.get("sender") or {}
        psid = sender.get("id")
        mid = (event.get("message") or event.get("postback") or {}).get("mid")
    except (KeyError, IndexError, TypeError, AttributeError):
        # Stock's parsing indexes into the event as it is: other shapes surface here.
        logger.warning("Ignored a signed Messenger event of a shape the parser does not handle.")
        return None
    if text is None:
        return None  # deliveries, reads, reactions, echoes
    if not isinstance(text, str) or not text or not isinstance(psid, str) or not psid:
        # Stock would file an event without a sender under "", one conversation for all.
        logger.warning("Ignored a signed Messenger event without a text and a sender id.")
        return None
    return MessengerTurn(psid, text, mid if isinstance(mid, str) and mid else None)


def handled_before(tracker: Optional[DialogueStateTracker], message_id: Optional[Text]) -> bool:
    """Whether the conversation already holds the customer message with this id."""
    if tracker is None or message_id is None:
        return False
    return any(isinstance(event, UserUttered) and event.message_id == message_id for event in tracker.events)


def read_back_from_tracker(on_new_message: OnNewMessage, tracker_store: TrackerStoreLookup) -> OnNewMessage:
    """`on_new_message` that skips messages already handled and resolves numbered replies.

    One tracker read serves both: a message whose id (its `mid`) the conversation holds
    came again with a redelivered batch; a reply such as "2" to buttons the bot sent as a
    numbered list becomes that button's payload (`display_text` keeps what was typed).
    Apply it inside `namespace_senders`: the tracker is the namespaced conversation's.
    """

    async def handle(message: UserMessage) -> Any:
        store = tracker_store()
        tracker = await store.retrieve(message.sender_id) if store is not None else None
        if handled_before(tracker, message.message_id):
            logger.info(f"Skipped a Messenger message from {describe(message.sender_id)} handled before (redelivered).")
            return None
        button = chosen_button(message.text or "", buttons_awaiting_reply(tracker))
        if button is not None and button.get("payload"):
            message.metadata = {**(message.metadata or {}), "display_text": message.text}
            message.text = str(button["payload"])
        return await on_new_message(message)

    return handle


class VerifiedMessengerBot(MessengerBot):
    """Stock Messenger output, except that buttons Messenger cannot show become a numbered list.

    Messenger's button template takes at most 3 buttons with titles of at most 20
    characters; for more, stock Rasa drops every button and sends the text alone. Stock
    also writes `type: postback` into the button dicts it is given, which are the
    response's own: every other channel would then show them changed, so it gets copies.
    """

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        fits = len(buttons) <= MAX_TEMPLATE_BUTTONS and all(
            len(str(button.get("title", ""))) <= MAX_BUTTON_TITLE for button in buttons
        )
        if fits:
            await super().send_text_with_buttons(recipient_id, text, [dict(button) for button in buttons], **kwargs)
        else:
            await self.send_text_message(recipient_id, numbered_text(text, buttons), **kwargs)


class VerifiedMessenger(Messenger):
    """Hands customer events to the bot, replying through the configured Graph API host."""

    @classmethod
    def name(cls) -> Text:
        # Recorded as the message's input channel: Rasa finds the output channel by it.
        return VerifiedFacebookInput.name()

    def __init__(
        self,
        page_access_token: Text,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        api_url: Text,
    ) -> None:
        super().__init__(page_access_token, on_new_message)
        self.client = graph_client(page_access_token, api_url)

    async def handle_turn(self, turn: MessengerTurn, metadata: Optional[Dict[Text, Any]]) -> None:
        """Stock's hand-over to the bot, except that a failure reaches the caller."""
        out_channel = VerifiedMessengerBot(self.client)
        await self._sender_action(out_channel, turn.psid, "mark_seen")
        await self._sender_action(out_channel, turn.psid, "typing_on")
        try:
            await self.on_new_message(
                UserMessage(
                    turn.text,
                    out_channel,
                    turn.psid,
                    input_channel=self.name(),
                    metadata=dict(metadata) if metadata else None,
                    message_id=turn.mid,
                )
            )
        finally:
            await self._sender_action(out_channel, turn.psid, "typing_off")

    @staticmethod
    async def _sender_action(out_channel: MessengerBot, psid: Text, action: Text) -> None:
        """Typing indicators are cosmetic: a Graph API error there must not fail the turn
        (nor, in `finally`, hide the error that did)."""
        try:
            await out_channel.send_action(psid, sender_action=action)
        except requests.RequestException as error:
            logger.warning(f"Messenger sender action '{action}' failed ({type(error).__name__}).")


class VerifiedFacebookInput(FacebookInput):
    """Facebook input channel that refuses events without a valid X-Hub-Signature-256."""

    @classmethod
    def name(cls) -> Text:
        return "verified_facebook"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedFacebookInput":
        credentials = dict(credentials or {})
        allow_intent_commands = pop_allow_intent_commands("verified_facebook", credentials, CREDENTIALS_EXAMPLE)
        max_message_length = pop_max_message_length("verified_facebook", credentials, CREDENTIALS_EXAMPLE)
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
            max_message_length=max_message_length,
        )

    def __init__(
        self,
        fb_verify: Text,
        fb_secret: Text,
        fb_access_token: Text,
        api_url: Text = DEFAULT_API_URL,
        allow_intent_commands: bool = False,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    ) -> None:
        super().__init__(fb_verify, fb_secret, fb_access_token)
        self.api_url = api_url
        self.allow_intent_commands = allow_intent_commands
        self.max_message_length = max_message_length

    def get_output_channel(self) -> OutputChannel:
        """Messenger output addressed by conversation id (`verified_facebook:<PSID>`), for
        Rasa's API (`trigger_intent`, ...); the wrapper sends to the PSID."""
        bot = VerifiedMessengerBot(graph_client(self.fb_access_token, self.api_url))
        return NamespacedOutputChannel(self.name(), bot)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        fb_webhook = Blueprint("verified_facebook_webhook", __name__)
        tracker_store = LoadedTrackerStore()
        fb_webhook.listener("before_server_start")(tracker_store.remember_app)
        # Runs before Rasa loads the agent and before any request is accepted.
        fb_webhook.listener("before_server_start")(install_server_extensions)
        # Namespacing outermost: every tracker read below is the namespaced conversation's.
        # The length cap comes before any read; a numbered choice has become its button's
        # payload before the command guards run.
        on_new_message = namespace_senders(
            self.name(),
            screen_customer_texts(
                read_back_from_tracker(
                    guard_customer_commands(on_new_message, tracker_store, self.allow_intent_commands),
                    tracker_store,
                ),
                self.max_message_length,
            ),
        )

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
            try:
                turns = messenger_turns(json_object(request.body, "a Messenger webhook event"))
            except BadWebhookBody as error:
                return error_response(400, "bad_request", str(error))
            if not turns:
                return response.text("success")
            if not agent_ready(request):
                return no_model_response()
            # `PUT /model` may have swapped the agent since the strict-mode middleware ran.
            ensure_strict_agent(request.app)
            messenger = VerifiedMessenger(self.fb_access_token, on_new_message, self.api_url)
            metadata = self.get_metadata(request)
            for number, turn in enumerate(turns, start=1):
                what = (
                    f"event {number} of {len(turns)} of a Messenger webhook, from "
                    f"{describe(conversation_id(self.name(), turn.psid))}"
                )
                try:
                    await finish_turn(messenger.handle_turn(turn, metadata), what)
                except Exception as error:
                    # Meta redelivers the whole batch; events handled so far are skipped then.
                    return failure_response(error, what)
            return response.text("success")

        return fb_webhook
