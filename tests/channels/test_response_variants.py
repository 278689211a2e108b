"""`channel:` response variants reach each of our channels under the documented names.

Rasa's NLG picks a variant by the name of the output channel a reply goes out on; the
README documents `web_chat`, `telegram`, `slack` and `facebook`. A channel whose output
reported another name (Rasa's collector, say) would silently get the default text.
"""

from typing import Any, Text

import pytest
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.channels.verified_facebook import VerifiedFacebookInput
from lepton_components.channels.verified_slack import VerifiedSlackInput
from lepton_components.channels.verified_telegram import VerifiedTelegramOutput
from lepton_components.channels.web_chat.output import WebChatReplyOutput
from tests.channels.web_chat_bot import web_chat_channel

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
responses:
  utter_greet:
  - text: "Hello!"
  - channel: web_chat
    text: "Hello from the web chat!"
  - channel: telegram
    text: "Hello from Telegram!"
  - channel: slack
    text: "Hello from Slack!"
  - channel: facebook
    text: "Hello from Messenger!"
"""
)


def _outputs() -> Any:
    yield "web_chat", WebChatReplyOutput(), "Hello from the web chat!"
    yield "web_chat push", web_chat_channel().get_output_channel(), "Hello from the web chat!"
    yield "telegram", VerifiedTelegramOutput("7012345678:AAHk3q-Test_Token_For_Lepton_0123456"), "Hello from Telegram!"
    slack = VerifiedSlackInput.from_credentials({"slack_token": "xoxb-test", "slack_signing_secret": "s" * 32})
    yield "slack", slack.get_output_channel(), "Hello from Slack!"
    facebook = VerifiedFacebookInput("verify-token", "app-secret", "page-token")
    yield "facebook", facebook.get_output_channel(), "Hello from Messenger!"


@pytest.mark.asyncio
@pytest.mark.parametrize("label,output,expected", list(_outputs()), ids=[o[0] for o in _outputs()])
async def test_each_channel_gets_its_own_variant(label: Text, output: Any, expected: Text) -> None:
    nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    tracker = DialogueStateTracker("customer", DOMAIN.slots)
    reply = await nlg.generate("utter_greet", tracker, output.name())
    assert reply["text"] == expected


@pytest.mark.asyncio
async def test_channels_without_a_variant_get_the_default() -> None:
    nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    reply = await nlg.generate("utter_greet", DialogueStateTracker("customer", DOMAIN.slots), "collector")
    assert reply["text"] == "Hello!"
