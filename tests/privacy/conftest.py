"""Shared helpers for the privacy tests: a policy factory with a test secret."""

from typing import Any, Callable, Iterator

import pytest

from lepton_components.privacy.event_masker import EventMasker
from lepton_components.privacy.log_filter import PiiLogFilter, _all_handlers
from lepton_components.privacy.privacy_policy import DEFAULT_SECRET_ENV, PrivacyPolicy

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def make_masker() -> Callable[..., EventMasker]:
    """`make_masker(slots={...}, ...)`: a masker for these settings, with a hash secret."""

    def make(secret: str = SECRET, **settings: Any) -> EventMasker:
        settings.setdefault("phone_regions", ["US", "GB"])
        return EventMasker(PrivacyPolicy.from_settings(settings, environ={DEFAULT_SECRET_ENV: secret}))

    return make


@pytest.fixture(autouse=True)
def no_log_filters_left_behind() -> Iterator[None]:
    """Stores installed in a test put filters on pytest's own handlers; take them off after."""
    yield
    for handler in _all_handlers():
        for item in [item for item in handler.filters if isinstance(item, PiiLogFilter)]:
            handler.removeFilter(item)
