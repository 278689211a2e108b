"""Dialogue policy that answers unplaced questions from the FAQ knowledge base."""

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME, REQUESTED_SLOT
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException

from lepton_components import config_validation
from lepton_components.retrieval.answer_decision import ANSWER, HANDOFF, SUGGEST, Decision, Thresholds, decide
from lepton_components.retrieval.knowledge_base import answer_from_dict

logger = logging.getLogger(__name__)

ANSWER_CANDIDATES = "answer_candidates"  # written by FaqRetriever


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class FaqAnswerPolicy(Policy):
    """Answers with approved templates when the intent is unsure, out of scope, or a near-exact FAQ.

    Reads the latest message's `intent` and `answer_candidates` (from FaqRetriever) and the
    slots and entities that fill answer placeholders. Predicts `answer_action` with the
    rendered answer in `answer_slot`, or `suggest_actions` with the top questions in the
    choice slots (clicking one sends that question, which then matches exactly), or the
    rephrase action, or - when the customer was just asked to rephrase - the handoff action.
    Abstains for confidently classified intents. Inside a form it only answers
    knowledge-base questions, and then runs the form again, which asks for its slot.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # Above RulePolicy (6): when this policy acts it owns the turn.
            "priority": 7,
            # Intents that mean "the classifier could not place this message".
            # `faq` is JointNluComponent's `knowledge_base_intent`: the classifier says the
            # message is shaped like a knowledge-base question, the candidates say which.
            "trigger_intents": ["nlu_fallback", "out_of_scope", "faq"],
            # Of those, the ones where no good candidate leads to "please rephrase" and
            # then a handoff; for the others (out_of_scope) the policy abstains and the
            # bot's own rules answer, unless the previous turn was deflected too.
            "fallback_intents": ["nlu_fallback", "faq"],
            # A candidate this close to a knowledge-base question is answered whatever
            # the intent (e.g. a clicked suggestion, which sends the question itself).
            "override_threshold": 0.9,
            # Below this intent confidence, a candidate that clears `answer_threshold`
            # is answered instead of the intent: the classifier only knows its intents,
            # so a question on an FAQ topic lands on the nearest intent, unsure.
            "intent_confidence_ceiling": 0.8,
            # With a number, that answer must also score at least the intent's confidence
            # plus this margin: when one classifier scores intents and answers on one scale
            # (JointNluComponent's answer classes), the stronger evidence wins, so a vague
            # "where is it?" stays with `order_status` at 0.6 instead of a store-locations
            # answer at 0.52. null: any answer clearing `answer_threshold` wins.
            "answer_over_intent_margin": None,
            "answer_threshold": 0.6,
            "suggest_threshold": 0.45,
            # The best candidate must lead the second by this much to be answered outright.
            "ambiguity_margin": 0.05,
            "max_suggestions": 3,
            "answer_action": "utter_faq_answer",
            "answer_slot": "faq_answer",
            "suggest_actions": {2: "utter_faq_suggest_2", 3: "utter_faq_suggest_3"},
            "choice_slots": ["faq_choice_1", "faq_choice_2", "faq_choice_3"],
            "rephrase_action": "utter_please_rephrase",
            # The bot's reply to `out_of_scope` (its rules send it). A customer the bot
            # could not help twice in a row - asked to rephrase, or told it is out of
            # scope - is handed over instead of being deflected a second time.
            "out_of_scope_action": "utter_out_of_scope",
            "handoff_action": "utter_handoff",
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Optional[Any] = None,
    ) -> None:
        config = {**self.get_default_config(), **config}
        config_validation.check_unknown_keys(
            type(self).__name__, config, {*self.get_default_config(), "max_history", "featurizer"}
        )
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        try:
            self.thresholds = Thresholds(
                answer=config["answer_threshold"],
                suggest=config["suggest_threshold"],
                ambiguity_margin=config["ambiguity_margin"],
                max_suggestions=config["max_suggestions"],
            )
        except ValueError as error:
            raise InvalidConfigException(f"{type(self).__name__}: {error}. Fix the values in config.yml.") from error
        if config["answer_over_intent_margin"] is not None:
            config_validation.check_number(
                type(self).__name__, "answer_over_intent_margin", config["answer_over_intent_margin"], -1, 1, example=0.0
            )
        self.suggest_actions = {int(count): name for count, name in config["suggest_actions"].items()}

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn; checks that the domain has every action and slot this policy uses."""
        self._check_domain(domain)
        return self._resource

    def _check_domain(self, domain: Domain) -> None:
        config = self.config
        actions = [
            config["answer_action"],
            config["rephrase_action"],
            config["out_of_scope_action"],
            config["handoff_action"],
            *self.suggest_actions.values(),
        ]
        missing_actions = [name for name in actions if name not in domain.action_names_or_texts]
        slots = [config["answer_slot"], *config["choice_slots"]]
        missing_slots = [name for name in slots if name not in [slot.name for slot in domain.slots]]
        if missing_actions or missing_slots:
            raise InvalidConfigException(
                f"{type(self).__name__} needs these responses and slots in the domain: "
                f"missing responses {missing_actions}, missing slots {missing_slots}. Add e.g.\n"
                "responses:\n  utter_faq_answer:\n  - text: \"{faq_answer}\"\n"
                "slots:\n  faq_answer:\n    type: text\n    influence_conversation: false\n"
                "    mappings:\n    - type: custom\n"
                "(see bot/domain.yml in the Lepton repository for the suggestion responses)."
            )

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[Text, Any]] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        abstain = self._prediction(self._default_predictions(domain))
        if tracker.latest_action_name != ACTION_LISTEN_NAME:
            if self._replied_last(tracker):
                # Inside a form, the form then asks for its slot again.
                return self._predict(domain, tracker.active_loop_name or ACTION_LISTEN_NAME)
            return abstain
        message = tracker.latest_message
        if message is None or not isinstance(message, UserUttered):
            return abstain
        parse_data = message.parse_data or {}
        intent = (parse_data.get("intent") or {}).get("name")
        confidence = (parse_data.get("intent") or {}).get("confidence") or 0.0
        candidates = parse_data.get(ANSWER_CANDIDATES) or []
        best_score = candidates[0]["score"] if candidates else 0.0
        triggered = intent is None or intent in self.config["trigger_intents"]
        if tracker.active_loop_name:
            return self._predict_inside_form(tracker, domain, message, triggered, candidates) or abstain
        if not triggered and best_score < self.config["override_threshold"]:
            if confidence >= self.config["intent_confidence_ceiling"] or best_score < self.thresholds.answer:
                return abstain
            margin = self.config["answer_over_intent_margin"]
            if margin is not None and best_score < confidence + margin:
                return abstain
        decision = decide(candidates, self.thresholds, self._deflected_last_turn(tracker))
        if not triggered and decision.kind != ANSWER:
            return abstain
        logger.debug(f"{type(self).__name__}: {decision.kind} for intent {intent!r}, candidates {[(c['id'], c['score']) for c in candidates]}")
        answered = self._predict_decision(tracker, domain, message, decision)
        if answered is not None:
            return answered
        if intent is not None and intent not in self.config["fallback_intents"] and decision.kind != HANDOFF:
            return abstain
        action = self.config["handoff_action"] if decision.kind == HANDOFF else self.config["rephrase_action"]
        return self._predict(domain, action)

    def _predict_inside_form(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        message: UserUttered,
        triggered: bool,
        candidates: List[Dict[Text, Any]],
    ) -> Optional[PolicyPrediction]:
        """A knowledge-base question asked instead of the form's slot: answered (or choices
        offered), after which the form asks again. Anything else is the form's and the rules'.

        A message with an entity for the requested slot always goes to the form, however
        question-shaped ("it's LP-1234, has it shipped?").
        """
        requested = tracker.get_slot(REQUESTED_SLOT)
        if any(entity.get("entity") == requested for entity in message.entities or []):
            return None
        if not triggered and (not candidates or candidates[0]["score"] < self.config["override_threshold"]):
            return None
        decision = decide(candidates, self.thresholds, False)
        return self._predict_decision(tracker, domain, message, decision)

    def _predict_decision(
        self, tracker: DialogueStateTracker, domain: Domain, message: UserUttered, decision: Decision
    ) -> Optional[PolicyPrediction]:
        """The approved answer or the choices of `decision`; None for the fallback kinds."""
        if decision.kind == ANSWER:
            text = answer_from_dict({**decision.candidates[0], "questions": []}).render(
                self._fill_values(tracker, message), tracker.get_latest_input_channel()
            )
            return self._predict(domain, self.config["answer_action"], [SlotSet(self.config["answer_slot"], text)])
        if decision.kind == SUGGEST:
            events = [
                SlotSet(slot, candidate["question"])
                for slot, candidate in zip(self.config["choice_slots"], decision.candidates)
            ]
            return self._predict(domain, self.suggest_actions[len(decision.candidates)], events)
        return None

    def _predict(self, domain: Domain, action: Text, events: Optional[List[Any]] = None) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        probabilities[domain.index_for_action(action)] = 1.0
        # Slot events only apply when this policy wins the turn.
        return self._prediction(probabilities, optional_events=events or [])

    def _own_actions(self) -> List[Text]:
        return [self.config["answer_action"], *self.suggest_actions.values()]

    def _replied_last(self, tracker: DialogueStateTracker) -> bool:
        """Whether the bot's latest action is this policy's reply: an answer or choices, or
        a rephrase or handoff this policy chose. The bot then listens; no other policy knows
        what follows a reply to, say, the knowledge-base intent, and Rasa's core fallback
        would add "Sorry, I can't help" after it."""
        latest = next((event for event in reversed(tracker.events) if isinstance(event, ActionExecuted)), None)
        if latest is None:
            return False
        if latest.action_name in self._own_actions():
            return True
        chosen_here = latest.policy is not None and latest.policy.endswith(type(self).__name__)
        return chosen_here and latest.action_name in (self.config["rephrase_action"], self.config["handoff_action"])

    def _deflected_last_turn(self, tracker: DialogueStateTracker) -> bool:
        """Whether the bot's last action before this message asked to rephrase or said the
        request was out of scope: the customer was not helped then either."""
        seen_latest_message = False
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                if seen_latest_message:
                    return False
                seen_latest_message = True
            elif isinstance(event, ActionExecuted) and seen_latest_message and event.action_name != ACTION_LISTEN_NAME:
                return event.action_name in (self.config["rephrase_action"], self.config["out_of_scope_action"])
        return False

    @staticmethod
    def _fill_values(tracker: DialogueStateTracker, message: UserUttered) -> Dict[Text, Any]:
        """Slots, overridden by entities of the current message (the freshest values)."""
        values = dict(tracker.current_slot_values())
        for entity in message.entities or []:
            values[entity["entity"]] = entity.get("value")
        return values
