"""The inbox over HTTP, behind the login: who sees and may act on which conversation, what the
API refuses, and the helpdesk's token-protected API."""

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from tests.operators.access_harness import AGENT_PASSWORD, PREFIX, ConsoleBrowser, Reply
from tests.operators.handoff_bot import demo_domain, say
from tests.operators.handoff_server import WEB, Served, api, serve_inbox

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]
HELPDESK_TOKEN = "helpdesk-token-0123456789-abcdefghijk"
JOINED = demo_domain().responses["utter_agent_joined"][0]["text"]


async def test_the_inbox_page_is_behind_the_login_and_carries_its_script(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path) as served:
        visitor = ConsoleBrowser(served.server)
        reply = await visitor.get("/inbox")
        assert reply.status == 303 and reply.headers["Location"].startswith(f"{PREFIX}/login")
        assert (await visitor.get("/api/handoffs", html=False)).status == 401
        # Logged in with the login form, as a person does.
        browser = ConsoleBrowser(served.server)
        assert (await browser.login("dana", AGENT_PASSWORD)).status == 303
        dana = await served.open_inbox(browser)
        page = await dana.browser.get("/inbox")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        for testid in ("waiting-list", "mine-list", "transcript", "reply-text", "reply-send", "claim-button",
                       "release-button"):
            assert f'data-testid="{testid}"' in page.text, testid
        assert 'data-testid="others-list"' not in page.text  # admins only
        assert f'src="{PREFIX}/static/inbox.js"' in page.text and "<script>" not in page.text
        script = await dana.browser.get("/static/inbox.js")
        assert script.status == 200 and "X-CSRF-Token" in script.text and "encodeURIComponent" in script.text
        admin = await served.login("admin")
        assert 'data-testid="others-list"' in (await admin.browser.get("/inbox")).text


async def test_an_agent_takes_answers_and_hands_back_a_web_chat_conversation(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path) as served:
        dana, eve = await served.login("dana"), await served.login("eve")
        await say(served.agent, WEB, "i want a human", channel="web_chat")
        await say(served.agent, WEB, "it's about my refund", channel="web_chat")
        listed = (await dana.get("/api/handoffs")).json()
        (waiting,) = listed["waiting"]
        assert (waiting["conversation_id"], waiting["status"], waiting["unread"]) == (WEB, "waiting", 1)
        assert listed["held_by_me"] == [] and listed["held_by_others"] == []

        shown = (await dana.get(api(WEB))).json()
        assert [m["sender"] for m in shown["messages"]] == ["customer", "bot", "bot", "customer"]
        assert shown["messages"][-1]["text"] == "it's about my refund"

        stream = served.web_chat._push.open(WEB)
        first, second = await asyncio.gather(dana.post(api(WEB, "/claim")), eve.post(api(WEB, "/claim")))
        assert sorted([first.status, second.status]) == [200, 409]
        winner, winner_name = (dana, "dana") if first.status == 200 else (eve, "eve")
        assert (second if first.status == 200 else first).json()["error"] == "already_claimed"
        assert await stream.next(timeout=2) == {"sender": "bot", "text": JOINED.format(agent=winner_name)}
        assert (await winner.post(api(WEB, "/claim"))).json()["already"] is True  # a second click

        reply = await winner.post(api(WEB, "/messages"), {"text": "  I can help with your refund.  "})
        assert reply.status == 200 and reply.json()["delivery"] == {"channel": "web_chat", "pushed": True, "note": None}
        assert await stream.next(timeout=2) == {"sender": "bot", "text": "I can help with your refund."}
        other = eve if winner is dana else dana
        refused = await other.post(api(WEB, "/messages"), {"text": "me too"})
        assert refused.status == 403 and winner_name in refused.json()["message"]
        assert [h["conversation_id"] for h in (await winner.get("/api/handoffs")).json()["held_by_me"]] == [WEB]

        released = await winner.post(api(WEB, "/release"))
        assert released.status == 200 and released.json()["handoff"] is None
        gone = await winner.get(api(WEB))
        assert gone.status == 404 and gone.json()["error"] == "not_in_queue"
        assert (await winner.post(api(WEB, "/messages"), {"text": "hello?"})).status == 404
        replies = await say(served.agent, WEB, "hello", channel="web_chat")
        assert replies and replies[0]["text"].startswith("Hi, I'm the Lepton Store assistant")


async def test_agents_of_other_queues_get_403_and_admins_may_act_on_any(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path) as served:
        bill, dana = await served.login("bill"), await served.login("dana")
        admin = await served.login("admin")
        await say(served.agent, "recording:ada", "human please", channel="recording")
        assert (await bill.get("/api/handoffs")).json()["waiting"] == []
        for reply in (await bill.get(api("recording:ada")), await bill.post(api("recording:ada", "/claim"))):
            assert reply.status == 403 and "`support`" in reply.json()["message"]
        assert (await dana.post(api("recording:ada", "/messages"), {"text": "hi"})).status == 409  # take it first
        assert (await dana.post(api("recording:ada", "/claim"))).status == 200
        assert [h["agent"] for h in (await admin.get("/api/handoffs")).json()["held_by_others"]] == ["dana"]
        assert (await admin.post(api("recording:ada", "/messages"), {"text": "An admin here."})).status == 200
        assert (await bill.post(api("recording:ada", "/release"))).status == 403
        assert (await admin.post(api("recording:ada", "/release"))).status == 200
        assert [message["text"] for _, message in served.output.sent][-2] == "An admin here."


async def test_bad_requests_get_a_4xx_naming_the_problem(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path) as served:
        dana = await served.login("dana")
        await say(served.agent, "recording:ada", "human please", channel="recording")
        assert (await dana.post(api("recording:ada", "/claim"))).status == 200
        path = api("recording:ada", "/messages")
        cases = [
            ({"text": "x" * 2001}, None, 413, "limit is 2000"),
            ({"text": "   "}, None, 400, "non-empty"),
            ({"text": 42}, None, 400, "`text`"),
            ({"text": "bell\x07"}, None, 400, "control characters"),
            (None, b'{"text": "\\ud83d"}', 400, "surrogate"),
            (None, b"{not json", 400, "JSON"),
            (None, b'["text"]', 400, "JSON object"),
            (None, b"x" * 20000, 413, "too large"),
        ]
        for body, raw, status, fragment in cases:
            reply = await dana.post(path, body, raw=raw)
            assert reply.status == status and fragment in reply.json()["message"], (body, raw, reply.text)
        assert (await dana.post(path, {"text": "hi"}, csrf="forged")).status == 403
        for conversation in ("rest:nobody", "%FF%FE", "x" * 300):
            reply = await dana.get(f"/api/handoffs/{conversation}")
            assert reply.status == 404 and reply.json()["message"], conversation
        # The message went nowhere.
        assert [message["text"] for _, message in served.output.sent] == [JOINED.format(agent="dana")]


async def test_a_failed_delivery_answers_502_and_keeps_the_message(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path) as served:
        dana = await served.login("dana")
        await say(served.agent, "recording:ada", "human please", channel="recording")
        served.output.fail = True
        claimed = await dana.post(api("recording:ada", "/claim"))
        assert claimed.status == 502 and claimed.json()["error"] == "delivery_failed"
        assert claimed.json()["handoff"]["agent"] == "dana"
        reply = await dana.post(api("recording:ada", "/messages"), {"text": "Are you there?"})
        assert reply.status == 502 and "saved in the conversation" in reply.json()["message"]
        shown = (await dana.get(api("recording:ada"))).json()["messages"]
        assert shown[-1] == {**shown[-1], "sender": "agent", "text": "Are you there?"}
        assert shown[-1]["operator"] == {"username": "dana", "action": "reply"}


def helpdesk_headers(token: Optional[str] = HELPDESK_TOKEN) -> Dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def helpdesk(served: Served, path: str, body: Any, headers: Dict[str, str]) -> Reply:
    return await ConsoleBrowser(served.server).request(
        "POST", f"{PREFIX}/helpdesk{path}", headers=headers, body=json.dumps(body).encode(), html=False
    )


async def test_the_helpdesk_api_needs_its_token(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path) as served:
        reply = await helpdesk(served, "/messages", {"conversation_id": "recording:ada", "text": "hi"}, helpdesk_headers())
        assert reply.status == 404 and "helpdesk_token" in reply.json()["message"]
    async with serve_inbox(tmp_path / "with-token", helpdesk_token=HELPDESK_TOKEN) as served:
        body = {"conversation_id": "recording:ada", "text": "hi", "agent": "Dana (Zendesk)"}
        for headers in (helpdesk_headers(None), helpdesk_headers("wrong-token"), helpdesk_headers(HELPDESK_TOKEN[:-1]),
                        {"Authorization": f"Basic {HELPDESK_TOKEN}"}):
            reply = await helpdesk(served, "/messages", body, headers)
            assert reply.status == 401 and reply.headers["WWW-Authenticate"] == "Bearer", headers
        # An operator's session is no helpdesk token.
        dana = await served.login("dana")
        assert (await dana.post("/helpdesk/messages", body)).status == 401
        assert served.output.sent == []


async def test_a_helpdesk_answers_through_the_bots_channel_and_hands_back(tmp_path: Path) -> None:
    async with serve_inbox(tmp_path, helpdesk_token=HELPDESK_TOKEN) as served:
        await say(served.agent, "recording:ada", "human please", channel="recording")
        body = {"conversation_id": "recording:ada", "text": "Hi, Dana from the helpdesk here.", "agent": "Dana"}
        reply = await helpdesk(served, "/messages", body, helpdesk_headers())
        assert reply.status == 200, reply.text
        assert reply.json()["handoff"]["status"] == "held" and reply.json()["handoff"]["agent"] == "helpdesk"
        assert [message["text"] for _, message in served.output.sent] == [
            JOINED.format(agent="Dana"), "Hi, Dana from the helpdesk here.",
        ]
        assert await say(served.agent, "recording:ada", "thanks!", channel="recording") == []
        for bad in ({"text": "hi"}, {"conversation_id": 5, "text": "hi"},
                    {"conversation_id": "recording:ada", "text": "hi", "agent": "x" * 65},
                    {"conversation_id": "recording:ada", "text": "hi", "agent": "Dana\nEvil"}):
            assert (await helpdesk(served, "/messages", bad, helpdesk_headers())).status == 400, bad
        missing = await helpdesk(served, "/messages", {"conversation_id": "recording:bo", "text": "hi"}, helpdesk_headers())
        assert missing.status == 404
        released = await helpdesk(served, "/release", {"conversation_id": "recording:ada", "agent": "Dana"},
                                  helpdesk_headers())
        assert released.status == 200 and released.json()["handoff"] is None
        assert served.output.sent[-1][1]["text"].startswith("Dana has left the chat")
        assert (await say(served.agent, "recording:ada", "hello", channel="recording"))[0]["text"].startswith("Hi")
