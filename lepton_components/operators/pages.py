"""HTML pages of the console: Jinja2 templates with autoescaping, and strict headers.

No page runs inline script or loads anything from another site (the CSP forbids both),
so a customer's message shown in a transcript can never run in an operator's browser.
"""

from importlib import resources
from typing import Any, Dict, Text

import jinja2
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

# Where the console's routes live: `rasa run` mounts a channel's blueprint at /webhooks/<name>.
URL_PREFIX = "/webhooks/operators"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "application/javascript; charset=utf-8"}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("lepton_components.operators", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def secure_headers(reply: HTTPResponse) -> HTTPResponse:
    """Headers every console response carries: no framing, no sniffing, no caching."""
    reply.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    reply.headers["X-Frame-Options"] = "DENY"
    reply.headers["X-Content-Type-Options"] = "nosniff"
    reply.headers["Referrer-Policy"] = "no-referrer"
    reply.headers["Cache-Control"] = "no-store"
    return reply


def render(request: Request, template: Text, status: int = 200, **context: Any) -> HTTPResponse:
    """The page `template` (in operators/templates) for the logged-in operator, if any.

    Every page gets `prefix` (the console's URL), `operator` (None when logged out) and
    `csrf_token` (the value forms must post back as `csrf_token`).
    """
    page: Dict[Text, Any] = {
        "prefix": URL_PREFIX,
        "operator": getattr(request.ctx, "operator", None),
        "csrf_token": getattr(request.ctx, "csrf_token", ""),
        **context,
    }
    html = _templates.get_template(template).render(**page)
    return secure_headers(response.html(html, status=status))


def static_file(name: Text) -> HTTPResponse:
    """A file of operators/static (names are checked by the route: no paths)."""
    suffix = name[name.rfind("."):] if "." in name else ""
    folder = resources.files("lepton_components.operators") / "static"
    path = folder / name
    if suffix not in STATIC_TYPES or "/" in name or "\\" in name or not path.is_file():
        return secure_headers(response.json({"error": "not_found", "message": f"No file {name!r}."}, status=404))
    reply = response.raw(path.read_bytes(), content_type=STATIC_TYPES[suffix])
    reply = secure_headers(reply)
    reply.headers["Cache-Control"] = "no-cache"
    return reply
