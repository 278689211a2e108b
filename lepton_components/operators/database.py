"""The SQL database the operator console keeps its state in: the tracker store's own.

Queues, accounts, login sessions and the turn log sit next to the conversations, so a
restart loses nothing and every replica sees the same queue. The tracker store must
therefore be a SQL one (Rasa's `SQL`, possibly inside Lepton's masking or linking store);
any other store stops the console with the fix, never a private in-memory copy.

SQLAlchemy here is synchronous (as Rasa's SQL tracker store is), so every query runs in
the default thread pool through `asyncio.to_thread`, keeping the event loop free.
"""

from typing import Any, Optional

import sqlalchemy as sa
from rasa.shared.exceptions import InvalidConfigException

# Every operator table is declared on this one MetaData, so `create_tables` makes them all.
metadata = sa.MetaData()

# Wrapping stores (masking, linking, strict) keep the store they wrap here.
_INNER_ATTRIBUTES = ("_inner", "inner", "_tracker_store", "tracker_store")


def sql_engine_of(tracker_store: Any) -> sa.engine.Engine:
    """The SQLAlchemy engine of `tracker_store`, or of the SQL store it wraps."""
    store, seen = tracker_store, set()
    while store is not None and id(store) not in seen:
        seen.add(id(store))
        engine = getattr(store, "engine", None)
        if isinstance(engine, sa.engine.Engine):
            return engine
        store = next((getattr(store, name) for name in _INNER_ATTRIBUTES if getattr(store, name, None) is not None), None)
    raise InvalidConfigException(
        f"The operator console keeps handoff queues, accounts and review data in the tracker store's SQL "
        f"database, but the tracker store is {type(tracker_store).__name__}. Use a SQL tracker store in "
        "endpoints.yml (e.g. `type: SQL`, `dialect: sqlite`, `db: lepton-trackers.db`, or PostgreSQL for "
        "several replicas), or remove the operator console entry from credentials.yml."
    )


def create_tables(engine: sa.engine.Engine) -> None:
    """Creates the operator tables that do not exist yet (every replica may call it)."""
    metadata.create_all(engine, checkfirst=True)


def one_or_none(engine: sa.engine.Engine, query: Any) -> Optional[Any]:
    with engine.connect() as connection:
        return connection.execute(query).first()
