"""The labeling app in a real browser: Debian's chromium driven by playwright (no browser download).

The app runs as `python -m labeling_app` on a free loopback port over a temporary RLHF_HOME. An
annotator logs in, writes a demonstration, ranks four candidates with one tie from the keyboard,
skips with S; an admin imports prompts and creates a user. The database must then hold exactly
those rows. Screenshots go to test-artifacts/ (git-ignored); with RLHF_UPDATE_DOCS=1 the Rank
page is also saved as docs/rank-page.png for the README.
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
]
CANDIDATES = {
    "seasons": ["Earth's axis is tilted about 23.5°, so through the year each hemisphere leans toward the Sun "
                "(longer days, more direct light: summer) or away from it (winter).",
                "Because Earth is closer to the Sun in summer and farther away in winter.",
                "The tilt of Earth's axis: the hemisphere tilted toward the Sun gets more direct sunlight and "
                "longer days, which makes it summer there.",
                "Seasons happen because the weather changes."],
    "trip": ["Start in Alfama at dawn, walk up to the Miradouro da Graça, then down to Baixa and along the river to Belém.",
             "Take tram 28.", "Begin at Praça do Comércio and wander uphill through Alfama to the castle.",
             "Lisbon is the capital of Portugal."],
}


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
    for ext, texts in json.loads({json.dumps(CANDIDATES)!r}).items():
        p = db.scalar(select(Prompt).where(Prompt.external_id == ext))
        for i, t in enumerate(texts):
            add_response(db, p, t, origin="model", model_version="sft@v1", generation={{"index": i}})
"""
    subprocess.run([sys.executable, "-c", seed], env=env, cwd=REPO, check=True, timeout=120)
    with serve_app(home, env) as url:
        yield url, f"sqlite:///{home / 'rlhf.db'}"


def test_annotator_writes_and_ranks_and_exactly_those_rows_are_stored(app_server, browser):
    from rlhf.data.store import session_scope
    from rlhf.data.store.app_models import Assignment
    from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, User

    url, db_url = app_server
    page = open_as(browser, url, "ana")
    assert "ana" in page.inner_text("#header") and "annotator" in page.inner_text("#header")
    assert not page.get_by_role("tab", name="Admin").is_visible()  # cosmetics; the handlers refuse anyway

    # step 1. write: the prompt's HTML is shown as text and never runs
    page.wait_for_selector("#write-prompt .convo")
    assert "<script>window.__xss = 1</script>" in page.inner_text("#write-prompt")
    assert page.evaluate("window.__xss") is None and not page.dialogs
    assert "left in your queue" in page.inner_text("#progress-write")
    answer = "It embeds a script and a broken image whose onerror handler runs code: both are XSS vectors."
    page.fill("#write-answer textarea", "draft first")
    page.click("#write-draft")
    page.wait_for_selector("#write-message:has-text('Draft saved')")
    page.fill("#write-answer textarea", answer)
    shot(page, "write-page")
    page.click("#write-submit")
    page.wait_for_selector("#write-message:has-text('Saved answer to tag-question')")
    assert "1 answers written today" in page.inner_text("#progress-write")
    assert "Why do we have seasons on Earth?" in page.inner_text("#write-prompt")  # the next prompt

    # step 2. rank: four candidates, keys 1 2 2 3 (a tie for second), then Enter
    page.get_by_role("tab", name="Rank").click()
    page.wait_for_selector("#cand-3 input[type=radio]")
    assert not page.is_visible("#cand-4")
    shown_texts = [page.inner_text(f"#cand-text-{i} .cand-text") for i in range(4)]
    assert sorted(shown_texts) == sorted(CANDIDATES["seasons"]) and "sft@v1" not in page.inner_text("#tab-rank")
    page.locator("#progress-rank").click()  # focus outside any text box
    for key in "1223":
        page.keyboard.press(key)
    page.wait_for_function("document.querySelector('#order-preview').textContent === 'Your order: A > B = C > D'")
    page.fill("#rank-reason textarea, #rank-reason input", "A is correct and complete")
    page.locator("#progress-rank").click()
    shot(page, "rank-page")
    if os.environ.get("RLHF_UPDATE_DOCS") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "rank-page.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("#rank-message:has-text('Saved ranking of seasons')")
    assert "1 rankings today" in page.inner_text("#progress-rank")

    # step 3. S skips the next item (the Lisbon candidates)
    page.wait_for_selector("#rank-prompt:has-text('Lisbon')")
    page.locator("#progress-rank").click()
    page.keyboard.press("s")
    page.wait_for_selector("#rank-message:has-text('Skipped')")
    shot(page, "rank-done")

    # step 4. the database holds exactly those rows
    with session_scope(db_url) as db:
        ana = db.scalar(select(User).where(User.name == "ana"))
        demos = db.scalars(select(Demonstration)).all()
        assert len(demos) == 1
        d = demos[0]
        assert d.annotator_id == ana.id and d.status == "pending" and d.origin == "human"
        assert d.messages == PROMPTS[0]["messages"] + [{"role": "assistant", "content": answer}]
        rankings = db.scalars(select(Ranking)).all()
        assert len(rankings) == 1
        r = rankings[0]
        seasons = db.scalar(select(Prompt).where(Prompt.external_id == "seasons"))
        texts = {x.id: x.text for x in db.scalars(select(Response).where(Response.prompt_id == seasons.id))}
        assert r.prompt_id == seasons.id and sorted(r.response_ids) == sorted(texts) and len(r.shown_order) == 4
        assert [texts[i] for i in r.shown_order] == shown_texts  # what the browser showed, in that order
        idx = [r.response_ids.index(i) for i in r.shown_order]  # shown position -> index into response_ids
        assert r.order == [[idx[0]], sorted([idx[1], idx[2]]), [idx[3]]]
        assert (r.annotator_id, r.origin, r.status, r.all_bad) == (ana.id, "human", "pending", False)
        assert r.reason == "A is correct and complete" and r.seconds_spent > 0
        statuses = sorted((a.kind, a.status) for a in db.scalars(select(Assignment).where(Assignment.user_id == ana.id)))
        assert statuses == [("rank", "done"), ("rank", "skipped"), ("write", "assigned"), ("write", "done")]
    page.close()


def test_admin_imports_prompts_and_creates_a_user(app_server, browser, tmp_path):
    url, db_url = app_server
    page = open_as(browser, url, "root")
    page.get_by_role("tab", name="Admin").click()
    page.wait_for_selector("#admin-import")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x1", "messages": [{"role": "user", "content": "ok"}]},
                                               {"id": "x2", "messages": []}])
    page.set_input_files("#admin-upload input[type=file]", str(bad))
    page.wait_for_timeout(500)
    page.click("#admin-import")
    page.wait_for_function("document.querySelector('#admin-import-msg textarea, #admin-import-msg input').value"
                           " === 'error: bad.jsonl:2: messages: empty list of messages'")
    page.set_input_files("#admin-upload input[type=file]", str(write_jsonl(tmp_path / "more.jsonl", [
        {"id": "new-1", "messages": [{"role": "user", "content": "A new prompt"}]}])))
    page.wait_for_timeout(500)
    page.click("#admin-import")
    page.wait_for_function("document.querySelector('#admin-import-msg textarea, #admin-import-msg input')"
                           ".value.startsWith('more.jsonl: 1 prompts added')")
    page.get_by_text("Users", exact=True).click()
    page.fill("#admin-user-name input, #admin-user-name textarea", "newbie")
    page.get_by_label("Password (8+ characters)").fill(PASSWORD)
    page.click("#admin-create-user")
    page.wait_for_function("document.querySelector('#admin-user-msg textarea, #admin-user-msg input')"
                           ".value.startsWith('created newbie (annotator)')")
    shot(page, "admin-page")
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Prompt, User

    with session_scope(db_url) as db:
        assert sorted(db.scalars(select(Prompt.external_id))) == ["new-1", "seasons", "tag-question", "trip"]
        assert db.scalar(select(User.role).where(User.name == "newbie")) == "annotator"
    page.close()
    fresh = open_as(browser, url, "newbie")  # the new account logs in straight away
    assert "newbie" in fresh.inner_text("#header")
    fresh.close()
