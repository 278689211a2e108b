"""The console's two cookies, with the flags that keep them to the console.

* `lepton_operator`: the login session's token. HttpOnly (no script reads it),
  SameSite=Strict (no other site's page sends it), Path=/webhooks/operators (no other
  route of the server sees it), Secure unless `secure_cookies: false`, and it expires
  with the session (`session_hours`).
* `lepton_login_csrf`: the login form's double-submit token, so that another site cannot
  log a browser in to an account of its choosing.
"""

from typing import Optional, Text

from sanic.response import HTTPResponse

from lepton_components.operators.pages import URL_PREFIX
from lepton_components.operators.settings import OperatorSettings

SESSION_COOKIE = "lepton_operator"
LOGIN_CSRF_COOKIE = "lepton_login_csrf"
LOGIN_PATH = f"{URL_PREFIX}/login"


def _set(
    reply: HTTPResponse, name: Text, value: Text, path: Text, settings: OperatorSettings, max_age: Optional[int]
) -> None:
    reply.cookies[name] = value
    cookie = reply.cookies[name]
    cookie["path"] = path
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["secure"] = settings.secure_cookies
    if max_age is not None:
        cookie["max-age"] = max_age


def set_session_cookie(reply: HTTPResponse, token: Text, settings: OperatorSettings) -> None:
    _set(reply, SESSION_COOKIE, token, URL_PREFIX, settings, max(1, int(settings.session_hours * 3600)))


def clear_session_cookie(reply: HTTPResponse, settings: OperatorSettings) -> None:
    _set(reply, SESSION_COOKIE, "", URL_PREFIX, settings, 0)


def set_login_csrf_cookie(reply: HTTPResponse, token: Text, settings: OperatorSettings) -> None:
    # No Max-Age: it lasts while the browser is open, like the login form it belongs to.
    _set(reply, LOGIN_CSRF_COOKIE, token, LOGIN_PATH, settings, None)


def clear_login_csrf_cookie(reply: HTTPResponse, settings: OperatorSettings) -> None:
    _set(reply, LOGIN_CSRF_COOKIE, "", LOGIN_PATH, settings, 0)
