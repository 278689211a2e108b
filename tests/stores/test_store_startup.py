"""A tracker store that cannot work must stop `rasa run`, not become an in-memory store.

Rasa's loader for stores named by module path answers an `ImportError` or `AttributeError`
with a warning and an `InMemoryTrackerStore` (`rasa/core/tracker_store.py` ~L1555-1568).
Each test builds the store the way `rasa run` does, with `TrackerStore.create` and the
endpoint settings, with a driver made unimportable (`sys.modules[name] = None` is what
Python's import system reads as "not installed").
"""

import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Text

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.exceptions import InvalidConfigException
from rasa.utils.endpoints import EndpointConfig

import lepton_components.privacy
from lepton_components.identity import linked_tracker_store
from lepton_components.privacy.privacy_policy import DEFAULT_SECRET_ENV
from lepton_components.stores.store_startup import (
    RASA_FALLBACK_WARNING,
    StoreDependencyMissing,
    refuse_in_memory_fallback,
)

STRICT = "lepton_components.stores.strict_tracker_store.StrictSQLTrackerStore"
LINKED = "lepton_components.identity.linked_tracker_store.LinkedTrackerStore"
MASKING = "lepton_components.privacy.masking_tracker_store.MaskingTrackerStore"
POSTGRES = {"dialect": "postgresql", "url": "127.0.0.1", "port": 5432, "db": "lepton", "username": "postgres"}
DOMAIN = Domain.empty()


class ImportingStore(TrackerStore):
    """A third-party store whose driver import fails, as Rasa's loader sees it."""

    def __init__(self, **_: Any) -> None:
        import lepton_missing_driver_for_tests  # noqa: F401


class BrokenStore(TrackerStore):
    """A store whose constructor trips over a setting of the wrong type."""

    def __init__(self, host: Any = None, **_: Any) -> None:
        host.startswith("redis://")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linked_tracker_store, "_active_store", None)
    monkeypatch.setenv(DEFAULT_SECRET_ENV, "test-secret-0123456789abcdef")


def create(store_type: Text, **settings: Any) -> TrackerStore:
    """`tracker_store:` in endpoints.yml, built by Rasa's own factory."""
    with warnings.catch_warnings():
        # Rasa's fallback announces itself only as this warning; make it fail the test.
        warnings.filterwarnings("error", message="Tracker store with type")
        return TrackerStore.create(EndpointConfig(type=store_type, **settings), DOMAIN)


def test_stock_rasa_swallows_an_import_error_into_an_in_memory_store() -> None:
    """The negative control: what a missing driver does to a store without our guard."""
    with pytest.warns(UserWarning, match="Using `InMemoryTrackerStore` instead"):
        store = TrackerStore.create(EndpointConfig(type=f"{__name__}.ImportingStore"), DOMAIN)
    assert isinstance(store, InMemoryTrackerStore)


SQL_INNER = {"type": "SQL", **POSTGRES}
STRICT_INNER = {"type": STRICT, **POSTGRES}
CONFIGURATIONS = {
    "strict": (STRICT, POSTGRES),
    "linked over SQL": (LINKED, {"inner": SQL_INNER}),
    "linked over strict": (LINKED, {"inner": STRICT_INNER}),
    "masking over SQL": (MASKING, {"inner": SQL_INNER}),
    "masking over linked over strict": (MASKING, {"inner": {"type": LINKED, "inner": STRICT_INNER}}),
}


@pytest.mark.parametrize("store_type, settings", CONFIGURATIONS.values(), ids=list(CONFIGURATIONS))
def test_a_missing_postgresql_driver_stops_startup_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, store_type: Text, settings: Dict[Text, Any]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(StoreDependencyMissing) as raised:
        create(store_type, **settings)
    message = str(raised.value)
    assert "`pip install psycopg2-binary`" in message and "the SQL dialect `postgresql`" in message
    # The error Rasa shows unchanged, and not one its loader swallows.
    assert isinstance(raised.value, InvalidConfigException) and not isinstance(raised.value, ImportError)


@pytest.mark.parametrize(
    "dialect, module, package",
    [
        ("postgresql+pg8000", "pg8000", "pg8000"),
        ("mysql", "MySQLdb", "mysqlclient"),
        ("mysql+pymysql", "pymysql", "PyMySQL"),
        ("mssql+pyodbc", "pyodbc", "pyodbc"),
        ("oracle", "cx_Oracle", "cx_Oracle"),
    ],
)
def test_the_package_is_derived_from_the_dialect(
    monkeypatch: pytest.MonkeyPatch, dialect: Text, module: Text, package: Text
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    for store_type, settings in [
        (STRICT, {**POSTGRES, "dialect": dialect}),
        (LINKED, {"inner": {"type": "SQL", **POSTGRES, "dialect": dialect}}),
    ]:
        with pytest.raises(StoreDependencyMissing) as raised:
            create(store_type, **settings)
        assert f"`pip install {package}`" in str(raised.value) and f"module `{module}`" in str(raised.value)


def test_a_registry_url_whose_driver_is_missing_names_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)
    inner = {"type": "SQL", "dialect": "sqlite", "db": str(tmp_path / "trackers.db")}
    with pytest.raises(StoreDependencyMissing, match=r"`tracker_store.registry_url`.*`pip install PyMySQL`"):
        create(LINKED, inner=inner, registry_url="mysql+pymysql://bot@db/lepton")


def test_a_misspelt_dialect_names_the_key() -> None:
    # SQLAlchemy 1.4 dropped the `postgres` alias.
    with pytest.raises(InvalidConfigException, match=r"`tracker_store.dialect` is 'postgres'.*`postgresql`"):
        create(STRICT, **{**POSTGRES, "dialect": "postgres"})


@pytest.mark.parametrize("wrapper", [LINKED, MASKING])
def test_a_misspelt_inner_type_is_refused_not_replaced_by_memory(wrapper: Text, tmp_path: Path) -> None:
    misspelt = {"type": STRICT[:-1], "dialect": "sqlite", "db": str(tmp_path / "t.db")}
    with pytest.raises(InvalidConfigException, match=r"`tracker_store.inner.type` is '.*StrictSQLTrackerStor'"):
        create(wrapper, inner=misspelt, registry_url=f"sqlite:///{tmp_path / 'links.db'}")


def test_an_inner_store_failing_on_its_own_import_names_the_module() -> None:
    with pytest.raises(StoreDependencyMissing, match="`pip install lepton_missing_driver_for_tests`"):
        create(MASKING, inner={"type": f"{__name__}.ImportingStore"})


def test_an_attribute_error_in_an_inner_store_stops_startup() -> None:
    with pytest.raises(InvalidConfigException, match=r"failed to start \(AttributeError: 'NoneType'"):
        create(MASKING, inner={"type": f"{__name__}.BrokenStore"})


def test_an_inner_store_of_another_kind_still_works(tmp_path: Path) -> None:
    """Module paths to any TrackerStore keep working as Rasa's loader would build them."""
    inner = {"type": "rasa.core.tracker_store.InMemoryTrackerStore"}
    store = create(LINKED, inner=inner, registry_url=f"sqlite:///{tmp_path / 'links.db'}")
    assert type(store.inner) is InMemoryTrackerStore


def test_the_masking_store_without_phonenumbers_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Its module imports `phonenumbers`; Rasa would answer that ImportError with an unmasked in-memory store."""
    package = lepton_components.privacy
    for name in [name for name in sys.modules if name.startswith("lepton_components.privacy.")]:
        # Forget the imported modules for this test only (both are put back afterwards).
        monkeypatch.delitem(sys.modules, name)
        short = name.rsplit(".", 1)[1]
        monkeypatch.setattr(package, short, getattr(package, short, None), raising=False)
    monkeypatch.setitem(sys.modules, "phonenumbers", None)
    with pytest.raises(StoreDependencyMissing, match="`pip install phonenumbers`"):
        create(MASKING, inner={"type": "SQL", "dialect": "sqlite", "db": str(tmp_path / "trackers.db")})


def test_a_misspelt_top_level_type_stops_startup_once_the_fallback_is_refused() -> None:
    """No store of ours runs for a misspelt path; the server refuses Rasa's fallback itself."""
    with warnings.catch_warnings():
        refuse_in_memory_fallback()
        refuse_in_memory_fallback()
        assert sum(getattr(f[1], "pattern", None) == RASA_FALLBACK_WARNING for f in warnings.filters) == 1
        with pytest.raises(UserWarning, match="Tracker store with type '.*StrictSQLTrackerStor' not found") as raised:
            TrackerStore.create(EndpointConfig(type=STRICT[:-1], **POSTGRES), DOMAIN)
    assert isinstance(raised.value.__context__, ImportError)
