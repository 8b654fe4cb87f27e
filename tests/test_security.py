"""The labeling app on a network (issue 13, part 2), against the real app (`server.create_app`) on a TestClient
reached as `labels.example` (a team server's Host, not localhost): cross-site requests, cookies, logout, size
limits, no internals to browsers, owner-only files, password-hash upgrades. Sessions and logins: test_sessions.py."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app_support import PASSWORD, count, home  # noqa: F401 (home: fixture)
from labeling_app import handlers, security
from rlhf import paths
from rlhf.data import accounts
from rlhf.data.formats import MAX_TEXT_CHARS
from rlhf.data.store import session_scope
from rlhf.data.store.models import Demonstration, User
from rlhf.errors import RlhfError
from security_support import EVIL, OWN, api_login, browser_client, gradio_call, ui_login

MALLORY = [None, "mallory", "admin", "pw-mallory-123"]  # the admin page's "create user" inputs (state first)


@contextlib.contextmanager
def error_log():
    """The records `security.internal_error` writes (on its logger, whether or not it propagates to the root)."""
    records, handler = [], logging.Handler(logging.ERROR)
    handler.emit = records.append
    security.log.addHandler(handler)
    try:
        yield records
    finally:
        security.log.removeHandler(handler)


def logged_text(records) -> str:
    return "\n".join(logging.Formatter().format(r) for r in records)


def user(name: str) -> User | None:
    with session_scope() as db:
        return db.scalar(select(User).where(User.name == name))


# --------------------------------------------------------------------------- cross-site requests


def test_a_foreign_page_cannot_make_an_admin(home):
    """The review's finding: with a non-localhost Host, a page on another site made a logged-in admin create an admin."""
    with browser_client() as c:
        assert ui_login(c, "root").status_code == 200
        status, _, body = gradio_call(c, "on_admin_create_user", MALLORY, origin=EVIL)
        assert status == 403 and body["detail"].startswith("cross-site request refused: origin 'http://evil.example'")
        for headers in ({"Referer": EVIL + "/cats.html"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            r = c.post("/gradio_api/call/on_admin_create_user", json={"data": MALLORY}, headers=headers)
            assert r.status_code == 403, headers
            assert "access-control-allow-origin" not in r.headers
        assert user("mallory") is None
        status, event, payload = gradio_call(c, "on_admin_create_user", MALLORY)  # the app's own page may
        assert (status, event) == (200, "complete") and payload[0].startswith("created mallory (admin)")


def test_every_state_changing_route_refuses_foreign_origins(home):
    """Every route of the UI and the API, found in the route tables, whatever its method: a foreign Origin is refused."""
    from routes_support import all_routes

    with browser_client() as c:
        ui_login(c, "root")
        routes = [(m, p) for m, p, _ in all_routes(c.app) if m not in security.SAFE_METHODS]
        assert {("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/upload"), ("POST", "/login"),
                ("POST", "/api/submit/write"), ("POST", "/logout")} <= set(routes)
        for method, path in routes:
            r = c.request(method, path.replace("{", "").replace("}", ""), json={}, headers={"Origin": EVIL})
            assert r.status_code == 403 and "cross-site" in r.json()["detail"], (method, path, r.status_code)
        assert c.get("/config").status_code == 200  # still logged in: nothing above logged out either


def test_cors_answers_only_the_configured_origins(home, monkeypatch):
    monkeypatch.setenv("RLHF_ALLOWED_ORIGINS", "https://Partner.example:443/, https://other.example")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with browser_client() as c:
        ui_login(c, "root")
        r = c.get("/config", headers={"Origin": EVIL})  # a read: allowed, but the foreign page cannot see it
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = c.options("/gradio_api/queue/join", headers={"Origin": EVIL, **preflight})
        assert r.headers.get("access-control-allow-origin") is None
        r = c.options("/gradio_api/queue/join", headers={"Origin": "https://partner.example", **preflight})
        assert r.headers["access-control-allow-origin"] == "https://partner.example"
        assert r.headers["access-control-allow-credentials"] == "true"
        status, event, _ = gradio_call(c, "on_admin_create_user", MALLORY, origin="https://partner.example")
        assert (status, event) == (200, "complete")
    with pytest.raises(RlhfError, match=r"allowed origin 'https://x.example/app': write it as scheme://host\[:port\]"):
        security.Config.from_env(["https://x.example/app"])
    assert security.Config.from_env(["HTTP://A.example:80"]).allowed_origins[0] == "http://a.example"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_session_cookies_are_lax_and_http_only(home, scheme):
    with browser_client(scheme) as c:
        r = ui_login(c, "ana", origin=f"{scheme}://labels.example")
        assert r.status_code == 200
        cookies = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
        assert len(cookies) == 2 and all(v.startswith("access-token") for v in cookies)
        for v in cookies:
            attrs = {a.strip().split("=")[0].lower(): a.strip() for a in v.split(";")[1:]}
            assert attrs["samesite"] == "SameSite=Lax" and "httponly" in attrs
            assert ("secure" in attrs) == (scheme == "https"), v


def test_logout_is_a_post_from_the_apps_own_page(home):
    with browser_client() as c:
        ui_login(c, "ana")
        jar = dict(c.cookies)
        page = c.get("/logout")
        assert page.status_code == 200 and '<form method="post" action="logout">' in page.text
        assert c.get("/config").status_code == 200  # a GET (a link, an <img> on another site) logs nobody out
        assert c.post("/logout", headers={"Origin": EVIL}).status_code == 403
        assert c.get("/config").status_code == 200
        r = c.post("/logout", headers={"Origin": OWN}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        c.cookies.clear()
        c.cookies.update(jar)  # the old cookie, kept by a thief or a stale tab, no longer works
        assert c.get("/config").status_code == 401


# --------------------------------------------------------------------------- size limits


def test_api_fields_and_request_bodies_have_maximum_sizes(home):
    with browser_client() as c:
        ana = api_login(c, "ana")
        item = c.get("/api/next/write", headers=ana).json()["assignment_id"]
        r = c.post("/api/submit/write", json={"assignment_id": item, "text": "x" * (MAX_TEXT_CHARS + 1)}, headers=ana)
        assert r.status_code == 400 and r.json()["detail"] == f"text: String should have at most {MAX_TEXT_CHARS} characters"
        for path, body, field in (("/api/skip/write", {"assignment_id": item, "reason": "r" * 301}, "reason"),
                                  ("/api/submit/rank", {"assignment_id": item, "ranks": [1] * 10}, "ranks"),
                                  ("/api/submit/rank", {"assignment_id": item, "ranks": [1, 99]}, "ranks.1"),
                                  ("/api/draft", {"assignment_id": 2**40, "text": "d"}, "assignment_id"),
                                  ("/api/login", {"name": "n" * 129, "password": "p"}, "name"),
                                  ("/api/login", {"name": "ana", "password": "p" * 1025}, "password")):
            r = c.post(path, json=body, headers=ana)
            assert r.status_code == 400 and r.json()["detail"].startswith(f"{field}: "), (path, r.text)
        limit = security.Config().api_body_bytes
        r = c.post("/api/submit/write", content=b" " * (limit + 1), headers={**ana, "Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["detail"] == f"request too large: an API call may send at most {limit // 1024} KB"

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(limit // 65536 + 2):
                yield b" " * 65536

        r = c.post("/api/submit/write", content=chunks(), headers={**ana, "Content-Type": "application/json"})
        assert r.status_code == 413
        r = c.post("/login", content=b"username=ana&password=" + b"x" * 20000,
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413 and "a login may send at most 16 KB" in r.json()["detail"]
        assert c.get("/api/me", headers=ana).status_code == 200  # the server is fine
    assert count(Demonstration) == 0


def test_uploads_have_a_maximum_file_size(home):
    with browser_client(max_upload_mb=1) as c:
        ui_login(c, "root")
        big = c.post("/gradio_api/upload", files={"files": ("big.jsonl", b"x" * (1024 * 1024 + 100 * 1024))},
                     headers={"Origin": OWN})
        assert big.status_code == 413 and big.json()["detail"] == "request too large: an upload may send at most 1 MB"
        small = c.post("/gradio_api/upload", files={"files": ("p.jsonl", b'{"id": "p9"}\n')}, headers={"Origin": OWN})
        assert small.status_code == 200, small.text


# --------------------------------------------------------------------------- no internals to browsers


def test_an_unexpected_error_shows_a_reference_not_the_exception(home, monkeypatch):
    def boom(s):
        raise RuntimeError("secret internals: /srv/rlhf/workspace")

    monkeypatch.setattr(handlers, "whoami", boom)
    with browser_client() as c:
        ana = api_login(c, "ana")
        with error_log() as records:
            r = c.get("/api/me", headers=ana)
        assert r.status_code == 500 and "secret" not in r.text
        ref = r.json()["detail"].split("(reference ")[1].split(")")[0]
        assert len(records) == 1 and ref in records[0].getMessage()  # logged once, under the reference shown
        assert "secret internals" in logged_text(records)  # with its traceback
        ui_login(c, "ana")
        assert c.get("/config").json()["show_error"] is False  # gradio shows no exception text either


def test_a_listener_shows_a_reference_not_the_exception(home):
    import gradio as gr

    from labeling_app.listeners import listener
    from labeling_app.state import UserSession

    @listener(UserSession)
    def on_boom(s):
        raise RuntimeError("secret internals")

    with error_log() as records, pytest.raises(gr.Error) as e:
        on_boom(SimpleNamespace(username="ana"), None)
    assert "secret" not in e.value.message and "reference" in e.value.message
    assert len(records) == 1 and "secret internals" in logged_text(records)


def test_the_workspace_is_created_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_HOME", str(tmp_path / "new" / "workspace"))
    old = os.umask(0o022)
    try:
        home = paths.home()
        f = paths.private_file(home / "secret.db")
        assert stat.S_IMODE(home.stat().st_mode) == 0o700 and stat.S_IMODE(f.stat().st_mode) == 0o600
        f.write_text("kept")
        paths.private_file(f)
        assert f.read_text() == "kept"  # an existing file is left as it is
    finally:
        os.umask(old)


def test_the_database_file_is_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("RLHF_DATABASE_URL", raising=False)
    old = os.umask(0o022)
    try:
        with session_scope() as db:
            db.execute(select(User)).all()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ws" / "rlhf.db").stat().st_mode) == 0o600


# --------------------------------------------------------------------------- password hashes


def test_cheap_hashes_are_upgraded_at_the_next_login(home, monkeypatch):
    cheap = user("ana").password_hash
    assert "m=1024" in cheap  # the fixture's RLHF_PASSWORD_HASH=fast
    with session_scope() as db:
        accounts.authenticate(db, "ana", PASSWORD)
    assert user("ana").password_hash == cheap  # still the configured profile: nothing to do
    monkeypatch.delenv("RLHF_PASSWORD_HASH")
    with session_scope() as db:
        assert accounts.authenticate(db, "bob", "wrong password") is None
        assert accounts.authenticate(db, "ana", PASSWORD).name == "ana"
    ana = user("ana")
    assert "m=65536" in ana.password_hash and ana.session_version == 0  # same password: sessions stay
    assert "m=1024" in user("bob").password_hash  # a failed login changes nothing
    with session_scope() as db:
        assert accounts.authenticate(db, "ana", PASSWORD).name == "ana"

