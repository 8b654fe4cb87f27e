"""The labeling app's handlers, queue, accounts and JSON API, without a browser.

Every action is called as the plain function the UI calls, as each role. Each test has its own
RLHF_HOME (a fresh SQLite store); passwords use the cheap argon2 profile (RLHF_PASSWORD_HASH=fast).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import run_cli, write_jsonl
from labeling_app import admin
from labeling_app import handlers as h
from labeling_app import queue, render
from labeling_app.auth import make_token, read_token
from labeling_app.state import UserSession
from rlhf.data import accounts, records
from rlhf.data.accounts import AccessDenied
from rlhf.errors import RlhfError
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment, LabelItem, LabelItemAuthor
from rlhf.data.ingest import import_prompts
from rlhf.data.records import add_response
from rlhf.data.store.models import Demonstration, Prompt, Ranking, Response, User

from app_support import PASSWORD, PROMPTS, XSS, candidates, count, home, me, set_settings  # noqa: F401


# --------------------------------------------------------------------------- accounts


def test_users_cli_reads_password_from_stdin_never_a_flag(home):
    r = run_cli("users", "add", "dana", "--role", "expert", input="s3cret-passphrase\n")
    assert r.returncode == 0, r.stderr
    assert "dana (expert)" in r.stdout
    listing = run_cli("users", "list")
    assert "dana" in listing.stdout and "expert" in listing.stdout and "can log in" in listing.stdout
    with session_scope() as db:
        user = db.scalar(select(User).where(User.name == "dana"))
        assert user.password_hash.startswith("$argon2id$") and "s3cret" not in user.password_hash
        assert accounts.authenticate(db, "dana", "s3cret-passphrase").name == "dana"
        assert accounts.authenticate(db, "dana", "wrong-passphrase") is None
    flag = run_cli("users", "add", "eli", "--password", "s3cret-passphrase")
    assert flag.returncode != 0 and "No such option" in flag.stderr + flag.stdout
    bad = run_cli("users", "add", "eli", "--role", "boss", input="s3cret-passphrase\n")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: role 'boss': expected one of annotator, expert, admin"
    short = run_cli("users", "add", "eli", input="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr


def test_login_only_for_people_with_a_password(home):
    with session_scope() as db:
        db.add(User(name="imported", role="annotator", password_hash=None))
        db.add(User(name="rubric", role="annotator", password_hash=accounts.hash_password(PASSWORD), simulated=True))
    from labeling_app.auth import check_login

    assert check_login("ana", PASSWORD)
    assert not check_login("ana", PASSWORD + "x")
    assert not check_login("nobody", PASSWORD)
    assert not check_login("imported", "")
    assert not check_login("rubric", PASSWORD)  # simulated annotators never log in


def test_api_tokens_are_signed_and_expire():
    secret = b"k" * 32
    token = make_token(secret, "ana", now=1000.0)
    assert read_token(secret, token, now=1001.0) == "ana"
    assert read_token(b"other" * 8, token, now=1001.0) is None
    assert read_token(secret, token, now=1000.0 + 13 * 3600) is None  # 12 h lifetime
    name, expiry, sig = token.split(".")
    assert read_token(secret, f"{name}.{int(expiry) + 999}.{sig}", now=1001.0) is None  # tampered expiry
    assert read_token(secret, "garbage", now=1001.0) is None


# --------------------------------------------------------------------------- role checks

@pytest.mark.parametrize("call", [h.write_next, h.rank_next, lambda s: h.write_submit(s, "x"),
                                  lambda s: h.rank_submit(s, [1, 2]), h.write_skip, h.rank_skip, h.whoami])
def test_labeling_handlers_need_a_login(home, call):
    with pytest.raises(AccessDenied, match="not logged in"):
        call(me(""))
    with session_scope() as db:
        db.add(User(name="imported", role="annotator", password_hash=None))
    with pytest.raises(AccessDenied, match="no active account"):
        call(me("imported"))


# --------------------------------------------------------------------------- write


def test_write_shows_conversation_and_guidelines_and_restores_drafts(home):
    set_settings(guidelines="Be **kind**.")
    s = me("ana")
    v = h.write_next(s)
    assert v.prompt_ref == "p1" and v.guidelines == "Be **kind**." and v.draft == ""
    assert v.progress == queue.Progress(done_today=0, total=0, remaining=3)
    assert h.write_save_draft(s, "half an answer").status == "saved"
    again = h.write_next(me("ana"))  # a reload, another tab, or the next day: same item, draft back
    assert (again.assignment_id, again.draft) == (v.assignment_id, "half an answer")
    h.write_skip(s)
    v2 = h.write_next(s)
    assert v2.prompt_ref == "p2" and len(v2.messages) == 4  # multi-turn prompt as a conversation
    html = v2.conversation_html()
    assert html.count('class="msg ') == 4 and "msg-system" in html and "msg-assistant" in html
    assert html.index("Be brief.") < html.index("Hello! How can I help?") < html.index("Capital of France?")


def test_write_submit_stores_one_pending_demonstration_and_repeats_are_no_ops(home):
    s = me("ana")
    v = h.write_next(s)
    with pytest.raises(RlhfError, match="the answer is empty"):
        h.write_submit(s, "   ")
    time.sleep(0.05)
    receipt = h.write_submit(s, "  A <b>tag</b> makes text bold.  ")
    assert receipt.status == "stored"
    assert h.write_submit(s, "A different text from a second tab").status == "duplicate"
    with session_scope() as db:
        demos = db.scalars(select(Demonstration)).all()
        assert len(demos) == 1
        d = demos[0]
        assert d.id == receipt.id and d.status == "pending" and d.origin == "human"
        assert d.annotator_id == db.scalar(select(User.id).where(User.name == "ana"))
        assert d.messages == PROMPTS[0]["messages"] + [{"role": "assistant", "content": "A <b>tag</b> makes text bold."}]
        assert d.seconds_spent is not None and d.seconds_spent >= 0.05
        a = db.get(Assignment, v.assignment_id)
        assert (a.status, a.result_type, a.result_id, a.draft) == ("done", "demonstration", d.id, None)
    assert h.write_next(s).prompt_ref == "p2"
    assert h.progress(s, "write") == queue.Progress(done_today=1, total=1, remaining=2)


def test_skipped_items_never_come_back_and_cannot_be_submitted(home):
    s = me("ana")
    first = h.write_next(s)
    assert h.write_skip(s, "not my field").status == "skipped"
    s2 = me("ana")
    s2.write_assignment = first.assignment_id
    with pytest.raises(RlhfError, match="you skipped this prompt"):
        h.write_submit(s2, "late answer")
    seen = []
    while (v := h.write_next(s)).assignment_id is not None:
        seen.append(v.prompt_ref)
        h.write_submit(s, f"answer to {v.prompt_ref}")
    assert seen == ["p2", "p3"]
    assert h.progress(s, "write").remaining == 0
    with session_scope() as db:
        assert db.get(Assignment, first.assignment_id).note == "not my field"


def test_submitting_someone_elses_item_is_refused(home):
    v = h.write_next(me("ana"))
    thief = me("bob")
    thief.write_assignment = v.assignment_id
    with pytest.raises(AccessDenied, match="assigned to someone else"):
        h.write_submit(thief, "mine now")
    assert count(Demonstration) == 0


def test_a_failing_submit_leaves_nothing_behind(home, monkeypatch):
    s = me("ana")
    v = h.write_next(s)

    def broken(*a, **k):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m, pytest.raises(RuntimeError):
        m.setattr(records, "content_hash", broken)  # fails after the assignment was flipped to done
        h.write_submit(s, "an answer")
    with session_scope() as db:
        assert db.get(Assignment, v.assignment_id).status == "assigned"  # rolled back with the rest
        assert db.scalar(select(func.count()).select_from(Demonstration)) == 0
    assert h.write_submit(s, "an answer").status == "stored"


# --------------------------------------------------------------------------- rank


def test_rank_shows_shuffled_candidates_without_model_names(home):
    ids = candidates("p1", k=4)
    views = {name: h.rank_next(me(name)) for name in ("ana", "bob", "cy")}
    texts = {r: t for r, t in zip(ids, [f"p1 answer {i} from sft@v1" for i in range(4)])}
    for name, v in views.items():
        assert v.k == 4 and sorted(v.candidates) == sorted(texts.values())
        assert h.rank_next(me(name)).candidates == v.candidates  # the same order every time for one person
        flat = str(h.as_dict(v))
        assert "model_version" not in flat and "generation" not in flat and "response_ids" not in flat
    with session_scope() as db:
        item = db.scalar(select(LabelItem).where(LabelItem.kind == "rank"))
        orders = {n: queue.shown_order(db.scalar(select(User.id).where(User.name == n)), item) for n in views}
    assert len({tuple(o) for o in orders.values()}) > 1  # shuffled per annotator
    for n, v in views.items():
        assert [texts[r] for r in orders[n]] == v.candidates


def test_rank_submit_stores_order_with_ties_shown_order_and_time(home):
    ids = candidates("p1", k=4)
    s = me("ana")
    v = h.rank_next(s)
    with pytest.raises(RlhfError, match="missing D"):
        h.rank_submit(s, [1, 2, 2, None])
    with pytest.raises(RlhfError, match="outside 1..4"):
        h.rank_submit(s, [1, 2, 2, 7])
    receipt = h.rank_submit(s, ["2", "1", "2", "3"], all_bad=False, reason="B is\ncorrect;  A and C are vague")
    assert receipt.status == "stored"
    assert h.rank_submit(s, [1, 1, 1, 1]).status == "duplicate"
    with session_scope() as db:
        (r,) = db.scalars(select(Ranking)).all()
        uid = db.scalar(select(User.id).where(User.name == "ana"))
        shown = queue.shown_order(uid, db.scalar(select(LabelItem).where(LabelItem.kind == "rank")))
        assert r.response_ids == sorted(ids) and r.shown_order == shown
        idx = {rid: r.response_ids.index(rid) for rid in ids}
        assert r.order == [[idx[shown[1]]], sorted([idx[shown[0]], idx[shown[2]]]), [idx[shown[3]]]]
        assert (r.origin, r.status, r.all_bad, r.annotator_id) == ("human", "pending", False, uid)
        assert r.reason == "B is correct; A and C are vague"  # one line
        assert r.seconds_spent is not None and r.seconds_spent >= 0
        assert [db.get(Response, i).text for i in r.shown_order] == v.candidates


def test_all_bad_needs_no_order(home):
    candidates("p1", k=3)
    s = me("ana")
    h.rank_next(s)
    h.rank_submit(s, [None, None, None], all_bad=True)
    with session_scope() as db:
        r = db.scalar(select(Ranking))
        assert r.all_bad and r.order == [[0, 1, 2]]


def test_each_item_goes_to_n_different_annotators(home):
    set_settings(rank_overlap=2)
    candidates("p1")
    candidates("p2")
    got = {n: h.rank_next(me(n)).prompt_ref for n in ("ana", "bob", "cy")}
    assert got == {"ana": "p1", "bob": "p1", "cy": "p2"}  # p1 is full with two open assignments
    for n in ("ana", "bob", "cy"):
        s = me(n)
        v = h.rank_next(s)
        h.rank_submit(s, list(range(1, v.k + 1)))
    assert h.rank_next(me("cy")).assignment_id is None  # p1 already has its two rankers
    assert h.rank_next(me("eve")).prompt_ref == "p2"  # experts rank too
    with session_scope() as db:
        per_prompt = dict(db.execute(select(Ranking.prompt_id, func.count()).group_by(Ranking.prompt_id)).all())
        assert sorted(per_prompt.values()) == [1, 2]


def test_an_abandoned_assignment_frees_its_place_after_the_lease(home):
    set_settings(rank_overlap=1, lease_minutes=1)
    candidates("p1")
    v = h.rank_next(me("ana"))
    assert h.rank_next(me("bob")).assignment_id is None
    with session_scope() as db:
        a = db.get(Assignment, v.assignment_id)
        a.shown_at = a.shown_at.replace(year=a.shown_at.year - 1)
    assert h.rank_next(me("bob")).prompt_ref == "p1"


def test_nobody_ranks_candidates_containing_their_own_demonstration(home):
    set_settings(demos_as_candidates=True)
    s = me("ana")
    v = h.write_next(s)
    assert v.prompt_ref == "p1"
    h.write_submit(s, "Ana's own answer")
    candidates("p1", k=3)
    candidates("p3", k=3)
    with session_scope() as db:
        human = db.scalar(select(Response).where(Response.origin == "human"))
        assert human.text == "Ana's own answer" and human.generation["annotator_id"] is not None
        admin.admin_refresh_queue(me("root"))
        items = [i for i in db.scalars(select(LabelItem).where(LabelItem.kind == "rank")) if human.id in i.response_ids]
        item = items[0] if items else None
    assert item is not None and len(item.response_ids) == 4  # three model answers + the human one
    assert h.rank_next(s).prompt_ref == "p3"  # not p1: it holds her answer
    bob = h.rank_next(me("bob"))
    assert bob.prompt_ref == "p1" and "Ana's own answer" in bob.candidates


def test_a_human_response_made_elsewhere_is_traced_to_its_demonstration(home):
    s = me("bob")
    h.write_next(s)
    h.write_submit(s, "Bob wrote this.")
    with session_scope() as db:  # e.g. another tool turned demonstrations into candidates
        p = db.scalar(select(Prompt).where(Prompt.external_id == "p1"))
        add_response(db, p, "Bob wrote this.", origin="human")
    candidates("p1", k=2)
    admin.admin_refresh_queue(me("root"))
    with session_scope() as db:
        authors = db.scalars(select(LabelItemAuthor.user_id)).all()
        assert authors == [db.scalar(select(User.id).where(User.name == "bob"))]
    assert h.rank_next(me("bob")).assignment_id is None
    assert h.rank_next(me("ana")).prompt_ref == "p1"


def test_concurrent_double_submits_store_one_row(home):
    candidates("p1")
    s = me("ana")
    v = h.rank_next(s)
    barrier = threading.Barrier(8)

    def submit(_):
        mine = me("ana")
        mine.rank_assignment = v.assignment_id
        barrier.wait()
        return h.rank_submit(mine, [1, 2, 3, 4])

    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(submit, range(8)))
    assert sorted(r.status for r in receipts) == ["duplicate"] * 7 + ["stored"]
    with session_scope() as db:
        (only,) = db.scalars(select(Ranking.id)).all()
    assert {r.id for r in receipts} == {only}  # every duplicate names the row that was stored


def test_two_tabs_get_the_same_open_item(home):
    candidates("p1")
    candidates("p2")
    tab1, tab2 = me("ana"), me("ana")
    assert h.rank_next(tab1).assignment_id == h.rank_next(tab2).assignment_id
    h.rank_submit(tab1, [1, 2, 3, 4])
    assert h.rank_submit(tab2, [4, 3, 2, 1]).status == "duplicate"
    assert count(Ranking) == 1


def test_stored_text_is_shown_as_text():
    html = render.conversation([{"role": "user", "content": XSS}]) + render.candidate(0, "<b>bold</b> & \"quoted\"")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html
    assert "onerror=&quot;window.__xss = 2&quot;" in html and "&amp; &quot;quoted&quot;" in html


def test_views_escape_prompt_and_candidates(home):
    candidates("p1", texts=[XSS, "<b>plain</b>"])
    w, r = h.write_next(me("ana")), h.rank_next(me("ana"))
    for html in [w.conversation_html(), r.conversation_html(), *r.candidate_html()]:
        assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert XSS in r.candidates  # the view keeps the text itself; only the HTML is escaped


def test_ranks_to_order():
    assert queue.ranks_to_order([2, 1, 2, 3], shown=[30, 10, 20, 40], response_ids=[10, 20, 30, 40]) == [[0], [1, 2], [3]]
    assert queue.ranks_to_order([1, 1], shown=[2, 1], response_ids=[1, 2]) == [[0, 1]]
    assert queue.ranks_to_order([4, 1, 9, 4], shown=[1, 2, 3, 4], response_ids=[1, 2, 3, 4]) == [[1], [0, 3], [2]]


# --------------------------------------------------------------------------- JSON API


@pytest.fixture
def client(home):
    from fastapi.testclient import TestClient

    from labeling_app.server import create_app

    with TestClient(create_app()) as c:
        yield c


def login(client, name: str) -> dict:
    r = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_api_uses_the_same_handlers_and_checks(client):
    candidates("p1")
    assert client.post("/api/login", json={"name": "ana", "password": "nope"}).status_code == 401
    assert client.get("/api/next/rank").status_code == 401
    ana, bob = login(client, "ana"), login(client, "bob")
    assert client.get("/api/me", headers=ana).json()["pages"] == ["write", "rank"]
    v = client.get("/api/next/rank", headers=ana).json()
    assert len(v["candidates"]) == 4 and v["assignment_id"]
    body = {"assignment_id": v["assignment_id"], "ranks": [1, 2, 2, 3]}
    assert client.post("/api/submit/rank", json=body, headers=bob).status_code == 403  # not bob's item
    r1 = client.post("/api/submit/rank", json=body, headers=ana).json()
    r2 = client.post("/api/submit/rank", json=body, headers=ana).json()
    assert (r1["status"], r2["status"], r2["id"]) == ("stored", "duplicate", r1["id"])
    bad = client.post("/api/submit/write", json={"assignment_id": v["assignment_id"], "text": "x"}, headers=ana)
    assert bad.status_code == 400 and "does not exist" in bad.json()["detail"]
    assert client.get("/api/progress/rank", headers=ana).json() == {"done_today": 1, "total": 1, "remaining": 0}
    w = client.get("/api/next/write", headers=bob).json()
    assert client.post("/api/draft", json={"assignment_id": w["assignment_id"], "text": "d"}, headers=bob).json()["status"] == "saved"
    assert client.post("/api/skip/write", json={"assignment_id": w["assignment_id"]}, headers=bob).json()["status"] == "skipped"
    assert count(Ranking) == 1


def test_the_ui_is_behind_the_login(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].endswith("/login"), (r.status_code, r.headers)
    config = client.get("/config")
    assert config.status_code == 401 or "auth_required" in config.text
