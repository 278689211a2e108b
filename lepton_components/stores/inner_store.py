"""The tracker store a wrapping store (linking, masking) keeps the conversations in.

Wrapping stores are configured in `endpoints.yml` with the wrapped store's own settings
under `inner`; Rasa builds only the outer one, so the wrapper builds the inner one: Rasa's
own stores (`SQL`, `redis`, `mongod`, `dynamo`) with Rasa's factory, any other type by
module path. Not with Rasa's loader for module paths: it answers a misspelt path, or an
`ImportError` in the store's constructor, with an in-memory store (`store_startup`).
"""

from typing import Any, Dict, Optional, Text, Type, Union

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import (
    AwaitableTrackerStore,
    TrackerStore,
    check_if_tracker_store_async,
    create_tracker_store,
)
from rasa.shared.core.domain import Domain
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.utils.common import class_from_module_path
from rasa.utils.endpoints import EndpointConfig

from lepton_components.stores.store_startup import (
    missing_package,
    no_silent_fallback,
    quoted,
    require_sql_driver,
)

# The `type` values `rasa.core.tracker_store.create_tracker_store` builds itself (any case).
RASA_STORE_TYPES = ("sql", "redis", "mongod", "dynamo")


def _example(wrapper_type: Text) -> Text:
    return (
        f"For example:\n  tracker_store:\n    type: {wrapper_type}\n    inner:\n"
        "      type: SQL\n      dialect: sqlite\n      db: lepton-trackers.db"
    )


def _store_class(store_type: Text, wrapper_type: Text) -> Type[TrackerStore]:
    """The class `inner.type` names by module path; raises naming the key if there is none."""
    module_name = store_type.rpartition(".")[0]
    try:
        store_class = class_from_module_path(store_type)
    except ImportError as error:
        missing = error.name or ""
        if missing and not (module_name == missing or module_name.startswith(missing + ".")):
            # The module exists but one of its own imports failed.
            raise missing_package(error, quoted(store_type)) from error
        raise InvalidConfigException(
            f"`tracker_store.inner.type` is {store_type!r}, which is neither one of Rasa's store types "
            f"({', '.join(RASA_STORE_TYPES)}) nor the module path of a tracker store class ({error}). "
            + _example(wrapper_type)
        ) from error
    if not issubclass(store_class, TrackerStore):
        raise InvalidConfigException(
            f"`tracker_store.inner.type` is {store_type!r}, which is not a subclass of Rasa's TrackerStore. "
            + _example(wrapper_type)
        )
    return store_class


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
            f"got {inner!r}. " + _example(wrapper_type)
        )
    config = EndpointConfig.from_dict(dict(settings))
    store_type = str(config.type)
    described = f"`{store_type}` (the `inner` store of `{wrapper_name}`)"
    with no_silent_fallback(described):
        if store_type.lower() in RASA_STORE_TYPES:
            if store_type.lower() == "sql":
                require_sql_driver(config.kwargs.get("dialect", "sqlite"), described, "inner.dialect")
            return create_tracker_store(config, domain, event_broker)
        store_class = _store_class(store_type, wrapper_type)
        # The call Rasa's loader makes, without its fallback.
        store = store_class(
            host=config.url, domain=domain or Domain.empty(), event_broker=event_broker, **config.kwargs
        )
    return store if check_if_tracker_store_async(store) else AwaitableTrackerStore(store)
