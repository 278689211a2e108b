"""Every public channel as an attacker and its legitimate client see it, for table-driven tests.

Each `PublicChannel` knows how to build its channel against a stand-in platform API on
127.0.0.1, how its genuine client sends a text (signed, with the platform's id for the
customer), how to send any raw body with valid credentials (what a compromised or buggy
client can do), and how to send without them (what anyone on the network can do).
"""

import json
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional, Text, Tuple

import aiohttp

from tests.channels import test_verified_facebook as facebook
from tests.channels import test_verified_slack as slack
from tests.channels import test_verified_telegram as telegram
from tests.channels.web_chat_bot import ScriptedAgent, web_chat_channel
from tests.channels.webhook_harness import TIMEOUT_S, PlatformStandIn, serve_channel
from tests.rest_client import REST_AUTH, rest_channel

JSON = {"Content-Type": "application/json"}
# The customer id each platform would give; chosen equal on purpose (1234567 on Telegram
# and on Messenger are two people), except Slack's, which are letters.
PLATFORM_ID = "1234567"
SLACK_USER = "U01234567"


@dataclass
class Served:
    """A channel running on 127.0.0.1 with its platform stand-in."""

    url: Text
    platform: Optional[PlatformStandIn]
    session: Optional[Text] = None  # the web chat's token


Send = Callable[[Served, bytes, Dict[Text, Text]], Awaitable[Tuple[int, Text]]]


async def _post(url: Text, body: bytes, headers: Dict[Text, Text]) -> Tuple[int, Text]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http:
        async with http.post(url, data=body, headers=headers) as reply:
            return reply.status, await reply.text()


@dataclass(frozen=True)
class PublicChannel:
    name: Text
    # The body the genuine client sends for `text` from customer `platform_id`.
    body_for: Callable[[Text, Text], bytes]
    # Headers that prove the body comes from the platform (or the site's backend).
    credentials_for: Callable[[Served, bytes], Dict[Text, Text]]
    # Where the customer's conversation is stored, for a platform id.
    conversation_of: Callable[[Text], Text]
    # The stand-in platform API that receives the bot's replies (None: replies come back inline).
    platform_answer: Optional[Callable[[Text], Dict[Text, Any]]] = None
    # How the channel answers a message it turned away politely (messaging apps: 200 + a reply).
    polite_status: int = 413
    # Messages one sender may send at once before the rate limit answers.
    burst: int = 10

    def build(self, platform: Optional[PlatformStandIn], rate_limited: bool) -> Any:
        if self.name == "web_chat":
            # The other attacks send many messages from one session on purpose.
            return web_chat_channel() if rate_limited else web_chat_channel(rate_limits=NO_WEB_CHAT_LIMITS)
        return BUILDERS[self.name](platform)

    async def send_text(self, served: Served, text: Text, platform_id: Text = PLATFORM_ID) -> Tuple[int, Text]:
        body = self.body_for(text, platform_id)
        return await self.send_raw(served, body)

    async def send_raw(self, served: Served, body: bytes) -> Tuple[int, Text]:
        """`body` with valid credentials, as only the platform (or a compromised client) can."""
        return await _post(self.webhook(served), body, {**JSON, **self.credentials_for(served, body)})

    async def send_forged(self, served: Served, text: Text, platform_id: Text) -> Tuple[int, Text]:
        """The genuine body without the platform's proof, as anyone on the network can send it."""
        return await _post(self.webhook(served), self.body_for(text, platform_id), dict(JSON))

    def webhook(self, served: Served) -> Text:
        return served.url + ("/messages" if self.name == "web_chat" else "/webhook")

    @asynccontextmanager
    async def serve(self, agent: ScriptedAgent, rate_limited: bool = False) -> AsyncIterator[Served]:
        async with AsyncExitStack() as stack:
            platform = stack.enter_context(PlatformStandIn(self.platform_answer)) if self.platform_answer else None
            url = await stack.enter_async_context(
                serve_channel(self.build(platform, rate_limited), agent.handle_message, agent=agent)
            )
            served = Served(url, platform)
            if self.name == "web_chat":
                status, text = await _post(url + "/sessions", b"", {})
                assert status == 201, text
                served.session = json.loads(text)["session"]
            yield served


def _telegram_body(text: Text, platform_id: Text) -> bytes:
    update = json.loads(json.dumps(telegram.TEXT_UPDATE))
    update["message"]["text"] = text
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = int(platform_id)
    return json.dumps(update).encode("utf-8")


def _facebook_body(text: Text, platform_id: Text) -> bytes:
    event = json.loads(facebook.messenger_event({"message": {"mid": f"m_{time.time_ns()}", "text": text}}))
    event["entry"][0]["messaging"][0]["sender"]["id"] = platform_id
    return json.dumps(event).encode("utf-8")


def _slack_body(text: Text, platform_id: Text) -> bytes:
    event = json.loads(slack.MESSAGE_EVENT)
    event["event"]["text"], event["event"]["user"] = text, platform_id
    event["event_id"] = f"Ev{time.time_ns()}"
    return json.dumps(event).encode("utf-8")


CHANNELS = [
    PublicChannel(
        "rest",
        body_for=lambda text, sender: json.dumps({"sender": sender, "message": text}).encode("utf-8"),
        credentials_for=lambda served, body: dict(REST_AUTH),
        conversation_of=lambda sender: f"rest:{sender}",
        burst=30,
    ),
    PublicChannel(
        "web_chat",
        body_for=lambda text, _: json.dumps({"text": text, "id": f"m{time.time_ns()}"}).encode("utf-8"),
        credentials_for=lambda served, body: {"Authorization": f"Bearer {served.session}"},
        conversation_of=lambda _: "web-",  # drawn by the server; only its prefix is known
    ),
    PublicChannel(
        "verified_telegram",
        body_for=_telegram_body,
        credentials_for=lambda served, body: {telegram.SECRET_HEADER: telegram.SECRET},
        conversation_of=lambda chat: f"verified_telegram:{chat}",
        platform_answer=telegram.telegram_answer,
        polite_status=200,
    ),
    PublicChannel(
        "verified_facebook",
        body_for=_facebook_body,
        credentials_for=lambda served, body: {"X-Hub-Signature-256": facebook.sign(body)},
        conversation_of=lambda psid: f"verified_facebook:{psid}",
        platform_answer=facebook.graph_answer,
        polite_status=200,
    ),
    PublicChannel(
        "verified_slack",
        body_for=_slack_body,
        credentials_for=lambda served, body: slack.signed(body),
        conversation_of=lambda user: f"verified_slack:{user}",
        platform_answer=slack.slack_answer,
        polite_status=200,
    ),
]

NO_WEB_CHAT_LIMITS = {"messages_per_session": None, "messages_per_ip": None, "requests_per_session": None,
                      "sessions_per_ip": None}
BUILDERS: Dict[Text, Callable[[Optional[PlatformStandIn]], Any]] = {
    "rest": lambda _: rest_channel(),
    "verified_telegram": lambda api: telegram.VerifiedTelegramInput.from_credentials(telegram.credentials(api.url)),
    "verified_facebook": lambda api: facebook.channel_for(api.url),
    "verified_slack": lambda api: slack.channel_for(f"{api.url}/api/"),
}


def platform_id_for(channel: PublicChannel) -> Text:
    return SLACK_USER if channel.name == "verified_slack" else PLATFORM_ID
