"""Slack Events API webhook: Rasa's signing-secret check, honest answers and a configurable
Slack API host.

Stock `rasa.core.channels.slack.SlackInput.is_request_from_slack_authentic` is sound and
is reused unchanged: HMAC-SHA256 with the signing secret over `v0:{timestamp}:{raw body}`,
`hmac.compare_digest`, a 5-minute window around the local clock (a missing timestamp counts
as 0, so it is outside), any parsing error means "not authentic", and an empty signing
secret is refused at start-up. Stock answers a refused request with 400, which reads as
"Slack sent a malformed request"; this channel answers 401.

Stock's route is replaced, its parsing helpers kept, because stock

* answers 200 at once and runs the turn in the background, so a store outage or any
  failure loses the message: Slack never learns and never retries. Here the answer waits
  for the turn, up to `ACK_DEADLINE_S` (Slack wants one within 3 s): a failure is 503
  (outages, no model loaded) or 500, and Slack retries (`X-Slack-Retry-Num`, reason
  `http_error`). A turn still running at the deadline is acknowledged and finishes in the
  background; should it then fail, only the log says so. A retry Slack sends because an
  answer was late (`http_timeout`, stock's `errors_ignore_retry`) is still dropped with
  `X-Slack-No-Retry`, as stock does: the first delivery is handling it;
* fails with a 500 on bodies of another shape (not JSON, a list, a form without
  `payload`, wrong types) and on interactions it does not handle, and Slack shows the user
  an error and retries; here such bodies get 400 and ignored interactions 200;
* files a message without a `user` under the sender "", one conversation for everybody;
  here it is ignored.

Enabled by a `credentials.yml` entry (same keys as stock `slack`)::

    lepton_components.channels.verified_slack.VerifiedSlackInput:
      slack_token: ${SLACK_BOT_TOKEN}              # xoxb-...
      slack_signing_secret: ${SLACK_SIGNING_SECRET}
      # slack_channel, use_threads, conversation_granularity, ...: as for stock `slack`
      # api_url: https://slack.com/api/            (a test stand-in in tests)
      # allow_intent_commands: false               (true lets anyone send `/intent{...}`)
      # max_message_length: 2000                   (longer texts get a polite reply, not NLU)

Typed `/intent{"entity": "value"}` messages reach NLU as text; only the payloads of the
bot's latest buttons pass as commands (`lepton_components.channels.intent_commands`).
Conversations are stored as `verified_slack:<stock's conversation id>` (`sender_namespace`),
so no other channel can name them. The length cap counts the text as Slack delivers it,
before stock removes mentions of the bot.

Listing the channel switches on the server extensions (`lepton_components.server`):
API tokens, body limits, JSON errors, strict stores, `/metrics`.

Routes (under `/webhooks/verified_slack/`): `GET /` health, `POST /webhook`.
"""

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Union, cast

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from rasa.shared.exceptions import InvalidConfigException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from lepton_components.channels.intent_commands import (
    LoadedTrackerStore,
    guard_customer_commands,
    pop_allow_intent_commands,
)
from lepton_components.channels.conversation_ids import conversation_id, describe
from lepton_components.channels.message_text import DEFAULT_MAX_MESSAGE_LENGTH, pop_max_message_length
from lepton_components.channels.sender_namespace import NamespacedOutputChannel, namespace_senders
from lepton_components.channels.webhook_body import BadWebhookBody, form_json_field, json_object
from lepton_components.channels.webhook_turns import (
    log_late_failure,
    screen_customer_texts,
    start_turn,
)
from lepton_components.server.extensions import install_server_extensions
from lepton_components.server.failures import agent_ready, error_response, failure_response, no_model_response
from lepton_components.server.strict_mode import ensure_strict_agent

logger = logging.getLogger(__name__)

DEFAULT_API_URL = AsyncWebClient.BASE_URL
REQUIRED_KEYS = ("slack_token", "slack_signing_secret")
# Slack counts a delivery as failed without an answer within 3 s; leave time for the network.
ACK_DEADLINE_S = 2.5
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
EVENT_EXPECTED = "a Slack Events API callback"
INTERACTION_EXPECTED = "a Slack interaction (`payload=<JSON>`)"

CREDENTIALS_EXAMPLE = """\
lepton_components.channels.verified_slack.VerifiedSlackInput:
  slack_token: ${SLACK_BOT_TOKEN}
  slack_signing_secret: ${SLACK_SIGNING_SECRET}"""


@dataclass(frozen=True)
class SlackTurn:
    """A customer message read from a Slack request: text, stock's conversation id, metadata."""

    text: Text
    sender_id: Text
    metadata: Dict[Text, Any]


def _optional_text(value: Any, field: Text) -> Optional[Text]:
    if value is None or isinstance(value, str):
        return value
    raise BadWebhookBody(f"`{field}` must be a string.")


def _mapping(value: Any, field: Text) -> Dict[Text, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise BadWebhookBody(f"`{field}` must be a JSON object.")


def _event_users(callback: Dict[Text, Any]) -> List[Text]:
    """The bot's own user ids, whose mentions stock removes from the text (as its get_metadata)."""
    if "authed_users" in callback:
        users = callback["authed_users"] or []
    else:
        authorizations = callback.get("authorizations") or []
        if not isinstance(authorizations, list):
            raise BadWebhookBody("`authorizations` must be a list.")
        first = _mapping(authorizations[0], "authorizations[0]") if authorizations else {}
        users = [first["user_id"]] if first.get("user_id") is not None else []
    if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
        raise BadWebhookBody("`authed_users` and `authorizations[].user_id` must be strings.")
    return users


class VerifiedSlackInput(SlackInput):
    """Slack input channel that answers 401 to unsigned, forged or stale requests and a
    non-2xx status when a message could not be processed."""

    api_url: Text = DEFAULT_API_URL
    allow_intent_commands: bool = False
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    ack_deadline_s: float = ACK_DEADLINE_S

    @classmethod
    def name(cls) -> Text:
        return "verified_slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedSlackInput":
        credentials = dict(credentials or {})
        allow_intent_commands = pop_allow_intent_commands("verified_slack", credentials, CREDENTIALS_EXAMPLE)
        max_message_length = pop_max_message_length("verified_slack", credentials, CREDENTIALS_EXAMPLE)
        for key in REQUIRED_KEYS:
            if not credentials.get(key):
                raise InvalidConfigException(
                    f"The verified_slack channel needs `{key}` in credentials.yml, e.g.\n{CREDENTIALS_EXAMPLE}"
                )
        # Stock maps the remaining keys and their defaults; only the API host is ours.
        channel = cast(VerifiedSlackInput, super().from_credentials(credentials))
        channel.api_url = str(credentials.get("api_url") or DEFAULT_API_URL)
        channel.allow_intent_commands = allow_intent_commands
        channel.max_message_length = max_message_length
        return channel

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        # Named apart from stock's, so that this channel and stock `slack` can be served side by side.
        slack_webhook = Blueprint("verified_slack_webhook", __name__)
        tracker_store = LoadedTrackerStore()
        slack_webhook.listener("before_server_start")(tracker_store.remember_app)
        # Runs before Rasa loads the agent and before any request is accepted.
        slack_webhook.listener("before_server_start")(install_server_extensions)
        # Outermost, so the length cap, the guards and the bot see only namespaced ids.
        # On Slack the link commands are `!link` and `!unlink` (docs/identity.md).
        on_new_message = namespace_senders(
            self.name(),
            screen_customer_texts(
                guard_customer_commands(on_new_message, tracker_store, self.allow_intent_commands),
                self.max_message_length,
            ),
        )

        @slack_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @slack_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if not self.is_request_from_slack_authentic(request):
                logger.warning("Refused a Slack request without a valid, fresh X-Slack-Signature.")
                return response.text(
                    "Missing, invalid or expired X-Slack-Signature / X-Slack-Request-Timestamp", status=401
                )
            try:
                turn = self._read_request(request)
            except BadWebhookBody as error:
                return error_response(400, "bad_request", str(error))
            if isinstance(turn, HTTPResponse):
                return turn  # the URL check, or something the bot ignores on purpose
            late_retry = self._late_retry(request)
            if late_retry is not None:
                return late_retry
            if not agent_ready(request):
                return no_model_response()
            # `PUT /model` may have swapped the agent since the strict-mode middleware ran.
            ensure_strict_agent(request.app)
            return await self._answer_after_turn(on_new_message, turn)

        return slack_webhook

    def _late_retry(self, request: Request) -> Optional[HTTPResponse]:
        """Stock's answer to a retry for a late answer: the first delivery is handling it."""
        retry_reason = request.headers.get(self.retry_reason_header)
        retry_count = request.headers.get(self.retry_num_header)
        if retry_count and retry_reason in self.errors_ignore_retry:
            logger.warning(f"Dropped Slack's retry #{retry_count} (reason {retry_reason}): already being handled.")
            return response.text("", status=HTTPStatus.CREATED, headers={"X-Slack-No-Retry": "1"})
        return None

    async def _answer_after_turn(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]], turn: SlackTurn
    ) -> HTTPResponse:
        """200 once the turn is done, 503/500 if it failed, 200 at the deadline if it is still running."""
        # As stock: replies go into the thread only with `use_threads`.
        thread_id = turn.metadata.get("thread_id") if self.use_threads else None
        out_channel = self._slack_bot(turn.metadata.get("out_channel"), thread_id)
        message = UserMessage(turn.text, out_channel, turn.sender_id, input_channel=self.name(), metadata=turn.metadata)
        what = f"a Slack message from {describe(conversation_id(self.name(), turn.sender_id))}"
        # A task of its own: it finishes even if Sanic cancels this handler or the deadline passes.
        task = start_turn(on_new_message(message))
        done, _ = await asyncio.wait({task}, timeout=self.ack_deadline_s)
        if not done:
            logger.info(f"{what} is still being handled after {self.ack_deadline_s} s; acknowledged to Slack.")
            log_late_failure(task, what)
            return response.text("")
        if task.exception() is not None:
            return failure_response(task.exception(), what)  # type: ignore[arg-type]
        return response.text("")

    def _read_request(self, request: Request) -> Union[SlackTurn, HTTPResponse]:
        """The customer message in a signed request, or the answer for one without any."""
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type == JSON_TYPE:
            return self._read_event(json_object(request.body, EVENT_EXPECTED))
        if content_type == FORM_TYPE:
            return self._read_interaction(form_json_field(request.body, "payload", INTERACTION_EXPECTED))
        raise BadWebhookBody(f"Expected {JSON_TYPE} ({EVENT_EXPECTED}) or {FORM_TYPE} ({INTERACTION_EXPECTED}).")

    def _read_event(self, callback: Dict[Text, Any]) -> Union[SlackTurn, HTTPResponse]:
        """Stock's reading of an Events API callback, with every field it uses checked."""
        if "challenge" in callback:
            return response.json(_optional_text(callback["challenge"], "challenge"))
        event = _mapping(callback.get("event"), "event")
        if not self._is_user_message(callback):
            logger.debug("Ignored a Slack event that is not a user's message.")
            return response.text("Bot message delivered.")
        text = event["text"]
        user = _optional_text(event.get("user"), "event.user")
        if not isinstance(text, str):
            raise BadWebhookBody("`event.text` must be a string.")
        if not user:
            logger.debug("Ignored a Slack message without a user.")
            return response.text("Message without a user ignored.")
        out_channel = _optional_text(event.get("channel"), "event.channel")
        thread_id = _optional_text(event.get("thread_ts", event.get("ts")), "event.thread_ts / event.ts")
        metadata = {"out_channel": out_channel, "thread_id": thread_id, "users": _event_users(callback)}
        if not self._is_supported_channel(callback, metadata):
            logger.warning("Ignored a Slack message on a channel this bot does not serve.")
            return response.text("channel not supported.")
        if len(text) <= self.max_message_length:
            # Over the cap the text is refused whole (`screen_customer_texts`): no regex work on it.
            text = self._sanitize_user_message(text, metadata["users"])
        return SlackTurn(text, self._conversation(user, out_channel, thread_id), metadata)

    def _read_interaction(self, payload: Dict[Text, Any]) -> Union[SlackTurn, HTTPResponse]:
        """Stock's reading of a button click or menu choice, with every field it uses checked."""
        actions = payload.get("actions")
        if actions is not None and (not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions)):
            raise BadWebhookBody("`actions` must be a list of JSON objects.")
        if not self._is_interactive_message(payload):
            # Stock answers 500 here, and Slack shows the user an error.
            return response.text("Interaction ignored.")
        user_id = _mapping(payload.get("user"), "user").get("id")
        if not isinstance(user_id, str) or not user_id:
            raise BadWebhookBody("`user.id` must be a non-empty string.")
        try:
            text = self._get_interactive_response(actions[0])  # type: ignore[index]
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise BadWebhookBody(f"The action is not of the shape Slack sends ({type(error).__name__}).") from error
        if text is None:
            # Link buttons have no value: nothing for the bot.
            return response.text("User clicked link button")
        if not isinstance(text, str):
            raise BadWebhookBody("The action's value must be a string.")
        message = _mapping(payload.get("message"), "message")
        out_channel = _optional_text(_mapping(payload.get("channel"), "channel").get("id"), "channel.id")
        thread_id = _optional_text(message.get("thread_ts", message.get("ts")), "message.thread_ts / message.ts")
        metadata = {"out_channel": out_channel, "thread_id": thread_id, "users": [user_id]}
        return SlackTurn(text, self._conversation(user_id, out_channel, thread_id), metadata)

    def _conversation(self, user: Text, channel: Optional[Text], thread_id: Optional[Text]) -> Text:
        """Stock's conversation id for `conversation_granularity`: user, user+channel or user+channel+thread."""
        return cast(Text, self._get_conversation_id(user, channel, thread_id))

    def _slack_bot(self, channel: Optional[Text] = None, thread_id: Optional[Text] = None) -> SlackBot:
        """Stock's output for a message, pointed at the configured API host."""
        bot = cast(SlackBot, super().get_output_channel(channel, thread_id))
        # slack_sdk joins every method name onto `base_url`.
        bot.client.base_url = self.api_url if self.api_url.endswith("/") else self.api_url + "/"
        return bot

    def get_output_channel(self, channel: Optional[Text] = None, thread_id: Optional[Text] = None) -> OutputChannel:
        """Slack output addressed by conversation id, for Rasa's API (`trigger_intent`, ...)."""
        return NamespacedOutputChannel(self.name(), self._slack_bot(channel, thread_id))
