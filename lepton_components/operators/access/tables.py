"""The access part's SQL tables, on the console's shared `metadata`.

Kept apart from the code that uses them so that running `accounts` as a script
(`python -m ...access.accounts`) cannot declare them a second time.
"""

import sqlalchemy as sa

from lepton_components.operators.database import metadata

USERNAME_LENGTH = 40

accounts = sa.Table(
    "lepton_operator_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(USERNAME_LENGTH), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    # A JSON list of queue names (admins act on every queue whatever it says).
    sa.Column("queues", sa.JSON, nullable=False),
    # argon2id, in the PHC string format argon2-cffi writes ("$argon2id$v=19$m=...").
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    # Unix times (seconds).
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float, nullable=True),
)

sessions = sa.Table(
    "lepton_operator_sessions",
    metadata,
    # SHA-256 (hex) of the cookie's token: a copy of the database opens no session.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(USERNAME_LENGTH), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)
