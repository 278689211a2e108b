"""Who may do what with a handed-off conversation.

Agents see and take conversations of their own queues and answer or hand back the ones
they hold; admins may do all of it on any conversation. `operator` is anything with
`username`, `role` and `queues` (`access.accounts.Operator`, or the helpdesk).
"""

from dataclasses import dataclass
from typing import Any, Optional, Text, Tuple

from lepton_components.operators.handoff.queue import HELD, Handoff

ADMIN = "admin"


class Refusal(Exception):
    """Why an action is refused, as the HTTP status, error code and message for the agent."""

    def __init__(self, status: int, code: Text, message: Text) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Helpdesk:
    """The helpdesk behind the inbound API: a trusted caller that acts as an admin."""

    name: Text
    username: Text = "helpdesk"
    role: Text = ADMIN
    queues: Tuple[Text, ...] = ()


def is_admin(operator: Any) -> bool:
    return getattr(operator, "role", None) == ADMIN


def not_in_queue(conversation_id: Text) -> Refusal:
    return Refusal(
        404,
        "not_in_queue",
        f"The conversation {conversation_id} is not waiting for or held by a person: the bot has it (it was handed "
        "back, timed out or never handed off). Reload the inbox.",
    )


def check_may_see(operator: Any, handoff: Optional[Handoff], conversation_id: Text) -> Handoff:
    """The handoff if `operator` may see (and take) it; else the refusal."""
    if handoff is None:
        raise not_in_queue(conversation_id)
    if not is_admin(operator) and handoff.queue not in tuple(operator.queues):
        raise Refusal(
            403,
            "forbidden",
            f"The conversation is in the queue `{handoff.queue}`, which your account does not serve "
            f"({', '.join(operator.queues) or 'no queues'}); an admin can add it to your queues.",
        )
    return handoff


def check_may_answer(operator: Any, handoff: Optional[Handoff], conversation_id: Text) -> Handoff:
    """The handoff if `operator` may reply to it or hand it back; else the refusal."""
    handoff = check_may_see(operator, handoff, conversation_id)
    if is_admin(operator):
        return handoff
    if handoff.status != HELD:
        raise Refusal(409, "not_held", "Nobody holds this conversation yet: take it first (\"Take conversation\").")
    if handoff.agent != operator.username:
        raise Refusal(403, "forbidden", f"{handoff.agent} holds this conversation; only they or an admin can answer it.")
    return handoff
