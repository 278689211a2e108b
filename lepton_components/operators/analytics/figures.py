"""How the bot did, per UTC day and over the window, from the turn log.

Two grouped queries (per day and conversation, then per day; per conversation, then
overall), so a month of traffic costs the database a scan of the indexed window, not
this process. Definitions (docs/operators.md):

* conversations: distinct conversations with at least one customer message;
* contained: of those, the ones that neither ran the handoff action nor had a message
  logged for a person (the `human` flag); containment = contained / conversations;
* bot turns: customer messages the bot answered (not held by a person);
  fallback rate = bot turns with a fallback / bot turns;
  knowledge-base answer rate = bot turns answered from the knowledge base / bot turns;
* handed off: conversations in which the handoff action ran; handoff rate = handed
  off / conversations;
* feedback up / down: answers of the day the customers rated (the latest rating counts).

A conversation active on several days counts on each of those days, and once in the
totals. Rates are None when there is nothing to divide by.
"""

import datetime
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Text

import sqlalchemy as sa

from lepton_components.operators.analytics.turn_log import DOWN, UP, count_of, turns

MAX_DAYS = 365


@dataclass(frozen=True)
class Figures:
    """The counts and rates of one day, or of the whole window."""

    conversations: int = 0
    contained: int = 0
    handed_off: int = 0
    bot_turns: int = 0
    fallback_turns: int = 0
    kb_answers: int = 0
    feedback_up: int = 0
    feedback_down: int = 0

    @staticmethod
    def _rate(part: int, whole: int) -> Optional[float]:
        return round(part / whole, 4) if whole else None

    @property
    def containment(self) -> Optional[float]:
        return self._rate(self.contained, self.conversations)

    @property
    def handoff_rate(self) -> Optional[float]:
        return self._rate(self.handed_off, self.conversations)

    @property
    def fallback_rate(self) -> Optional[float]:
        return self._rate(self.fallback_turns, self.bot_turns)

    @property
    def kb_answer_rate(self) -> Optional[float]:
        return self._rate(self.kb_answers, self.bot_turns)

    def as_json(self) -> Dict[Text, Any]:
        return {
            **asdict(self),
            "containment": self.containment,
            "fallback_rate": self.fallback_rate,
            "kb_answer_rate": self.kb_answer_rate,
            "handoff_rate": self.handoff_rate,
        }


@dataclass(frozen=True)
class Report:
    first_day: datetime.date
    last_day: datetime.date
    totals: Figures
    daily: List[datetime.date]
    per_day: Dict[datetime.date, Figures]

    def as_json(self) -> Dict[Text, Any]:
        return {
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "days": len(self.daily),
            "totals": self.totals.as_json(),
            "daily": [{"day": day.isoformat(), **self.per_day[day].as_json()} for day in self.daily],
        }


def window(days: int, today: Optional[datetime.date] = None) -> List[datetime.date]:
    """The last `days` UTC days, oldest first, ending today."""
    last = today or datetime.datetime.now(datetime.timezone.utc).date()
    return [last - datetime.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _per_conversation(first: datetime.date, last: datetime.date, *keys: Any) -> Any:
    bot = turns.c.human.is_(False)
    return (
        sa.select(
            *keys,
            sa.func.max(sa.case((sa.or_(turns.c.handoff.is_(True), turns.c.human.is_(True)), 1), else_=0)).label(
                "escalated"
            ),
            sa.func.max(sa.case((turns.c.handoff.is_(True), 1), else_=0)).label("handed_off"),
            count_of(bot).label("bot_turns"),
            count_of(sa.and_(bot, turns.c.fallback.is_(True))).label("fallback_turns"),
            count_of(sa.and_(bot, turns.c.faq_answered.is_(True))).label("kb_answers"),
            count_of(turns.c.feedback == UP).label("feedback_up"),
            count_of(turns.c.feedback == DOWN).label("feedback_down"),
        )
        .where(turns.c.day >= first, turns.c.day <= last)
        .group_by(turns.c.conversation_id, *keys)
        .subquery()
    )


def _summed(conversations: Any, *keys: Any) -> Any:
    column = conversations.c
    return sa.select(
        *keys,
        sa.func.count().label("conversations"),
        sa.func.sum(column.escalated).label("escalated"),
        sa.func.sum(column.handed_off).label("handed_off"),
        sa.func.sum(column.bot_turns).label("bot_turns"),
        sa.func.sum(column.fallback_turns).label("fallback_turns"),
        sa.func.sum(column.kb_answers).label("kb_answers"),
        sa.func.sum(column.feedback_up).label("feedback_up"),
        sa.func.sum(column.feedback_down).label("feedback_down"),
    )


def _figures(row: Any) -> Figures:
    conversations = int(row.conversations or 0)
    return Figures(
        conversations=conversations,
        contained=conversations - int(row.escalated or 0),
        handed_off=int(row.handed_off or 0),
        bot_turns=int(row.bot_turns or 0),
        fallback_turns=int(row.fallback_turns or 0),
        kb_answers=int(row.kb_answers or 0),
        feedback_up=int(row.feedback_up or 0),
        feedback_down=int(row.feedback_down or 0),
    )


def report(engine: sa.engine.Engine, days: int, today: Optional[datetime.date] = None) -> Report:
    """The figures of the last `days` days (1 to MAX_DAYS). Blocking: call through `asyncio.to_thread`."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1 to {MAX_DAYS}, got {days}")
    daily = window(days, today)
    first, last = daily[0], daily[-1]
    by_day = _per_conversation(first, last, turns.c.day)
    overall = _per_conversation(first, last)
    with engine.connect() as connection:
        rows = connection.execute(_summed(by_day, by_day.c.day).group_by(by_day.c.day)).all()
        total = connection.execute(_summed(overall)).one()
    per_day = {day: Figures() for day in daily}
    for row in rows:
        day = row.day if isinstance(row.day, datetime.date) else datetime.date.fromisoformat(str(row.day))
        per_day[day] = _figures(row)
    return Report(first, last, _figures(total), daily, per_day)
