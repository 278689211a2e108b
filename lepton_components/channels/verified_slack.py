"""Slack Events API webhook: Rasa's signing-secret check, a 401 for refused requests and a
configurable Slack API host.

Stock `rasa.core.channels.slack.SlackInput.is_request_from_slack_authentic` is sound and
is reused unchanged: HMAC-SHA256 with the signing secret over `v0:{timestamp}:{raw body}`,
`hmac.compare_digest`, a 5-minute window around the local clock (a missing timestamp counts
as 0, so it is outside), any parsing error means "not authentic", and an empty signing
secret is refused at start-up. Stock answers a refused request with 400, which reads as
"Slack sent a malformed request"; this channel answers 401 before stock's handler runs.

Enabled by a `credentials.yml` entry (same keys as stock `slack`)::

    lepton_components.channels.verified_slack.VerifiedSlackInput:
      slack_token: ${SLACK_BOT_TOKEN}              # xoxb-...
      slack_signing_secret: ${SLACK_SIGNING_SECRET}
      # slack_channel, use_threads, conversation_granularity, ...: as for stock `slack`
      # api_url: https://slack.com/api/            (a test stand-in in tests)
      # allow_intent_commands: false               (true lets anyone send `/intent{...}`)

Typed `/intent{"entity": "value"}` messages reach NLU as text; only the payloads of the
bot's latest buttons pass as commands (`lepton_components.channels.intent_commands`).

Routes (under `/webhooks/verified_slack/`): `GET /` health, `POST /webhook`.
"""

import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text, cast

from rasa.core.channels.channel import UserMessage
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

logger = logging.getLogger(__name__)

DEFAULT_API_URL = AsyncWebClient.BASE_URL
REQUIRED_KEYS = ("slack_token", "slack_signing_secret")

CREDENTIALS_EXAMPLE = """\
lepton_components.channels.verified_slack.VerifiedSlackInput:
  slack_token: ${SLACK_BOT_TOKEN}
  slack_signing_secret: ${SLACK_SIGNING_SECRET}"""


class VerifiedSlackInput(SlackInput):
    """Slack input channel that answers 401 to unsigned, forged or stale requests."""

    api_url: Text = DEFAULT_API_URL
    allow_intent_commands: bool = False

    @classmethod
    def name(cls) -> Text:
        return "verified_slack"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "VerifiedSlackInput":
        credentials = dict(credentials or {})
        allow_intent_commands = pop_allow_intent_commands("verified_slack", credentials, CREDENTIALS_EXAMPLE)
        for key in REQUIRED_KEYS:
            if not credentials.get(key):
                raise InvalidConfigException(
                    f"The verified_slack channel needs `{key}` in credentials.yml, e.g.\n{CREDENTIALS_EXAMPLE}"
                )
        # Stock maps the remaining keys and their defaults; only the API host is ours.
        channel = cast(VerifiedSlackInput, super().from_credentials(credentials))
        channel.api_url = str(credentials.get("api_url") or DEFAULT_API_URL)
        channel.allow_intent_commands = allow_intent_commands
        return channel

    def is_request_from_slack_authentic(self, request: Request) -> bool:
        """Stock's check, remembered per request: the 401 gate and stock's handler then agree
        even when the 5-minute window closes between the two calls."""
        if getattr(request.ctx, "slack_authentic", None) is None:
            request.ctx.slack_authentic = super().is_request_from_slack_authentic(request)
        return request.ctx.slack_authentic

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        tracker_store = LoadedTrackerStore()
        # On Slack the link commands are `!link` and `!unlink` (docs/identity.md).
        guarded = guard_customer_commands(on_new_message, tracker_store, self.allow_intent_commands)
        # Renamed so that this channel and stock `slack` can be served side by side.
        slack_webhook = super().blueprint(guarded).copy("verified_slack_webhook")
        slack_webhook.listener("before_server_start")(tracker_store.remember_app)

        # Blueprint middleware runs only for this blueprint's routes, before the handler.
        @slack_webhook.middleware("request")
        async def refuse_unsigned(request: Request) -> Optional[HTTPResponse]:
            if request.path.rstrip("/").endswith("/webhook") and not self.is_request_from_slack_authentic(request):
                logger.warning("Refused a Slack request without a valid, fresh X-Slack-Signature.")
                return response.text(
                    "Missing, invalid or expired X-Slack-Signature / X-Slack-Request-Timestamp", status=401
                )
            return None

        return slack_webhook

    def get_output_channel(self, channel: Optional[Text] = None, thread_id: Optional[Text] = None) -> SlackBot:
        bot = cast(SlackBot, super().get_output_channel(channel, thread_id))
        # slack_sdk joins every method name onto `base_url`.
        bot.client.base_url = self.api_url if self.api_url.endswith("/") else self.api_url + "/"
        return bot
