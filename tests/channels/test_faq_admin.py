"""FaqAdminInput refuses weak or unset tokens before the server starts, and hostile headers after."""

from typing import Any, Tuple

import pytest
from rasa.shared.exceptions import InvalidConfigException

from lepton_components.channels.faq_admin import FaqAdminInput
from tests.channels.webhook_harness import serve_channel
from tests.server.raw_http import raw_request

TOKEN = "admin-token-0123456789abcdef"


@pytest.mark.parametrize("credentials", [None, {}, {"token": "short"}, {"token": "${LEPTON_ADMIN_TOKEN}"}])
def test_weak_or_missing_token_is_refused_with_the_fix(credentials) -> None:
    with pytest.raises(InvalidConfigException, match="needs a secret `token`.*LEPTON_ADMIN_TOKEN"):
        FaqAdminInput.from_credentials(credentials)


def test_strong_token_is_accepted() -> None:
    assert FaqAdminInput.from_credentials({"token": "x" * 32}).name() == "faq_admin"


async def ignore(message: Any) -> None:
    return None


@pytest.mark.asyncio
@pytest.mark.parametrize("route", [("GET", b"/status"), ("POST", b"/reload")])
async def test_the_admin_routes_answer_hostile_authorization_headers_with_4xx(route: Tuple[str, bytes]) -> None:
    method, path = route
    async with serve_channel(FaqAdminInput(TOKEN), ignore) as url:
        base, prefix = url.split("/webhooks/")
        target = b"/webhooks/" + prefix.rstrip("/").encode() + path

        async def send(*header: bytes) -> Any:
            return await raw_request(base, method, target, [header] if header else [])

        for value in (b"Bearer \xff\xfe", b"Bearer " + TOKEN.encode() + b"\x80", b"\xc3\x28"):
            reply = await send(b"Authorization", value)
            assert reply.status == 400 and "UTF-8" in reply.json()["message"], value
        for value in (b"Bearer", b"Bearer wrong-token-0123456789", b"Basic " + TOKEN.encode(), TOKEN.encode()):
            reply = await send(b"Authorization", value)
            assert reply.status == 401 and reply.headers["www-authenticate"] == "Bearer", value
        assert (await send()).status == 401
        # The right token gets through to the route (no model loaded here, hence 409).
        assert (await send(b"Authorization", b"Bearer " + TOKEN.encode())).status == 409
