"""The handoff queue: which conversations wait for a person, and who holds which.

One row per conversation a person has (`conversation_id` is unique), in the tracker
store's SQL database, so every replica sees the same queue and a restart loses nothing.
A conversation leaves the table when it goes back to the bot; its history is the
tracker's (every claim, reply and release is recorded there with the operator's name).

Changes of hands are single conditional statements (`UPDATE ... WHERE status =
'waiting'`, `DELETE ... WHERE status = ... AND agent = ...`), so of two agents on two
replicas clicking "Take conversation" at once exactly one gets it, and a wait that
times out can never take a conversation from the agent who just claimed it.

Other parts read it through `await HandoffQueue(engine).status_of(conversation_id)`.
"""

import asyncio
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Text

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lepton_components.operators.database import metadata, one_or_none

WAITING, HELD = "waiting", "held"
CUSTOMER_ASKED, BOT_GAVE_UP = "customer_asked", "bot_gave_up"

handoffs = sa.Table(
    "lepton_handoffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, unique=True),
    sa.Column("queue", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("agent", sa.String(128), nullable=True, index=True),
    sa.Column("reason", sa.String(32), nullable=False),
    # Unix times (seconds), as Rasa's event timestamps.
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=True),
    sa.Column("last_customer_at", sa.Float, nullable=True),
    # Customer messages the holding agent has not opened yet (all of them while waiting).
    sa.Column("unread", sa.Integer, nullable=False, default=0),
)


@dataclass(frozen=True)
class Handoff:
    """One conversation a person has or is to have."""

    conversation_id: Text
    queue: Text
    channel: Text
    status: Text
    agent: Optional[Text]
    reason: Text
    opened_at: float
    claimed_at: Optional[float]
    last_customer_at: Optional[float]
    unread: int

    @classmethod
    def from_row(cls, row: Any) -> "Handoff":
        return cls(
            conversation_id=row.conversation_id,
            queue=row.queue,
            channel=row.channel,
            status=row.status,
            agent=row.agent,
            reason=row.reason,
            opened_at=row.opened_at,
            claimed_at=row.claimed_at,
            last_customer_at=row.last_customer_at,
            unread=row.unread or 0,
        )

    def as_json(self) -> dict:
        return {
            "conversation_id": self.conversation_id,
            "queue": self.queue,
            "channel": self.channel,
            "status": self.status,
            "agent": self.agent,
            "reason": self.reason,
            "opened_at": self.opened_at,
            "claimed_at": self.claimed_at,
            "last_customer_at": self.last_customer_at,
            "unread": self.unread,
        }


def _one(engine: sa.engine.Engine, query: Any) -> Optional[Handoff]:
    row = one_or_none(engine, query)
    return Handoff.from_row(row) if row is not None else None


def _all(engine: sa.engine.Engine, query: Any) -> List[Handoff]:
    with engine.connect() as connection:
        return [Handoff.from_row(row) for row in connection.execute(query)]


def _changed(engine: sa.engine.Engine, statement: Any) -> int:
    with engine.begin() as connection:
        return connection.execute(statement).rowcount


class HandoffQueue:
    """Async access to `lepton_handoffs`; every statement runs in a worker thread."""

    def __init__(self, engine: sa.engine.Engine, clock: Any = time.time) -> None:
        self.engine = engine
        self.clock = clock

    async def status_of(self, conversation_id: Text) -> Optional[Handoff]:
        """The conversation's handoff, or None when the bot has it."""
        query = handoffs.select().where(handoffs.c.conversation_id == conversation_id)
        return await asyncio.to_thread(_one, self.engine, query)

    async def open(self, conversation_id: Text, queue: Text, channel: Text, reason: Text) -> Optional[Handoff]:
        """Puts the conversation in `queue`; None if it already had a handoff (nothing changes)."""
        now = self.clock()
        values = dict(
            conversation_id=conversation_id, queue=queue, channel=channel, status=WAITING, agent=None,
            reason=reason, opened_at=now, claimed_at=None, last_customer_at=now, unread=0,
        )

        def insert() -> bool:
            try:
                with self.engine.begin() as connection:
                    connection.execute(handoffs.insert().values(**values))
                return True
            except IntegrityError:
                return False

        if not await asyncio.to_thread(insert):
            return None
        return Handoff(**values)

    async def claim(self, conversation_id: Text, agent: Text) -> bool:
        """Gives a waiting conversation to `agent`; False if it is not waiting (any more)."""
        statement = (
            handoffs.update()
            .where(handoffs.c.conversation_id == conversation_id, handoffs.c.status == WAITING)
            .values(status=HELD, agent=agent, claimed_at=self.clock(), unread=0)
        )
        return await asyncio.to_thread(_changed, self.engine, statement) == 1

    async def unclaim(self, conversation_id: Text, agent: Text) -> bool:
        """Puts a conversation `agent` holds back in the queue (its claim could not be recorded)."""
        statement = (
            handoffs.update()
            .where(handoffs.c.conversation_id == conversation_id, handoffs.c.status == HELD, handoffs.c.agent == agent)
            .values(status=WAITING, agent=None, claimed_at=None)
        )
        return await asyncio.to_thread(_changed, self.engine, statement) == 1

    async def release(self, handoff: Handoff) -> bool:
        """Gives the conversation back to the bot if it is still as `handoff` says; else False."""
        agent = handoffs.c.agent.is_(None) if handoff.agent is None else handoffs.c.agent == handoff.agent
        statement = handoffs.delete().where(
            handoffs.c.conversation_id == handoff.conversation_id, handoffs.c.status == handoff.status, agent
        )
        return await asyncio.to_thread(_changed, self.engine, statement) == 1

    async def expire(self, conversation_id: Text, opened_before: float) -> bool:
        """Ends a wait that began before `opened_before`; False if it was claimed or ended meanwhile."""
        statement = handoffs.delete().where(
            handoffs.c.conversation_id == conversation_id,
            handoffs.c.status == WAITING,
            handoffs.c.opened_at < opened_before,
        )
        return await asyncio.to_thread(_changed, self.engine, statement) == 1

    async def overdue(self, opened_before: float, limit: int = 100) -> List[Handoff]:
        """Waits that began before `opened_before`, oldest first."""
        query = (
            handoffs.select()
            .where(handoffs.c.status == WAITING, handoffs.c.opened_at < opened_before)
            .order_by(handoffs.c.opened_at)
            .limit(limit)
        )
        return await asyncio.to_thread(_all, self.engine, query)

    async def waiting_for(self, queues: Optional[Sequence[Text]]) -> List[Handoff]:
        """Waiting conversations of `queues` (None: every queue), longest waiting first."""
        query = handoffs.select().where(handoffs.c.status == WAITING)
        if queues is not None:
            query = query.where(handoffs.c.queue.in_(list(queues)))
        return await asyncio.to_thread(_all, self.engine, query.order_by(handoffs.c.opened_at))

    async def held_by(self, agent: Text) -> List[Handoff]:
        query = handoffs.select().where(handoffs.c.status == HELD, handoffs.c.agent == agent)
        return await asyncio.to_thread(_all, self.engine, query.order_by(handoffs.c.claimed_at))

    async def held_by_others(self, agent: Text) -> List[Handoff]:
        """Conversations other agents hold (for admins)."""
        query = handoffs.select().where(handoffs.c.status == HELD, handoffs.c.agent != agent)
        return await asyncio.to_thread(_all, self.engine, query.order_by(handoffs.c.claimed_at))

    async def touch(self, conversation_id: Text) -> bool:
        """Records a customer message: one more unread, and when it came."""
        statement = (
            handoffs.update()
            .where(handoffs.c.conversation_id == conversation_id)
            .values(unread=handoffs.c.unread + 1, last_customer_at=self.clock())
        )
        return await asyncio.to_thread(_changed, self.engine, statement) == 1

    async def mark_read(self, conversation_id: Text, agent: Text) -> None:
        """The holding agent has seen every message so far."""
        statement = (
            handoffs.update()
            .where(handoffs.c.conversation_id == conversation_id, handoffs.c.agent == agent)
            .values(unread=0)
        )
        await asyncio.to_thread(_changed, self.engine, statement)
