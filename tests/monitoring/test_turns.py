"""Turn outcomes read off Rasa events: intents, fallbacks, FAQ outcome, handoff."""

from typing import List, Optional, Text, Tuple

from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered

from lepton_components.monitoring.turns import TurnSummary, TurnVocabulary, summarise_turn

VOCABULARY = TurnVocabulary(
    intents=frozenset({"greet", "human_handoff", "nlu_fallback", "out_of_scope"}),
    faq_policy="FaqAnswerPolicy",
    faq_answer_actions=frozenset({"utter_faq_answer"}),
    faq_suggest_actions=frozenset({"utter_faq_suggest_2", "utter_faq_suggest_3"}),
    faq_miss_actions=frozenset({"utter_please_rephrase", "utter_handoff"}),
)


def turn(intent: Optional[Text], *actions: Tuple[Text, Text]) -> List[Event]:
    events: List[Event] = [UserUttered("text", {"name": intent, "confidence": 0.5} if intent else None)]
    for action, policy in actions:
        events += [ActionExecuted(action, policy=policy), BotUttered("reply")]
    return events + [ActionExecuted("action_listen", policy=actions[0][1] if actions else None)]


def test_domain_intent_is_counted_by_name_and_anything_else_as_other() -> None:
    assert summarise_turn(turn("greet", ("utter_greet", "policy_2_RulePolicy")), VOCABULARY) == TurnSummary("greet")
    # A forced `/made_up_intent` must not create a new series.
    assert summarise_turn(turn("made_up_intent"), VOCABULARY).intent == "other"
    assert summarise_turn(turn(None), VOCABULARY).intent == "none"


def test_faq_answer_suggestion_and_miss() -> None:
    answered = turn("nlu_fallback", ("utter_faq_answer", "policy_0_FaqAnswerPolicy"))
    answered.insert(1, SlotSet("faq_answer", "We ship in 2 days."))
    assert summarise_turn(answered, VOCABULARY) == TurnSummary("nlu_fallback", ["nlu_fallback"], "answered")
    suggested = turn("nlu_fallback", ("utter_faq_suggest_3", "policy_0_FaqAnswerPolicy"))
    assert summarise_turn(suggested, VOCABULARY).faq_outcome == "suggested"
    missed = turn("nlu_fallback", ("utter_please_rephrase", "policy_0_FaqAnswerPolicy"))
    assert summarise_turn(missed, VOCABULARY).faq_outcome == "missed"


def test_rephrase_by_another_policy_is_no_retrieval_miss() -> None:
    by_rules = turn("nlu_fallback", ("utter_please_rephrase", "policy_2_RulePolicy"))
    assert summarise_turn(by_rules, VOCABULARY) == TurnSummary("nlu_fallback", ["nlu_fallback"], None)


def test_handoffs_requested_by_the_customer_or_given_by_the_bot() -> None:
    asked = turn("human_handoff", ("utter_handoff", "policy_2_RulePolicy"))
    assert summarise_turn(asked, VOCABULARY) == TurnSummary("human_handoff", handoff="intent")
    # After a failed rephrase FaqAnswerPolicy hands off: a miss and a handoff by the bot.
    gave_up = turn("nlu_fallback", ("utter_handoff", "policy_0_FaqAnswerPolicy"))
    assert summarise_turn(gave_up, VOCABULARY) == TurnSummary("nlu_fallback", ["nlu_fallback"], "missed", "bot")


def test_core_fallback_is_counted() -> None:
    core = turn("out_of_scope", ("action_default_fallback", "policy_2_RulePolicy"))
    assert summarise_turn(core, VOCABULARY).fallbacks == ["action_default_fallback"]


def test_events_without_a_user_message_are_no_turn() -> None:
    assert summarise_turn([ActionExecuted("action_session_start")], VOCABULARY) is None
