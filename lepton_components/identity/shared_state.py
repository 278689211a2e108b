"""What of a conversation is shared, read from a tracker and written back as events.

Shared are the slots named in the config and, when `share_active_loop` is on, the active
form and its `requested_slot`: enough for the policies to continue a form the customer
started elsewhere. Everything else (the message history, other slots, policy state such
as rejected or interrupted loops) stays with its own conversation.

Changes travel as events, never as merged histories: a value received from a linked
conversation is appended as a `SlotSet` / `ActiveLoop` whose metadata says it was
delivered (`lepton_identity`), with the shared-state version it brings. That tag is how
a store tells "the customer said this here" (published to the other conversations) from
"this arrived from elsewhere" (not echoed back), and its version is how the registry
knows what the stored conversation already holds.
"""

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Text, Tuple

from rasa.shared.core.constants import REQUESTED_SLOT
from rasa.shared.core.events import ActiveLoop, Event, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.identity.link_registry import SharedChange

# Registry key of the active form; "@" keeps it apart from any slot name.
ACTIVE_LOOP_KEY = "@active_loop"
SYNC_METADATA_KEY = "lepton_identity"


@dataclass(frozen=True)
class SharedKeys:
    """The slot names and whether the active loop travels between linked conversations."""

    slots: FrozenSet[Text]
    share_active_loop: bool

    @property
    def all(self) -> FrozenSet[Text]:
        extra = {ACTIVE_LOOP_KEY, REQUESTED_SLOT} if self.share_active_loop else set()
        return self.slots | extra


def current_values(tracker: DialogueStateTracker, keys: SharedKeys) -> Dict[Text, Any]:
    """The tracker's value of every shared key (None where unset)."""
    values = {name: tracker.get_slot(name) for name in keys.all if name != ACTIVE_LOOP_KEY}
    if keys.share_active_loop:
        values[ACTIVE_LOOP_KEY] = tracker.active_loop_name
    return values


def seed_values(tracker: Optional[DialogueStateTracker], keys: SharedKeys) -> Dict[Text, Any]:
    """The values a conversation brings into a new link: only those that are set."""
    if tracker is None:
        return {}
    values = {key: value for key, value in current_values(tracker, keys).items() if value is not None}
    if values.get(ACTIVE_LOOP_KEY) is None:
        # A requested slot without its form would make no sense on the other side.
        values.pop(REQUESTED_SLOT, None)
    return values


def is_delivered(event: Event) -> bool:
    """Whether the event was appended by the link sync rather than by this conversation."""
    return isinstance(event.metadata, dict) and SYNC_METADATA_KEY in event.metadata


def _shared_key(event: Event, keys: SharedKeys) -> Optional[Text]:
    if isinstance(event, SlotSet) and event.key in keys.all and event.key != ACTIVE_LOOP_KEY:
        return event.key
    if isinstance(event, ActiveLoop) and keys.share_active_loop:
        return ACTIVE_LOOP_KEY
    return None


def local_changes(
    tracker: DialogueStateTracker,
    new_events: Sequence[Event],
    keys: SharedKeys,
    group_values: Mapping[Text, Any],
) -> Dict[Text, Any]:
    """Shared values this conversation itself changed in `new_events`, to publish.

    A key counts when its last `SlotSet`/`ActiveLoop` among the new events was not a
    delivery and the tracker's value now differs from the group's. Session starts and
    restarts reset only this conversation: they are not `SlotSet`s, so they publish
    nothing (carried-over slots equal the group's values).
    """
    last_writer: Dict[Text, Event] = {}
    for event in new_events:
        key = _shared_key(event, keys)
        if key is not None:
            last_writer[key] = event
    values = current_values(tracker, keys)
    return {
        key: values[key]
        for key, event in last_writer.items()
        if not is_delivered(event) and (key not in group_values or group_values[key] != values[key])
    }


def delivered_version(events: Sequence[Event]) -> int:
    """The highest shared-state version that deliveries in `events` brought (0 if none)."""
    versions = [event.metadata[SYNC_METADATA_KEY].get("version", 0) for event in events if is_delivered(event)]
    return max(versions, default=0)


def delivery_events(
    tracker: Optional[DialogueStateTracker],
    sender_id: Text,
    changes: Sequence[SharedChange],
    keys: SharedKeys,
) -> Tuple[List[Event], int]:
    """Events that bring `tracker` up to date with `changes`, and the version they reach.

    Values that came from this conversation, and values it already holds, need no event;
    the version still covers them so they are not looked at again.
    """
    if not changes:
        return [], 0
    version = max(change.version for change in changes)
    values = current_values(tracker, keys) if tracker is not None else {}
    events: List[Event] = []
    for change in changes:
        if change.origin == sender_id or change.key not in keys.all or values.get(change.key) == change.value:
            continue
        metadata = {SYNC_METADATA_KEY: {"version": version, "from_channel": change.origin_channel}}
        if change.key == ACTIVE_LOOP_KEY:
            events.append(ActiveLoop(change.value, metadata=metadata))
        else:
            events.append(SlotSet(change.key, change.value, metadata=metadata))
    return events, version
