"""Token buckets for the web chat's public routes, per session and per client address.

Anyone can ask for a session and post messages, and each message costs an NLU pass and
database writes, so each is rate limited before any work is done on it:

| limit | counts | key |
|---|---|---|
| `messages_per_session` | `POST /messages` | the session's conversation |
| `messages_per_ip` | `POST /messages` | the client address |
| `sessions_per_ip` | `POST /sessions`, `POST /sessions/refresh` | the client address |
| `requests_per_session` | `GET /history`, `GET /events`, `POST /sessions/refresh`, `DELETE /sessions` | the session's conversation |

The buckets themselves are `lepton_components.channels.rate_limits`' (per process).
"""

from typing import Any, Dict, Optional, Text

from lepton_components.channels.rate_limits import RateLimit, parse_rate_limits

MESSAGES_PER_SESSION = "messages_per_session"
MESSAGES_PER_IP = "messages_per_ip"
SESSIONS_PER_IP = "sessions_per_ip"
REQUESTS_PER_SESSION = "requests_per_session"

DEFAULT_LIMITS: Dict[Text, RateLimit] = {
    # A person types a few messages a minute; quick replies come faster in bursts.
    MESSAGES_PER_SESSION: RateLimit(per_minute=20, burst=10),
    # One address can be an office or a mobile carrier's NAT: many customers.
    MESSAGES_PER_IP: RateLimit(per_minute=600, burst=200),
    SESSIONS_PER_IP: RateLimit(per_minute=60, burst=60),
    REQUESTS_PER_SESSION: RateLimit(per_minute=120, burst=60),
}

_EXAMPLE = "rate_limits:\n  messages_per_session: {per_minute: 20, burst: 10}\n  messages_per_ip: null   # no limit"


def parse_web_chat_rate_limits(raw: Any) -> Dict[Text, Optional[RateLimit]]:
    """The web chat's `rate_limits` credentials key, defaults filled in."""
    return parse_rate_limits("web_chat", raw, DEFAULT_LIMITS, _EXAMPLE)
