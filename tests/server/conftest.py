"""Each test sets the environment variables the hardening reads itself."""

import pytest

from lepton_components.server.api_auth import ALLOW_OPEN_API_ENV, API_TOKEN_ENV
from lepton_components.server.request_limits import MAX_REQUEST_BYTES_ENV


@pytest.fixture(autouse=True)
def no_hardening_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (API_TOKEN_ENV, ALLOW_OPEN_API_ENV, MAX_REQUEST_BYTES_ENV):
        monkeypatch.delenv(name, raising=False)
