"""`require_service`: a missing service skips a test on a laptop and fails it under CI."""

import pytest

from tests.services import CI_ENV, in_ci, require_service


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("yes", True), ("", False),
                                             ("false", False), ("0", False), ("no", False)])
def test_ci_is_read_like_ci_systems_set_it(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(CI_ENV, value)
    assert in_ci() is expected


def test_locally_a_missing_service_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CI_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Redis is not running"):
        require_service("Redis is not running")


def test_under_ci_a_missing_service_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CI_ENV, "true")
    with pytest.raises(pytest.fail.Exception, match="Redis is not running.*CI is set"):
        require_service("Redis is not running")
