"""Who is linked with whom, the live link codes and the shared values, in SQL.

Why SQL and not memory: every replica behind the load balancer must see the same links
and codes (a code issued by one replica is redeemed on another) and links outlive
restarts. By default the tables live in the tracker store's own database (SQLite for
`make run`, the deployment's PostgreSQL when scaled); every write is one transaction.

Tables (prefix `lepton_identity_`):

* `codes`: SHA-256 digest of each live code (never the code), who asked for it, expiry.
  One live code per conversation; redeeming deletes it in the same transaction that
  checks it, so two replicas cannot both redeem it.
* `failures`: wrong codes per conversation, for the lock-out that slows guessing. There
  is deliberately no cap across all conversations: anyone could use it to lock every
  customer out; the codes' entropy (`link_codes.py`) is what makes guessing hopeless.
* `members`: conversation id -> link group, with its own expiry and a delivered version: the
  last shared-state version already delivered to that conversation.
* `state`: one row per (group, key) holding the latest shared value, the conversation
  it came from and a version (the row id, increasing). Replacing a value deletes the
  old row, so the table holds at most one row per shared key and linked customer.

This module knows nothing of Rasa: values are JSON, keys are plain names.
"""

import json
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, List, Mapping, Optional, Text, Union

import sqlalchemy as sa
import sqlalchemy.exc

from lepton_components.identity.link_codes import code_digest, new_code, normalise_code

TABLE_PREFIX = "lepton_identity_"
_metadata = sa.MetaData()

codes_table = sa.Table(
    f"{TABLE_PREFIX}codes",
    _metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("issuer", sa.String(255), nullable=False, index=True),
    sa.Column("issuer_channel", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

failures_table = sa.Table(
    f"{TABLE_PREFIX}failures",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("failed_at", sa.Float, nullable=False, index=True),
)

members_table = sa.Table(
    f"{TABLE_PREFIX}members",
    _metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("group_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("linked_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("delivered_version", sa.Integer, nullable=False, default=0),
)

state_table = sa.Table(
    f"{TABLE_PREFIX}state",
    _metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("group_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("origin", sa.String(255), nullable=False),
    sa.Column("origin_channel", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("group_id", "name", name=f"{TABLE_PREFIX}state_group_key"),
    # Versions must never be reused: SQLite without AUTOINCREMENT hands a deleted
    # highest id out again, and a member that already has it would skip the new value.
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class LinkLimits:
    """How long codes and links live and how many wrong codes are tolerated."""

    code_ttl_s: float = 300.0
    link_ttl_s: float = 30 * 24 * 3600.0
    max_failures_per_sender: int = 5
    failure_window_s: float = 900.0


class ClaimStatus(Enum):
    """Outcome of presenting a code; every refusal links and reveals nothing."""

    CLAIMED = "claimed"
    INVALID = "invalid"  # wrong, mistyped, expired or already used: indistinguishable
    LOCKED_OUT = "locked_out"  # too many wrong codes recently, the code was not even checked
    OWN_CODE = "own_code"  # sent in the conversation that asked for it
    ALREADY_LINKED = "already_linked"  # this conversation belongs to another link group


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    issuer: Optional[Text] = None
    issuer_channel: Optional[Text] = None


@dataclass(frozen=True)
class SharedChange:
    """The latest value of one shared key in a link group."""

    version: int
    key: Text
    value: Any
    origin: Text
    origin_channel: Text


@dataclass(frozen=True)
class Member:
    sender_id: Text
    channel: Text
    linked_at: float
    expires_at: float


class LinkRegistry:
    """Codes, links and shared values of every linked customer, in one SQL database."""

    def __init__(
        self,
        engine: sa.engine.Engine,
        limits: LinkLimits = LinkLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self._clock = clock
        _metadata.create_all(engine)

    @classmethod
    def from_url(cls, url: Union[Text, sa.engine.URL], limits: LinkLimits = LinkLimits(), **kwargs: Any) -> "LinkRegistry":
        return cls(sa.create_engine(url, pool_pre_ping=True), limits, **kwargs)

    # ---- codes -------------------------------------------------------------------------

    def issue_code(self, sender_id: Text, channel: Text) -> Text:
        """A new code for `sender_id`; any code it asked for earlier stops working."""
        code = new_code()
        now = self._clock()
        with self.engine.begin() as connection:
            self._purge(connection, now)
            connection.execute(codes_table.delete().where(codes_table.c.issuer == sender_id))
            connection.execute(
                codes_table.insert().values(
                    digest=code_digest(code),
                    issuer=sender_id,
                    issuer_channel=channel,
                    expires_at=now + self.limits.code_ttl_s,
                )
            )
        return code

    def claim_code(self, typed: Text, sender_id: Text) -> Claim:
        """Checks a code sent by `sender_id` and, if it is good, uses it up.

        The lock-out is checked first, so a locked-out guesser learns nothing about the code.
        """
        now = self._clock()
        with self.engine.begin() as connection:
            self._purge(connection, now)
            if self._locked_out(connection, sender_id, now):
                return Claim(ClaimStatus.LOCKED_OUT)
            code = normalise_code(typed)
            row = None
            if code is not None:
                row = connection.execute(
                    sa.select(codes_table).where(
                        codes_table.c.digest == code_digest(code), codes_table.c.expires_at > now
                    )
                ).first()
            if row is None:
                connection.execute(failures_table.insert().values(sender_id=sender_id, failed_at=now))
                return Claim(ClaimStatus.INVALID)
            if row.issuer == sender_id:
                return Claim(ClaimStatus.OWN_CODE)
            own_group = self._active_group(connection, sender_id, now)
            if own_group is not None and own_group != self._active_group(connection, row.issuer, now):
                return Claim(ClaimStatus.ALREADY_LINKED)
            # The DELETE decides between two replicas redeeming the same code at once:
            # the database lets only one of them remove the row.
            deleted = connection.execute(codes_table.delete().where(codes_table.c.digest == row.digest))
            if deleted.rowcount != 1:
                connection.execute(failures_table.insert().values(sender_id=sender_id, failed_at=now))
                return Claim(ClaimStatus.INVALID)
        return Claim(ClaimStatus.CLAIMED, row.issuer, row.issuer_channel)

    def _locked_out(self, connection: sa.engine.Connection, sender_id: Text, now: float) -> bool:
        since = now - self.limits.failure_window_s
        recent = failures_table.c.failed_at > since
        mine = connection.execute(
            sa.select(sa.func.count()).where(recent, failures_table.c.sender_id == sender_id)
        ).scalar_one()
        return mine >= self.limits.max_failures_per_sender

    # ---- links -------------------------------------------------------------------------

    def link(
        self,
        issuer: Text,
        issuer_channel: Text,
        redeemer: Text,
        redeemer_channel: Text,
        issuer_values: Mapping[Text, Any],
        redeemer_values: Mapping[Text, Any],
    ) -> Text:
        """Puts `redeemer` into `issuer`'s link group (made if needed) and seeds its state.

        A new group starts from the issuer's current values; the redeemer's values fill
        only keys the group has no value for. Each side then receives, at its next turn,
        the values that came from the other. Returns the group id.
        """
        now = self._clock()
        expires_at = now + self.limits.link_ttl_s
        with self.engine.begin() as connection:
            group = self._active_group(connection, issuer, now)
            if group is None:
                group = secrets.token_hex(16)
                self._join(connection, issuer, issuer_channel, group, now, expires_at)
                self._write_values(connection, group, issuer, issuer_channel, issuer_values, now)
            else:
                # Linking again renews the issuer's link too, not only the newcomer's.
                connection.execute(
                    members_table.update().where(members_table.c.sender_id == issuer).values(expires_at=expires_at)
                )
            self._join(connection, redeemer, redeemer_channel, group, now, expires_at)
            known = set(self._values(connection, group))
            missing = {key: value for key, value in redeemer_values.items() if key not in known}
            self._write_values(connection, group, redeemer, redeemer_channel, missing, now)
        return group

    def _join(
        self,
        connection: sa.engine.Connection,
        sender_id: Text,
        channel: Text,
        group: Text,
        now: float,
        expires_at: float,
    ) -> None:
        connection.execute(members_table.delete().where(members_table.c.sender_id == sender_id))
        connection.execute(
            members_table.insert().values(
                sender_id=sender_id, group_id=group, channel=channel, linked_at=now, expires_at=expires_at, delivered_version=0
            )
        )

    def unlink(self, sender_id: Text) -> bool:
        """Takes `sender_id` out of its group; False when it was not linked.

        A group left with a single conversation is dissolved with its shared values.
        """
        now = self._clock()
        with self.engine.begin() as connection:
            group = self._active_group(connection, sender_id, now)
            connection.execute(members_table.delete().where(members_table.c.sender_id == sender_id))
            self._purge(connection, now)
        return group is not None

    def group_of(self, sender_id: Text) -> Optional[Text]:
        """The sender's link group while its link is live and someone else is in it."""
        with self.engine.connect() as connection:
            return self._active_group(connection, sender_id, self._clock())

    def members(self, sender_id: Text) -> List[Member]:
        """The other live conversations linked with `sender_id`."""
        now = self._clock()
        with self.engine.connect() as connection:
            group = self._active_group(connection, sender_id, now)
            if group is None:
                return []
            rows = connection.execute(
                sa.select(members_table).where(
                    members_table.c.group_id == group,
                    members_table.c.expires_at > now,
                    members_table.c.sender_id != sender_id,
                )
            ).all()
        return [Member(r.sender_id, r.channel, r.linked_at, r.expires_at) for r in rows]

    def _active_group(self, connection: sa.engine.Connection, sender_id: Text, now: float) -> Optional[Text]:
        group = connection.execute(
            sa.select(members_table.c.group_id).where(
                members_table.c.sender_id == sender_id, members_table.c.expires_at > now
            )
        ).scalar()
        if group is None:
            return None
        others = connection.execute(
            sa.select(sa.func.count()).where(
                members_table.c.group_id == group,
                members_table.c.expires_at > now,
                members_table.c.sender_id != sender_id,
            )
        ).scalar_one()
        return group if others else None

    # ---- shared state ------------------------------------------------------------------

    def pending_changes(self, sender_id: Text) -> List[SharedChange]:
        """Shared values `sender_id` has not received yet, oldest first; [] when unlinked.

        Includes the sender's own values (callers skip those) so that it can tell when
        its own value is the latest one.
        """
        now = self._clock()
        with self.engine.connect() as connection:
            group = self._active_group(connection, sender_id, now)
            if group is None:
                return []
            delivered = connection.execute(
                sa.select(members_table.c.delivered_version).where(members_table.c.sender_id == sender_id)
            ).scalar_one()
            rows = connection.execute(
                sa.select(state_table)
                .where(state_table.c.group_id == group, state_table.c.version > delivered)
                .order_by(state_table.c.version)
            ).all()
        return [SharedChange(r.version, r.name, json.loads(r.value), r.origin, r.origin_channel) for r in rows]

    def shared_values(self, sender_id: Text) -> Optional[Dict[Text, Any]]:
        """The latest value of every shared key in the sender's group; None when unlinked."""
        with self.engine.connect() as connection:
            group = self._active_group(connection, sender_id, self._clock())
            return None if group is None else self._values(connection, group)

    def record_changes(self, sender_id: Text, channel: Text, values: Mapping[Text, Any]) -> None:
        """Publishes values changed in `sender_id`'s conversation to its group."""
        if not values:
            return
        for attempt in range(2):
            try:
                with self.engine.begin() as connection:
                    now = self._clock()
                    group = self._active_group(connection, sender_id, now)
                    if group is not None:
                        self._write_values(connection, group, sender_id, channel, values, now)
                return
            except sqlalchemy.exc.IntegrityError:
                # Two replicas wrote the same key at once; the retry replaces the winner's row.
                if attempt:
                    raise

    def mark_delivered(self, sender_id: Text, version: int) -> None:
        """Records that `sender_id`'s stored conversation holds shared values up to `version`."""
        with self.engine.begin() as connection:
            connection.execute(
                members_table.update()
                .where(members_table.c.sender_id == sender_id, members_table.c.delivered_version < version)
                .values(delivered_version=version)
            )

    def _values(self, connection: sa.engine.Connection, group: Text) -> Dict[Text, Any]:
        rows = connection.execute(
            sa.select(state_table.c.name, state_table.c.value).where(state_table.c.group_id == group)
        ).all()
        return {row.name: json.loads(row.value) for row in rows}

    def _write_values(
        self,
        connection: sa.engine.Connection,
        group: Text,
        origin: Text,
        origin_channel: Text,
        values: Mapping[Text, Any],
        now: float,
    ) -> None:
        for key, value in values.items():
            # Delete and insert rather than update: the new row gets a higher version,
            # which is what tells every other member that it has something to receive.
            connection.execute(
                state_table.delete().where(state_table.c.group_id == group, state_table.c.name == key)
            )
            connection.execute(
                state_table.insert().values(
                    group_id=group,
                    name=key,
                    value=json.dumps(value),
                    origin=origin,
                    origin_channel=origin_channel,
                    updated_at=now,
                )
            )

    # ---- housekeeping ------------------------------------------------------------------

    def _purge(self, connection: sa.engine.Connection, now: float) -> None:
        """Drops expired codes, expired links, lone members, their values and old failures."""
        connection.execute(codes_table.delete().where(codes_table.c.expires_at <= now))
        connection.execute(
            failures_table.delete().where(failures_table.c.failed_at <= now - self.limits.failure_window_s)
        )
        connection.execute(members_table.delete().where(members_table.c.expires_at <= now))
        lone_groups = (
            sa.select(members_table.c.group_id)
            .group_by(members_table.c.group_id)
            .having(sa.func.count() < 2)
        )
        connection.execute(members_table.delete().where(members_table.c.group_id.in_(lone_groups)))
        live_groups = sa.select(members_table.c.group_id)
        connection.execute(state_table.delete().where(state_table.c.group_id.not_in(live_groups)))
