"""A small but real trained Rasa bot for the scaled-deployment tests.

"message 7" is acknowledged with "ack 7" (intent by logistic regression, the number
by a regex entity into the `seq` slot, the answer by a rule), so every stored bot
turn can be matched to its user message; "which number was it?" answers from the
slot, so a lost conversation shows in the reply. Training takes well under a minute
on two cores; the demo bot's transformer NLU would only add CPU time, not change how
conversations are stored and locked.
"""

from pathlib import Path
from typing import Text

import pytest

DOMAIN = """
version: "3.1"
intents: [inform, recall, greet]
entities: [seq]
slots:
  seq:
    type: text
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: seq
responses:
  utter_ack:
    - text: "ack {seq}"
  utter_recall:
    - text: "your number is {seq}"
  utter_greet:
    - text: "hello"
session_config:
  session_expiration_time: 0
  carry_over_slots_to_new_session: true
"""

NLU = """
version: "3.1"
nlu:
  - intent: inform
    examples: |
{examples}
  - intent: recall
    examples: |
      - which number was it?
      - what was my number
      - remind me of the number
      - which number did I send
      - what number did I give you
  - intent: greet
    examples: |
      - hello
      - hi
      - good morning
      - hey there
      - hello bot
  - regex: seq
    examples: |
      - \\b\\d{{1,3}}\\b
"""

RULES = """
version: "3.1"
rules:
  - rule: acknowledge each numbered message
    steps:
      - intent: inform
      - action: utter_ack
  - rule: say the number back
    steps:
      - intent: recall
      - action: utter_recall
  - rule: greet
    steps:
      - intent: greet
      - action: utter_greet
"""

CONFIG = """
recipe: default.v1
language: en
assistant_id: lepton-numbered-bot
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: LogisticRegressionClassifier
  - name: RegexEntityExtractor
    use_regexes: true
    use_lookup_tables: false
policies:
  - name: RulePolicy
"""


def message(number: int) -> Text:
    return f"message {number}"


def acknowledgement(number: int) -> Text:
    return f"ack {number}"


@pytest.fixture(scope="session")
def numbered_bot_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`rasa train` of this bot, once per test session (modules importing it share it)."""
    from rasa.model_training import train

    folder = tmp_path_factory.getbasetemp() / "numbered-bot"
    models = sorted((folder / "models").glob("*.tar.gz")) if folder.exists() else []
    if models:
        return models[-1]
    examples = "\n".join(f"      - {message(n).replace(str(n), f'[{n}](seq)')}" for n in range(1, 31))
    files = {
        "domain.yml": DOMAIN,
        "config.yml": CONFIG,
        "data/nlu.yml": NLU.format(examples=examples),
        "data/rules.yml": RULES,
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    result = train(
        domain=str(folder / "domain.yml"),
        config=str(folder / "config.yml"),
        training_files=[str(folder / "data")],
        output=str(folder / "models"),
    )
    assert result.code == 0, "rasa train of the numbered bot failed"
    return Path(result.model)
