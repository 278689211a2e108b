"""Handoff settings: the demo's defaults, opening hours in the bot's time zone, and bad values
refused at start-up with the key and the fix."""

from datetime import datetime
from typing import Any, Dict
from zoneinfo import ZoneInfo

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.operators.console import OperatorConsoleInput
from lepton_components.operators.handoff.settings import HandoffSettings

SECRET = "webhook-secret-0123456789-abcdefghij"


def at(text: str, zone: str = "America/New_York") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_defaults_are_the_demos_hours_in_new_york() -> None:
    settings = HandoffSettings.from_mapping({})
    assert (settings.queue, settings.wait_timeout_minutes, settings.handoff_actions) == ("support", 30.0, ("utter_handoff",))
    assert settings.webhook is None and settings.helpdesk_token is None
    hours = settings.opening_hours
    assert hours.is_open(at("2026-11-30T08:00"))  # Monday
    assert not hours.is_open(at("2026-11-30T07:59"))
    assert hours.is_open(at("2026-11-30T19:59")) and not hours.is_open(at("2026-11-30T20:00"))
    assert hours.is_open(at("2026-12-05T09:00")) and not hours.is_open(at("2026-12-05T17:00"))  # Saturday
    assert not hours.is_open(at("2026-12-06T12:00"))  # Sunday
    # 00:30 UTC on Tuesday is still Monday 19:30 in New York: open.
    assert hours.is_open(at("2026-12-01T00:30", "UTC"))


def test_hours_follow_daylight_saving_time() -> None:
    hours = HandoffSettings.from_mapping({}).opening_hours
    # 12:30 UTC is 08:30 in New York in summer (EDT) but 07:30 in winter (EST).
    assert hours.is_open(at("2026-07-06T12:30", "UTC"))
    assert not hours.is_open(at("2026-12-07T12:30", "UTC"))


def test_custom_zone_split_days_and_midnight() -> None:
    week: Dict[str, Any] = {day: "closed" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    week["mon"] = ["09:00-12:00", "13:00-24:00"]
    hours = HandoffSettings.from_mapping({"timezone": "Europe/Berlin", "opening_hours": week}).opening_hours
    assert hours.is_open(at("2026-11-30T11:59", "Europe/Berlin"))
    assert not hours.is_open(at("2026-11-30T12:30", "Europe/Berlin"))
    assert hours.is_open(at("2026-11-30T23:59", "Europe/Berlin"))
    assert not hours.is_open(at("2026-12-01T00:00", "Europe/Berlin"))
    assert hours.describe()[0] == "mon 09:00-12:00, 13:00-24:00"


@pytest.mark.parametrize(
    "handoff, key, fix",
    [
        ({"timezone": "Mars/Olympus"}, "handoff.timezone", "IANA"),
        ({"opening_hours": {"mon": "08:00-20:00"}}, "handoff.opening_hours", "seven days"),
        ({"opening_hours": {"monday": "08:00-20:00"}}, "handoff.opening_hours", "unknown: ['monday']"),
        ({"opening_hours": {**{d: "closed" for d in ("mon", "tue", "wed", "thu", "fri", "sat")}, "sun": "8-20"}},
         "handoff.opening_hours", '"08:00-20:00"'),
        ({"opening_hours": {**{d: "closed" for d in ("mon", "tue", "wed", "thu", "fri", "sat")}, "sun": "22:00-02:00"}},
         "handoff.opening_hours", "two"),
        ({"queue": "Support Team"}, "handoff.queue", "`support`"),
        ({"wait_timeout_minutes": 0}, "handoff.wait_timeout_minutes", "above 0"),
        ({"wait_timeout_minutes": "30"}, "handoff.wait_timeout_minutes", "e.g. 30"),
        ({"handoff_actions": "utter_handoff"}, "handoff.handoff_actions", "[utter_handoff]"),
        ({"webhook": {"url": "https://helpdesk.example/hook"}}, "handoff.webhook.secret", "is required"),
        ({"webhook": {"url": "https://helpdesk.example/hook", "secret": "short"}}, "handoff.webhook.secret", "32"),
        ({"webhook": {"url": "https://helpdesk.example/hook", "secret": "${LEPTON_HANDOFF_WEBHOOK_SECRET}"}},
         "handoff.webhook.secret", "unset variable"),
        ({"webhook": {"url": "ftp://helpdesk.example", "secret": SECRET}}, "handoff.webhook.url", "https://"),
        ({"webhook": {"url": "https://h.example", "secret": SECRET, "timeout_seconds": 0}},
         "handoff.webhook.timeout_seconds", "above 0"),
        ({"webhook": {"url": "https://h.example", "secret": SECRET, "retries": 3}}, "handoff.webhook", "unknown keys"),
        ({"helpdesk_token": "too-short"}, "handoff.helpdesk_token", "32"),
        ({"queues": ["support"]}, "handoff", "unknown `handoff` keys ['queues']"),
    ],
)
def test_bad_values_stop_the_start_naming_the_key_and_fix(handoff: Dict[str, Any], key: str, fix: str) -> None:
    # The console is built when Rasa reads credentials.yml, before the server serves.
    with pytest.raises(InvalidConfigException) as raised:
        OperatorConsoleInput.from_credentials({"handoff": handoff})
    message = str(raised.value)
    assert f"`{key}" in message or key in message, message
    assert fix in message, message


def test_a_complete_webhook_and_helpdesk_token_are_taken() -> None:
    settings = HandoffSettings.from_mapping({
        "webhook": {"url": "https://helpdesk.example/hook", "secret": SECRET, "timeout_seconds": 2},
        "helpdesk_token": SECRET,
        "handoff_actions": ["utter_handoff", "action_transfer"],
    })
    assert settings.webhook is not None and settings.webhook.timeout_seconds == 2.0
    assert settings.helpdesk_token == SECRET and settings.handoff_actions == ("utter_handoff", "action_transfer")
