"""Feedback after a commit in a real browser (issue 16, part 2): chromium through playwright, the app in a subprocess.

Two others have ranked the first item and the reward model has scored it. The annotator ranks it from the
keyboard: until Enter the page holds no feedback element at all; after it, the page shows their order, the
reward model's and the consensus of the two others, by the letters they saw, naming no model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from browser_support import NEEDS_CHROMIUM, PASSWORD, browser, open_as, serve_app, shot  # noqa: F401 (browser: fixture)
from conftest import REPO, write_jsonl

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

PROMPTS = [{"id": "q1", "messages": [{"role": "user", "content": "Name a primary colour."}]},
           {"id": "q2", "messages": [{"role": "user", "content": "Name a planet."}]}]
TEXTS = {"q1": ["Red.", "Purple.", "Seven."], "q2": ["Mars.", "The Moon.", "Pluto, obviously."]}


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """Base url of an app where bob and cy ranked q1 (in the listed order) and rm@v1 scored q1 (the reverse order)."""
    home = tmp_path_factory.mktemp("feedback-home")
    env = {**os.environ, "RLHF_HOME": str(home), "RLHF_PASSWORD_HASH": "fast"}
    env.pop("RLHF_DATABASE_URL", None)
    prompts = write_jsonl(home / "prompts.jsonl", PROMPTS)
    seed = f"""
import json
from sqlalchemy import select
from labeling_app import handlers
from labeling_app.state import UserSession
from rlhf.data import accounts
from rlhf.data.ingest import import_prompts
from rlhf.data.records import add_response
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import LabelItem
from rlhf.data.store.loop_models import ItemPriority
from rlhf.data.store.models import Prompt, Response
with session_scope() as db:
    for name in ("ana", "bob", "cy"):
        accounts.create_user(db, name, "annotator", {PASSWORD!r})
    import_prompts(db, {str(prompts)!r})
    for ext, texts in json.loads({json.dumps(TEXTS)!r}).items():
        p = db.scalar(select(Prompt).where(Prompt.external_id == ext))
        for i, t in enumerate(texts):
            add_response(db, p, t, origin="model", model_version="sft@v1", generation={{"index": i}})
for name in ("bob", "cy"):  # each ranks q1 (the oldest item) in the listed order: Red > Purple > Seven
    s = UserSession(username=name)
    v = handlers.rank_next(s)
    order = json.loads({json.dumps(TEXTS["q1"])!r})
    handlers.rank_submit(s, [order.index(t) + 1 for t in v.candidates])
with session_scope() as db:
    item = db.scalar(select(LabelItem).where(LabelItem.key.like("rank:%"), LabelItem.done_count == 2))
    texts = dict(db.execute(select(Response.id, Response.text).where(Response.id.in_(item.response_ids))).all())
    order = json.loads({json.dumps(TEXTS["q1"])!r})
    scores = {{str(rid): [float(order.index(t))] for rid, t in texts.items()}}  # the RM prefers Seven > Purple > Red
    db.add(ItemPriority(item_id=item.id, model_ref="rm@v1", priority=1.0, scores={{"responses": scores}}))
"""
    subprocess.run([sys.executable, "-c", seed], env=env, cwd=REPO, check=True, timeout=120)
    with serve_app(home, env) as url:
        yield url


def test_feedback_appears_after_the_submit_and_never_before(app_server, browser):
    from playwright.sync_api import expect

    page = open_as(browser, app_server, "ana")
    page.get_by_role("tab", name="Rank").click()
    expect(page.locator("#rank-prompt")).to_contain_text("primary colour")
    shown = [page.inner_text(f"#cand-text-{i} .cand-text") for i in range(3)]
    letter = {t: "ABC"[i] for i, t in enumerate(shown)}
    assert page.locator("#feedback-panel").count() == 0  # nothing about the item before the submit
    page.wait_for_function("document.activeElement && document.activeElement.closest('#rank-prompt')")
    for t in shown:  # ana agrees with bob and cy
        page.keyboard.press(str(TEXTS["q1"].index(t) + 1))
    expect(page.locator("#order-preview")).to_have_text("Your order: " + " > ".join(letter[t] for t in TEXTS["q1"]))
    assert page.locator("#feedback-panel").count() == 0  # typed but not submitted: still nothing
    page.keyboard.press("Enter")
    expect(page.locator("#rank-message")).to_contain_text("Saved ranking of q1")
    panel = page.locator("#feedback-panel")
    expect(panel).to_contain_text("the item you just ranked")
    yours = " > ".join(letter[t] for t in TEXTS["q1"])
    expect(panel).to_contain_text(f"You{yours}")
    expect(panel).to_contain_text("Reward model" + " > ".join(letter[t] for t in reversed(TEXTS["q1"])))
    expect(panel).to_contain_text("Consensus of 2 others (mean rank)")
    expect(panel).to_contain_text("Kendall tau-b +1.00 over 1 item(s)")
    expect(page.locator("#rank-prompt")).to_contain_text("Name a planet")  # the next item is on screen, unranked
    text = panel.inner_text()
    assert "q1" in text and "q2" not in text and "sft@v1" not in text and "rm@v1" not in text
    shot(page, "rank-feedback")
    page.close()
