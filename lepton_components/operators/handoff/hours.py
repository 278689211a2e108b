"""When people are there to take a conversation: opening hours per weekday in one time zone.

The bot only queues a conversation when an agent can answer it; outside these hours it
gives the email route instead, so nobody waits in a queue that nobody reads. Hours are
wall-clock times in the configured zone (daylight saving time included), one or more
`HH:MM-HH:MM` ranges per day, `24:00` meaning midnight at the end of the day.
"""

import re
from dataclasses import dataclass
from datetime import datetime, time, timezone, tzinfo
from typing import Any, Dict, List, Sequence, Text, Tuple

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOSED = "closed"
_RANGE = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
# Minutes since midnight, start inclusive, end exclusive.
Span = Tuple[int, int]

DEFAULT_OPENING_HOURS: Dict[Text, Any] = {
    "mon": "08:00-20:00",
    "tue": "08:00-20:00",
    "wed": "08:00-20:00",
    "thu": "08:00-20:00",
    "fri": "08:00-20:00",
    "sat": "09:00-17:00",
    "sun": CLOSED,
}


class BadOpeningHours(ValueError):
    """The message says what is wrong and how to write it."""


def _span(day: Text, text: Any) -> Span:
    match = _RANGE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise BadOpeningHours(f"`{day}: {text!r}` is not a range such as \"08:00-20:00\" (or `closed`).")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m):
        raise BadOpeningHours(f"`{day}: {text!r}` holds a time that does not exist (00:00 to 24:00).")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if end <= start:
        raise BadOpeningHours(
            f"`{day}: {text!r}` ends before it starts; a range past midnight is two: "
            f"\"{text.split('-')[0]}-24:00\" on this day and \"00:00-...\" on the next."
        )
    return start, end


def _day_spans(day: Text, value: Any) -> Tuple[Span, ...]:
    if value is None or value == CLOSED or value == [] or value is False:
        return ()
    items: Sequence[Any] = value if isinstance(value, list) else [value]
    return tuple(sorted(_span(day, item) for item in items))


@dataclass(frozen=True)
class OpeningHours:
    """Open spans per weekday (Monday first) in `zone`."""

    zone: tzinfo
    week: Tuple[Tuple[Span, ...], ...]

    @classmethod
    def parse(cls, zone: tzinfo, mapping: Any) -> "OpeningHours":
        if not isinstance(mapping, dict):
            raise BadOpeningHours("it must map each day (mon ... sun) to a range such as \"08:00-20:00\" or `closed`.")
        unknown = sorted(str(key) for key in mapping if key not in DAYS)
        missing = [day for day in DAYS if day not in mapping]
        if unknown or missing:
            raise BadOpeningHours(
                f"list each of the seven days {list(DAYS)} exactly once (unknown: {unknown}, missing: {missing}); "
                "write `closed` for a day without service."
            )
        return cls(zone, tuple(_day_spans(day, mapping[day]) for day in DAYS))

    def is_open(self, unix_time: float) -> bool:
        local = datetime.fromtimestamp(unix_time, timezone.utc).astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])

    def describe(self) -> List[Text]:
        """One line per day, e.g. `mon 08:00-20:00`, for logs and docs."""

        def clock(minutes: int) -> Text:
            return "24:00" if minutes == 24 * 60 else time(minutes // 60, minutes % 60).strftime("%H:%M")

        return [
            f"{day} " + (", ".join(f"{clock(start)}-{clock(end)}" for start, end in spans) or CLOSED)
            for day, spans in zip(DAYS, self.week)
        ]
