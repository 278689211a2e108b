"""`operator_required`: the one door to every console route but the login page.

    @blueprint.route("/inbox", methods=["GET"])
    @operator_required()
    async def inbox(request, operator): ...

The handler runs only for a logged-in operator (`request.ctx.operator`, and the session's
`request.ctx.csrf_token` for `render`; `request.ctx.operator_state` is the console's
`OperatorState` it was checked against). Without a valid session a browser asking for a
page is sent to the login page (303, `next` = the page), anything else gets 401 JSON.
Requests that change something (POST, PUT, PATCH, DELETE) must carry the session's CSRF
token, as form field `csrf_token` or header `X-CSRF-Token` (403 JSON otherwise), so that
another site's page cannot act with an operator's cookie. `role="admin"` refuses agents
with 403 (`role="agent"`, like None, lets every operator in: admins may do what agents do).
"""

import functools
import hmac
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Text, Union
from urllib.parse import quote

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from lepton_components.operators.access.accounts import ROLES
from lepton_components.operators.access.cookies import LOGIN_PATH, clear_session_cookie
from lepton_components.operators.access.forms import FORM_TYPE, BadForm, content_type, form_fields
from lepton_components.operators.access.login_sessions import LoginSession
from lepton_components.operators.pages import secure_headers
from lepton_components.operators.part import OperatorState

if TYPE_CHECKING:
    from lepton_components.operators.access.part import AccessPart

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

Handler = Callable[..., Awaitable[HTTPResponse]]


# The console is imported in these two, never above: it imports every part, and the parts import this module.
def access_of(request: Request) -> "AccessPart":
    from lepton_components.operators.console import console_of

    return console_of(request.app).access


async def console_state(request: Request) -> Union[OperatorState, HTTPResponse]:
    """The console's state, or the 503 reply while no bot is loaded."""
    from lepton_components.operators.console import ready_state

    return await ready_state(request)


def json_error(status: int, code: Text, message: Text) -> HTTPResponse:
    return secure_headers(response.json({"error": code, "message": message}, status=status))


def wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def login_redirect(request: Request) -> HTTPResponse:
    """303 to the login page, which sends the browser back to this page afterwards."""
    target = request.path + (f"?{request.query_string}" if request.query_string else "")
    return secure_headers(response.redirect(f"{LOGIN_PATH}?next={quote(target, safe='/')}", status=303))


def presented_csrf_token(request: Request) -> Optional[Text]:
    """The CSRF token a request carries: the header, else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    kind = content_type(request)
    if kind == FORM_TYPE:
        try:
            return form_fields(request, max_fields=10_000).get(CSRF_FIELD)
        except BadForm:
            return None
    if kind == "multipart/form-data":
        return request.form.get(CSRF_FIELD)
    return None


def csrf_matches(presented: Optional[Text], expected: Text) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode("utf-8"))


def csrf_token_for(request: Request) -> Text:
    """The CSRF token of the request's session ("" before `operator_required` ran)."""
    return getattr(request.ctx, "csrf_token", "")


def _unauthenticated(request: Request, access: "AccessPart") -> HTTPResponse:
    if wants_html(request):
        reply = login_redirect(request)
    else:
        reply = json_error(
            401, "unauthorized", f"Log in at {LOGIN_PATH} first: this request has no valid operator session "
            "(never logged in, logged out, or the session expired)."
        )
    if access.session_token(request) is not None:
        clear_session_cookie(reply, access.settings)
    return reply


def _refusal(request: Request, session: LoginSession, role: Optional[Text]) -> Optional[HTTPResponse]:
    if request.method in UNSAFE_METHODS and not csrf_matches(presented_csrf_token(request), session.csrf_token):
        return json_error(
            403, "csrf_token_invalid", f"Send the page's CSRF token as form field `{CSRF_FIELD}` or header "
            f"`{CSRF_HEADER}` (it is in the page's <meta name=\"csrf-token\">); reload the page if it is old."
        )
    if role == "admin" and not session.operator.is_admin:
        return json_error(403, "forbidden", "Only admins may do this; ask an admin if you need it.")
    return None


def operator_required(role: Optional[Text] = None) -> Callable[[Handler], Handler]:
    """Decorator for handlers `async def handler(request, operator, *args, **kwargs)`."""
    if role is not None and role not in ROLES:
        raise ValueError(f"`role` must be None or one of {ROLES}, got {role!r}.")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            state = await console_state(request)
            if isinstance(state, HTTPResponse):
                return state
            access = access_of(request)
            found = await access.session_of(request, state)
            if found is None:
                return _unauthenticated(request, access)
            refusal = _refusal(request, found, role)
            if refusal is not None:
                return refusal
            request.ctx.operator = found.operator
            request.ctx.csrf_token = found.csrf_token
            request.ctx.operator_state = state
            return await handler(request, found.operator, *args, **kwargs)

        return guarded

    return decorate
