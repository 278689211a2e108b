"""Fixtures for linking tests: a controllable clock, a registry and linked stores on SQLite
in tmp_path, the demo domain, and helpers that play a customer's turn and link command."""

import re
from pathlib import Path
from typing import Awaitable, Callable, Iterator, List, Optional, Text

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from lepton_components.identity import linked_tracker_store
from lepton_components.identity.link_commands import LinkCommandHandler
from lepton_components.identity.link_registry import LinkLimits, LinkRegistry
from lepton_components.identity.linked_tracker_store import LinkedTrackerStore

REPO = Path(__file__).resolve().parents[2]
CODE_IN_REPLY = re.compile(r"link code is ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")


class FakeClock:
    """Registry time that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_718_031_552.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def domain() -> Domain:
    """The demo bot's domain: order_number/email slots and order_status_form."""
    return Domain.load(str(REPO / "bot" / "domain.yml"))


@pytest.fixture
def registry(tmp_path: Path, clock: FakeClock) -> LinkRegistry:
    return LinkRegistry.from_url(f"sqlite:///{tmp_path / 'identity.db'}", LinkLimits(), clock=clock)


@pytest.fixture(autouse=True)
def no_active_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a process-wide store and leaves none behind."""
    monkeypatch.setattr(linked_tracker_store, "_active_store", None)
    yield


def inner_store(kind: Text, domain: Domain, tmp_path: Path) -> TrackerStore:
    if kind == "memory":
        return InMemoryTrackerStore(domain)
    return SQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "trackers.db"))


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest, domain: Domain, registry: LinkRegistry, tmp_path: Path) -> LinkedTrackerStore:
    """A linked store over Rasa's in-memory or SQL store (every store test runs on both)."""
    return LinkedTrackerStore(domain, inner=inner_store(request.param, domain, tmp_path), registry=registry)


async def turn(
    store: TrackerStore, sender_id: Text, channel: Text, text: Text, events: Optional[List[Event]] = None
) -> DialogueStateTracker:
    """One customer turn as the processor runs it: fetch, append the message and what
    the bot did, save. Returns the saved tracker."""
    tracker = await store.get_or_create_tracker(sender_id, append_action_listen=False)
    tracker.update_with_events([UserUttered(text, input_channel=channel), *(events or [])], store.domain)
    await store.save(tracker)
    return tracker


LinkFunction = Callable[[Text, Text, Text, Text], Awaitable[Text]]


@pytest.fixture
def link(store: LinkedTrackerStore) -> LinkFunction:
    """Links two conversations the way a customer does: `/link` here, `/link <code>` there."""

    async def run(issuer: Text, issuer_channel: Text, redeemer: Text, redeemer_channel: Text) -> Text:
        handler = LinkCommandHandler(store)
        reply = await handler.handle("/link", issuer, issuer_channel)
        code = CODE_IN_REPLY.search(reply or "")
        assert code, reply
        answer = await handler.handle(f"/link {code.group(1)}", redeemer, redeemer_channel)
        assert answer and answer.startswith("Done"), answer
        return code.group(1)

    return run


def code_from(reply: Optional[Text]) -> Text:
    match = CODE_IN_REPLY.search(reply or "")
    assert match, reply
    return match.group(1)


