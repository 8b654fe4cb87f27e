"""The expert's pages in a real browser: Debian's chromium driven by playwright (no browser download).

The app runs as `python -m labeling_app` on a free loopback port over a temporary RLHF_HOME
seeded with two pending demonstrations, a blind A/B session of two answers per prompt and a
contested item (two annotators ranked three answers in opposite orders). An expert logs in,
approves the oldest demonstration, edits the next one, judges one A/B pair (the report stays
blind to them while the session is open), and adjudicates the contested item with typed ranks;
the database must then hold exactly those rows (statuses, the new version, the preference pair,
Review rows, the judgement, the consensus). An admin closes the session: the report names the
models and the A/B buttons go inactive. An annotator sees none of the expert tabs. Screenshots
go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from browser_support import NEEDS_CHROMIUM, PASSWORD, browser, open_as, serve_app, shot  # noqa: F401 (browser: fixture)
from conftest import REPO

EDITED = "Sunlight scatters off the molecules of the air, and blue light scatters the most, so the sky looks blue."


pytestmark = [
    pytest.mark.browser,
    NEEDS_CHROMIUM,
]

SEED = f"""
from rlhf.review import ab
from rlhf.data import accounts as auth
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_demonstrations, import_prompts
from rlhf.data.records import Approval, add_ranking, add_response
from rlhf.data.store.models import Prompt
from sqlalchemy import select
import json, pathlib, sys
home = pathlib.Path(sys.argv[1])
prompts = [{{"id": "egg", "messages": [{{"role": "user", "content": "How long do I boil an egg?"}}], "tags": ["cooking"]}},
           {{"id": "sky", "messages": [{{"role": "user", "content": "Why is the sky blue?"}}], "tags": ["science"]}}]
demos = [{{"prompt_id": "egg", "messages": prompts[0]["messages"] + [{{"role": "assistant", "content": "About 9 minutes for a hard egg."}}],
           "annotator": "ana"}},
         {{"prompt_id": "sky", "messages": prompts[1]["messages"] + [{{"role": "assistant", "content": "Because it is."}}],
           "annotator": "ana"}}]
for name, rows in (("p", prompts), ("d", demos)):
    (home / f"{{name}}.jsonl").write_text("\\n".join(json.dumps(r) for r in rows) + "\\n")
with session_scope() as db:
    auth.create_user(db, "eve", "expert", {PASSWORD!r})
    auth.create_user(db, "ana", "annotator", {PASSWORD!r})
    auth.create_user(db, "root", "admin", {PASSWORD!r})
    import_prompts(db, home / "p.jsonl")
    import_demonstrations(db, home / "d.jsonl")
    egg = db.scalar(select(Prompt).where(Prompt.external_id == "egg"))
    ids = [add_response(db, egg, t, origin="model", model_version="sft@v1").id for t in ("9 minutes.", "1 minute.", "An hour.")]
    for who, order in (("ana", [[0], [1], [2]]), ("bob", [[2], [1], [0]])):
        add_ranking(db, egg, ids, order, annotator=who, key=f"seed:{{who}}", approved=Approval("seed"))
    registry.snapshot(db, "prompts")
    ab.create_session(db, "sft@v1", "ppo@v1", "prompts@v1", answers=(["A-egg: ten minutes.", "A-sky: scattering."],
                                                                    ["B-egg: boil 9 minutes, then cool it.", "B-sky: magic."]))
"""


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """(base url, home) of a seeded app served from a subprocess."""
    home = tmp_path_factory.mktemp("review-browser-home")
    env = {**os.environ, "RLHF_HOME": str(home), "RLHF_PASSWORD_HASH": "fast"}
    env.pop("RLHF_DATABASE_URL", None)
    subprocess.run([sys.executable, "-c", SEED, str(home)], env=env, cwd=REPO, check=True, timeout=120)
    with serve_app(home, env) as url:
        yield url, home


def submit(page, fills: dict[str, str], button: str, shows: dict[str, str], screenshot: str) -> None:
    """Fill text boxes (by elem_id), press a button, wait until each element shows its text, take a screenshot."""
    from playwright.sync_api import expect

    for box, text in fills.items():
        page.fill(f"{box} textarea", text)
    page.click(button)
    for where, text in shows.items():
        expect(page.locator(where)).to_contain_text(text)
    shot(page, screenshot)


def test_expert_approves_edits_and_judges_blind(app_server, browser, monkeypatch):
    from playwright.sync_api import expect

    url, home = app_server
    page = open_as(browser, url, "eve")
    expect(page.get_by_role("tab", name="Review")).to_be_visible()

    # step 1. the review queue opens on the oldest pending item: approve it
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#review-item-html")).to_contain_text("About 9 minutes for a hard egg.")
    expect(page.locator("#review-summary")).to_contain_text("2 item(s) waiting")
    shot(page, "review-queue")
    page.click("#review-approve")
    expect(page.locator("#review-message")).to_contain_text("Approved demonstration:1.")

    # step 2. the next one is edited: a new version, the original kept
    expect(page.locator("#review-item-html")).to_contain_text("Because it is.")
    submit(page, {"#review-edit-text": EDITED, "#review-reason": "the original gives no reason"}, "#review-edit",
           {"#review-message": "version 2", "#review-summary": "0 item(s) waiting"}, "review-edited")

    # step 3. one blind A/B pair: two answers, no model names, pick "A"
    page.get_by_role("tab", name="A/B").click()
    expect(page.locator("#ab-progress")).to_contain_text("pair 1 of 2")
    left = page.inner_text("#ab-left")
    assert "sft" not in page.inner_text("#tab-ab") and "ppo" not in page.inner_text("#tab-ab")
    shot(page, "review-ab-pair")
    submit(page, {"#ab-reason": "more complete"}, "#ab-choose-a",
           {"#ab-message": "Recorded: A.", "#ab-progress": "pair 2 of 2"}, "review-ab-judged")
    page.get_by_text("Session report").click()
    page.click("#ab-report")
    expect(page.locator("#ab-report-md")).to_contain_text("still open")  # blind while judging goes on
    assert "sft@v1" not in page.inner_text("#ab-report-md") and "ppo@v1" not in page.inner_text("#ab-report-md")
    expect(page.locator("#ab-close")).to_be_hidden()  # closing is an admin's

    # step 3b. the contested item: typed ranks as on Rank (A first), a reason, Enter
    page.get_by_role("tab", name="Adjudicate").click()
    expect(page.locator("#adjudicate-prompt")).to_contain_text("How long do I boil an egg?")
    expect(page.locator("#adj-cand-2")).to_be_visible()
    page.locator("#adjudicate-prompt").click()
    for key in "123":
        page.keyboard.press(key)
    expect(page.locator("#adj-order-preview")).to_have_text("Your order: A > B > C")
    # Mark as gold (issue 16) needs a queue item of exactly these answers; the A/B session added a fourth sft@v1 answer
    # to this prompt, so there is none: one line next to the buttons, the ranks kept, nothing stored
    page.click("#adjudicate-gold")
    expect(page.locator("#adjudicate-message")).to_contain_text("prompt 1: no rank item in the queue holds exactly these answers")
    expect(page.locator("#adj-order-preview")).to_have_text("Your order: A > B > C")
    page.focus("#adjudicate-reason input, #adjudicate-reason textarea")
    page.keyboard.type("9 minutes is right; an hour ruins it")
    page.keyboard.press("Enter")
    expect(page.locator("#adjudicate-message")).to_contain_text("as its consensus")

    # step 4. the dashboard renders (plots + tables)
    page.get_by_role("tab", name="Agreement").click()
    expect(page.locator("#agreement-summary")).to_contain_text("Krippendorff")
    shot(page, "review-agreement")
    page.close()

    # step 5. the database holds exactly those rows
    monkeypatch.setenv("RLHF_HOME", str(home))
    monkeypatch.delenv("RLHF_DATABASE_URL", raising=False)
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Demonstration, Ranking, Response, Review
    from rlhf.data.store.loop_models import GoldItem
    from rlhf.data.store.review_models import ABItem, ABJudgement

    with session_scope() as db:
        demos = db.scalars(select(Demonstration).order_by(Demonstration.id)).all()
        assert [(d.id, d.status, d.version, d.parent_id) for d in demos] == [
            (1, "approved", 1, None), (2, "superseded", 1, None), (3, "approved", 2, 2)]
        assert demos[1].messages[-1]["content"] == "Because it is." and demos[2].messages[-1]["content"] == EDITED
        pref, consensus = db.scalars(select(Ranking).where(Ranking.annotator_id == db.scalar(
            select(Review.reviewer_id).where(Review.reviewer_name == "eve").limit(1))).order_by(Ranking.id)).all()
        assert [db.get(Response, r).text for r in consensus.response_ids] == ["9 minutes.", "1 minute.", "An hour."]
        assert (consensus.order, consensus.status, consensus.reason) == (
            [[0], [1], [2]], "approved", "9 minutes is right; an hour ruins it")
        assert [db.get(Response, r).text for r in pref.response_ids] == [EDITED, "Because it is."]
        assert (pref.order, pref.origin, pref.status) == ([[0], [1]], "human", "approved")
        reviews = db.scalars(select(Review).where(Review.verdict.in_(("approve", "edit")), Review.reviewer_name == "eve")
                             .order_by(Review.id)).all()
        assert [(r.item_type, r.item_id, r.verdict, r.reviewer_name) for r in reviews] == [
            ("demonstration", 1, "approve", "eve"), ("demonstration", 2, "edit", "eve"),
            ("demonstration", 3, "approve", "eve"), ("ranking", pref.id, "edit", "eve")]
        assert reviews[1].reason == "the original gives no reason" and all(r.created_at for r in reviews)
        assert not db.scalars(select(GoldItem)).all()
        (j,) = db.scalars(select(ABJudgement)).all()
        item = db.get(ABItem, j.item_id)
        shown_left = db.get(Response, item.response_a_id if item.a_on_left else item.response_b_id).text
        assert shown_left in left  # the judge picked the answer that was on the left
        assert (j.judge_name, j.choice, j.winner, j.reason, j.origin) == (
            "eve", "left", "a" if item.a_on_left else "b", "more complete", "human")


def test_annotator_sees_no_expert_tabs(app_server, browser):
    url, _ = app_server
    page = open_as(browser, url, "ana")
    page.wait_for_timeout(1500)  # the load event that would show them
    for name in ("Review", "Agreement", "Adjudicate", "A/B"):
        assert not page.get_by_role("tab", name=name).is_visible()  # cosmetics; the handlers refuse anyway
    shot(page, "review-annotator-view")
    page.close()


def test_an_admin_closes_the_session_and_the_report_names_the_models(app_server, browser):
    from playwright.sync_api import expect

    url, _ = app_server
    page = open_as(browser, url, "root")
    page.get_by_role("tab", name="A/B").click()
    expect(page.locator("#ab-progress")).to_contain_text("Session ab#1")
    page.get_by_text("Session report").click()
    page.click("#ab-close")
    expect(page.locator("#ab-report-md")).to_contain_text("is now closed")
    expect(page.locator("#ab-report-md")).to_contain_text("ppo@v1")
    page.get_by_role("tab", name="A/B").click()
    page.click("#ab-refresh")
    expect(page.locator("#ab-progress")).to_contain_text("is closed")
    for button in ("#ab-choose-a", "#ab-choose-tie", "#ab-choose-b"):  # no open session: nothing to press
        expect(page.locator(button)).to_be_disabled()
    shot(page, "review-ab-closed")
    page.close()
