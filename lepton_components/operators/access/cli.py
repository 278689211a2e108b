"""Managing operator accounts from the shell, in the database `rasa run` uses:

    python -m lepton_components.operators.access.accounts add alice --role agent --queues support billing
    python -m lepton_components.operators.access.accounts list
    python -m lepton_components.operators.access.accounts password alice
    python -m lepton_components.operators.access.accounts disable alice   # ends her sessions
    python -m lepton_components.operators.access.accounts enable alice

The database is the tracker store's, read from `--endpoints` (default bot/endpoints.yml)
as `rasa run` reads it; run it from the folder you run `rasa run` in, since a SQLite `db`
is relative to it. The password is asked twice on the terminal, or read as one line from
stdin with `--password-stdin` (for scripts). Mistakes exit with status 2 and the fix.
"""

import argparse
import getpass
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Text

import sqlalchemy as sa
from rasa.shared.exceptions import RasaException

from lepton_components.operators.access.accounts import DEFAULT_QUEUES, ROLES, AccountProblem, AccountStore
from lepton_components.operators.access.passwords import MIN_PASSWORD_LENGTH, PasswordRejected, check_password
from lepton_components.operators.database import create_tables, sql_engine_of

PROGRAM = "python -m lepton_components.operators.access.accounts"
DEFAULT_ENDPOINTS = "bot/endpoints.yml"
USAGE_ERROR = 2


class CliError(Exception):
    """What went wrong and how to fix it (printed, exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoints", default=DEFAULT_ENDPOINTS,
        help=f"the endpoints.yml `rasa run` uses; accounts go to its tracker store (default {DEFAULT_ENDPOINTS})",
    )
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password as one line from stdin instead of asking"
    )
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Manage the operator console's accounts.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    add = commands.add_parser("add", parents=[common, password], help="create an account")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="agent", help="agent (default) or admin")
    add.add_argument(
        "--queues", nargs="+", default=list(DEFAULT_QUEUES), metavar="QUEUE",
        help="queues the agent works, space- or comma-separated (default: support)",
    )
    commands.add_parser("list", parents=[common], help="list the accounts")
    change = commands.add_parser("password", parents=[common, password], help="set a new password (ends sessions)")
    change.add_argument("username")
    for name, what in (("disable", "stop an account logging in (ends its sessions)"), ("enable", "undo disable")):
        commands.add_parser(name, parents=[common], help=what).add_argument("username")
    return parser


def account_store(endpoints: Text) -> AccountStore:
    """The accounts in the tracker store's database that `endpoints` names."""
    with warnings.catch_warnings():
        # Rasa's dependencies warn about their own deprecations on import: noise here.
        warnings.simplefilter("ignore", DeprecationWarning)
        from rasa.core.tracker_store import TrackerStore
        from rasa.shared.core.domain import Domain
        from rasa.utils.endpoints import read_endpoint_config

        from lepton_components.stores.store_startup import refuse_in_memory_fallback

    path = Path(endpoints)
    if not path.is_file():
        raise CliError(f"There is no endpoints file {path}; pass `--endpoints <the endpoints.yml rasa run uses>`.")
    config = read_endpoint_config(str(path), "tracker_store")
    if config is None:
        raise CliError(
            f"{path} has no `tracker_store` section, so conversations (and the console) would live in memory. "
            "Add a SQL tracker store, e.g. `tracker_store: {type: SQL, dialect: sqlite, db: lepton-trackers.db}`."
        )
    # A `type` Rasa cannot import is an error here, as in `rasa run` with Lepton's channels.
    refuse_in_memory_fallback()
    try:
        engine = sql_engine_of(TrackerStore.create(config, Domain.empty()))
        create_tables(engine)
    except UserWarning as error:
        raise CliError(
            f"Rasa cannot import the tracker store `type: {config.type}` of {path}; fix `tracker_store.type` "
            "(e.g. `SQL`, or the module path of a Lepton store)."
        ) from error
    except (RasaException, sa.exc.SQLAlchemyError, TypeError) as error:
        # TypeError: keys under `tracker_store` the store does not take.
        raise CliError(f"Cannot open the tracker store of {path}: {error}") from error
    return AccountStore(engine)


def read_password(from_stdin: bool) -> Text:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin read no password; pipe it in as one line.")
    else:
        password = getpass.getpass(f"Password (at least {MIN_PASSWORD_LENGTH} characters): ")
        if getpass.getpass("The same password again: ") != password:
            raise CliError("The two passwords differ; run the command again.")
    check_password(password)
    return password


def _queues(values: Sequence[Text]) -> List[Text]:
    return [name for value in values for name in value.split(",")]


def _run(arguments: argparse.Namespace) -> Text:
    """Does the command; returns what to print."""
    # Asked before the database is opened, so a typo costs no connection.
    password = read_password(arguments.password_stdin) if arguments.command in ("add", "password") else ""
    store = account_store(arguments.endpoints)
    try:
        if arguments.command == "add":
            account = store.create(arguments.username, password, arguments.role, _queues(arguments.queues))
            where = "every queue" if account.role == "admin" else ", ".join(account.queues)
            return f"Created {account.role} {account.username} ({where})."
        if arguments.command == "password":
            store.set_password(arguments.username, password)
            return f"Set a new password for {arguments.username}; their sessions ended."
        if arguments.command in ("disable", "enable"):
            store.set_disabled(arguments.username, arguments.command == "disable")
            ended = "; their sessions ended" if arguments.command == "disable" else ""
            return f"{arguments.command.capitalize()}d {arguments.username}{ended}."
        accounts = store.list()
        if not accounts:
            return f"No accounts yet; create one with `{PROGRAM} add <username> --role admin`."
        lines = [f"{'USERNAME':<40} {'ROLE':<6} {'STATUS':<8} QUEUES"]
        for account in accounts:
            status = "disabled" if account.disabled else "active"
            lines.append(f"{account.username:<40} {account.role:<6} {status:<8} {','.join(account.queues)}")
        return "\n".join(lines)
    finally:
        store.engine.dispose()


def main(argv: Optional[Sequence[Text]] = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        print(_run(arguments))
    except (CliError, AccountProblem, PasswordRejected) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    return 0
