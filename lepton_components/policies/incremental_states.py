"""Dialogue states that grow with the conversation instead of being rebuilt at every prediction.

Rasa's rule and memoization policies describe a conversation as one state per bot action
(`Domain.states_for_tracker_history`) and rebuild that list from the conversation's first
event at every prediction, two or three times per prediction, three predictions per message:
under load that replay was about a fifth of a server's Python time (docs/benchmarks.md).
`IncrementalStatesFeaturizer` is Rasa's `MaxHistoryTrackerFeaturizer` with one change: per
conversation it keeps the states of the turns already replayed and the tracker at the end of
them, and the next call replays only the new events.

It never trusts what it kept: the conversation's applied events must begin with exactly the
event objects replayed before (an undo, a restart or a conversation rebuilt from the database
starts the replay over, as Rasa would), and the domain and options must be the same. Each
call returns fresh copies, because Rasa's featurizer edits the states it is given.
"""

import collections
import dataclasses
import itertools
import operator
from typing import Any, Dict, FrozenSet, Iterable, List, NamedTuple, Optional, OrderedDict, Sequence, Text, Tuple

from rasa.core.featurizers.single_state_featurizer import SingleStateFeaturizer
from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer, TrackerFeaturizer
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State, SubState
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    Event,
    Restarted,
    SessionStarted,
    UserUtteranceReverted,
)
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.stores.strict_tracker_store import DEFAULT_CACHED_CONVERSATIONS

# Conversations whose replay is kept per policy; the least recently used is dropped first.
# As many as StrictSQLTrackerStore keeps by default: a conversation it no longer holds comes
# back from the database as new event objects, which a kept replay cannot continue.
DEFAULT_KEPT_CONVERSATIONS = DEFAULT_CACHED_CONVERSATIONS
FEATURIZER_TYPE = "LeptonIncrementalStatesFeaturizer"
# Events after which Rasa's `applied_events` drops some of the events before them.
UNDOING_EVENTS = (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted)


class StatesOptions(NamedTuple):
    """The arguments of Rasa's `DialogueStateTracker.past_states` after the domain."""

    omit_unset_slots: bool = False
    ignore_rule_only_turns: bool = False
    rule_only_data: Optional[Dict[Text, Any]] = None


@dataclasses.dataclass
class _Flow:
    """What Rasa's replay loop carries from one action to the next."""

    last_ml_action: Optional[SubState] = None
    turn_was_hidden: bool = False


@dataclasses.dataclass
class _Replay:
    """One conversation replayed: the tracker after its applied events (``tracker.events``)
    and the states so far."""

    domain: Domain
    options: StatesOptions
    tracker: DialogueStateTracker
    states: List[State]
    flow: _Flow
    # The conversation's events (undone ones too) when it was last asked about, and the
    # loops they activate: what Rasa's `applied_events` decided the replayed events from.
    all_events: List[Event] = dataclasses.field(default_factory=list)
    loop_names: FrozenSet[Text] = frozenset()


def _copy_states(states: List[State]) -> List[State]:
    """The states with new sub-state dicts (their values are strings and tuples).

    A sub-state two states share stays shared in the copy: Rasa's replay hands a rule turn
    the user sub-state of the turn before, and its featurizer's edits of the last state then
    reach both, which the policies' lookups depend on.
    """
    copies: Dict[int, SubState] = {}

    def copy_of(sub_state: SubState) -> SubState:
        if id(sub_state) not in copies:
            copies[id(sub_state)] = dict(sub_state)
        return copies[id(sub_state)]

    return [{key: copy_of(sub_state) for key, sub_state in state.items()} for state in states]


def _state_before_action(
    replay: _Replay, tracker: DialogueStateTracker, hide_rule_turn: bool, flow: _Flow
) -> Optional[State]:
    """The state Rasa's `states_for_tracker_history` appends for ``tracker``, or None for a
    hidden rule turn; updates ``flow`` as Rasa's loop does."""
    domain = replay.domain
    omit_unset_slots, ignore_rule_only_turns, rule_only_data = replay.options
    if ignore_rule_only_turns:
        if not flow.turn_was_hidden:
            flow.last_ml_action = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and not tracker.latest_action_name == tracker.active_loop_name:
            flow.turn_was_hidden = hide_rule_turn
        if flow.turn_was_hidden:
            return None
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if replay.states:
            domain._substitute_rule_only_user_input(state, replay.states[-1])
        if flow.last_ml_action:
            state[PREVIOUS_ACTION] = flow.last_ml_action
    return domain._clean_state(state)


def _replay_events(replay: _Replay, events: List[Event]) -> None:
    """Applies ``events`` to the replay, keeping the state before each action."""
    for event in events:
        if isinstance(event, ActionExecuted):
            state = _state_before_action(replay, replay.tracker, event.hide_rule_turn, replay.flow)
            if state is not None:
                replay.states.append(state)
        replay.tracker.update(event)


def _starts_with(events: Iterable[Event], kept: Sequence[Event]) -> bool:
    """Whether ``events`` begin with exactly the objects of ``kept`` (given it is no longer)."""
    return all(map(operator.is_, events, kept))


def _loop_names(events: Iterable[Event]) -> FrozenSet[Text]:
    return frozenset(event.name for event in events if isinstance(event, ActiveLoop) and event.name)


def _appended_without_undo(replay: _Replay, tracker: DialogueStateTracker) -> Optional[List[Event]]:
    """The events added since the replay when Rasa's `applied_events` would keep them all and
    change nothing before them; None when only `applied_events` itself can tell.

    `applied_events` drops events on a restart, a new session, an undo, or a loop running
    again after other turns, and which action names count as loops depends on every event.
    """
    kept = len(replay.all_events)
    if len(tracker.events) < kept or not _starts_with(tracker.events, replay.all_events):
        return None
    added = list(itertools.islice(tracker.events, kept, None))
    if _loop_names(added) - replay.loop_names:
        return None
    for event in added:
        if isinstance(event, UNDOING_EVENTS) or (
            isinstance(event, ActionExecuted) and event.action_name in replay.loop_names
        ):
            return None
    return added


def _applied_events_since(replay: _Replay, tracker: DialogueStateTracker) -> Optional[List[Event]]:
    """The applied events the replay has not seen, or None if it saw others."""
    applied, replayed = tracker.applied_events(), replay.tracker.events
    if len(applied) < len(replayed) or not _starts_with(applied, replayed):
        return None
    return applied[len(replayed) :]


def _replay_to_continue(
    replay: Optional[_Replay], tracker: DialogueStateTracker, domain: Domain, options: StatesOptions
) -> Tuple[_Replay, List[Event]]:
    """The kept replay and the events it has not seen, or a new replay and all applied events."""
    if replay is not None and replay.domain is domain and replay.options == options:
        added = _appended_without_undo(replay, tracker)
        if added is not None:
            return replay, added
        since = _applied_events_since(replay, tracker)
        if since is not None:
            replay.loop_names = _loop_names(tracker.events)
            return replay, since
    fresh = _Replay(domain, options, tracker.init_copy(), [], _Flow(), loop_names=_loop_names(tracker.events))
    return fresh, tracker.applied_events()


class ConversationStates:
    """The replays of the most recently featurized conversations, at most ``capacity``."""

    def __init__(self, capacity: int = DEFAULT_KEPT_CONVERSATIONS) -> None:
        self.capacity = capacity
        self._replays: OrderedDict[Text, _Replay] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._replays)

    def past_states(self, tracker: DialogueStateTracker, domain: Domain, options: StatesOptions) -> List[State]:
        """What ``tracker.past_states(domain, *options)`` returns, replaying only new events."""
        replay, new_events = _replay_to_continue(self._replays.get(tracker.sender_id), tracker, domain, options)
        _replay_events(replay, new_events)
        replay.all_events = list(tracker.events)
        self._keep(tracker.sender_id, replay)
        # Rasa's loop ends with the state of the conversation as it is now, which the next
        # event changes: computed on a copy of the loop's flow and not kept.
        last = _state_before_action(replay, replay.tracker, False, dataclasses.replace(replay.flow))
        return _copy_states(replay.states + ([last] if last is not None else []))

    def _keep(self, sender_id: Text, replay: _Replay) -> None:
        self._replays[sender_id] = replay
        self._replays.move_to_end(sender_id)
        while len(self._replays) > self.capacity:
            self._replays.popitem(last=False)


@TrackerFeaturizer.register(FEATURIZER_TYPE)
class IncrementalStatesFeaturizer(MaxHistoryTrackerFeaturizer):
    """`MaxHistoryTrackerFeaturizer` that replays each conversation once, not at every prediction.

    For RulePolicy and MemoizationPolicy, in config.yml:

        - name: RulePolicy
          featurizer:
            - name: lepton_components.policies.incremental_states.IncrementalStatesFeaturizer

    Training trackers keep their own states (Rasa's `TrackerWithCachedStates`) and go to
    Rasa unchanged.
    """

    def __init__(
        self,
        state_featurizer: Optional[SingleStateFeaturizer] = None,
        max_history: Optional[int] = None,
        remove_duplicates: bool = True,
    ) -> None:
        super().__init__(state_featurizer, max_history, remove_duplicates)
        self._conversations = ConversationStates()

    def _create_states(  # type: ignore[override]
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: Optional[Dict[Text, Any]] = None,
    ) -> List[State]:
        if isinstance(tracker, TrackerWithCachedStates):
            return super()._create_states(tracker, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        options = StatesOptions(omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        return self._conversations.past_states(tracker, domain, options)
