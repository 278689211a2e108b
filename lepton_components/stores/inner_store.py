"""The tracker store a wrapping store (linking, masking) keeps the conversations in.

Wrapping stores are configured in `endpoints.yml` with the wrapped store's own settings
under `inner`; Rasa builds only the outer one, so the wrapper builds the inner one with
Rasa's own factory (any store type Rasa knows, or another wrapper).
"""

from typing import Any, Dict, Optional, Text, Union

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import TrackerStore, create_tracker_store
from rasa.shared.core.domain import Domain
from rasa.shared.exceptions import InvalidConfigException
from rasa.utils.endpoints import EndpointConfig


def create_inner_store(
    inner: Union[TrackerStore, Dict[Text, Any], None],
    domain: Optional[Domain],
    event_broker: Optional[EventBroker],
    wrapper_type: Text,
    default: Optional[Dict[Text, Any]] = None,
) -> TrackerStore:
    """`inner` itself if it is a store, else the store its settings describe.

    `default` stands in for missing settings; settings naming the wrapper itself are
    refused (they would nest for ever).
    """
    if isinstance(inner, TrackerStore):
        return inner
    settings = inner if inner is not None else default
    wrapper_name = wrapper_type.rsplit(".", 1)[-1]
    if not isinstance(settings, dict) or not settings.get("type") or str(settings["type"]).endswith(wrapper_name):
        raise InvalidConfigException(
            f"`tracker_store.inner` must hold the settings of the store that keeps the conversations, "
            f"got {inner!r}. For example:\n  tracker_store:\n    type: {wrapper_type}\n    inner:\n"
            "      type: SQL\n      dialect: sqlite\n      db: lepton-trackers.db"
        )
    return create_tracker_store(EndpointConfig.from_dict(dict(settings)), domain, event_broker)
