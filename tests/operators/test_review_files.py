"""What review writes: Rasa NLU examples and knowledge-base questions, valid and merged."""

import threading
from pathlib import Path
from typing import Dict, List, Text

import pytest
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from lepton_components.operators.review.knowledge_edits import add_answer, add_question
from lepton_components.operators.review.nlu_file import ReviewFileInvalid, add_example
from lepton_components.retrieval.knowledge_base import KnowledgeBaseError, load_knowledge_base
from tests.operators.review_harness import KB


def examples(path: Path) -> Dict[Text, List[Text]]:
    """The file as Rasa's own reader loads it for training: intent -> example texts."""
    found: Dict[Text, List[Text]] = {}
    for message in RasaYAMLReader().read(path).intent_examples:
        found.setdefault(message.get("intent"), []).append(message.get("text"))
    return found


def test_the_first_annotation_creates_a_rasa_nlu_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "reviewed" / "nlu.yml"
    assert add_example(path, "order_status", "where is my parcel?") is True
    assert examples(path) == {"order_status": ["where is my parcel?"]}
    assert path.read_text().startswith('version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n')


def test_annotations_merge_into_the_intents_block_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    add_example(path, "order_status", "where is my parcel?")
    add_example(path, "greet", "good day")
    assert add_example(path, "order_status", "has my order shipped")
    assert add_example(path, "order_status", "  Where is my   PARCEL? ") is False
    assert examples(path) == {"order_status": ["where is my parcel?", "has my order shipped"], "greet": ["good day"]}


def test_a_text_annotated_again_moves_to_the_new_intent(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    add_example(path, "greet", "hiya")
    add_example(path, "greet", "cancel it")
    add_example(path, "cancel_order", "cancel it")
    assert examples(path) == {"greet": ["hiya"], "cancel_order": ["cancel it"]}


def test_comments_people_wrote_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text('version: "3.1"\n# Reviewed by the support team\nnlu:\n- intent: greet  # hellos\n  examples: |\n    - hiya\n')
    add_example(path, "greet", "howdy partner")
    text = path.read_text()
    assert "# Reviewed by the support team" in text and "# hellos" in text
    assert examples(path) == {"greet": ["hiya", "howdy partner"]}


def test_customer_text_cannot_plant_entities_or_break_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    add_example(path, "order_status", "my order [LP-1](order_number) is late\n- intent: greet")
    (message,) = RasaYAMLReader().read(path).intent_examples
    assert message.get("intent") == "order_status"
    assert not message.get("entities")
    assert message.get("text") == "my order [LP-1] (order_number) is late - intent: greet"


def test_a_file_that_is_not_nlu_data_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ReviewFileInvalid, match="not Rasa NLU data"):
        add_example(path, "greet", "hello")
    assert path.read_text() == "- just\n- a list\n"


def test_concurrent_writers_lose_no_annotation(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    texts = [f"question number {index}" for index in range(24)]
    threads = [threading.Thread(target=add_example, args=(path, "faq", text)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(examples(path)["faq"]) == sorted(texts)


@pytest.fixture
def kb_path(tmp_path: Path) -> Path:
    path = tmp_path / "faq.yml"
    path.write_text(KB)
    return path


def test_a_question_variant_is_added_in_place_keeping_the_files_style(kb_path: Path) -> None:
    added, previous = add_question(kb_path, "gift_cards", "can I buy a voucher?")
    assert added and previous == KB
    text = kb_path.read_text()
    assert "  # Payments\n" in text and '"Yes, digital gift cards from $10 to $500."' in text
    assert "      - Do you sell gift cards?\n      - can I buy a voucher?\n" in text
    answers = {answer.id: answer.questions for answer in load_knowledge_base(kb_path)}
    assert answers["gift_cards"] == ("Do you sell gift cards?", "can I buy a voucher?")
    assert add_question(kb_path, "gift_cards", "Can I buy a   VOUCHER?") == (False, text)


def test_an_answer_that_is_not_in_the_file_is_refused(kb_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="no answer with the id `careers`"):
        add_question(kb_path, "careers", "are you hiring?")
    assert kb_path.read_text() == KB


def test_a_new_answer_is_checked_by_the_knowledge_base_loader(kb_path: Path) -> None:
    add_answer(kb_path, "bitcoin", "We do not take bitcoin.", ["do you take bitcoin", "Do you take  bitcoin", "crypto?"])
    answers = {answer.id: answer for answer in load_knowledge_base(kb_path)}
    assert answers["bitcoin"].questions == ("do you take bitcoin", "crypto?")
    before = kb_path.read_text()
    for answer_id, text, questions, problem in [
        ("bitcoin", "Again.", ["a question"], "used twice"),
        ("Bad Id!", "Text.", ["a question"], "`id` must be lowercase"),
        ("fine_id", "Your order {order_number} is late.", ["where is it"], "no value for it"),
        ("fine_id", "Text.", [], "non-empty list"),
    ]:
        with pytest.raises(KnowledgeBaseError, match=problem):
            add_answer(kb_path, answer_id, text, questions)
        assert kb_path.read_text() == before
