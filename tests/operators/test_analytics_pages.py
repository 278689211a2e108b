"""The analytics pages over HTTP: charts, JSON figures, clusters and a new answer from one."""

import re
from pathlib import Path

import pytest

from lepton_components.retrieval.knowledge_base import load_knowledge_base
from tests.operators.review_harness import faq_retriever, serve_review_console

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

UNANSWERED = ["do you take bitcoin", "take bitcoin payment", "do you take bitcoin?", "sunday opening hours"]


async def test_the_page_charts_the_figures_and_groups_unanswered_questions(tmp_path: Path, create_component) -> None:
    retriever = faq_retriever(create_component, tmp_path / "faq.yml")
    async with serve_review_console(tmp_path, retriever, cluster_distance=0.5) as console:
        await console.agent.say("web_chat:a", "hello")
        await console.agent.say("web_chat:a", "Do you sell gift cards?")
        for number, text in enumerate(UNANSWERED):
            await console.agent.say(f"web_chat:{number}", text)
        admin = await console.admin()
        page = await admin.get("/analytics?days=7")
        assert page.status == 200
        assert 'data-testid="total-conversations">5<' in page.text
        # 6 bot turns, 1 answered from the knowledge base; 4 asked to rephrase (fallbacks).
        assert 'data-testid="total-kb-answer-rate">16.7 %<' in page.text
        assert 'data-testid="total-fallback-rate">66.7 %<' in page.text
        for chart in ("conversations", "containment", "fallback_rate", "kb_answer_rate", "handoff_rate", "feedback"):
            assert f'data-testid="chart-{chart}"' in page.text
        assert page.text.count("<svg") == 6 and "<rect" in page.text and "<polyline" in page.text
        # The console's CSP allows neither inline styles nor inline scripts.
        assert "style=" not in page.text and "<script" not in page.text
        sizes = [int(size) for size in re.findall(r'data-testid="cluster-size">(\d+)×', page.text)]
        assert sizes == [3, 1]
        assert "take bitcoin payment" in page.text and 'data-testid="cluster-create-answer"' in page.text

        data = (await admin.get("/api/analytics?days=7", html=False)).json()
        assert data["days"] == 7 and data["totals"]["conversations"] == 5 and data["totals"]["kb_answer_rate"] == 0.1667
        assert data["daily"][-1]["conversations"] == 5 and len(data["daily"]) == 7
        bad = await admin.get("/api/analytics?days=9999", html=False)
        assert bad.status == 400 and "`days` must be a whole number from 1 to 365" in bad.json()["message"]


async def test_a_cluster_becomes_a_live_answer(tmp_path: Path, create_component) -> None:
    kb = tmp_path / "faq.yml"
    retriever = faq_retriever(create_component, kb)
    async with serve_review_console(tmp_path, retriever) as console:
        assert await console.agent.say("web_chat:a", "do you take bitcoin") == ["Sorry, could you rephrase that?"]
        admin = await console.admin()
        created = await admin.post("/analytics/answers", {
            "answer_id": "bitcoin",
            "answer": "We do not accept bitcoin yet.",
            "questions": "do you take bitcoin\r\ncan I pay with bitcoin\r\n",
        })
        assert created.status == 303 and created.headers["Location"].endswith("/analytics?created=bitcoin")
        page = await admin.browser.request("GET", created.headers["Location"])
        assert 'data-testid="analytics-created"' in page.text
        assert {answer.id for answer in load_knowledge_base(kb)} == {"gift_cards", "store_pickup", "bitcoin"}
        assert "  # Payments\n" in kb.read_text()
        assert await console.agent.say("web_chat:b", "can I pay with bitcoin") == ["We do not accept bitcoin yet."]

        before = kb.read_text()
        for form, problem in [
            ({"answer_id": "gift_cards", "answer": "Again.", "questions": "a question"}, "used twice"),
            ({"answer_id": "crypto", "answer": "   ", "questions": "a question"}, "must be non-empty text"),
            ({"answer_id": "crypto", "answer": "Text.", "questions": ""}, "non-empty list"),
        ]:
            refused = await admin.post("/analytics/answers", form)
            assert refused.status == 422 and problem in refused.text, refused.text
            assert 'data-testid="answer-form"' in refused.text
        assert kb.read_text() == before
        # The old answers are still served.
        assert await console.agent.say("web_chat:c", "Do you sell gift cards?") == ["Yes, digital gift cards from $10 to $500."]


async def test_without_a_retriever_the_page_says_why_there_are_no_clusters(tmp_path: Path) -> None:
    async with serve_review_console(tmp_path, None) as console:
        admin = await console.admin()
        page = await admin.get("/analytics")
        assert page.status == 200 and 'data-testid="clusters-unavailable"' in page.text
        assert 'data-testid="total-conversations">0<' in page.text
        refused = await admin.post("/analytics/answers", {"answer_id": "x", "answer": "y", "questions": "z"})
        assert refused.status == 409
        bad = await admin.get("/analytics?days=abc")
        assert bad.status == 400 and "`days` must be a whole number" in bad.text
