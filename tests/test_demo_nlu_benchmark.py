"""The demo NLU benchmark holds out a fifth of every intent, never trains on it, and names
each entity it missed or made up."""

from pathlib import Path
from typing import Any, Dict, List

from rasa.shared.nlu.training_data.message import Message

from benchmarks import demo_nlu
from benchmarks.pipelines import shipped_joint_entry

NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
{greet}
- intent: order_status
  examples: |
{orders}
"""


def write_nlu(path: Path) -> Path:
    greet = "\n".join(f"    - hello number {n}" for n in range(10))
    orders = "\n".join(f"    - where is order [LP-{n:06d}](order_number)" for n in range(3))
    path.write_text(NLU.format(greet=greet, orders=orders), encoding="utf-8")
    return path


def test_a_fifth_of_every_intent_is_held_out_and_never_trained(tmp_path: Path) -> None:
    path = write_nlu(tmp_path / "nlu.yml")
    train, held_out = demo_nlu.held_out_split(path)
    held_texts = [example.get("text") for example in held_out]
    assert sorted(example.get("intent") for example in held_out) == ["greet", "greet", "order_status"]
    assert not set(held_texts) & {example.get("text") for example in train}
    assert len(train) + len(held_out) == 13
    # Seeded: the same examples are held out every time.
    assert held_texts == [example.get("text") for example in demo_nlu.held_out_split(path)[1]]


def parsed_message(text: str, intent: str, entities: List[Dict[str, Any]]) -> Message:
    """A message as the NLU leaves it: intent as a name and confidence."""
    return Message(data={"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities})


def entity(start: int, end: int, name: str = "product") -> Dict[str, Any]:
    return {"entity": name, "start": start, "end": end}


def test_scores_exact_spans_and_names_each_miss_and_spurious_entity() -> None:
    gold = [
        Message(data={"text": "is the gaming laptop in stock", "intent": "availability",
                      "entities": [entity(7, 20)]}),
        Message(data={"text": "return the desk chair", "intent": "return_item", "entities": [entity(11, 21)]}),
        Message(data={"text": "hello", "intent": "greet"}),
    ]
    parsed = [
        parsed_message("is the gaming laptop in stock", "availability", [entity(14, 20)]),  # boundary wrong
        parsed_message("return the desk chair", "return_item", [entity(11, 21)]),
        parsed_message("hello", "goodbye", []),
    ]
    result = demo_nlu.score(gold, parsed)
    assert result["intent_accuracy"] == round(2 / 3, 4)
    assert result["intent_misses"] == ["'hello': greet -> goodbye"]
    assert result["intent_misses_none_of_these"] == 0
    assert result["entities"] == 2
    assert (result["precision"], result["recall"], result["f1"]) == (0.5, 0.5, 0.5)
    assert result["missed"] == ["product 'gaming laptop' in 'is the gaming laptop in stock'"]
    assert result["spurious"] == ["product 'laptop' in 'is the gaming laptop in stock'"]


def test_a_message_turned_away_as_none_of_these_is_counted_and_named_as_such() -> None:
    gold = [
        Message(data={"text": "representative please", "intent": "human_handoff"}),
        Message(data={"text": "what is the meaning of life", "intent": "out_of_scope"}),
    ]
    parsed = [parsed_message(example.get("text"), "out_of_scope", []) for example in gold]
    for message in parsed:
        message.set("open_set_rejected_ranking", [{"name": "human_handoff", "confidence": 0.9}])
        message.set("open_set_score", 0.46)
    result = demo_nlu.score(gold, parsed)
    # Turning away an out-of-scope question is right; only the other one is a miss.
    assert result["intent_accuracy"] == 0.5 and result["intent_misses_none_of_these"] == 1
    assert result["intent_misses"] == [
        "'representative please': human_handoff -> out_of_scope (none of these, open-set score 0.46)"
    ]


def test_trains_the_entry_config_yml_ships_with_its_knowledge_base() -> None:
    entry = shipped_joint_entry(with_demo_data=True)
    assert Path(entry["knowledge_base"]).is_absolute() and Path(entry["knowledge_base"]).is_file()
    assert {key: value for key, value in entry.items() if key != "knowledge_base"} == shipped_joint_entry()
