"""FaqAnswerPolicy decides from parse data and tracker state; no model is needed."""

from typing import Any, Dict, List, Optional, Text

import pytest
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.policies.faq_answer_policy import FaqAnswerPolicy

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, payment_methods, out_of_scope, nlu_fallback, order_status, faq, inform]
entities: [order_number]
slots:
  order_number: {type: text, influence_conversation: false, mappings: [{type: from_entity, entity: order_number}]}
  faq_answer: {type: text, influence_conversation: false, mappings: [{type: custom}]}
  faq_choice_1: {type: text, influence_conversation: false, mappings: [{type: custom}]}
  faq_choice_2: {type: text, influence_conversation: false, mappings: [{type: custom}]}
  faq_choice_3: {type: text, influence_conversation: false, mappings: [{type: custom}]}
forms:
  order_status_form: {required_slots: [order_number]}
responses:
  utter_faq_answer: [{text: "{faq_answer}"}]
  utter_faq_suggest_2: [{text: "Which one?"}]
  utter_faq_suggest_3: [{text: "Which one?"}]
  utter_please_rephrase: [{text: "Rephrase please"}]
  utter_handoff: [{text: "A human will help"}]
  utter_out_of_scope: [{text: "I only help with the shop"}]
  utter_greet: [{text: "Hi"}]
"""
)

DAMAGED = {
    "id": "damaged_item",
    "score": 0.8,
    "question": "My item arrived damaged",
    "answer": "Sorry {order_number} arrived damaged.",
    "channels": {"telegram": "Sorry about {order_number}!"},
    "defaults": {"order_number": "your order"},
    "tags": [],
}


def candidate(answer_id: Text, score: float) -> Dict[Text, Any]:
    return {"id": answer_id, "score": score, "question": f"question about {answer_id}", "answer": f"{answer_id} answer", "channels": {}, "defaults": {}, "tags": []}


def user(
    intent: Text, confidence: float, candidates: List[Dict[Text, Any]], entities: Optional[List[Dict]] = None, channel: Optional[Text] = None
) -> UserUttered:
    intent_data = {"name": intent, "confidence": confidence}
    return UserUttered(
        "some text",
        intent=intent_data,
        entities=entities or [],
        parse_data={"intent": intent_data, "entities": entities or [], "answer_candidates": candidates},
        input_channel=channel,
    )


def tracker_for(*events: Any) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("customer", [ActionExecuted(ACTION_LISTEN_NAME), *events], slots=DOMAIN.slots)


@pytest.fixture
def policy(create_component) -> FaqAnswerPolicy:
    return create_component(FaqAnswerPolicy, {})


def predicted(policy: FaqAnswerPolicy, tracker: DialogueStateTracker):
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    if max(prediction.probabilities) == 0:
        return None, []
    return DOMAIN.action_names_or_texts[prediction.max_confidence_index], prediction.optional_events


def test_unsure_message_gets_the_template_filled_from_the_entity(policy) -> None:
    entities = [{"entity": "order_number", "value": "LP-123456", "start": 0, "end": 9}]
    action, events = predicted(policy, tracker_for(user("nlu_fallback", 0.4, [DAMAGED, candidate("other", 0.5)], entities)))
    assert action == "utter_faq_answer"
    assert events == [SlotSet("faq_answer", "Sorry LP-123456 arrived damaged.")]


def test_template_falls_back_to_slot_then_default_never_a_raw_placeholder(policy) -> None:
    _, events = predicted(policy, tracker_for(SlotSet("order_number", "LP-999999"), user("nlu_fallback", 0.4, [DAMAGED])))
    assert events == [SlotSet("faq_answer", "Sorry LP-999999 arrived damaged.")]
    _, events = predicted(policy, tracker_for(user("nlu_fallback", 0.4, [DAMAGED])))
    assert events == [SlotSet("faq_answer", "Sorry your order arrived damaged.")]
    assert "{" not in events[0].value


def test_channel_variant_is_used_on_that_channel(policy) -> None:
    _, events = predicted(policy, tracker_for(user("nlu_fallback", 0.4, [DAMAGED], channel="telegram")))
    assert events == [SlotSet("faq_answer", "Sorry about your order!")]


def test_close_candidates_become_choices(policy) -> None:
    candidates = [candidate("a", 0.56), candidate("b", 0.55), candidate("c", 0.5)]
    action, events = predicted(policy, tracker_for(user("nlu_fallback", 0.3, candidates)))
    assert action == "utter_faq_suggest_3"
    assert events == [SlotSet(f"faq_choice_{i + 1}", f"question about {x}") for i, x in enumerate("abc")]
    action, _ = predicted(policy, tracker_for(user("nlu_fallback", 0.3, candidates[:2] + [candidate("c", 0.1)])))
    assert action == "utter_faq_suggest_2"


def test_nothing_close_asks_to_rephrase_then_hands_off(policy) -> None:
    first = user("nlu_fallback", 0.3, [candidate("a", 0.2)])
    assert predicted(policy, tracker_for(first))[0] == "utter_please_rephrase"
    second = tracker_for(
        first,
        ActionExecuted("utter_please_rephrase"),
        BotUttered("Rephrase please"),
        ActionExecuted(ACTION_LISTEN_NAME),
        user("nlu_fallback", 0.3, [candidate("a", 0.25)]),
    )
    assert predicted(policy, second)[0] == "utter_handoff"


def test_confident_intent_is_left_to_the_other_policies(policy) -> None:
    assert predicted(policy, tracker_for(user("greet", 0.99, [candidate("a", 0.7)]))) == (None, [])


def test_unsure_intent_yields_to_a_strong_answer(policy) -> None:
    action, events = predicted(policy, tracker_for(user("payment_methods", 0.66, [candidate("gift_cards", 0.76), candidate("b", 0.4)])))
    assert action == "utter_faq_answer" and events == [SlotSet("faq_answer", "gift_cards answer")]


def test_with_a_margin_an_unsure_intent_keeps_the_turn_from_a_weaker_answer(create_component) -> None:
    policy = create_component(FaqAnswerPolicy, {"answer_threshold": 0.5, "answer_over_intent_margin": 0.0})
    # "where is it?" after giving an order number: order_status 0.60, a store answer 0.52.
    assert predicted(policy, tracker_for(user("order_status", 0.60, [candidate("store_locations", 0.52)]))) == (None, [])
    action, events = predicted(policy, tracker_for(user("shipping_info", 0.60, [candidate("click_and_collect", 0.71)])))
    assert action == "utter_faq_answer" and events == [SlotSet("faq_answer", "click_and_collect answer")]
    # Without the margin (the default) the clearing answer wins as before.
    default = create_component(FaqAnswerPolicy, {"answer_threshold": 0.5})
    assert predicted(default, tracker_for(user("order_status", 0.60, [candidate("store_locations", 0.52)])))[0] == (
        "utter_faq_answer"
    )


def test_a_margin_that_is_not_a_number_is_a_config_error(create_component) -> None:
    with pytest.raises(InvalidConfigException, match="answer_over_intent_margin"):
        create_component(FaqAnswerPolicy, {"answer_over_intent_margin": "high"})


def test_near_exact_question_is_answered_whatever_the_intent(policy) -> None:
    action, _ = predicted(policy, tracker_for(user("greet", 0.99, [candidate("a", 0.97), candidate("b", 0.5)])))
    assert action == "utter_faq_answer"


def test_out_of_scope_without_a_good_answer_is_left_to_the_rules(policy) -> None:
    assert predicted(policy, tracker_for(user("out_of_scope", 0.95, [candidate("a", 0.2)]))) == (None, [])


@pytest.mark.parametrize("deflection", ["utter_out_of_scope", "utter_please_rephrase"])
def test_out_of_scope_right_after_a_deflection_hands_over(policy, deflection) -> None:
    second = tracker_for(
        user("nlu_fallback", 0.3, [candidate("a", 0.2)]),
        ActionExecuted(deflection),
        BotUttered("..."),
        ActionExecuted(ACTION_LISTEN_NAME),
        user("out_of_scope", 1.0, [candidate("a", 0.2)]),
    )
    assert predicted(policy, second)[0] == "utter_handoff"


def test_out_of_scope_after_an_answered_turn_is_left_to_the_rules(policy) -> None:
    second = tracker_for(
        user("greet", 0.99, []),
        ActionExecuted("utter_greet"),
        BotUttered("Hi"),
        ActionExecuted(ACTION_LISTEN_NAME),
        user("out_of_scope", 1.0, [candidate("a", 0.2)]),
    )
    assert predicted(policy, second) == (None, [])


def in_form(*events: Any) -> DialogueStateTracker:
    return tracker_for(ActiveLoop("order_status_form"), SlotSet("requested_slot", "order_number"), *events)


def test_knowledge_base_question_inside_a_form_is_answered_then_the_form_asks_again(policy) -> None:
    question = user("faq", 0.9, [DAMAGED, candidate("other", 0.3)])
    action, events = predicted(policy, in_form(question))
    assert action == "utter_faq_answer" and events == [SlotSet("faq_answer", "Sorry your order arrived damaged.")]
    assert predicted(policy, in_form(question, ActionExecuted("utter_faq_answer")))[0] == "order_status_form"


def test_the_slot_value_inside_a_form_always_goes_to_the_form(policy) -> None:
    entities = [{"entity": "order_number", "value": "LP-123456", "start": 0, "end": 9}]
    assert predicted(policy, in_form(user("faq", 0.9, [DAMAGED], entities))) == (None, [])


def test_inside_a_form_intents_and_weak_candidates_are_left_to_the_form(policy) -> None:
    assert predicted(policy, in_form(user("payment_methods", 0.7, [candidate("gift_cards", 0.7)]))) == (None, [])
    # No candidate to answer with: the form re-asks and the rules ask to rephrase, never a handoff mid-form.
    assert predicted(policy, in_form(user("nlu_fallback", 0.3, [candidate("a", 0.2)]))) == (None, [])


def test_knowledge_base_intent_answers_and_falls_back_like_an_unsure_one(policy) -> None:
    action, _ = predicted(policy, tracker_for(user("faq", 0.97, [candidate("gift_cards", 0.7), candidate("b", 0.4)])))
    assert action == "utter_faq_answer"
    assert predicted(policy, tracker_for(user("faq", 0.97, [candidate("a", 0.2)])))[0] == "utter_please_rephrase"


def test_listens_after_its_own_answer(policy) -> None:
    tracker = tracker_for(user("nlu_fallback", 0.3, [DAMAGED]), ActionExecuted("utter_faq_answer"))
    assert predicted(policy, tracker)[0] == ACTION_LISTEN_NAME


@pytest.mark.parametrize("reply", ["utter_please_rephrase", "utter_handoff"])
def test_listens_after_a_rephrase_or_handoff_it_chose_and_only_then(policy, reply) -> None:
    """The knowledge-base intent has no rule: without this the core fallback would add
    "Sorry, I can't help" after the bot's own request to rephrase."""
    question = user("faq", 0.97, [candidate("a", 0.2)])
    chosen_here = tracker_for(question, ActionExecuted(reply, policy="FaqAnswerPolicy"))
    assert predicted(policy, chosen_here)[0] == ACTION_LISTEN_NAME
    by_a_rule = tracker_for(user("nlu_fallback", 0.3, []), ActionExecuted(reply, policy="RulePolicy"))
    assert predicted(policy, by_a_rule) == (None, [])


def test_domain_without_its_responses_is_refused_at_training(policy) -> None:
    with pytest.raises(InvalidConfigException, match="missing responses .*utter_faq_answer"):
        policy.train([], Domain.from_yaml('version: "3.1"\nintents: [greet]'))
    policy.train([], DOMAIN)


def test_inconsistent_thresholds_are_a_config_error(create_component) -> None:
    with pytest.raises(InvalidConfigException, match="suggest_threshold <= answer_threshold"):
        create_component(FaqAnswerPolicy, {"answer_threshold": 0.3, "suggest_threshold": 0.5})
