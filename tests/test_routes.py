"""Who may call what (issue 19), in one table that cannot drift from the code.

Every public handler (`handlers.py`, `admin.py`, `review_handlers.py`, found by inspecting the modules), every
gradio listener (walked from the Blocks of `build_ui()`) and every route (the FastAPI route tables of
`server.create_app()`, gradio's mount included) is checked for each role (annotator, expert, admin) and for
callers who must always be refused: anonymous, an unknown name, an account without a password, a disabled
account, a token from before a password change. Something new that is not in the tables below fails the test
with its name: decide who may call it and add it.
"""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app_support import PASSWORD, candidates, home  # noqa: F401 (home: fixture)
from labeling_app import admin, handlers, review_handlers
from labeling_app.review_handlers import ReviewSession
from labeling_app.state import UserSession
from rlhf.data import accounts, jobs
from rlhf.data.accounts import ADMINS, LABELERS, REVIEWERS, AccessDenied
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import Assignment
from rlhf.data.store.models import Demonstration, Ranking, Response, User
from routes_support import all_routes, outer_routes
from security_support import OWN, api_login, browser_client, ui_login

ROLE_OF = {"ana": "annotator", "eve": "expert", "root": "admin"}
REFUSED = {"": "not logged in", "ghost": "no active account", "imported": "no active account", "gone": "no active account"}
REFUSAL = r"not logged in|no active account|this needs the .* role"
PUBLIC = "public"

# --------------------------------------------------------------------------- the tables: who may call what

# handler name -> (roles allowed, how to call it with the session `s`; `w` holds the ids of ana's items)
HANDLERS = {
    "whoami": (LABELERS, lambda s, w: handlers.whoami(s)),
    "write_next": (LABELERS, lambda s, w: handlers.write_next(s)),
    "write_submit": (LABELERS, lambda s, w: handlers.write_submit(s, "an answer")),
    "write_save_draft": (LABELERS, lambda s, w: handlers.write_save_draft(s, "a draft")),
    "write_skip": (LABELERS, lambda s, w: handlers.write_skip(s)),
    "rank_next": (LABELERS, lambda s, w: handlers.rank_next(s)),
    "rank_submit": (LABELERS, lambda s, w: handlers.rank_submit(s, [1, 2, 3, 4])),
    "rank_skip": (LABELERS, lambda s, w: handlers.rank_skip(s)),
    "progress": (LABELERS, lambda s, w: handlers.progress(s, "write")),
    "undo": (LABELERS, lambda s, w: handlers.undo(s, "write")),
    "previous": (LABELERS, lambda s, w: handlers.previous(s, "write")),
    "my_items": (LABELERS, lambda s, w: handlers.my_items(s)),
    "my_agreement": (LABELERS, lambda s, w: handlers.my_agreement(s)),
    "reopen": (LABELERS, lambda s, w: handlers.reopen(s, w.write)),
    "admin_import_prompts": (ADMINS, lambda s, w: admin.admin_import_prompts(s, "/nonexistent.jsonl")),
    "admin_generate": (ADMINS, lambda s, w: admin.admin_generate(s, "sft@latest", "prompts@latest", 4)),
    "admin_prioritize": (ADMINS, lambda s, w: admin.admin_prioritize(s, "rm@latest")),
    "admin_model_choices": (ADMINS, lambda s, w: admin.admin_model_choices(s)),
    "admin_jobs": (ADMINS, lambda s, w: admin.admin_jobs(s)),
    "admin_create_user": (ADMINS, lambda s, w: admin.admin_create_user(s, "mallory", "admin", PASSWORD)),
    "admin_snapshot": (ADMINS, lambda s, w: admin.admin_snapshot(s, "prompts")),
    "admin_counts": (ADMINS, lambda s, w: admin.admin_counts(s)),
    "admin_get_settings": (ADMINS, lambda s, w: admin.admin_get_settings(s)),
    "admin_save_settings": (ADMINS, lambda s, w: admin.admin_save_settings(s, rank_overlap=1)),
    "admin_refresh_queue": (ADMINS, lambda s, w: admin.admin_refresh_queue(s)),
    "admin_quality": (ADMINS, lambda s, w: admin.admin_quality(s)),
    "review_queue": (REVIEWERS, lambda s, w: review_handlers.review_queue(s)),
    "review_approve": (REVIEWERS, lambda s, w: review_handlers.review_approve(s, w.demo_key, "fine")),
    "review_reject": (REVIEWERS, lambda s, w: review_handlers.review_reject(s, w.demo_key, "off topic")),
    "review_edit": (REVIEWERS, lambda s, w: review_handlers.review_edit(s, w.demo_key, "a better answer", "clearer")),
    "agreement_dashboard": (REVIEWERS, lambda s, w: review_handlers.agreement_dashboard(s)),
    "adjudication_queue": (REVIEWERS, lambda s, w: review_handlers.adjudication_queue(s)),
    "adjudicate_submit": (REVIEWERS, lambda s, w: review_handlers.adjudicate_submit(s, w.prompt_id, [1, 2], "why")),
    "mark_gold": (REVIEWERS, lambda s, w: review_handlers.mark_gold(s, w.prompt_id, [1, 2])),
    "ab_sessions": (REVIEWERS, lambda s, w: review_handlers.ab_sessions(s)),
    "ab_next": (REVIEWERS, lambda s, w: review_handlers.ab_next(s, 1)),
    "ab_judge": (REVIEWERS, lambda s, w: review_handlers.ab_judge(s, 1, 1, "left")),
    "ab_report": (REVIEWERS, lambda s, w: review_handlers.ab_report(s, 1)),
    "ab_close": (ADMINS, lambda s, w: review_handlers.ab_close(s, 1)),
    "can_review": (REVIEWERS, lambda s, w: review_handlers.can_review(s)),  # answers False instead of refusing
    "is_admin": (ADMINS, lambda s, w: review_handlers.is_admin(s)),  # answers False instead of refusing
}
NOT_HANDLERS = {"as_dict"}  # public functions that act for nobody (a view -> dict for the JSON API)
ANSWERS_FALSE = {"can_review", "is_admin"}

# gradio listener (its function's name; `review_` for the experts' pages) -> roles allowed
LISTENERS = {
    "on_load": LABELERS, "on_write_open": LABELERS, "on_write_submit": LABELERS,
    "on_write_skip": LABELERS, "on_write_draft": LABELERS, "on_write_undo": LABELERS, "on_write_previous": LABELERS,
    "on_rank_open": LABELERS, "on_rank_submit": LABELERS, "on_rank_skip": LABELERS, "on_rank_undo": LABELERS,
    "on_rank_previous": LABELERS, "on_my_items": LABELERS, "on_my_open": LABELERS,
    "on_admin_refresh": ADMINS, "on_admin_import": ADMINS, "on_admin_generate": ADMINS, "on_admin_jobs": ADMINS,
    "on_admin_prioritize": ADMINS,
    "on_admin_create_user": ADMINS, "on_admin_snapshot": ADMINS, "on_admin_save_settings": ADMINS,
    "on_admin_sync": ADMINS, "on_admin_quality": ADMINS,
    "review_on_load": REVIEWERS,  # on page load: the review queue for experts, nothing for anyone else
    "review_on_queue": REVIEWERS, "review_on_open": REVIEWERS, "review_on_approve": REVIEWERS,
    "review_on_reject": REVIEWERS, "review_on_edit": REVIEWERS, "review_on_agreement": REVIEWERS,
    "review_on_adjudication": REVIEWERS, "review_on_adjudicate": REVIEWERS, "review_on_mark_gold": REVIEWERS, "review_on_ab_sessions": REVIEWERS,
    "review_on_ab_next": REVIEWERS, "review_on_ab_left": REVIEWERS, "review_on_ab_tie": REVIEWERS,
    "review_on_ab_right": REVIEWERS, "review_on_ab_report": REVIEWERS, "review_on_ab_close": ADMINS,
}
HIDES_INSTEAD = {"review_on_load"}  # a page-load listener: empty updates instead of a refusal
# inputs a listener checks before the caller (an empty pick): given a value, so that the role check is what answers
LISTENER_INPUTS = {"review_on_adjudicate": {2: 1}, "review_on_mark_gold": {2: 1}, "review_on_ab_left": {2: 1}, "review_on_ab_tie": {2: 1},
                   "review_on_ab_right": {2: 1}, "review_on_ab_report": {1: 1}, "review_on_ab_close": {1: 1}}

# (method, path) of the app's own routes -> roles allowed, or PUBLIC; with the request the test sends
ROUTES = {
    ("POST", "/api/login"): (PUBLIC, {"json": {"name": "ana", "password": PASSWORD}}),
    ("GET", "/api/me"): (LABELERS, {}),
    ("GET", "/api/next/{kind}"): (LABELERS, {}),
    ("POST", "/api/submit/write"): (LABELERS, {"json": {"assignment_id": 999, "text": "x"}}),
    ("POST", "/api/submit/rank"): (LABELERS, {"json": {"assignment_id": 999, "ranks": [1, 2]}}),
    ("POST", "/api/skip/{kind}"): (LABELERS, {"json": {"assignment_id": 999}}),
    ("POST", "/api/draft"): (LABELERS, {"json": {"assignment_id": 999, "text": "x"}}),
    ("GET", "/api/progress/{kind}"): (LABELERS, {}),
    ("GET", "/api/openapi.json"): (PUBLIC, {}),  # the API's description: no data
    ("GET", "/api/docs"): (PUBLIC, {}),
    ("GET", "/docs/oauth2-redirect"): (PUBLIC, {}),
    ("GET", "/redoc"): (PUBLIC, {}),
    ("GET", "/login"): (PUBLIC, {}),  # the login form
    ("GET", "/logout"): (PUBLIC, {}),  # a confirmation button; logging out is the POST
    ("POST", "/logout"): (PUBLIC, {}),  # ends the caller's own session, if any
}


# --------------------------------------------------------------------------- a workspace with something to act on


@pytest.fixture
def world(home, monkeypatch):
    """Ana has a write and a rank item on screen and a pending answer; eve may review it; `imported` has no password,
    `gone` is disabled. Background jobs are recorded, not launched."""
    monkeypatch.setattr(jobs, "start", lambda db, kind, argv, created_by: SimpleNamespace(command=f"rlhf {kind}", log_path="-"))
    candidates("p1")
    with session_scope() as db:
        db.add(User(name="imported", role="annotator", password_hash=None))
        accounts.create_user(db, "gone", "admin", PASSWORD)
        accounts.set_disabled(db, "gone")
    ana = UserSession(username="ana")
    handlers.write_next(ana)
    receipt = handlers.write_submit(ana, "ana's answer")
    w = SimpleNamespace(write=handlers.write_next(ana).assignment_id, rank=handlers.rank_next(ana).assignment_id,
                        demo_key=f"demonstration:{receipt.id}")
    assert receipt.status == "stored"
    with session_scope() as db:
        w.prompt_id = db.get(Demonstration, receipt.id).prompt_id
    assert w.write and w.rank
    return w


def session_for(name: str, kind: type, w) -> object:
    """A caller's per-tab state; refused callers name ana's items on screen (the strongest attempt)."""
    s = kind(username=name)
    if kind is UserSession and name not in ROLE_OF:
        s.write_assignment, s.rank_assignment = w.write, w.rank
    elif kind is UserSession and name == "ana":
        s.write_assignment, s.rank_assignment = w.write, w.rank
    return s


def fingerprint() -> tuple:
    """What a refused call must leave as it was."""
    with session_scope() as db:
        return (db.execute(select(User.name, User.role, User.disabled, User.session_version).order_by(User.name)).all(),
                db.execute(select(Assignment.id, Assignment.status, Assignment.draft).order_by(Assignment.id)).all(),
                db.execute(select(Demonstration.id, Demonstration.status).order_by(Demonstration.id)).all(),
                db.scalar(select(func.count()).select_from(Ranking)), db.scalar(select(func.count()).select_from(Response)))


# --------------------------------------------------------------------------- handlers


def public_handlers() -> dict[str, object]:
    found = {}
    for module in (handlers, admin, review_handlers):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                found[name] = fn
    return found


def test_every_public_handler_is_in_the_table():
    found = set(public_handlers()) - NOT_HANDLERS
    assert not found - set(HANDLERS), f"handlers nobody decided about (add them to HANDLERS): {sorted(found - set(HANDLERS))}"
    assert not set(HANDLERS) - found, f"HANDLERS names handlers that no longer exist: {sorted(set(HANDLERS) - found)}"


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_each_handler_refuses_exactly_the_callers_it_should(world, name):
    roles, call = HANDLERS[name]
    kind = ReviewSession if getattr(review_handlers, name, None) is not None else UserSession
    before = fingerprint()
    refused = {**REFUSED, **{c: f"{c} is {r}, this needs the" for c, r in ROLE_OF.items() if r not in roles}}
    for caller, why in refused.items():
        s = session_for(caller, kind, world)
        if name in ANSWERS_FALSE:
            assert call(s, world) is False, caller
        else:
            with pytest.raises(AccessDenied, match=why):
                call(s, world)
    assert fingerprint() == before, f"a refused call to {name} changed the store"
    for caller in set(ROLE_OF) - set(refused):
        try:
            result = call(session_for(caller, kind, world), world)
        except AccessDenied as e:  # an allowed role refused fails; other mistakes (nothing on screen...) are not refusals
            pytest.fail(f"{name} refused {caller} ({ROLE_OF[caller]}): {e}")
        except Exception:  # noqa: BLE001
            continue
        assert result is not False or name not in ANSWERS_FALSE, (name, caller)


# --------------------------------------------------------------------------- gradio listeners


def listeners():
    """(name, gradio's BlockFunction) of every event of the page, from the Blocks itself."""
    from labeling_app import app as layout

    demo = layout.build_ui()
    return [(f.fn.__name__, f) for f in demo.fns.values() if f.fn is not None]  # fn None: a js-only event (no server call)


def listener_inputs(name: str, fn) -> list:
    import gradio as gr

    values = [None if isinstance(b, gr.State) else getattr(b, "value", None) for b in fn.inputs]
    for i, v in LISTENER_INPUTS.get(name, {}).items():
        values[i] = v
    return values


def test_every_listener_is_in_the_table():
    found = {name for name, _ in listeners()}
    assert not found - set(LISTENERS), f"listeners nobody decided about (add them to LISTENERS): {sorted(found - set(LISTENERS))}"
    assert not set(LISTENERS) - found, f"LISTENERS names listeners that no longer exist: {sorted(set(LISTENERS) - found)}"


def test_each_listener_refuses_exactly_the_callers_it_should(world):
    import gradio as gr

    seen = set()
    for name, fn in listeners():
        if name in seen:
            continue  # one listener on several events: checked once
        seen.add(name)
        roles = LISTENERS[name]
        callers = {**{c: None for c in REFUSED}, **ROLE_OF}
        for caller, role in callers.items():
            request = SimpleNamespace(username=caller or None)
            allowed = role in roles
            try:
                out = fn.fn(request, *listener_inputs(name, fn))
            except gr.Error as e:
                refused = bool(re.search(REFUSAL, e.message))
                assert refused != allowed, f"{name} as {caller or 'anonymous'} ({role}): {e.message}"
                continue
            except Exception:  # noqa: BLE001 - an allowed caller's own mistake (an empty form): not a refusal
                assert allowed, f"{name} as {caller or 'anonymous'} raised instead of refusing"
                continue
            if name in HIDES_INSTEAD and not allowed:
                assert all(shows_nothing(o) for o in out), f"{name} showed {caller or 'anonymous'} ({role}) something"
            else:
                assert allowed, f"{name} let {caller or 'anonymous'} ({role}) through"


def shows_nothing(output) -> bool:
    """A listener output that puts nothing on the page: the tab's own state, or an update without a value."""
    if isinstance(output, (UserSession, ReviewSession)):
        return True
    return isinstance(output, dict) and set(output) <= {"__type__", "visible"} and not output.get("visible", False)


def test_no_listener_runs_without_a_login_over_http(home):
    with browser_client() as c:
        names = sorted({f.api_name for _, f in listeners()})
        for api_name in names:
            r = c.post(f"/gradio_api/call/{api_name}", json={"data": []}, headers={"Origin": OWN})
            assert r.status_code == 401, (api_name, r.status_code)
        for path in ("/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/cancel", "/gradio_api/reset"):
            assert c.post(path, json={}, headers={"Origin": OWN}).status_code == 401, path
        for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json"):
            assert c.get(path).status_code == 401, path
        assert c.get("/gradio_api/runs").status_code in (401, 404)
        ui_login(c, "ana")  # end to end: the page's own call as an annotator reaches the admin check and stops
        r = c.post("/gradio_api/call/on_admin_create_user", json={"data": [None, "x1", "admin", PASSWORD]},
                   headers={"Origin": OWN})
        stream = c.get(f"/gradio_api/call/on_admin_create_user/{r.json()['event_id']}").text
        assert "event: error" in stream and "ana is annotator, this needs the admin role" in stream


def test_the_page_without_a_login_is_the_login_form_not_the_app(home):
    with browser_client() as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 302 and r.headers["location"] == "/login"
        page = c.get("/")
        assert page.status_code == 200 and page.url.path == "/login"
        for app_marker in ("on_admin_create_user", "write-submit", "gradio_api_info", "dependencies"):
            assert app_marker not in page.text
        assert ui_login(c, "ana").status_code == 200
        app_page = c.get("/", follow_redirects=False)
        assert app_page.status_code == 200 and "write-submit" in app_page.text


# --------------------------------------------------------------------------- routes


def test_every_route_is_in_the_table_and_anonymous_callers_reach_only_public_ones(home):
    with browser_client() as c:
        own = {(m, p) for m, p, _ in outer_routes(c.app) if m != "HEAD"}
        assert not own - set(ROUTES), f"routes nobody decided about (add them to ROUTES): {sorted(own - set(ROUTES))}"
        assert not set(ROUTES) - own, f"ROUTES names routes that no longer exist: {sorted(set(ROUTES) - own)}"
        for (method, path), (roles, request) in ROUTES.items():
            r = c.request(method, path.replace("{kind}", "write"), headers={"Origin": OWN}, **request)
            if roles == PUBLIC:
                assert r.status_code not in (401, 403, 404, 405), (method, path, r.status_code)
            else:
                assert r.status_code == 401 and "log in" in r.json()["detail"], (method, path, r.status_code)
        gradio_posts = {p for m, p, _ in all_routes(c.app) if m == "POST"} - {p for m, p in own}
        assert "/gradio_api/queue/join" in gradio_posts  # the walk reached gradio's own tables


def test_each_api_route_as_each_role_and_with_an_ended_session(home):
    with browser_client() as c:
        tokens = {name: api_login(c, name) for name in (*ROLE_OF, "cy")}
        forged = {"Authorization": tokens["ana"]["Authorization"][:-4] + "0000"}
        with session_scope() as db:
            accounts.set_password(db, "cy", "another-passphrase")  # cy's token is from before: it has ended
        for (method, path), (roles, request) in ROUTES.items():
            if roles == PUBLIC:
                continue
            url = path.replace("{kind}", "write")
            for name, role in ROLE_OF.items():
                r = c.request(method, url, headers=tokens[name], **request)
                assert (r.status_code not in (401, 403)) == (role in roles), (method, path, name, r.status_code, r.text)
            for bad in (tokens["cy"], forged):
                assert c.request(method, url, headers=bad, **request).status_code == 401, (method, path)
