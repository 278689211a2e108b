"""The review pages over HTTP: a failed question is found, annotated, and answered at once."""

import html
import re
from pathlib import Path
from typing import List, Text
from urllib.parse import quote

import pytest
from rasa.shared.core.events import SlotSet
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from lepton_components.retrieval.knowledge_base import load_knowledge_base
from tests.operators.access_harness import AGENT_PASSWORD, PREFIX, ConsoleBrowser, account_store
from tests.operators.review_harness import faq_retriever, serve_review_console

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

CUSTOMER = "web_chat:ada"
QUESTION = "can I buy a voucher as a present"


def turns_on(page: Text) -> List[int]:
    return [int(turn) for turn in re.findall(r'data-testid="review-turn" data-turn="(\d+)"', page)]


def conversation_link(page: Text) -> Text:
    match = re.search(r'<a href="([^"]+)" data-testid="review-open">', page)
    assert match, "the review list links no conversation"
    return html.unescape(match.group(1))


async def audit_records(agent, conversation_id: Text) -> List[SlotSet]:
    tracker = await agent.tracker_store.retrieve_full_tracker(conversation_id)
    return [event for event in tracker.events if isinstance(event, SlotSet) and event.key == "operator_audit"]


async def test_a_failed_question_is_reviewed_and_answered_after_the_reload(tmp_path: Path, create_component) -> None:
    kb = tmp_path / "faq.yml"
    retriever = faq_retriever(create_component, kb)
    async with serve_review_console(tmp_path, retriever) as console:
        assert await console.agent.say(CUSTOMER, "hello") == ["Hi! How can I help?"]
        assert await console.agent.say(CUSTOMER, QUESTION) == ["Sorry, could you rephrase that?"]
        admin = await console.admin()

        listing = await admin.get("/review?flag=rephrase&days=1")
        assert listing.status == 200
        assert QUESTION in listing.text and 'data-testid="review-count-rephrase">1<' in listing.text
        link = conversation_link(listing.text)
        assert link == f"{PREFIX}/review/conversations/{quote(CUSTOMER, safe='')}"

        page = await admin.browser.request("GET", link)
        assert page.status == 200
        # What the bot understood and why it acted.
        assert "nlu_fallback" in page.text and "utter_please_rephrase" in page.text
        assert "policy_0_FaqAnswerPolicy" in page.text and 'data-testid="review-candidates"' in page.text
        greeting_turn, question_turn = turns_on(page.text)

        saved = await admin.post(f"/review/conversations/{quote(CUSTOMER, safe='')}/answer",
                                 {"turn": str(question_turn), "answer": "gift_cards"})
        assert saved.status == 303, saved.text
        after = await admin.browser.request("GET", saved.headers["Location"])
        assert 'data-testid="review-notice"' in after.text and "gift_cards" in after.text

        questions = {answer.id: answer.questions for answer in load_knowledge_base(kb)}["gift_cards"]
        assert questions == ("Do you sell gift cards?", QUESTION)
        # Live now: the same question gets the approved answer, no retraining.
        assert await console.agent.say("web_chat:bob", QUESTION) == ["Yes, digital gift cards from $10 to $500."]

        (audit,) = await audit_records(console.agent, CUSTOMER)
        operator = audit.metadata["lepton_operator"]
        assert (operator["username"], operator["action"]) == ("admin", "review_answer") and operator["at"] > 0
        assert audit.value["answer"] == "gift_cards" and audit.value["turn"] == question_turn


async def test_a_message_rejected_as_none_of_these_shows_what_the_classifier_said(tmp_path: Path) -> None:
    async with serve_review_console(tmp_path, None) as console:
        await console.agent.say(CUSTOMER, "will the weather delay my parcel")
        admin = await console.admin()
        page = await admin.get(f"/review/conversations/{quote(CUSTOMER, safe='')}")
        assert page.status == 200
        rejected = re.search(r'data-testid="review-rejected">(.*?)</dd>', page.text, re.S)
        assert rejected is not None, page.text
        assert "0.31" in rejected.group(1) and "shipping_info 0.91" in rejected.group(1)


async def test_an_intent_annotation_becomes_training_data(tmp_path: Path) -> None:
    nlu_file = tmp_path / "data" / "reviewed" / "nlu.yml"
    async with serve_review_console(tmp_path, None, nlu_file=str(nlu_file)) as console:
        await console.agent.say(CUSTOMER, "has my parcel left the warehouse")
        admin = await console.admin()
        page = await admin.get(f"/review/conversations/{quote(CUSTOMER, safe='')}")
        (turn,) = turns_on(page.text)
        # Rasa's own intents are no annotation choices.
        assert '<option value="order_status"' in page.text and '<option value="nlu_fallback"' not in page.text
        path = f"/review/conversations/{quote(CUSTOMER, safe='')}/intent"
        saved = await admin.post(path, {"turn": str(turn), "intent": "order_status"})
        assert saved.status == 303
        (example,) = RasaYAMLReader().read(nlu_file).intent_examples
        assert (example.get("text"), example.get("intent")) == ("has my parcel left the warehouse", "order_status")
        (audit,) = await audit_records(console.agent, CUSTOMER)
        assert audit.metadata["lepton_operator"]["action"] == "review_intent" and audit.value["intent"] == "order_status"

        wrong = await admin.post(path, {"turn": str(turn), "intent": "made_up"})
        assert wrong.status == 400 and "must be one of the bot&#39;s intents: greet, human_handoff, order_status" in wrong.text
        not_a_message = await admin.post(path, {"turn": str(turn + 1), "intent": "greet"})
        assert not_a_message.status == 400 and "not a customer message" in not_a_message.text
        no_answers = await admin.post(f"/review/conversations/{quote(CUSTOMER, safe='')}/answer",
                                      {"turn": str(turn), "answer": "gift_cards"})
        assert no_answers.status == 409
        forged = await admin.browser.post(path, {"turn": str(turn), "intent": "greet", "csrf_token": "forged"})
        assert forged.status == 403
        assert len(RasaYAMLReader().read(nlu_file).intent_examples) == 1


async def test_an_unknown_answer_is_refused_with_the_list(tmp_path: Path, create_component) -> None:
    retriever = faq_retriever(create_component, tmp_path / "faq.yml")
    async with serve_review_console(tmp_path, retriever) as console:
        await console.agent.say(CUSTOMER, "a question nobody wrote")
        admin = await console.admin()
        page = await admin.get(f"/review/conversations/{quote(CUSTOMER, safe='')}")
        (turn,) = turns_on(page.text)
        refused = await admin.post(f"/review/conversations/{quote(CUSTOMER, safe='')}/answer",
                                   {"turn": str(turn), "answer": "careers"})
        assert refused.status == 400 and "gift_cards, store_pickup" in refused.text


async def test_conversation_ids_with_any_characters_open(tmp_path: Path) -> None:
    odd = "telegram:12/34?x=1#y %"
    async with serve_review_console(tmp_path, None) as console:
        await console.agent.say(odd, "where is my order")
        admin = await console.admin()
        page = await admin.get(f"/review/conversations/{quote(odd, safe='')}")
        assert page.status == 200 and html.escape(odd) in page.text and len(turns_on(page.text)) == 1
        missing = await admin.get(f"/review/conversations/{quote('web_chat:nobody', safe='')}")
        assert missing.status == 404


async def test_bad_filters_are_answered_with_the_fix(tmp_path: Path) -> None:
    async with serve_review_console(tmp_path, None) as console:
        admin = await console.admin()
        for query, problem in [("?flag=everything", "`flag` must be one of"), ("?days=0", "`days` must be a whole number"),
                               ("?page=-1", "`page` must be")]:
            reply = await admin.get(f"/review{query}")
            assert reply.status == 400 and problem in reply.text


async def test_review_and_analytics_are_for_admins_only(tmp_path: Path) -> None:
    async with serve_review_console(tmp_path, None) as console:
        await console.agent.say(CUSTOMER, "where is my order")
        await console.admin()  # the first admin exists; now an agent
        account_store(tmp_path).create("alice", AGENT_PASSWORD, role="agent")
        agent = ConsoleBrowser(console.server)
        assert (await agent.login("alice", AGENT_PASSWORD)).status == 303
        for path in ["/review", f"/review/conversations/{quote(CUSTOMER, safe='')}", "/analytics", "/api/analytics"]:
            refused = await agent.get(path)
            assert (refused.status, refused.json()["error"]) == (403, "forbidden"), path
        anonymous = ConsoleBrowser(console.server)
        login = await anonymous.get("/review")
        assert login.status == 303 and "/login?next=" in login.headers["Location"]
        assert (await anonymous.get("/api/analytics", html=False)).status == 401
