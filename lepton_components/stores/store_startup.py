"""Start-up errors of tracker stores, raised so that Rasa cannot turn them into an in-memory store.

Rasa builds a store named by module path in `_load_from_module_name_in_endpoint_config`
(`rasa/core/tracker_store.py` ~L1555-1568), which answers an `ImportError` or an
`AttributeError` from the store's module or constructor with a warning and an
`InMemoryTrackerStore`. A replica whose database driver is missing then keeps the
conversations in memory: lost on restart, never shared with the other replicas, and
(for the masking store) not masked in the logs either. Our stores raise
`InvalidConfigException`, the error Rasa shows unchanged, naming the package to install
(`fails_loudly`, `require_sql_driver`). A misspelt `type` never reaches our code:
`refuse_in_memory_fallback` turns Rasa's warning about it into an error.
"""

import functools
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, Text, TypeVar

import sqlalchemy as sa
import sqlalchemy.exc
from rasa.shared.exceptions import InvalidConfigException

# The module a driver is imported as -> what to `pip install` for it, where the names differ.
PIP_PACKAGES: Dict[Text, Text] = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "mysql": "mysql-connector-python",
    "cx_Oracle": "cx_Oracle",
    "oracledb": "oracledb",
}
FALLBACK = (
    "The store does not start rather than let Rasa keep the conversations in memory, "
    "where they are lost on restart and not shared between replicas."
)

Function = TypeVar("Function", bound=Callable[..., Any])
# The warning Rasa's loader gives when it falls back (`rasa/core/tracker_store.py` ~L1565).
RASA_FALLBACK_WARNING = r"Tracker store with type '.*' not found"


class StoreDependencyMissing(InvalidConfigException):
    """A package the configured tracker store needs is not installed."""


def pip_package(module: Text) -> Text:
    """What to `pip install` to get `module` (a driver's import name)."""
    top_level = module.split(".")[0]
    return PIP_PACKAGES.get(top_level, top_level)


def _install_command(package: Text) -> Text:
    # Extras need quotes in most shells.
    return f"pip install '{package}'" if "[" in package else f"pip install {package}"


def quoted(store_type: Text) -> Text:
    """How the messages here name a store: its `type` in back-quotes."""
    return f"`{store_type}`"


def missing_package(error: ImportError, store: Text, needed_by: Optional[Text] = None) -> StoreDependencyMissing:
    """The error that names the package whose import failed, and how to install it.

    `store` names the store in the message, e.g. `quoted(type)`.
    """
    if not error.name or error.name.split(".")[0] == __name__.split(".")[0]:
        # Nothing to install from the index: our own code did not import (a broken install).
        return StoreDependencyMissing(
            f"The tracker store {store} cannot start: {needed_by or 'it'} could not import a module it needs "
            f"({error}). Install what is missing in the environment `rasa run` uses. {FALLBACK}"
        )
    package = pip_package(error.name)
    return StoreDependencyMissing(
        f"The tracker store {store} cannot start: {needed_by or 'it'} needs the Python package `{package}` "
        f"(module `{error.name}`), which is not installed. Run `{_install_command(package)}` in the environment "
        f"`rasa run` uses, or change `tracker_store` in endpoints.yml. {FALLBACK}"
    )


def require_sql_driver(dialect: Any, store: Text, key: Text = "dialect") -> None:
    """Import the driver of the SQLAlchemy `dialect` (`postgresql`, `mysql+pymysql`); raise if missing.

    Checked before anything connects, so the error names the dialect and its package rather
    than surfacing as an `ImportError` from deep inside `create_engine`. `store` as for
    `missing_package`, `key` is the setting under `tracker_store` that names the dialect.
    """
    if not isinstance(dialect, str) or not dialect:
        raise InvalidConfigException(
            f"`tracker_store.{key}` must name an SQLAlchemy dialect, got {dialect!r}. "
            "Example: `dialect: postgresql`."
        )
    try:
        dialect_class = sa.engine.URL.create(dialect).get_dialect()
    except sqlalchemy.exc.NoSuchModuleError as error:
        raise InvalidConfigException(
            f"`tracker_store.{key}` is {dialect!r}, which SQLAlchemy does not know as a database dialect. "
            "Use one such as `postgresql`, `postgresql+pg8000`, `mysql+pymysql` or `sqlite`."
        ) from error
    # SQLAlchemy 1.4 calls the driver's import `dbapi()`, 2.0 `import_dbapi()`.
    import_driver = getattr(dialect_class, "import_dbapi", None) or dialect_class.dbapi
    try:
        import_driver()
    except ImportError as error:
        raise missing_package(error, store, f"the SQL dialect `{dialect}` (`tracker_store.{key}`)") from error


@contextmanager
def no_silent_fallback(store: Text) -> Iterator[None]:
    """Re-raise the two errors Rasa swallows as `InvalidConfigException`, the original chained.

    `store` as for `missing_package`.
    """
    try:
        yield
    except ImportError as error:
        raise missing_package(error, store) from error
    except AttributeError as error:
        raise InvalidConfigException(
            f"The tracker store {store} failed to start ({type(error).__name__}: {error}); the traceback "
            f"above says where. Check its settings under `tracker_store` in endpoints.yml. {FALLBACK}"
        ) from error


def fails_loudly(store: Text) -> Callable[[Function], Function]:
    """Decorator for a store's `__init__`: see `no_silent_fallback`; `store` as for `missing_package`."""

    def decorate(init: Function) -> Function:
        @functools.wraps(init)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_silent_fallback(store):
                return init(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def refuse_in_memory_fallback() -> None:
    """Make Rasa's fallback for a `tracker_store.type` it cannot import stop the start.

    Covers what no store of ours can: a misspelt module path in endpoints.yml (or a store
    module whose import fails) never reaches our code, and Rasa only warns. Turning that
    one warning into an error makes `rasa run` stop with it, the `ImportError` chained.
    Process-wide; call before the agent is loaded. Calling it again adds nothing.
    """
    if not any(
        action == "error" and getattr(message, "pattern", None) == RASA_FALLBACK_WARNING
        for action, message, *_ in warnings.filters
    ):
        warnings.filterwarnings("error", message=RASA_FALLBACK_WARNING, category=UserWarning)
