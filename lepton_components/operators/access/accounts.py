"""Operator accounts: who may log in to the console, with which role and queues.

Accounts live in the tracker store's database (`lepton_operator_accounts`). An `agent`
works the conversations of their queues; an `admin` acts on every queue and manages
accounts. Passwords are kept as argon2id hashes only (`passwords`).

Run as a script it manages accounts from the shell (`cli`):

    python -m lepton_components.operators.access.accounts add alice --role agent --queues support
"""

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Literal, Optional, Sequence, Text, Tuple

import sqlalchemy as sa

from lepton_components.operators.access.passwords import Passwords
from lepton_components.operators.access.tables import accounts, sessions

Role = Literal["agent", "admin"]
ROLES: Tuple[Role, ...] = ("agent", "admin")
DEFAULT_QUEUES: Tuple[Text, ...] = ("support",)
USERNAME_PATTERN = re.compile(r"[a-z0-9._-]{2,40}")
QUEUE_PATTERN = re.compile(r"[a-z0-9._-]{1,40}")
MAX_QUEUES = 50


class AccountProblem(ValueError):
    """An account cannot be made or changed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Operator:
    """A logged-in person: what every console route is given."""

    username: Text
    role: Role
    queues: Tuple[Text, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_act_on(self, queue: Text) -> bool:
        """Admins act on every queue, agents on their own."""
        return self.is_admin or queue in self.queues


@dataclass(frozen=True)
class Account:
    """An account as the users page and the CLI list it (never with its hash)."""

    username: Text
    role: Role
    queues: Tuple[Text, ...]
    disabled: bool
    created_at: float
    last_login_at: Optional[float]

    @property
    def operator(self) -> Operator:
        return Operator(self.username, self.role, self.queues)


def check_username(username: Text) -> Text:
    if not USERNAME_PATTERN.fullmatch(username):
        raise AccountProblem(
            f"Usernames are 2-40 characters of a-z, 0-9, '.', '_' and '-' (lower case), got {username!r}; "
            "e.g. `alice` or `bob.smith`."
        )
    return username


def check_role(role: Text) -> Role:
    if role not in ROLES:
        raise AccountProblem(f"The role must be `agent` or `admin`, got {role!r}.")
    return role  # type: ignore[return-value]


def check_queues(queues: Iterable[Text]) -> Tuple[Text, ...]:
    """Queue names, de-duplicated in order; an agent needs at least one."""
    names = tuple(dict.fromkeys(name.strip() for name in queues if name.strip()))
    if not names:
        raise AccountProblem("Give at least one queue, e.g. `support`.")
    if len(names) > MAX_QUEUES:
        raise AccountProblem(f"At most {MAX_QUEUES} queues per account.")
    for name in names:
        if not QUEUE_PATTERN.fullmatch(name):
            raise AccountProblem(
                f"Queue names are 1-40 characters of a-z, 0-9, '.', '_' and '-', got {name!r}; e.g. `support`."
            )
    return names


def _account(row: Any) -> Account:
    return Account(
        username=row.username,
        role=row.role,
        queues=tuple(row.queues or ()),
        disabled=bool(row.disabled),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


class AccountStore:
    """Accounts in one database. Every method blocks (SQL, argon2): call it through `asyncio.to_thread`."""

    def __init__(
        self, engine: sa.engine.Engine, passwords: Optional[Passwords] = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.passwords = passwords or Passwords()
        self._clock = clock

    def create(
        self, username: Text, password: Text, role: Text = "agent", queues: Sequence[Text] = DEFAULT_QUEUES
    ) -> Account:
        """A new account; `AccountProblem` if the name is taken or a value breaks a rule."""
        username, role, queues = check_username(username), check_role(role), check_queues(queues)
        password_hash = self.passwords.hash(password)
        now = self._clock()
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    accounts.insert().values(
                        username=username,
                        role=role,
                        queues=list(queues),
                        password_hash=password_hash,
                        disabled=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise AccountProblem(f"There already is an account named {username!r}; choose another name.") from None
        return Account(username, role, queues, False, now, None)

    def get(self, username: Text) -> Optional[Account]:
        with self.engine.connect() as connection:
            row = connection.execute(accounts.select().where(accounts.c.username == username)).first()
        return None if row is None else _account(row)

    def list(self) -> List[Account]:
        with self.engine.connect() as connection:
            rows = connection.execute(accounts.select().order_by(accounts.c.username)).fetchall()
        return [_account(row) for row in rows]

    def has_enabled_admin(self) -> bool:
        query = sa.select(accounts.c.id).where(accounts.c.role == "admin", sa.not_(accounts.c.disabled)).limit(1)
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def set_password(self, username: Text, password: Text) -> None:
        """A new password; the account's sessions end, so a stolen one stops working."""
        password_hash = self.passwords.hash(password)
        self._update(username, password_hash=password_hash)

    def set_disabled(self, username: Text, disabled: bool) -> None:
        """Disabling ends the account's sessions at once; enabling lets it log in again."""
        self._update(username, disabled=disabled)

    def _update(self, username: Text, **values: Any) -> None:
        with self.engine.begin() as connection:
            changed = connection.execute(
                accounts.update().where(accounts.c.username == username).values(updated_at=self._clock(), **values)
            ).rowcount
            if not changed:
                raise AccountProblem(
                    f"There is no account named {username!r}; `list` shows the accounts, `add` makes one."
                )
            connection.execute(sessions.delete().where(sessions.c.username == username))

    def authenticate(self, username: Text, password: Text) -> Optional[Operator]:
        """The operator if the password is right and the account enabled, else None.

        Unknown and disabled accounts cost one argon2 check too, so the time a login takes
        does not tell which usernames exist.
        """
        username = username.strip().lower()
        with self.engine.connect() as connection:
            row = connection.execute(accounts.select().where(accounts.c.username == username)).first()
        if row is None or row.disabled:
            self.passwords.waste_time()
            return None
        matches, new_hash = self.passwords.verify(row.password_hash, password)
        if not matches:
            return None
        changes = {"last_login_at": self._clock()}
        if new_hash is not None:
            changes["password_hash"] = new_hash
        with self.engine.begin() as connection:
            connection.execute(accounts.update().where(accounts.c.id == row.id).values(**changes))
        return _account(row).operator


if __name__ == "__main__":
    import sys

    from lepton_components.operators.access.cli import main

    sys.exit(main())
