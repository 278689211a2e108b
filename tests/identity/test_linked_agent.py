"""A real Rasa Agent behind the linked store: what the customer said on one channel is
used by the policies, forms and responses on another once the two are linked.

The model is trained here from the demo bot's domain and rules with a keyword intent
classifier and a regex entity extractor, so it trains in seconds and behaves exactly;
the dialogue side (RulePolicy, order_status_form, utter_order_status) is the demo's own.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, List, Text

import pytest
from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.tracker_store import SQLTrackerStore

from lepton_components.identity.link_commands import intercept_link_commands
from lepton_components.identity.linked_tracker_store import LinkedTrackerStore
from tests.identity.conftest import REPO, code_from

pytestmark = pytest.mark.timeout(600)

CONFIG = """\
recipe: default.v1
language: en
assistant_id: lepton-identity-test
pipeline:
  - name: WhitespaceTokenizer
  - name: KeywordIntentClassifier
  - name: RegexEntityExtractor
    use_lookup_tables: false
    use_regexes: true
policies:
  - name: RulePolicy
    core_fallback_threshold: 0.3
"""

NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
- intent: order_status
  examples: |
    - where is my order
- intent: inform
  examples: |
    - my order number is
    - [LP-100000](order_number)
- regex: order_number
  examples: |
    - LP-\\d{6}
"""

ASKS_FOR_NUMBER = "What's your order number? It starts with LP-, like LP-123456."


@dataclass
class LinkedBot:
    """The demo dialogue behind a linked store, reached as a channel reaches it."""

    store: LinkedTrackerStore
    handle: Callable[[UserMessage], Awaitable[Any]]

    async def send(self, text: Text, sender_id: Text, channel: Text) -> List[Text]:
        output = CollectingOutputChannel()
        await self.handle(UserMessage(text, output, sender_id, input_channel=channel))
        return [message.get("text") or "" for message in output.messages]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rasa.model_training import train

    folder = tmp_path_factory.mktemp("linked-agent")
    (folder / "config.yml").write_text(CONFIG)
    (folder / "nlu.yml").write_text(NLU)
    result = train(
        domain=str(REPO / "bot" / "domain.yml"),
        config=str(folder / "config.yml"),
        training_files=[str(folder / "nlu.yml"), str(REPO / "data" / "rules.yml")],
        output=str(folder / "models"),
    )
    assert result.code == 0, "rasa train of the test model failed"
    return Path(result.model)


@pytest.fixture
def bot(model_path: Path, tmp_path: Path) -> LinkedBot:
    """An Agent on the linked store, behind the same command interception channels use."""
    inner = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "trackers.db"))
    store = LinkedTrackerStore(inner=inner)
    agent = Agent.load(str(model_path), tracker_store=store)
    return LinkedBot(store, intercept_link_commands(agent.handle_message))


@pytest.mark.asyncio
async def test_order_number_given_on_telegram_answers_the_order_question_on_messenger(bot: LinkedBot) -> None:
    assert await bot.send("where is my order", "tg-ada", "verified_telegram") == [ASKS_FOR_NUMBER]
    (status, _) = await bot.send("my order number is LP-123456", "tg-ada", "verified_telegram")
    assert status.startswith("Order LP-123456 is in our system")

    code = code_from((await bot.send("/link", "tg-ada", "verified_telegram"))[0])
    (done,) = await bot.send(f"/link {code}", "fb-ada", "verified_facebook")
    assert done.startswith("Done")

    replies = await bot.send("where is my order", "fb-ada", "verified_facebook")
    assert replies[0].startswith("Order LP-123456 is in our system")
    assert not any(ASKS_FOR_NUMBER in reply for reply in replies)

    # Someone who never linked is asked, as before: the answer above came from the link.
    assert (await bot.send("where is my order", "fb-eve", "verified_facebook"))[0].startswith(ASKS_FOR_NUMBER)


@pytest.mark.asyncio
async def test_a_form_asked_on_telegram_is_answered_on_messenger_and_closed_on_both(bot: LinkedBot) -> None:
    assert (await bot.send("where is my order", "tg-bob", "verified_telegram"))[0].startswith(ASKS_FOR_NUMBER)
    code = code_from((await bot.send("/link", "tg-bob", "verified_telegram"))[0])
    await bot.send(f"/link {code}", "fb-bob", "verified_facebook")

    # On Messenger the bot never asked, yet the bare number continues the Telegram form.
    (status, _) = await bot.send("LP-654321", "fb-bob", "verified_facebook")
    assert status.startswith("Order LP-654321 is in our system")

    bob_tg = await bot.store.retrieve("tg-bob")
    assert bob_tg.active_loop_name is None and bob_tg.get_slot("order_number") == "LP-654321"
    # Each channel keeps its own history: Telegram's tracker never saw the Messenger message.
    assert "LP-654321" not in [getattr(event, "text", None) for event in bob_tg.events]


@pytest.mark.asyncio
async def test_after_unlink_the_other_channel_is_asked_again(bot: LinkedBot) -> None:
    await bot.send("where is my order", "tg-cy", "verified_telegram")
    await bot.send("my order number is LP-222333", "tg-cy", "verified_telegram")
    code = code_from((await bot.send("/link", "tg-cy", "verified_telegram"))[0])
    await bot.send("/unlink", "tg-cy", "verified_telegram")  # not linked yet: nothing to undo
    await bot.send(f"/link {code}", "web-cy", "rest")
    assert (await bot.send("/unlink", "web-cy", "rest"))[0].startswith("This chat is no longer linked")

    assert (await bot.send("where is my order", "web-cy", "rest"))[0].startswith(ASKS_FOR_NUMBER)
