"""The app `rasa run --enable-api --auth-token` builds with every Lepton HTTP channel, for tests.

Rasa's own `create_app` and `channel.register` build it, so its routes, error handlers
and token checks are Rasa's; only the agent is `ParsingAgent`, which needs no model.
"""

from typing import Any, Dict, Optional, Text

from rasa.core.channels.channel import register
from rasa.server import create_app
from sanic import Sanic

from lepton_components.channels.faq_admin import FaqAdminInput
from lepton_components.channels.rest import LeptonRestInput
from lepton_components.channels.web_chat import WebChatInput
from tests.channels.web_chat_bot import ScriptedAgent

API_TOKEN = "test-api-token-0123456789abcdef"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


class ParsingAgent(ScriptedAgent):
    """ScriptedAgent that also answers Rasa's `/model/parse` like NLU would, with no model."""

    async def parse_message(self, text: Optional[Text]) -> Dict[Text, Any]:
        intent = {"name": "greet", "confidence": 1.0} if (text or "").lower() == "hi" else None
        return {"text": text, "intent": intent, "entities": [], "intent_ranking": []}


def lepton_app(agent: Any = None, auth_token: Optional[Text] = API_TOKEN) -> Sanic:
    """Rasa's API app with the REST, web chat and faq_admin channels under /webhooks/."""
    # Rasa names every app "rasa_server"; Sanic refuses a second one outside test mode.
    test_mode, Sanic.test_mode = Sanic.test_mode, True
    try:
        app = create_app(agent=agent, auth_token=auth_token)
    finally:
        Sanic.test_mode = test_mode
    channels = [LeptonRestInput(), WebChatInput(), FaqAdminInput(ADMIN_TOKEN)]
    register(channels, app, route="/webhooks/")
    return app
