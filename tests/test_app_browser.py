"""The labeling app in a real browser: Debian's chromium driven by playwright (no browser download).

The app runs as `python -m labeling_app` on a free loopback port over a temporary RLHF_HOME. An
annotator labels a whole queue with the keyboard only: writes two answers (one after a stray `s`
that must do nothing, a Shift+S skip and an Undo that brings the unsaved text back), skips one,
ranks four candidates with a tie, corrects a ranking after Undo, and marks a set All bad. The
database must then hold exactly what was typed. An admin imports prompts and creates a user; their
mistakes show as one line next to the control. Screenshots go to test-artifacts/ (git-ignored);
with RLHF_UPDATE_DOCS=1 the Write and Rank pages are also saved as docs/write-page.png and
docs/rank-page.png for the README (with a correct ranking).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from browser_support import NEEDS_CHROMIUM, PASSWORD, browser, open_as, serve_app, shot  # noqa: F401 (browser: fixture)
from conftest import REPO, write_jsonl

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'

pytestmark = [
    pytest.mark.browser,
    NEEDS_CHROMIUM,
]

PROMPTS = [
    {"id": "tag-question", "messages": [{"role": "user", "content": f"What does this HTML do? {XSS}"}]},
    {"id": "seasons", "messages": [{"role": "user", "content": "Why do we have seasons on Earth? Keep it short."}]},
    {"id": "trip", "messages": [{"role": "system", "content": "You are a concise travel assistant."},
                                {"role": "user", "content": "I have one day in Lisbon."},
                                {"role": "assistant", "content": "Lovely! Do you prefer museums or walking?"},
                                {"role": "user", "content": "Walking. Where should I start?"}]},
    {"id": "capital", "messages": [{"role": "user", "content": "What is the capital of Australia?"}]},
]
# candidate text -> the rank a careful annotator gives it (1 = best; equal = tie)
CANDIDATES = {
    "seasons": {"Earth's axis is tilted about 23.5°, so through the year each hemisphere leans toward the Sun "
                "(longer days, more direct light: summer) or away from it (winter).": 1,
                "The tilt of Earth's axis: the hemisphere tilted toward the Sun gets more direct sunlight and "
                "longer days, which makes it summer there.": 1,
                "Seasons happen because the weather changes.": 2,
                "Because Earth is closer to the Sun in summer and farther away in winter.": 3},
    "trip": {"Start in Alfama at dawn, walk up to the Miradouro da Graça, then down to Baixa and along the river to Belém.": 1,
             "Begin at Praça do Comércio and wander uphill through Alfama to the castle.": 2,
             "Take tram 28.": 3, "Lisbon is the capital of Portugal.": 4},
    "capital": {"Sydney.": None, "Melbourne.": None, "It has no capital.": None},  # all bad
}
SEASONS_REASON = "Both tilt answers are right (a tie); 'the weather changes' explains nothing; 'closer to the Sun' is false"
ANSWERS = {"tag-question": "It embeds a script and a broken image whose onerror handler runs code: both are XSS vectors.",
           "seasons": "Earth's axis is tilted, so each hemisphere gets more direct sunlight and longer days for half the year."}


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """(base url, database url) of a seeded app served from a subprocess."""
    home = tmp_path_factory.mktemp("browser-home")
    env = {**os.environ, "RLHF_HOME": str(home), "RLHF_PASSWORD_HASH": "fast"}
    env.pop("RLHF_DATABASE_URL", None)
    prompts = write_jsonl(home / "prompts.jsonl", PROMPTS)
    seed = f"""
import json
from sqlalchemy import select
from rlhf.data import accounts as auth
from rlhf.data.store import session_scope
from rlhf.data.ingest import import_prompts
from rlhf.data.records import add_response
from rlhf.data.store.models import Prompt
with session_scope() as db:
    auth.create_user(db, "ana", "annotator", {PASSWORD!r})
    auth.create_user(db, "root", "admin", {PASSWORD!r})
    import_prompts(db, {str(prompts)!r})
    for ext, texts in json.loads({json.dumps({k: list(v) for k, v in CANDIDATES.items()})!r}).items():
        p = db.scalar(select(Prompt).where(Prompt.external_id == ext))
        for i, t in enumerate(texts):
            add_response(db, p, t, origin="model", model_version="sft@v1", generation={{"index": i}})
"""
    subprocess.run([sys.executable, "-c", seed], env=env, cwd=REPO, check=True, timeout=120)
    with serve_app(home, env) as url:
        yield url, f"sqlite:///{home / 'rlhf.db'}"


def _focused(page, selector: str) -> None:
    page.wait_for_function("(sel) => document.activeElement && document.activeElement.closest(sel)", arg=selector)


def _type_ranks(page, prompt: str) -> list[str]:
    """Type each shown answer's rank, A first, by its content; returns the texts as shown."""
    shown = [page.inner_text(f"#cand-text-{i} .cand-text") for i in range(len(CANDIDATES[prompt]))]
    for text in shown:
        page.keyboard.press(str(CANDIDATES[prompt][text]))
    return shown


def _expected_order(shown_ids: list[int], response_ids: list[int], ranks: list[int]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for rid, r in zip(shown_ids, ranks):
        groups.setdefault(r, []).append(response_ids.index(rid))
    return [sorted(groups[r]) for r in sorted(groups)]


def test_keyboard_only_labels_a_full_queue_and_exactly_that_is_stored(app_server, browser):
    from playwright.sync_api import expect

    url, db_url = app_server
    page = open_as(browser, url, "ana")
    assert "ana" in page.inner_text("#header") and "annotator" in page.inner_text("#header")
    assert not page.get_by_role("tab", name="Admin").is_visible()  # cosmetics; the handlers refuse anyway

    # step 1. write: the page opens on the first prompt with the cursor in the answer box; its HTML is text
    expect(page.locator("#write-prompt")).to_contain_text("<script>window.__xss = 1</script>")
    assert page.evaluate("window.__xss") is None and not page.dialogs
    _focused(page, "#write-answer")
    page.keyboard.type(ANSWERS["tag-question"])
    page.keyboard.press("Control+Enter")
    expect(page.locator("#write-message")).to_contain_text("Saved answer to tag-question")
    expect(page.locator("#progress-write")).to_contain_text("1 answers today")

    # step 2. a stray `s` outside the box does nothing; Shift+S skips, keeping the text; U brings it back
    expect(page.locator("#write-prompt")).to_contain_text("Why do we have seasons")
    _focused(page, "#write-answer")
    page.keyboard.type("Seasons come from the tilt")
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    page.keyboard.press("?")  # the sheet opens: the keys before it were handled
    expect(page.locator("#shortcut-sheet")).to_contain_text("Shift+S")
    page.keyboard.press("Escape")
    expect(page.locator("#write-prompt")).to_contain_text("Why do we have seasons")
    page.keyboard.press("Shift+S")
    expect(page.locator("#write-message")).to_contain_text("Skipped")
    expect(page.locator("#write-prompt")).to_contain_text("Lisbon")
    page.keyboard.press("Escape")
    page.keyboard.press("u")
    expect(page.locator("#write-message")).to_contain_text("Undone")
    expect(page.locator("#write-answer textarea")).to_have_value("Seasons come from the tilt")
    _focused(page, "#write-answer")
    page.keyboard.press("Control+A")
    page.keyboard.type(ANSWERS["seasons"])
    page.locator("#progress-write").hover()
    shot(page, "write-page")
    if os.environ.get("RLHF_UPDATE_DOCS") == "1":
        page.screenshot(path=str(REPO / "docs" / "write-page.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#write-message")).to_contain_text("Saved answer to seasons")

    # step 3. skip the Lisbon prompt for good
    expect(page.locator("#write-prompt")).to_contain_text("Lisbon")
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+S")
    expect(page.locator("#write-prompt")).to_contain_text("capital of Australia")

    # step 4. rank (the tab opened from the keyboard): a tie for first, a reason, Enter
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Rank").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#rank-prompt")).to_contain_text("Why do we have seasons")
    _focused(page, "#rank-prompt")
    assert not page.is_visible("#cand-4") and "sft@v1" not in page.inner_text("#tab-rank")
    seasons_shown = _type_ranks(page, "seasons")
    want = " > ".join(" = ".join(chr(65 + i) for i, t in enumerate(seasons_shown) if CANDIDATES["seasons"][t] == r)
                      for r in (1, 2, 3))
    expect(page.locator("#order-preview")).to_have_text(f"Your order: {want}")
    page.focus("#rank-reason input, #rank-reason textarea")
    page.keyboard.type(SEASONS_REASON)
    shot(page, "rank-page")
    if os.environ.get("RLHF_UPDATE_DOCS") == "1":
        page.screenshot(path=str(REPO / "docs" / "rank-page.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking of seasons")
    expect(page.locator("#progress-rank")).to_contain_text("1 rankings today")

    # step 5. Lisbon: a hasty 1 2 3 4, undone with U and ranked again (a new version; every item starts at A)
    expect(page.locator("#rank-prompt")).to_contain_text("Lisbon")
    _focused(page, "#rank-prompt")
    for key in "1234":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking of trip")
    expect(page.locator("#rank-prompt")).to_contain_text("capital of Australia")
    page.keyboard.press("u")
    expect(page.locator("#rank-prompt")).to_contain_text("Lisbon")
    expect(page.locator("#order-preview")).to_have_text("Your order: A > B > C > D")  # as submitted
    trip_shown = _type_ranks(page, "trip")
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved your corrected ranking of trip")

    # step 6. every answer to the capital question is wrong: B (All bad), Enter
    expect(page.locator("#rank-prompt")).to_contain_text("capital of Australia")
    page.keyboard.press("b")
    expect(page.locator("#order-preview")).to_have_text("All bad")
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking of capital")
    expect(page.locator("#rank-prompt")).to_contain_text("Nothing left to rank")
    assert not page.locator(".toast-body").count() and not page.dialogs  # nothing ever covered the page
    shot(page, "rank-done")

    # step 7. the database holds exactly what was typed
    from rlhf.data.store import session_scope
    from rlhf.data.store.app_models import Assignment
    from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, User

    with session_scope(db_url) as db:
        ana = db.scalar(select(User).where(User.name == "ana"))
        ext = {p.id: p.external_id for p in db.scalars(select(Prompt))}
        demos = {ext[d.prompt_id]: d for d in db.scalars(select(Demonstration))}
        assert sorted(demos) == ["seasons", "tag-question"]
        for name, d in demos.items():
            assert (d.annotator_id, d.status, d.origin, d.version) == (ana.id, "pending", "human", 1)
            assert d.messages == next(p["messages"] for p in PROMPTS if p["id"] == name) + [
                {"role": "assistant", "content": ANSWERS[name]}]
        rankings = {}
        for r in db.scalars(select(Ranking).order_by(Ranking.id)):
            rankings.setdefault(ext[r.prompt_id], []).append(r)
        assert sorted(rankings) == ["capital", "seasons", "trip"] and len(rankings["trip"]) == 2
        for name, shown in (("seasons", seasons_shown), ("trip", trip_shown)):
            r = rankings[name][-1]
            texts = {x.id: x.text for x in db.scalars(select(Response).where(Response.id.in_(r.response_ids)))}
            assert [texts[i] for i in r.shown_order] == shown  # what the browser showed, in that order
            assert r.order == _expected_order(r.shown_order, r.response_ids, [CANDIDATES[name][t] for t in shown])
            assert (r.annotator_id, r.status, r.all_bad) == (ana.id, "pending", False) and r.seconds_spent > 0
        assert rankings["seasons"][0].reason == SEASONS_REASON
        hasty = rankings["trip"][0]
        assert hasty.status == "superseded" and hasty.order == [[hasty.response_ids.index(i)] for i in hasty.shown_order]
        (bad,) = rankings["capital"]
        assert bad.all_bad and bad.status == "pending" and bad.order == [[0, 1, 2]]
        statuses = sorted((a.kind, a.status) for a in db.scalars(select(Assignment).where(Assignment.user_id == ana.id)))
        assert statuses == [("rank", "done")] * 3 + [("write", "assigned"), ("write", "done"), ("write", "done"),
                                                    ("write", "skipped")]
    page.close()


def test_admin_imports_prompts_and_creates_a_user_with_mistakes_shown_inline(app_server, browser, tmp_path):
    url, db_url = app_server
    page = open_as(browser, url, "root")
    page.wait_for_selector("#admin-import")  # an admin lands on the Admin tab
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x1", "messages": [{"role": "user", "content": "ok"}]},
                                               {"id": "x2", "messages": []}])
    from playwright.sync_api import expect

    page.set_input_files("#admin-upload input[type=file]", str(bad))
    expect(page.locator("#admin-upload")).to_contain_text("bad.jsonl")  # the upload landed before Import is clicked
    page.click("#admin-import")
    page.wait_for_function("document.querySelector('#admin-import-msg textarea, #admin-import-msg input').value"
                           " === 'error: bad.jsonl:2: messages: empty list of messages'")
    page.set_input_files("#admin-upload input[type=file]", str(write_jsonl(tmp_path / "more.jsonl", [
        {"id": "new-1", "messages": [{"role": "user", "content": "A new prompt"}]}])))
    expect(page.locator("#admin-upload")).to_contain_text("more.jsonl")
    page.click("#admin-import")
    page.wait_for_function("document.querySelector('#admin-import-msg textarea, #admin-import-msg input')"
                           ".value.startsWith('more.jsonl: 1 prompts added')")
    page.get_by_text("Users", exact=True).click()
    user_msg = "document.querySelector('#admin-user-msg textarea, #admin-user-msg input').value"
    page.fill("#admin-user-name input, #admin-user-name textarea", '<b>x</b><img src="/probe-user.png">')
    page.get_by_label("Password (8+ characters)").fill(PASSWORD)
    page.click("#admin-create-user")
    page.wait_for_function(f"{user_msg}.startsWith(\"error: user name '<b>x</b><img\")")  # text, shown as typed
    page.fill("#admin-user-name input, #admin-user-name textarea", "newbie")
    page.get_by_label("Password (8+ characters)").fill(PASSWORD)
    page.click("#admin-create-user")
    page.wait_for_function(f"{user_msg}.startsWith('created newbie (annotator)')")
    assert not page.locator(".toast-body").count()  # a mistake is a line in its box, not a toast over the page
    assert not any("probe-user" in u for u in page.requests)  # the <img> in the name was never fetched
    shot(page, "admin-page")
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt, User

    with session_scope(db_url) as db:
        assert sorted(db.scalars(select(Prompt.external_id))) == ["capital", "new-1", "seasons", "tag-question", "trip"]
        assert db.scalar(select(User.role).where(User.name == "newbie")) == "annotator"
    page.close()
    fresh = open_as(browser, url, "newbie")  # the new account logs in straight away
    assert "newbie" in fresh.inner_text("#header")
    fresh.close()
