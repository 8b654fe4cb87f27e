"""Each annotator-experience bug of issue 17 in a real browser (Debian's chromium through playwright), one test each.

Every test failed on the code before the fix (the report names how). The app runs as a subprocess over
its own RLHF_HOME: eight prompts with three candidates each, every item open to ten people, so each
test works as its own annotator on a fresh queue. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from browser_support import NEEDS_CHROMIUM, PASSWORD, browser, open_as, serve_app, shot  # noqa: F401 (browser: fixture)
from conftest import REPO

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

MARKUP_ID = '<b>bold</b><img src="/probe-prompt.png">'
PEOPLE = {"ana": "annotator", "bo": "annotator", "sam": "annotator", "pia": "annotator", "lou": "annotator",
          "xia": "annotator", "vic": "annotator", "eve": "expert", "root": "admin"}
SEED = f"""
from rlhf.data import accounts
from rlhf.data.records import add_prompt, add_response
from rlhf.data.store import session_scope
from labeling_app import queue
with session_scope() as db:
    for name, role in {PEOPLE!r}.items():
        accounts.create_user(db, name, role, {PASSWORD!r})
    queue.put_settings(db, {{"write_overlap": 10, "rank_overlap": 10}}, by="test")
    ids = [{MARKUP_ID!r}] + [f"q{{i}}" for i in range(1, 8)]
    for n, ext in enumerate(ids):
        text = "A long question to scroll past on a phone. " * 6 + f"Which answer to question {{n}} is best?"
        p = add_prompt(db, ext, [{{"role": "user", "content": text}}]).row
        for k in range(3):
            add_response(db, p, f"Answer {{k}} to question {{n}}. " + "More words. " * (8 * k + 4), origin="model",
                         model_version="sft@v1", generation={{"index": k}})
"""


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-bugs-home")
    env = {**os.environ, "RLHF_HOME": str(home), "RLHF_PASSWORD_HASH": "fast"}
    env.pop("RLHF_DATABASE_URL", None)
    subprocess.run([sys.executable, "-c", SEED], env=env, cwd=REPO, check=True, timeout=120)
    with serve_app(home, env) as url:
        yield url, f"sqlite:///{home / 'rlhf.db'}", home


def _rows(db_url: str, name: str, model):
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import User

    with session_scope(db_url) as db:
        uid = db.scalar(select(User.id).where(User.name == name))
        rows = db.scalars(select(model).where(model.annotator_id == uid if hasattr(model, "annotator_id")
                                              else model.user_id == uid).order_by(model.id)).all()
        db.expunge_all()
        return rows


def _rank_tab(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Rank").click()
    expect(page.locator("#cand-2 input[type=radio]").first).to_be_visible()


def test_all_bad_survives_enter_on_the_focused_checkbox(app_server, browser):
    """Tick All bad with the mouse, press Enter as the page says: gradio's checkbox used to untick itself first."""
    from playwright.sync_api import expect

    from rlhf.data.store.models import Ranking

    url, db_url, _ = app_server
    page = open_as(browser, url, "ana")
    _rank_tab(page)
    page.click("#rank-all-bad input[type=checkbox]")
    expect(page.locator("#rank-all-bad input[type=checkbox]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking")
    (r,) = _rows(db_url, "ana", Ranking)
    assert r.all_bad and r.order == [[0, 1, 2]]
    page.close()


def test_typed_ranks_start_at_answer_a_after_mouse_use(app_server, browser):
    """Rank one item with the mouse (last click on answer B's text), then type 1 2 3 on the next: A=1, B=2, C=3."""
    from playwright.sync_api import expect

    from rlhf.data.store.models import Ranking

    url, db_url, _ = app_server
    page = open_as(browser, url, "bo")
    _rank_tab(page)
    for i, rank in enumerate("312"):
        page.locator(f"#cand-rank-{i} label", has_text=rank).click()
    page.click("#cand-text-1")  # picks answer B for the next digit on this item...
    page.click("#rank-submit")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking")
    page.locator("#rank-prompt").click()  # ...but a new item starts at answer A
    for key in "123":
        page.keyboard.press(key)
    expect(page.locator("#order-preview")).to_have_text("Your order: A > B > C")
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking")
    first, second = _rows(db_url, "bo", Ranking)
    assert [first.response_ids[g[0]] for g in first.order] == [first.shown_order[i] for i in (1, 2, 0)]
    assert [second.response_ids[g[0]] for g in second.order] == second.shown_order  # A, B, C as typed
    page.close()


def test_submit_waits_for_a_complete_ranking_and_marks_what_is_missing(app_server, browser):
    """Inline validation: no toast over the page; Submit disabled until every answer is ranked or All bad is ticked."""
    from playwright.sync_api import expect

    url, db_url, _ = app_server
    page = open_as(browser, url, "vic")
    _rank_tab(page)
    page.locator("#rank-prompt").click()
    page.keyboard.press("1")
    expect(page.locator("#rank-submit")).to_be_disabled()
    page.keyboard.press("Enter")
    expect(page.locator("#cand-1.needs-rank")).to_be_visible()
    expect(page.locator("#cand-2.needs-rank")).to_be_visible()
    expect(page.locator("#order-preview")).to_have_text("Your order: A · not ranked yet: B, C")
    page.keyboard.press("b")
    expect(page.locator("#rank-submit")).to_be_enabled()
    expect(page.locator("#cand-1.needs-rank")).to_have_count(0)
    assert not page.locator(".toast-body").count()
    dup = page.evaluate("""() => { const n = {}; document.querySelectorAll('[id]').forEach((e) => n[e.id] = (n[e.id] || 0) + 1);
                                   return Object.keys(n).filter((k) => k && n[k] > 1); }""")
    assert dup == []  # cand-0..cand-2 used to appear twice
    shot(page, "rank-incomplete")
    page.close()


def test_a_stray_s_never_skips_and_unsaved_text_is_never_lost(app_server, browser):
    """`s` does nothing; Shift+S skips but keeps the text (U brings it back); closing the tab with unsaved text asks."""
    from playwright.sync_api import expect

    from rlhf.data.store.app_models import Assignment

    url, db_url, _ = app_server
    page = open_as(browser, url, "sam")
    page.locator("#write-answer textarea").click()
    page.keyboard.type("An answer I have not saved")
    page.locator("#progress-write").click()  # outside the text box
    page.keyboard.press("s")
    page.click("#write-draft")  # a round trip after the key: had it skipped, the draft would land on the next item
    expect(page.locator("#write-message")).to_contain_text("Draft saved")
    writes = [(a.status, a.draft) for a in _rows(db_url, "sam", Assignment) if a.kind == "write"]
    assert writes == [("assigned", {"text": "An answer I have not saved"})]  # not skipped, the text on its item
    page.keyboard.press("Shift+S")
    expect(page.locator("#write-message")).to_contain_text("Skipped")
    page.keyboard.press("Escape")
    page.keyboard.press("u")
    expect(page.locator("#write-answer textarea")).to_have_value("An answer I have not saved")
    page.locator("#write-answer textarea").fill("An answer I have not saved, and more")
    page.close(run_before_unload=True)  # the tab asks first: the dialog is dismissed, so the tab stays
    expect(page.locator("#write-answer textarea")).to_have_value("An answer I have not saved, and more")
    assert [t for t, _ in page.dialogs] == ["beforeunload"]
    page.close()


def test_experts_and_admins_lease_nothing_by_opening_the_app_and_see_their_tabs_at_once(app_server, browser):
    from playwright.sync_api import expect

    from rlhf.data.store.app_models import Assignment

    url, db_url, _ = app_server
    for name, landing, ready in (("eve", "Review", "#review-summary"), ("root", "Admin", "#admin-import")):
        page = open_as(browser, url, name)
        assert _rows(db_url, name, Assignment) == []  # no Write or Rank item held for an hour
        assert page.get_by_role("tab", name=landing).is_visible()  # with the header, not seconds later
        expect(page.locator(ready)).to_be_visible()
        expect(page.get_by_role("tab", name=landing)).to_have_attribute("aria-selected", "true")
        if name == "eve":
            expect(page.locator("#review-summary")).to_contain_text("waiting")  # its page loaded: load is over
        assert _rows(db_url, name, Assignment) == []
        page.get_by_role("tab", name="Rank").click()  # working on Rank takes an item
        expect(page.locator("#cand-0")).to_be_visible()
        assert [(a.kind, a.status) for a in _rows(db_url, name, Assignment)] == [("rank", "assigned")]
        page.close()


def test_logout_stays_in_the_tab_and_the_other_tab_says_log_in_again(app_server, browser):
    from playwright.sync_api import expect

    url, _, _ = app_server
    one = open_as(browser, url, "lou")
    context = one.context
    two = open_as(browser, url, "lou", context=context)  # a second tab of the same login
    one.click("#logout")
    expect(one.get_by_label("password")).to_be_visible()  # the login form, in the same tab
    assert len(context.pages) == 2
    two.get_by_role("tab", name="Rank").click()  # the old tab's next action
    expect(two.locator("#session-expired")).to_contain_text("log in again")
    assert not [b for b in two.locator("[data-testid=status-tracker]:has-text('Error')").all() if b.is_visible()]
    assert all(t.strip() != "Error" for t in two.locator("[data-testid=toast-body]").all_inner_texts())  # never bare
    shot(two, "session-expired")
    context.close()


def test_notices_are_text(app_server, browser):
    """A prompt id like <b>bold</b><img ...> in "Saved answer to ..." shows as typed; the image is never fetched."""
    from playwright.sync_api import expect

    url, _, _ = app_server
    page = open_as(browser, url, "xia")
    expect(page.locator("#write-prompt")).to_contain_text(MARKUP_ID)
    page.locator("#write-answer textarea").fill("An answer")
    page.click("#write-submit")
    expect(page.locator("#write-message")).to_contain_text(f"Saved answer to {MARKUP_ID}.")
    assert not page.locator("#write-message b, #write-message img").count()
    assert not any("probe-prompt" in u for u in page.requests)
    page.close()


def test_phone_keeps_the_prompt_in_view_hides_key_hints_and_returns_to_the_top(app_server, browser):
    from playwright.sync_api import expect

    url, _, _ = app_server
    page = open_as(browser, url, "pia", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    _rank_tab(page)
    expect(page.locator("#rank-guidelines")).not_to_be_visible()  # the guidelines wait in a closed drawer
    body = page.inner_text("body")
    assert "(Enter)" not in body and "(S)" not in body and not page.locator("#rank-keys").is_visible()
    for i, rank in enumerate("213"):
        page.locator(f"#cand-rank-{i} label", has_text=rank).tap()
    page.locator("#cand-rank-2").scroll_into_view_if_needed()
    box = page.locator("#rank-prompt").bounding_box()
    assert page.evaluate("window.scrollY") > 300 and 0 <= box["y"] < 844 * 0.5  # the prompt stays in view
    shot(page, "phone-rank")
    page.locator("#rank-submit").tap()
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking")
    page.wait_for_function("window.scrollY === 0")  # back to the top of the next item
    page.locator("#rank-guidelines-drawer .label-wrap").first.tap()
    expect(page.locator("#rank-guidelines")).to_be_visible()
    page.close()
