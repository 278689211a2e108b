"""What one user message led to, read from the events the message processor produced.

Events are the one record of a turn that every Rasa deployment has, whatever policy or
action decided it: the `UserUttered` carries the intent, each `ActionExecuted` the action
and the policy that predicted it. Reading them after the turn (see
`processor_hooks`) counts what the customer actually got, not what some component
proposed and another overrode. Pure code over Rasa's event classes: no model needed.
"""

from dataclasses import dataclass, field
from typing import FrozenSet, Iterable, List, Optional, Text

from rasa.shared.core.constants import ACTION_DEFAULT_FALLBACK_NAME
from rasa.shared.core.events import ActionExecuted, Event, UserUttered
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME

OTHER_INTENT = "other"
NO_INTENT = "none"
ANSWERED, SUGGESTED, MISSED = "answered", "suggested", "missed"
BY_INTENT, BY_BOT = "intent", "bot"


@dataclass(frozen=True)
class TurnVocabulary:
    """The names that give events a meaning: the domain's intents and the FAQ/handoff actions."""

    intents: FrozenSet[Text]
    handoff_intents: FrozenSet[Text] = frozenset({"human_handoff"})
    handoff_actions: FrozenSet[Text] = frozenset({"utter_handoff"})
    # From FaqAnswerPolicy's config; `faq_policy` is its class name, which ends the
    # `policy` field of the actions it predicted (e.g. `policy_0_FaqAnswerPolicy`).
    faq_policy: Optional[Text] = None
    faq_answer_actions: FrozenSet[Text] = frozenset()
    faq_suggest_actions: FrozenSet[Text] = frozenset()
    faq_miss_actions: FrozenSet[Text] = frozenset()


@dataclass(frozen=True)
class TurnSummary:
    """The countable outcome of one turn; every value comes from a fixed, bounded set."""

    intent: Text
    fallbacks: List[Text] = field(default_factory=list)
    faq_outcome: Optional[Text] = None
    handoff: Optional[Text] = None


def _predicted_by(event: ActionExecuted, policy: Optional[Text]) -> bool:
    return policy is not None and event.policy is not None and (
        event.policy == policy or event.policy.endswith(f"_{policy}")
    )


def _faq_outcome(actions: List[ActionExecuted], vocabulary: TurnVocabulary) -> Optional[Text]:
    for action in actions:
        if action.action_name in vocabulary.faq_answer_actions:
            return ANSWERED
        if action.action_name in vocabulary.faq_suggest_actions:
            return SUGGESTED
        if action.action_name in vocabulary.faq_miss_actions and _predicted_by(action, vocabulary.faq_policy):
            return MISSED
    return None


def summarise_turn(events: Iterable[Event], vocabulary: TurnVocabulary) -> Optional[TurnSummary]:
    """Summarise the events from a turn's `UserUttered` on; None when there is none."""
    events = list(events)
    user = next((event for event in events if isinstance(event, UserUttered)), None)
    if user is None:
        return None
    intent_name = user.intent_name
    if intent_name is None:
        intent = NO_INTENT
    else:
        intent = intent_name if intent_name in vocabulary.intents else OTHER_INTENT
    actions = [event for event in events if isinstance(event, ActionExecuted)]
    fallbacks = []
    if intent_name == DEFAULT_NLU_FALLBACK_INTENT_NAME:
        fallbacks.append(DEFAULT_NLU_FALLBACK_INTENT_NAME)
    if any(action.action_name == ACTION_DEFAULT_FALLBACK_NAME for action in actions):
        fallbacks.append(ACTION_DEFAULT_FALLBACK_NAME)
    handoff = None
    if any(action.action_name in vocabulary.handoff_actions for action in actions):
        handoff = BY_INTENT if intent_name in vocabulary.handoff_intents else BY_BOT
    return TurnSummary(intent, fallbacks, _faq_outcome(actions, vocabulary), handoff)
