"""FaqRetriever with the real packaged MiniLM (no training, a few seconds)."""

from pathlib import Path
from typing import List

import pytest
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from lepton_components.retrieval.faq_retriever import ANSWER_CANDIDATES, FaqRetriever, KnowledgeBaseInvalid

KB = """\
version: "1"
answers:
  - id: gift_cards
    questions: [Do you sell gift cards?, Can I buy a gift voucher?]
    answer: "Yes, digital gift cards from $10 to $500."
  - id: store_pickup
    questions: [Can I collect my order in a store?, Do you offer click and collect?]
    answer: "Yes, choose click and collect at checkout."
  - id: damaged_item
    questions: [My item arrived broken, The package came damaged]
    answer: "Sorry {order_number} arrived damaged."
    defaults: {order_number: your order}
  - id: careers
    questions: [Are you hiring?, How can I apply for a job at your company?]
    answer: "See our careers page."
"""


@pytest.fixture
def kb_path(tmp_path: Path) -> Path:
    path = tmp_path / "faq.yml"
    path.write_text(KB, encoding="utf-8")
    return path


def parse(component: FaqRetriever, texts: List[str]) -> List[Message]:
    messages = [Message(data={"text": text}) for text in texts]
    component.process(messages)
    return messages


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_paraphrases_retrieve_the_right_answer(create_component, kb_path, index_type) -> None:
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path), "index_type": index_type})
    retriever.train(TrainingData())
    paraphrases = {
        "could I purchase a voucher as a present": "gift_cards",
        "is it possible to pick up my purchase at one of your shops": "store_pickup",
        "the lamp I got was smashed when it arrived": "damaged_item",
        "do you have any job openings": "careers",
    }
    for message, expected in zip(parse(retriever, list(paraphrases)), paraphrases.values()):
        candidates = message.get(ANSWER_CANDIDATES)
        assert candidates[0]["id"] == expected, candidates
        scores = [c["score"] for c in candidates]
        assert scores == sorted(scores, reverse=True) and len({c["id"] for c in candidates}) == len(candidates) == 3


def test_candidate_carries_template_and_defaults(create_component, kb_path) -> None:
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path), "top_k": 1})
    retriever.train(TrainingData())
    (message,) = parse(retriever, ["my parcel came damaged"])
    (best,) = message.get(ANSWER_CANDIDATES)
    assert best["id"] == "damaged_item" and best["question"] == "The package came damaged"
    assert best["answer"] == "Sorry {order_number} arrived damaged."
    assert best["defaults"] == {"order_number": "your order"}
    assert 0.5 < best["score"] <= 1.0001


def test_persist_and_load_give_identical_candidates(create_component, load_component, kb_path) -> None:
    config = {"knowledge_base": str(kb_path), "index_type": "hnsw"}
    retriever = create_component(FaqRetriever, config)
    retriever.train(TrainingData())
    loaded = load_component(FaqRetriever, config)
    texts = ["are there vacancies", "gift voucher please", "hello"]
    assert [m.get(ANSWER_CANDIDATES) for m in parse(loaded, texts)] == [
        m.get(ANSWER_CANDIDATES) for m in parse(retriever, texts)
    ]


def test_untrained_and_empty_messages_are_left_alone(create_component, kb_path) -> None:
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path)})
    assert parse(retriever, ["gift cards?"])[0].get(ANSWER_CANDIDATES) is None
    retriever.train(TrainingData())
    assert parse(retriever, [""])[0].get(ANSWER_CANDIDATES) is None


def test_fingerprint_changes_with_the_knowledge_base(kb_path) -> None:
    before = FaqRetriever.fingerprint_addon({"knowledge_base": str(kb_path)})
    kb_path.write_text(KB.replace("$500", "$400"), encoding="utf-8")
    assert FaqRetriever.fingerprint_addon({"knowledge_base": str(kb_path)}) != before


def test_malformed_knowledge_base_fails_training_with_location(create_component, tmp_path) -> None:
    path = tmp_path / "faq.yml"
    path.write_text("answers:\n  - id: a\n    questions: [q]\n", encoding="utf-8")
    retriever = create_component(FaqRetriever, {"knowledge_base": str(path)})
    with pytest.raises(KnowledgeBaseInvalid, match=r"faq.yml:2: .*missing the field `answer`"):
        retriever.train(TrainingData())


@pytest.mark.parametrize(
    "override,expected",
    [({"index_type": "annoy"}, "`index_type` must be one of"), ({"top_k": 0}, "`top_k` must be an integer >= 1"), ({"topk": 3}, "Did you mean `top_k`?")],
)
def test_bad_config_is_refused(create_component, kb_path, override, expected) -> None:
    with pytest.raises(InvalidConfigException, match=expected.replace("`", ".").replace("?", r"\?")):
        create_component(FaqRetriever, {"knowledge_base": str(kb_path), **override})


NEW_ANSWER = """
  - id: pet_policy
    questions: [Can I bring my dog into your stores?]
    answer: "Well-behaved dogs on a lead are welcome in all our stores."
"""


def test_reload_swaps_in_edited_answers_with_a_new_version(create_component, kb_path) -> None:
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path)})
    retriever.train(TrainingData())
    assert retriever.state.version == 1
    kb_path.write_text(KB + NEW_ANSWER, encoding="utf-8")
    summary = retriever.reload()
    assert summary["version"] == 2 and summary["answers"] == 5
    (message,) = parse(retriever, ["are pets allowed in the shop"])
    assert message.get(ANSWER_CANDIDATES)[0]["id"] == "pet_policy"


def test_failed_reload_keeps_serving_the_old_answers(create_component, kb_path) -> None:
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path)})
    retriever.train(TrainingData())
    kb_path.write_text(KB + "  - id: broken\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseInvalid, match="missing the field"):
        retriever.reload()
    assert retriever.state.version == 1
    (message,) = parse(retriever, ["gift voucher please"])
    assert message.get(ANSWER_CANDIDATES)[0]["id"] == "gift_cards"


def test_loading_rebuilds_when_the_file_changed_since_training(create_component, load_component, kb_path) -> None:
    config = {"knowledge_base": str(kb_path)}
    create_component(FaqRetriever, config).train(TrainingData())
    kb_path.write_text(KB + NEW_ANSWER, encoding="utf-8")
    loaded = load_component(FaqRetriever, config)
    assert loaded.state.version == 2 and len(loaded.state.answers) == 5
    kept = load_component(FaqRetriever, {**config, "rebuild_if_changed": False})
    assert len(kept.state.answers) == 4


def test_training_warns_about_a_question_that_is_also_an_intent_example(create_component, kb_path) -> None:
    retriever = create_component(FaqRetriever, {"knowledge_base": str(kb_path)})
    data = TrainingData(
        [
            Message(data={"text": "are you hiring", "intent": "jobs"}),
            Message(data={"text": "where is my order", "intent": "order_status"}),
        ]
    )
    with pytest.warns(UserWarning) as warned:
        retriever.train(data)
    messages = [str(warning.message) for warning in warned if "compete" in str(warning.message)]
    assert len(messages) == 1, [str(w.message) for w in warned]
    assert "'Are you hiring?' is an example of intent 'jobs' and a question of answer 'careers'" in messages[0]
    assert "where is my order" not in messages[0]
