"""IncrementalStatesFeaturizer gives Rasa's states for every conversation of the demo bot.

The oracle is Rasa's own `MaxHistoryTrackerFeaturizer`, asked about the same tracker after
every event of every story and rule of `data/` (and their concatenations), the way a server
asks: one tracker object per conversation that grows, conversations interleaved.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Text

import pytest
from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer, TrackerFeaturizer
from rasa.shared.core.constants import ACTION_LISTEN_NAME, RULE_ONLY_LOOPS, RULE_ONLY_SLOTS
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    DefinePrevUserUtteredFeaturization,
    Event,
    Restarted,
    UserUttered,
    UserUtteranceReverted,
)
from rasa.shared.core.generator import TrainingDataGenerator
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.importers.importer import TrainingDataImporter

from lepton_components.policies.incremental_states import IncrementalStatesFeaturizer

REPO = Path(__file__).resolve().parents[2]
# What RulePolicy hands MemoizationPolicy for the demo (slots and loops only rules use).
DEMO_RULE_ONLY_DATA = {RULE_ONLY_SLOTS: ["requested_slot", "faq_answer"], RULE_ONLY_LOOPS: ["order_status_form"]}
# (max_history, ignore_rule_only_turns, rule_only_data): RulePolicy's and MemoizationPolicy's calls.
POLICY_CALLS = [(None, False, None), (5, True, DEMO_RULE_ONLY_DATA)]


@pytest.fixture(scope="module")
def demo() -> Dict[Text, Any]:
    importer = TrainingDataImporter.load_from_dict(
        domain_path=str(REPO / "bot" / "domain.yml"), training_data_paths=[str(REPO / "data")]
    )
    domain = importer.get_domain()
    stories = importer.get_stories()
    trackers = TrainingDataGenerator(stories, domain, augmentation_factor=10).generate()
    return {"domain": domain, "conversations": [list(tracker.events) for tracker in trackers]}


def _states(featurizer: TrackerFeaturizer, tracker: DialogueStateTracker, domain: Domain, call, use_text: bool):
    _, ignore_rule_only_turns, rule_only_data = call
    return featurizer.prediction_states(
        [tracker],
        domain,
        use_text_for_last_user_input=use_text,
        ignore_rule_only_turns=ignore_rule_only_turns,
        rule_only_data=rule_only_data,
    )[0]


def _assert_same_as_rasa(
    featurizer: IncrementalStatesFeaturizer, tracker: DialogueStateTracker, domain: Domain, call
) -> None:
    rasa_featurizer = MaxHistoryTrackerFeaturizer(None, call[0])
    for use_text in (True, False):
        expected = _states(rasa_featurizer, tracker, domain, call, use_text)
        assert _states(featurizer, tracker, domain, call, use_text) == expected


def _grow(sender_id: Text, domain: Domain) -> DialogueStateTracker:
    return DialogueStateTracker(sender_id, domain.slots)


def _as_served(events: List[Event]) -> List[Event]:
    """The events with every other bot action marked as RulePolicy marks the turns it predicts."""
    served: List[Event] = []
    for index, event in enumerate(events):
        if isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN_NAME and index % 2:
            event = ActionExecuted(event.action_name, policy="RulePolicy", hide_rule_turn=True)
        served.append(event)
    return served


@pytest.mark.parametrize("call", POLICY_CALLS)
@pytest.mark.parametrize("rule_turns_hidden", [False, True])
def test_states_equal_rasa_after_every_event_of_every_demo_conversation(demo, call, rule_turns_hidden) -> None:
    domain, conversations = demo["domain"], demo["conversations"]
    assert len(conversations) > 50
    if rule_turns_hidden:
        conversations = [_as_served(events) for events in conversations]
    featurizer = IncrementalStatesFeaturizer(None, call[0])
    trackers = [_grow(f"customer-{i}", domain) for i in range(len(conversations))]
    longest = max(len(events) for events in conversations)
    for position in range(longest):
        # One event for each conversation in turn, as concurrent customers would send them.
        for tracker, events in zip(trackers, conversations):
            if position < len(events):
                tracker.update(events[position])
                _assert_same_as_rasa(featurizer, tracker, domain, call)


def _listen_then(text: Text, intent: Text) -> List[Event]:
    return [ActionExecuted(ACTION_LISTEN_NAME), UserUttered(text, {"name": intent, "confidence": 1.0})]


@pytest.mark.parametrize("call", POLICY_CALLS)
@pytest.mark.parametrize(
    "undo",
    [
        [UserUtteranceReverted()],
        [ActionReverted()],
        [Restarted()],
        [DefinePrevUserUtteredFeaturization(True)],
    ],
    ids=["customer message undone", "bot action undone", "restart", "last message featurized by its text"],
)
def test_an_event_that_changes_earlier_turns_gives_rasa_states(demo, call, undo: List[Event]) -> None:
    domain = demo["domain"]
    featurizer = IncrementalStatesFeaturizer(None, call[0])
    tracker = _grow("customer", domain)
    turn = _listen_then("hi", "greet") + [DefinePrevUserUtteredFeaturization(False), ActionExecuted("utter_greet")]
    for event in turn + [ActionExecuted(ACTION_LISTEN_NAME)]:
        tracker.update(event)
        _assert_same_as_rasa(featurizer, tracker, domain, call)
    for event in undo + [ActionExecuted("utter_greet")] + _listen_then("thanks", "thank_you"):
        tracker.update(event)
        _assert_same_as_rasa(featurizer, tracker, domain, call)


@pytest.mark.parametrize("call", POLICY_CALLS)
def test_another_conversation_under_the_same_id_is_replayed_afresh(demo, call) -> None:
    domain = demo["domain"]
    featurizer = IncrementalStatesFeaturizer(None, call[0])
    first = _listen_then("hi", "greet") + [ActionExecuted("utter_greet"), ActionExecuted(ACTION_LISTEN_NAME)]
    _assert_same_as_rasa(featurizer, DialogueStateTracker.from_events("customer", first, domain.slots), domain, call)
    # The same sender id later (a wiped database, a client reusing ids): as long, other turns.
    second = _listen_then("bye", "goodbye") + [ActionExecuted("utter_goodbye"), ActionExecuted(ACTION_LISTEN_NAME)]
    second += _listen_then("thanks", "thank_you")
    _assert_same_as_rasa(featurizer, DialogueStateTracker.from_events("customer", second, domain.slots), domain, call)


def test_one_featurizer_asked_for_both_policies_states_answers_each(demo) -> None:
    domain, conversations = demo["domain"], demo["conversations"]
    featurizer = IncrementalStatesFeaturizer(None, None)
    tracker = _grow("customer", domain)
    for event in max(conversations, key=len):
        tracker.update(event)
        for call in POLICY_CALLS:
            _assert_same_as_rasa(featurizer, tracker, domain, (None,) + call[1:])


def test_editing_the_returned_states_changes_nothing_kept(demo) -> None:
    domain = demo["domain"]
    featurizer = IncrementalStatesFeaturizer(None, None)
    tracker = DialogueStateTracker.from_events(
        "customer", _listen_then("hi", "greet") + [ActionExecuted("utter_greet")], domain.slots
    )
    # Rasa's featurizer deletes keys of the states it gets; a policy may too.
    for state in featurizer._create_states(tracker, domain):
        for sub_state in state.values():
            sub_state.clear()
    tracker.update(ActionExecuted(ACTION_LISTEN_NAME))
    _assert_same_as_rasa(featurizer, tracker, domain, POLICY_CALLS[0])


@pytest.mark.parametrize("call", POLICY_CALLS)
def test_a_conversation_rebuilt_from_the_database_is_replayed_afresh(demo, call) -> None:
    domain = demo["domain"]
    events = _listen_then("hi", "greet") + [ActionExecuted("utter_greet")] + _listen_then("bye", "goodbye")
    featurizer = IncrementalStatesFeaturizer(None, call[0])
    served = DialogueStateTracker.from_events("customer", events, domain.slots)
    _assert_same_as_rasa(featurizer, served, domain, call)
    # Another replica appended a turn; this one reads every event back as new objects.
    stored = [event.as_dict() for event in events + [ActionExecuted("utter_goodbye")]]
    rebuilt = DialogueStateTracker.from_dict("customer", stored, domain.slots)
    _assert_same_as_rasa(featurizer, rebuilt, domain, call)


def test_a_growing_conversation_replays_only_its_new_events(demo, monkeypatch) -> None:
    domain = demo["domain"]
    featurizer = IncrementalStatesFeaturizer(None, None)
    tracker = _grow("customer", domain)
    for _ in range(10):
        for event in _listen_then("hi", "greet") + [ActionExecuted("utter_greet")]:
            tracker.update(event)
    _states(featurizer, tracker, domain, POLICY_CALLS[0], False)
    computed: List[Optional[int]] = []
    original = Domain.get_active_state

    def counting(self, *args, **kwargs):
        computed.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Domain, "get_active_state", counting)
    for event in _listen_then("thanks", "thank_you"):
        tracker.update(event)
    _states(featurizer, tracker, domain, POLICY_CALLS[0], False)
    # The listen before the new message, and the conversation as it is now: not 21 states.
    assert len(computed) == 2


def test_the_featurizer_survives_a_model_archive(tmp_path) -> None:
    featurizer = IncrementalStatesFeaturizer(None, 5)
    featurizer.persist(tmp_path)
    loaded = TrackerFeaturizer.load(tmp_path)
    assert isinstance(loaded, IncrementalStatesFeaturizer)
    assert loaded.max_history == 5


def test_the_kept_conversations_are_bounded(demo) -> None:
    domain = demo["domain"]
    featurizer = IncrementalStatesFeaturizer(None, None)
    featurizer._conversations.capacity = 3
    for i in range(5):
        tracker = DialogueStateTracker.from_events(f"customer-{i}", _listen_then("hi", "greet"), domain.slots)
        _states(featurizer, tracker, domain, POLICY_CALLS[0], False)
    assert len(featurizer._conversations) == 3
