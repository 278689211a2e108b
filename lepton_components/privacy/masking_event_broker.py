"""An event broker proxy that masks every event it publishes.

The masking tracker store hands its inner store the real broker and an already masked
tracker, so events are masked once. This proxy covers the one other way Rasa publishes
through the store's broker: when a save fails, `FailSafeTrackerStore` saves the RAW
tracker to an in-memory store built with `tracker_store.event_broker`
(`rasa/core/tracker_store.py` ~L1416-1460). The masking store exposes this proxy as its
`event_broker`, so that path publishes masked events too, and Rasa still closes the
real broker at shutdown (`rasa/core/run.py` close_resources).
"""

from typing import Any, Dict, Optional, Text

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from lepton_components.privacy.event_masker import EventMasker


class MaskingEventBroker(EventBroker):
    """Publishes `masker.mask_event(event)` to the wrapped broker."""

    def __init__(self, inner: EventBroker, masker: EventMasker) -> None:
        self.inner = inner
        self.masker = masker

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: Optional[Any] = None
    ) -> Optional["MaskingEventBroker"]:
        raise NotImplementedError("MaskingEventBroker wraps a broker; the masking tracker store creates it.")

    def publish(self, event: Dict[Text, Any], **kwargs: Any) -> None:
        self.inner.publish(self.masker.mask_event(event), **kwargs)

    def is_ready(self) -> bool:
        return self.inner.is_ready()

    async def close(self) -> None:
        await self.inner.close()
