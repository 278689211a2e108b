"""Operator passwords: the rules they must meet and their argon2id hashes.

argon2-cffi's `PasswordHasher` defaults (RFC 9106's low-memory profile: argon2id, 64 MiB,
3 passes) cost about 0.2 s of CPU per hash here, which is what makes a stolen database
slow to guess from; always call these through `asyncio.to_thread`.
"""

import base64
import functools
import logging
import secrets
from typing import Optional, Text, Tuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
# Far above any pass phrase; caps what one login makes the hasher read.
MAX_PASSWORD_LENGTH = 1024


class PasswordRejected(ValueError):
    """The password breaks a rule; the message says which and what to do."""


def check_password(password: Text) -> None:
    """Raises `PasswordRejected` unless `password` may be set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(
            f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters; a few unrelated words make a good one."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(f"Passwords must be at most {MAX_PASSWORD_LENGTH} characters.")


class Passwords:
    """Hashes and checks passwords with one set of argon2 parameters."""

    def __init__(self, hasher: Optional[PasswordHasher] = None) -> None:
        self.hasher = hasher or PasswordHasher()

    def hash(self, password: Text) -> Text:
        check_password(password)
        return self.hasher.hash(password)

    def verify(self, stored_hash: Text, password: Text) -> Tuple[bool, Optional[Text]]:
        """Whether `password` matches, and the new hash to store when the parameters changed."""
        if len(password) > MAX_PASSWORD_LENGTH:
            # Still costs one hash, so that the reply time says nothing about the account.
            self.waste_time()
            return False, None
        try:
            self.hasher.verify(stored_hash, password)
        except VerifyMismatchError:
            return False, None
        except (InvalidHashError, VerificationError):
            logger.error(
                "An operator account's stored password hash is not an argon2 hash this server can check; "
                "set a new password with `python -m lepton_components.operators.access.accounts password <username>`."
            )
            return False, None
        if self.hasher.check_needs_rehash(stored_hash):
            return True, self.hasher.hash(password)
        return True, None

    def waste_time(self) -> None:
        """Verifies against a hash no password matches: what checking a real account costs."""
        try:
            self.hasher.verify(self._dummy_hash, "not the password")
        except VerifyMismatchError:
            pass

    @functools.cached_property
    def _dummy_hash(self) -> Text:
        """A hash with this hasher's parameters and random salt and digest, written without hashing
        (PHC string format), so that no login waits for it to be made."""
        hasher = self.hasher

        def random_base64(size: int) -> Text:
            return base64.b64encode(secrets.token_bytes(size)).decode("ascii").rstrip("=")

        return (
            f"$argon2{hasher.type.name.lower()}$v=19$m={hasher.memory_cost},t={hasher.time_cost},"
            f"p={hasher.parallelism}${random_base64(hasher.salt_len)}${random_base64(hasher.hash_len)}"
        )
