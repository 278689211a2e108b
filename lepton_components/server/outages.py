"""Recognise a backing-service outage and answer it with HTTP 503 and one log line.

Rasa 3.6 reports a conversation database or Redis outage as `200 []` (its channels
catch every exception) or as `500` with the driver's text (its HTTP API). A client
then cannot tell "the bot has nothing to say" from "nothing was processed, retry".
Here such errors become `503 Service Unavailable` with `Retry-After`, a JSON body
naming the service and what to do, and one ERROR log line with the details.

The body names the service but not its address: REST clients may be browsers, and
the database host, port and name are for operators, so they go to the log only.
"""

import logging
import re
from typing import Optional, Text, Tuple, Type

import redis.exceptions
import sqlalchemy.exc
from rasa.core.lock_store import LockError
from rasa.shared.exceptions import ConnectionException
from sanic import response
from sanic.response import HTTPResponse

from lepton_components.channels.conversation_ids import describe
from lepton_components.stores.atomic_redis_lock_store import LockQueueFull, LockStoreUnavailable
from lepton_components.stores.strict_tracker_store import TrackerStoreUnavailable

logger = logging.getLogger(__name__)

# Seconds a client should wait before resending (the `Retry-After` header).
RETRY_AFTER_SECONDS = 5

# Errors meaning "a service the bot depends on cannot be used right now". Lepton's
# stores raise `ConnectionException` subclasses naming the fix; the raw driver errors
# cover Rasa's own stores (SQL, Redis) and anything else talking to them. `LockError`
# also covers a ticket that expired while waiting: the conversation was too busy.
OUTAGE_TYPES: Tuple[Type[BaseException], ...] = (
    ConnectionException,
    LockError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)

_TRACKER_STORE_FIX = (
    "The conversation database (`tracker_store` in endpoints.yml) cannot be used, so this "
    "message was not processed and nothing was stored. Resend it in a few seconds. "
    "Operators: the server log names the database; start it or fix `tracker_store`."
)
_LOCK_STORE_FIX = (
    "The conversation lock store (Redis, `lock_store` in endpoints.yml) cannot be used, so "
    "this message was not processed. Resend it in a few seconds. Operators: the server log "
    "names the Redis server; start it or fix `lock_store`."
)
_BUSY_FIX = (
    "Another message of this conversation took too long, so this one could not get its turn "
    "and was not processed. Resend it in a few seconds."
)
_QUEUE_FULL_FIX = (
    "Too many messages of this conversation are waiting, so this one was not processed. "
    "Resend it in a few seconds."
)
_OTHER_FIX = (
    "A service the bot depends on cannot be used, so this message was not processed. Resend "
    "it in a few seconds. Operators: the server log names the service."
)


def find_outage(error: BaseException) -> Optional[BaseException]:
    """The outage error in `error` or in what caused it, else None.

    Follows `__cause__`/`__context__`, as Rasa's API re-raises store errors wrapped in
    its own `ErrorResponse`.
    """
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OUTAGE_TYPES):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def outage_service(error: BaseException) -> Tuple[Text, Text]:
    """(service name for clients, what to do) for an error `find_outage` returned."""
    if isinstance(error, TrackerStoreUnavailable):
        return "tracker_store", _TRACKER_STORE_FIX
    if isinstance(error, LockStoreUnavailable):
        return "lock_store", _LOCK_STORE_FIX
    if isinstance(error, LockQueueFull):
        return "lock_store", _QUEUE_FULL_FIX
    if isinstance(error, LockError):
        return "lock_store", _BUSY_FIX
    if isinstance(error, redis.exceptions.RedisError):
        return "redis", _OTHER_FIX
    if isinstance(error, sqlalchemy.exc.SQLAlchemyError):
        return "database", _OTHER_FIX
    return "backing_service", _OTHER_FIX


# Rasa's lock stores quote the conversation id: "... for conversation_id 'verified_telegram:4917...'".
_QUOTED_CONVERSATION = re.compile(r"(conversation(?:_id)?) '([^']{0,512})'")


def log_outage(error: BaseException, what: Text) -> None:
    """One ERROR line: what was refused, and the error, which names the service and fix."""
    # The first line of a driver error says what failed, without the SQL statement
    # and the conversation data bound to it; a quoted conversation id becomes its fingerprint.
    detail = (str(error).strip().splitlines() or [""])[0]
    detail = _QUOTED_CONVERSATION.sub(lambda match: f"{match.group(1)} of {describe(match.group(2))}", detail)
    logger.error(f"HTTP 503 for {what}: {type(error).__name__}: {detail}")


def unavailable_response(error: BaseException) -> HTTPResponse:
    """`503` with `Retry-After` and a JSON body naming the service and the fix."""
    service, fix = outage_service(error)
    body = {
        "error": "service_unavailable",
        "service": service,
        "message": fix,
        "retry_after_seconds": RETRY_AFTER_SECONDS,
    }
    return response.json(body, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
