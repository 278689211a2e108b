"""A tracker store that masks personal data before anything is stored or published.

Wraps any tracker store (`inner`, same settings as `tracker_store`). On `save` it
masks a copy of the tracker (`EventMasker`) and lets the inner store save that copy;
the inner store also streams the new events of that copy to the event broker, so
storage and broker get the same masked events. The tracker the processor holds is
never changed: during the turn, actions, forms and validators see the raw values.
When created, it also puts a `PiiLogFilter` on every log handler (`mask_logs`).

What the bot sees on the NEXT turn is what was stored: `retrieve` returns the masked
events, so a slot with `mask`/`hash` comes back as its token (`[EMAIL]`), and the
latest message text is masked. Values the conversation must keep using (the order
number) need `keep` (docs/privacy.md). Why not keep raw values in a side table and
restore them: that table would be the very store of personal data this avoids.

Enable in endpoints.yml::

    tracker_store:
      type: lepton_components.privacy.masking_tracker_store.MaskingTrackerStore
      inner:
        type: SQL
        dialect: sqlite
        db: lepton-trackers.db
      slots: {order_number: keep}

With `LinkedTrackerStore` (docs/identity.md), put this store OUTSIDE (its `inner` is
the linked store's settings): the linked store then shares masked values only; the
other way round it would write raw shared values to its link table.
"""

import logging
from typing import Any, Dict, Iterable, Optional, Text, Union

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.stores.inner_store import create_inner_store
from lepton_components.stores.store_startup import fails_loudly, missing_package, quoted

STORE_TYPE = "lepton_components.privacy.masking_tracker_store.MaskingTrackerStore"

try:
    from lepton_components.privacy.event_masker import EventMasker
    from lepton_components.privacy.log_filter import install_log_filter
    from lepton_components.privacy.masking_event_broker import MaskingEventBroker
    from lepton_components.privacy.privacy_policy import PrivacyPolicy
    from lepton_components.privacy.response_texts import pii_in_responses
except ImportError as error:
    # Rasa answers an ImportError while importing this module with an in-memory store that
    # masks nothing (`store_startup`); `phonenumbers` is the one package this adds to Rasa's.
    raise missing_package(error, quoted(STORE_TYPE)) from error

logger = logging.getLogger(__name__)

# Attribute set on Event objects read back from the inner store (never serialised).
STORED_MARK = "_lepton_masked_in_storage"


def _mark_stored(tracker: Optional[DialogueStateTracker]) -> Optional[DialogueStateTracker]:
    """Flags the events read back from storage: they were masked when they were saved."""
    for event in tracker.events if tracker is not None else ():
        setattr(event, STORED_MARK, True)
    return tracker


class MaskingTrackerStore(TrackerStore):
    """Saves masked copies of trackers through the `inner` store; reads are passed through."""

    @fails_loudly(quoted(STORE_TYPE))
    def __init__(
        self,
        domain: Optional[Domain] = None,
        host: Optional[Text] = None,
        event_broker: Optional[EventBroker] = None,
        inner: Union[TrackerStore, Dict[Text, Any], None] = None,
        **settings: Any,
    ) -> None:
        """`host` is Rasa's `url` key, unused: the inner store has its own settings.

        Errors Rasa would answer with an in-memory store (a missing driver) raise
        `InvalidConfigException` instead (`store_startup`).
        """
        self.masker = EventMasker(PrivacyPolicy.from_settings(settings))
        self._inner = create_inner_store(inner, domain, event_broker, STORE_TYPE)
        broker = self._inner.event_broker
        super().__init__(domain or self._inner.domain, MaskingEventBroker(broker, self.masker) if broker else None)
        self.domain = domain or self._inner.domain
        if self.masker.policy.mask_logs:
            count = install_log_filter(self.masker)
            logger.debug(f"Masking personal data in the records of {count} log handler(s).")

    @property
    def domain(self) -> Domain:
        return self._inner.domain

    @domain.setter
    def domain(self, domain: Optional[Domain]) -> None:
        """Rasa sets the model's domain after loading it; its responses' own data is kept."""
        self._inner.domain = domain or Domain.empty()
        own = pii_in_responses(self._inner.domain, self.masker.detector)
        if own:
            self.masker.allow(own)
        slots = {slot.name for slot in self._inner.domain.slots}
        missing = sorted(set(self.masker.policy.slots) - slots)
        if slots and missing:
            logger.warning(f"`tracker_store.slots` names slots the domain does not have: {missing}.")

    @property
    def inner(self) -> TrackerStore:
        return self._inner

    def masked(self, tracker: DialogueStateTracker) -> DialogueStateTracker:
        """A copy of `tracker` rebuilt from masked events (same number, same order).

        Events this store read back from the inner store are masked already and are reused
        as they are: a turn then costs detection over its own new events only, not over the
        whole session on each of the processor's saves.
        """
        events = list(tracker.events)
        fresh = [index for index, event in enumerate(events) if not getattr(event, STORED_MARK, False)]
        masked = self.masker.mask_events([events[index].as_dict() for index in fresh])
        for index, event in zip(fresh, masked):
            events[index] = Event.from_parameters(event)
        if None in events:
            # Dropping one would shift the SQL store's "events it does not have yet" by count.
            raise ValueError(f"An event of conversation '{tracker.sender_id}' does not read back from its dictionary.")
        copy = DialogueStateTracker.from_events(
            tracker.sender_id,
            events,
            slots=tracker.slots.values(),
            max_event_history=tracker._max_event_history,
            sender_source=tracker.sender_source,
        )
        copy.model_id, copy.assistant_id = tracker.model_id, tracker.assistant_id
        return copy

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self._inner.save(self.masked(tracker))

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        return _mark_stored(await self._inner.retrieve(sender_id))

    async def retrieve_full_tracker(self, conversation_id: Text) -> Optional[DialogueStateTracker]:
        return _mark_stored(await self._inner.retrieve_full_tracker(conversation_id))

    async def keys(self) -> Iterable[Text]:
        return await self._inner.keys()

    async def exists(self, conversation_id: Text) -> bool:
        return await self._inner.exists(conversation_id)
