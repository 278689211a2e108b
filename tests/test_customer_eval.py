"""`make eval` scores what the customer sees; its held-out turns are never training data.

The scoring runs on hand-made trackers (no model, no training): the events Rasa records for
a turn (the customer's message, the actions, the bot's messages with their `utter_action`)
are what `benchmarks.customer_eval` reads from the real bot.
"""

from collections import Counter
from pathlib import Path
from typing import Any, List, Optional, Sequence, Text

import pytest
import yaml
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.loading import load_data

from benchmarks.customer_eval import (
    DEFERRED,
    IN_FORM,
    INTENTS,
    KNOWLEDGE_BASE,
    MEMORY,
    OFF_TOPIC,
    RIGHT,
    WRONG,
    AnswerMatcher,
    Case,
    Expectation,
    HeldOutError,
    Turn,
    all_texts,
    diagnose_knowledge_base,
    report_json,
    load_cases,
    observe,
    score_case,
    score_turn,
    summarise,
    training_overlap,
    unknown_references,
)
from lepton_components.retrieval.knowledge_base import load_knowledge_base

REPO = Path(__file__).resolve().parents[1]
HELD_OUT = REPO / "bot" / "faq_paraphrases.yml"
ANSWERS = load_knowledge_base(REPO / "data" / "faq.yml")
MATCHER = AnswerMatcher(ANSWERS)
FORM = "order_status_form"
ASK = "What's your order number? It starts with LP-, like LP-123456."
DOMAIN = Domain.from_yaml(
    """
version: "3.1"
slots:
  order_number: {type: text, influence_conversation: false, mappings: [{type: from_entity, entity: order_number}]}
  email: {type: text, influence_conversation: false, mappings: [{type: from_entity, entity: email}]}
forms:
  order_status_form: {required_slots: [order_number]}
"""
)


def approved(answer_id: Text, **values: Text) -> Text:
    (answer,) = [a for a in ANSWERS if a.id == answer_id]
    return answer.render(values)


def customer(text: Text, intent: Text = "faq", confidence: float = 0.95, candidates: Sequence = ()) -> UserUttered:
    return UserUttered(
        text,
        intent={"name": intent, "confidence": confidence},
        parse_data={
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": intent, "confidence": confidence}, {"name": "greet", "confidence": 0.01}],
            "answer_candidates": [{"id": i, "score": s} for i, s in candidates],
            "entities": [],
        },
    )


def bot(response: Text, text: Text, action: Optional[Text] = None, buttons: Sequence[Text] = ()) -> List[Any]:
    return [
        ActionExecuted(action or response, policy="policy_1_RulePolicy", confidence=1.0),
        BotUttered(text, data={"buttons": [{"title": b, "payload": b} for b in buttons]}, metadata={"utter_action": response}),
    ]


def asks_for_order_number() -> List[Any]:
    return [
        ActionExecuted(FORM, policy="policy_1_RulePolicy"),
        BotUttered(ASK, metadata={"utter_action": "utter_ask_order_number"}),
        ActiveLoop(FORM),
        SlotSet("requested_slot", "order_number"),
    ]


def tracker(events: List[Any]) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("eval-test", [ActionExecuted("action_listen"), *events], slots=DOMAIN.slots)


def turn_score(expect: Expectation, events: List[Any], before: Sequence[Any] = ()) -> Any:
    reply = observe(tracker([*before, *events]), 1 + len(before), MATCHER)
    return score_turn(expect, reply)


# --- the held-out file --------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases() -> List[Case]:
    return load_cases(HELD_OUT)


def test_held_out_file_has_every_category_in_the_promised_sizes(cases: List[Case]) -> None:
    counts = Counter(case.category for case in cases)
    assert counts[KNOWLEDGE_BASE] >= 60 and counts[INTENTS] >= 40 and counts[OFF_TOPIC] >= 30, counts
    assert counts[IN_FORM] >= 20 and counts[MEMORY] >= 10, counts
    assert len(all_texts(cases)) >= 150
    per_answer = Counter(case.turns[0].expect.answer_id for case in cases if case.category == KNOWLEDGE_BASE)
    assert set(per_answer) == {a.id for a in ANSWERS} and min(per_answer.values()) >= 3, per_answer
    intent_responses = {case.turns[0].expect.response for case in cases if case.category == INTENTS}
    assert _responses_of_intent_rules() <= intent_responses, _responses_of_intent_rules() - intent_responses
    assert {"utter_ask_order_number", "utter_order_status"} <= intent_responses  # order_status, without and with a number
    in_form_questions = [t for case in cases if case.category == IN_FORM for t in case.turns if t.expect.form]
    assert len(in_form_questions) >= 20 and all(t.expect.form == "asks_again" for t in in_form_questions)
    assert {t.expect.answer_id is not None for t in in_form_questions} == {True, False}  # both kinds of question


def test_held_out_expectations_exist_in_the_knowledge_base_and_the_domain(cases: List[Case]) -> None:
    domain = Domain.load(str(REPO / "bot" / "domain.yml"))
    assert unknown_references(cases, [a.id for a in ANSWERS], domain.responses) == []
    assert unknown_references(cases, [], domain.responses)  # the check can fail


def _responses_of_intent_rules() -> set:
    """The responses data/rules.yml gives straight to an intent (the deferrals aside)."""
    rules = yaml.safe_load((REPO / "data" / "rules.yml").read_text(encoding="utf-8"))["rules"]
    pairs = [rule["steps"] for rule in rules if len(rule["steps"]) == 2 and "condition" not in rule]
    found = {steps[1]["action"] for steps in pairs if "intent" in steps[0] and steps[1].get("action", "").startswith("utter_")}
    assert len(found) >= 18, found
    return found - {"utter_please_rephrase", "utter_out_of_scope"}


def _training_texts() -> List[Text]:
    examples = [e.get("text") for e in load_data(str(REPO / "data" / "nlu.yml")).intent_examples]
    return examples + [question for answer in ANSWERS for question in answer.questions]


def test_no_held_out_text_is_an_intent_example_or_a_knowledge_base_question(cases: List[Case]) -> None:
    # The paraphrases the knowledge base cannot answer are only read by `make faq-eval`.
    unanswerable = [e["text"] for e in yaml.safe_load(HELD_OUT.read_text())["paraphrases"] if e["answer_id"] is None]
    texts = all_texts(cases) + unanswerable
    assert len(unanswerable) >= 10
    assert len({t.casefold() for t in texts}) == len(texts), "a held-out text is listed twice"
    assert training_overlap(texts, _training_texts()) == []


def test_overlap_check_catches_a_held_out_text_copied_into_training(cases: List[Case]) -> None:
    texts = all_texts(cases)
    copied = [t.upper() + " ?" for t in (texts[0], texts[-1])]
    assert training_overlap(texts, [*_training_texts(), *copied]) == [texts[0], texts[-1]]


def test_held_out_file_problems_name_the_entry_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "held_out.yml"
    base = "paraphrases: []\nintents: []\noff_topic: []\nin_form: []\nmemory: []\n"
    path.write_text(base.replace("intents: []", "intents: [{text: hi, respnse: utter_greet}]"))
    with pytest.raises(HeldOutError, match=r"intents\[0\].*unknown keys \['respnse'\]"):
        load_cases(path)
    path.write_text(base.replace("memory: []", "memory: [{turns: [{text: hi, answer_id: a, response: utter_greet}]}]"))
    with pytest.raises(HeldOutError, match=r"memory\[0\]\.turns\[0\].*either `answer_id` or `response`"):
        load_cases(path)
    path.write_text(base.replace("in_form: []\n", ""))
    with pytest.raises(HeldOutError, match="in_form"):
        load_cases(path)


# --- reading and scoring replies -------------------------------------------------------------


def test_the_approved_answer_is_recognised_from_the_text_with_its_placeholder_filled() -> None:
    events = [customer("the vase came smashed, LP-555123"), *bot("utter_faq_answer", approved("damaged_item", order_number="LP-555123"))]
    reply = observe(tracker(events), 1, MATCHER)
    assert [u.answer_id for u in reply.utterances] == ["damaged_item"]
    assert score_turn(Expectation(answer_id="damaged_item", mentions="LP-555123"), reply).outcome == RIGHT
    wrong = score_turn(Expectation(answer_id="wrong_item"), reply)
    assert wrong.outcome == WRONG and "damaged_item" in wrong.reason


def test_a_knowledge_base_question_captured_by_an_intent_is_wrong() -> None:
    text = "Sorry your payment didn't go through."
    score = turn_score(
        Expectation(answer_id="promo_code_not_working"),
        [customer("SAVE20 does nothing", "payment_failed", 0.93, [("promo_code_not_working", 0.81)]), *bot("utter_payment_failed", text)],
    )
    assert score.outcome == WRONG and "utter_payment_failed" in score.reason


def test_rephrase_choices_and_handoff_are_safe_deferrals() -> None:
    choices = bot(
        "utter_faq_suggest_2", "I'm not sure which of these you mean.",
        buttons=["My item arrived damaged", "I received the wrong item"],
    )
    reply = observe(tracker([customer("broken and wrong"), *choices]), 1, MATCHER)
    assert reply.utterances[0].choice_ids == ("damaged_item", "wrong_item")
    assert score_turn(Expectation(answer_id="damaged_item"), reply).outcome == DEFERRED
    for response in ("utter_please_rephrase", "utter_handoff", "utter_default", "utter_out_of_scope"):
        assert turn_score(Expectation(response="utter_shipping_info"), [customer("x"), *bot(response, "...")]).outcome == DEFERRED


def test_intent_response_right_and_silence_wrong() -> None:
    assert turn_score(Expectation(response="utter_iamabot"), [customer("human?"), *bot("utter_iamabot", "I'm a bot")]).outcome == RIGHT
    assert turn_score(Expectation(response="utter_iamabot"), [customer("human?")]).outcome == WRONG


@pytest.mark.parametrize(
    "response,outcome",
    [("utter_out_of_scope", RIGHT), ("utter_please_rephrase", DEFERRED), ("utter_faq_suggest_3", DEFERRED),
     ("utter_you_are_welcome", WRONG), ("utter_faq_answer", WRONG), ("utter_ask_order_number", WRONG)],
)
def test_off_topic_must_not_get_a_topical_answer(response: Text, outcome: Text) -> None:
    text = approved("customs_duties") if response == "utter_faq_answer" else "some reply"
    assert turn_score(Expectation(off_topic=True), [customer("asdfgh"), *bot(response, text)]).outcome == outcome


def test_in_form_question_answered_then_the_form_asks_again() -> None:
    before = [customer("where's my parcel", "order_status"), *asks_for_order_number()]
    expect = Expectation(answer_id="careers", form="asks_again")
    question = customer("are you hiring", "greet", 0.6, [("careers", 0.8)])
    answer = bot("utter_faq_answer", approved("careers"))
    resumed = turn_score(expect, [question, *answer, *asks_for_order_number()], before)
    assert resumed.outcome == RIGHT
    dropped = turn_score(expect, [question, *answer, ActiveLoop(None), SlotSet("requested_slot", None)], before)
    assert dropped.outcome == WRONG and "form did not ask again" in dropped.reason and dropped.main_right
    ignored = turn_score(expect, [question, *asks_for_order_number()], before)
    assert ignored.outcome == WRONG and not ignored.main_right


def test_never_mind_must_close_the_form_and_memory_must_keep_slots() -> None:
    before = [customer("track my order", "order_status"), *asks_for_order_number()]
    closed = [customer("never mind then", "deny"), ActiveLoop(None), SlotSet("requested_slot", None), *bot("utter_how_can_i_help", "Sure!")]
    assert turn_score(Expectation(form="closed"), closed, before).outcome == RIGHT
    reasked = [customer("never mind then", "deny"), *asks_for_order_number()]
    assert turn_score(Expectation(form="closed"), reasked, before).outcome == WRONG
    given = [customer("order LP-111222, me@example.com", "inform"), SlotSet("order_number", "LP-111222"), *bot("utter_default", "Sorry")]
    assert turn_score(Expectation(slots={"order_number": "LP-111222"}), given).outcome == RIGHT
    assert turn_score(Expectation(slots={"email": "me@example.com"}), given).outcome == WRONG


def test_a_conversation_is_its_worst_turn_and_the_summary_counts_targets() -> None:
    case = Case(IN_FORM, 0, (Turn("where is it", Expectation(response="utter_ask_order_number")),
                             Turn("do you price match", Expectation(answer_id="price_match", form="asks_again"))))
    first = observe(tracker([customer("where is it", "order_status"), *asks_for_order_number()]), 1, MATCHER)
    rephrase = observe(tracker([customer("q"), *bot("utter_please_rephrase", "Rephrase?"), *asks_for_order_number()]), 1, MATCHER)
    deferred = score_case(case, [first, rephrase])
    assert deferred["outcome"] == DEFERRED and deferred["reason"].startswith("turn 2:")
    answered = [customer("q"), *bot("utter_faq_answer", approved("price_match")), *asks_for_order_number()]
    right = score_case(case, [first, observe(tracker(answered), 1, MATCHER)])
    assert right["outcome"] == RIGHT
    summary = summarise([right] * 9 + [deferred])
    assert summary[IN_FORM]["rates"] == {RIGHT: 0.9, DEFERRED: 0.1, WRONG: 0.0} and summary[IN_FORM]["target_met"]
    assert summary[IN_FORM]["questions_answered"] == 9
    assert not summarise([right] * 8 + [deferred] * 2)[IN_FORM]["target_met"]


def test_knowledge_base_diagnosis_separates_intent_captures_from_retrieval_misses() -> None:
    def result(events: List[Any]) -> Any:
        case = Case(KNOWLEDGE_BASE, 0, (Turn("q", Expectation(answer_id="careers")),))
        return score_case(case, [observe(tracker(events), 1, MATCHER)])

    captured = result(
        [customer("q", "bot_challenge", 0.97, [("careers", 0.84), ("store_locations", 0.4)]), *bot("utter_iamabot", "Bot")]
    )
    unsure = result([customer("q", "nlu_fallback", 0.4, [("store_locations", 0.5), ("careers", 0.45)]), *bot("utter_please_rephrase", "?")])
    offered = result([customer("q", "nlu_fallback", 0.4, [("careers", 0.5), ("store_locations", 0.48)]),
                      *bot("utter_faq_suggest_2", "Pick one", buttons=["Are you hiring?", "Where are your stores?"])])
    diagnosis = diagnose_knowledge_base([captured, unsure, offered])
    assert diagnosis["not_right"] == 3 and diagnosis["captured_by_an_intent_response"] == 1
    assert diagnosis["deferred_with_right_answer_among_choices"] == 1
    assert diagnosis["captured_with_right_answer_ranked_first"] == 1 and diagnosis["right_answer_ranked_first"] == 2
    assert diagnosis["captured_median_intent_confidence"] == 0.97 and diagnosis["captured_median_right_answer_score"] == 0.84


def test_report_json_is_valid_with_one_line_per_case() -> None:
    import json

    report = {"summary": {"intents": {"right": 1}}, "cases": [{"index": 0, "text": "a\nb"}, {"index": 1}]}
    text = report_json(report)
    assert json.loads(text) == report
    assert sum(line.strip().startswith('{"index"') for line in text.splitlines()) == 2
