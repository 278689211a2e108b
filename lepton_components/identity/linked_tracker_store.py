"""A tracker store that lets the conversation context follow a customer across channels.

Stock Rasa keys each conversation by the channel's sender id, so the same customer on
Telegram and on the web chat is two strangers (rasa issues #10158, #7941). Once the
customer links the two (see `link_commands`), this store keeps each channel's own
tracker, with its own events, for audit, and moves only the shared values between them:

* on `save`, the shared slots / active form that this conversation itself changed in the
  new events are published to the link group in the registry (after the inner store
  has saved them, so nothing unsaved is shared);
* on `retrieve`, values published by the other conversations since this one last
  received them are appended as tagged `SlotSet` / `ActiveLoop` events, before the
  processor reads the tracker, so NLU, slot filling, forms and policies see them.
  They are stored by the inner store when the processor saves the turn.

Why deliver on retrieve rather than write into the other tracker on save: Rasa's lock
store serialises the turns of one conversation only. Writing into conversation B while
B's own turn is running would race with B's save (the SQL store appends "the events it
does not have yet" by count and would drop some). Retrieve runs inside B's own lock.

A conversation linked before it ever spoke gets a default session start that carries
the values, exactly what `action_session_start` would produce, so its first message
already sees them.

Enable it in endpoints.yml (the inner store takes any `tracker_store` settings)::

    tracker_store:
      type: lepton_components.identity.linked_tracker_store.LinkedTrackerStore
      inner:
        type: SQL
        dialect: sqlite
        db: lepton-trackers.db
      # registry_url: postgresql://...   (default: the inner SQL store's database)
      shared_slots: [order_number, email]
"""

import logging
from typing import Any, Dict, Iterable, Optional, Text, Union

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.identity.identity_config import STORE_TYPE, IdentityConfig
from lepton_components.identity.link_registry import LinkRegistry
from lepton_components.identity.shared_state import (
    SharedKeys,
    delivered_version,
    delivery_events,
    local_changes,
    seed_values,
)
from lepton_components.stores.inner_store import create_inner_store
from lepton_components.stores.store_startup import fails_loudly, quoted, require_sql_driver

logger = logging.getLogger(__name__)

# Rasa's own default tracker store of `make run` (bot/endpoints.yml).
DEFAULT_INNER = {"type": "SQL", "dialect": "sqlite", "db": "lepton-trackers.db"}
UNKNOWN_CHANNEL = "unknown"

# The store the running server created; channels reach the registry through it.
_active_store: Optional["LinkedTrackerStore"] = None


def active_linked_store() -> Optional["LinkedTrackerStore"]:
    """The `LinkedTrackerStore` this process serves with, or None if linking is off."""
    return _active_store


def _registry_engine_url(inner: TrackerStore, registry_url: Optional[Text]) -> Any:
    """`registry_url`, else the URL of the inner SQL store's own database."""
    if registry_url:
        return registry_url
    engine = getattr(inner, "engine", None)
    if engine is None:
        raise InvalidConfigException(
            f"LinkedTrackerStore keeps links in SQL; the inner store {type(inner).__name__} has no "
            "database to share, so set `tracker_store.registry_url`, e.g. "
            "`registry_url: postgresql://user:password@db:5432/lepton` (all replicas must use the same one)."
        )
    return engine.url


class LinkedTrackerStore(TrackerStore):
    """Wraps the configured tracker store and shares chosen values between linked senders."""

    @fails_loudly(quoted(STORE_TYPE))
    def __init__(
        self,
        domain: Optional[Domain] = None,
        host: Optional[Text] = None,
        event_broker: Optional[EventBroker] = None,
        inner: Union[TrackerStore, Dict[Text, Any], None] = None,
        registry_url: Optional[Text] = None,
        registry: Optional[LinkRegistry] = None,
        **settings: Any,
    ) -> None:
        """`host` is Rasa's `url` key, unused: the inner store has its own settings.

        Errors Rasa would answer with an in-memory store (a missing driver) raise
        `InvalidConfigException` instead (`store_startup`).
        """
        global _active_store
        self.config = IdentityConfig.from_endpoint(settings)
        self.keys_shared = SharedKeys(frozenset(self.config.shared_slots), self.config.share_active_loop)
        self._inner = create_inner_store(inner, domain, event_broker, STORE_TYPE, DEFAULT_INNER)
        if registry is None:
            url = _registry_engine_url(self._inner, registry_url)
            if registry_url:
                require_sql_driver(sa.engine.make_url(url).drivername, quoted(STORE_TYPE), "registry_url")
            registry = LinkRegistry.from_url(url, self.config.limits)
        self.registry = registry
        # Only the inner store streams events (on its save); the broker is exposed so that
        # Rasa closes it at shutdown (`rasa/core/run.py` close_resources).
        super().__init__(domain or self._inner.domain, self._inner.event_broker)
        self.domain = domain or self._inner.domain
        _active_store = self

    @property
    def domain(self) -> Domain:
        return self._inner.domain

    @domain.setter
    def domain(self, domain: Optional[Domain]) -> None:
        self._inner.domain = domain or Domain.empty()
        slots = {slot.name for slot in self._inner.domain.slots}
        missing = sorted(set(self.config.shared_slots) - slots)
        if slots and missing:
            logger.warning(f"`tracker_store.shared_slots` names slots the domain does not have: {missing}.")

    @property
    def inner(self) -> TrackerStore:
        return self._inner

    async def keys(self) -> Iterable[Text]:
        return await self._inner.keys()

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The latest session, with the values linked conversations shared since last time."""
        return self._deliver(sender_id, await self._inner.retrieve(sender_id))

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        return self._deliver(conversation_id, await self._inner.retrieve_full_tracker(conversation_id))

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Saves through the inner store, then publishes what this conversation changed."""
        group_values = self.registry.shared_values(tracker.sender_id)
        if group_values is None:
            await self._inner.save(tracker)
            return
        stored = await self._inner.retrieve(tracker.sender_id)
        # The inner SQL store draws the same line: events past the stored latest session are new.
        new_events = list(tracker.events)[len(stored.events) if stored else 0 :]
        changes = local_changes(tracker, new_events, self.keys_shared, group_values)
        await self._inner.save(tracker)
        channel = tracker.get_latest_input_channel() or UNKNOWN_CHANNEL
        self.registry.record_changes(tracker.sender_id, channel, changes)
        version = delivered_version(new_events)
        if version:
            self.registry.mark_delivered(tracker.sender_id, version)

    async def shared_values_of(self, sender_id: Text) -> Dict[Text, Any]:
        """The set shared values of a stored conversation, to seed a new link with."""
        return seed_values(await self._inner.retrieve(sender_id), self.keys_shared)

    def _deliver(self, sender_id: Text, tracker: Optional[DialogueStateTracker]) -> Optional[DialogueStateTracker]:
        changes = self.registry.pending_changes(sender_id)
        events, version = delivery_events(tracker, sender_id, changes, self.keys_shared)
        if not events:
            if version:
                # Nothing to append: record now that these versions need no delivery.
                self.registry.mark_delivered(sender_id, version)
            return tracker
        if tracker is None:
            tracker = self.init_tracker(sender_id)
            # What the processor's `action_session_start` writes, with the values carried.
            tracker.update_with_events(
                [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted(), *events, ActionExecuted(ACTION_LISTEN_NAME)],
                self.domain,
            )
        else:
            tracker.update_with_events(events, self.domain)
        logger.debug(f"Delivered {len(events)} shared value(s) to conversation '{sender_id}'.")
        return tracker
