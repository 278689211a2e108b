"""The app `rasa run --enable-api` builds with Lepton channels, for tests.

Rasa's own `create_app` and `channel.register` build it, so its routes, error handlers
and token checks are Rasa's; only the agent is `ParsingAgent`, which needs no model,
unless a test passes a real one.
"""

from functools import partial
from typing import Any, Dict, Optional, Sequence, Text

from rasa.core.channels.channel import InputChannel, register
from rasa.core.run import load_agent_on_start
from rasa.server import create_app
from sanic import Sanic

from lepton_components.channels.faq_admin import FaqAdminInput
from tests.channels.web_chat_bot import ScriptedAgent

API_TOKEN = "test-api-token-0123456789abcdef"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


class ParsingAgent(ScriptedAgent):
    """ScriptedAgent that also answers Rasa's `/model/parse` like NLU would, with no model."""

    async def parse_message(self, text: Optional[Text]) -> Dict[Text, Any]:
        intent = {"name": "greet", "confidence": 1.0} if (text or "").lower() == "hi" else None
        return {"text": text, "intent": intent, "entities": [], "intent_ranking": []}


def rasa_app(
    channels: Sequence[InputChannel],
    agent: Any = None,
    auth_token: Optional[Text] = API_TOKEN,
    model_path: Optional[Text] = None,
    jwt_secret: Optional[Text] = None,
) -> Sanic:
    """Rasa's API app with `channels` under /webhooks/; with `model_path`, loaded at start-up as `rasa run --model`."""
    # Rasa names every app "rasa_server"; Sanic refuses a second one outside test mode.
    test_mode, Sanic.test_mode = Sanic.test_mode, True
    try:
        app = create_app(agent=agent, auth_token=auth_token, jwt_secret=jwt_secret)
    finally:
        Sanic.test_mode = test_mode
    register(list(channels), app, route="/webhooks/")
    if model_path is not None:
        # Exactly the listener `rasa.core.run.serve_application` registers.
        app.register_listener(partial(load_agent_on_start, model_path, None, None), "before_server_start")
    return app


def lepton_app(agent: Any = None, auth_token: Optional[Text] = API_TOKEN) -> Sanic:
    """Rasa's API app with the REST, web chat and faq_admin channels under /webhooks/."""
    from lepton_components.channels.web_chat.rate_limits import DEFAULT_LIMITS
    from tests.channels.web_chat_bot import web_chat_channel
    from tests.rest_client import rest_channel

    # No rate limits: the fuzzers send hundreds of requests from one address and session.
    web_chat = web_chat_channel(rate_limits={name: None for name in DEFAULT_LIMITS})
    return rasa_app([rest_channel(), web_chat, FaqAdminInput(ADMIN_TOKEN)], agent, auth_token)
