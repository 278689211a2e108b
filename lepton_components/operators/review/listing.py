"""Which conversations need a look: those whose turns in the window carry a flag.

One grouped query over `lepton_turns` (indexed by day) gives, per conversation, the
count of each flag, its last activity and channel, newest first, one page at a time;
a second query fetches the first flagged question of just that page's conversations.
"""

import datetime
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

import sqlalchemy as sa

from lepton_components.operators.analytics.turn_log import DOWN, count_of, turns

FLAGS = ("fallback", "rephrase", "low_confidence", "choices", "handoff", "negative_feedback")
PAGE_SIZE = 25


def flag_condition(flag: Text) -> Any:
    """The SQL condition that a turn carries `flag`."""
    if flag == "negative_feedback":
        return turns.c.feedback == DOWN
    if flag not in FLAGS:
        raise ValueError(f"unknown flag {flag!r}; the flags are {FLAGS}")
    return turns.c[flag].is_(True)


def any_flag() -> Any:
    return sa.or_(*(flag_condition(flag) for flag in FLAGS))


@dataclass(frozen=True)
class Attention:
    """One conversation of the review list."""

    conversation_id: Text
    channel: Optional[Text]
    last_at: float
    turns: int
    counts: Dict[Text, int]
    first_question: Optional[Text]


def attention_page(
    engine: sa.engine.Engine, since: datetime.date, flag: Optional[Text], page: int, page_size: int = PAGE_SIZE
) -> Tuple[List[Attention], int]:
    """The conversations of page `page` (1-based) with `flag` (any flag if None), and their total."""
    wanted = flag_condition(flag) if flag else any_flag()
    counts = [count_of(flag_condition(name)).label(name) for name in FLAGS]
    grouped = (
        sa.select(
            turns.c.conversation_id,
            sa.func.max(turns.c.channel).label("channel"),
            sa.func.max(turns.c.at).label("last_at"),
            sa.func.count().label("turns"),
            *counts,
        )
        .where(turns.c.day >= since)
        .group_by(turns.c.conversation_id)
        .having(count_of(wanted) > 0)
    )
    listed = grouped.subquery()
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(listed)).scalar_one()
        rows = connection.execute(
            sa.select(listed)
            .order_by(listed.c.last_at.desc(), listed.c.conversation_id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
        firsts = _first_questions(connection, [row.conversation_id for row in rows], since, wanted)
    return [
        Attention(
            row.conversation_id,
            row.channel,
            row.last_at,
            row.turns,
            {name: int(getattr(row, name) or 0) for name in FLAGS},
            firsts.get(row.conversation_id),
        )
        for row in rows
    ], int(total)


def _first_questions(connection: Any, ids: Sequence[Text], since: datetime.date, wanted: Any) -> Dict[Text, Text]:
    if not ids:
        return {}
    first = (
        sa.select(turns.c.conversation_id, sa.func.min(turns.c.at).label("first_at"))
        .where(turns.c.conversation_id.in_(ids), turns.c.day >= since, wanted)
        .group_by(turns.c.conversation_id)
        .subquery()
    )
    query = sa.select(turns.c.conversation_id, turns.c.text).join(
        first, sa.and_(turns.c.conversation_id == first.c.conversation_id, turns.c.at == first.c.first_at)
    )
    found: Dict[Text, Text] = {}
    for row in connection.execute(query):
        found.setdefault(row.conversation_id, row.text)
    return found
