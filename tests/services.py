"""One rule for tests that need a service the machine may lack (PostgreSQL, Redis, Chromium).

On a developer's machine a missing service skips the test, naming how to start it.
Under CI (the `CI` environment variable set, as CI systems and `.ci/run` do) it fails
the test instead: a suite that quietly skipped its lock-store, outage, two-replica and
browser tests would pass without having tested them.
"""

import os
from typing import NoReturn, Text

import pytest

CI_ENV = "CI"


def in_ci() -> bool:
    return os.environ.get(CI_ENV, "").strip().lower() not in ("", "0", "false", "no")


def require_service(reason: Text) -> NoReturn:
    """Skip (locally) or fail (under CI) the current test because `reason` names a missing service."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)
