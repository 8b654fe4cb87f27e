"""Logins and sessions of the labeling app (issue 13, part 2), against the real app (`server.create_app`): a password
change, a role change or a disabled account ends open sessions and API tokens; failed logins back off per account and
per address; at most two password checks run at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app_support import PASSWORD, home, me  # noqa: F401 (home: fixture)
from conftest import run_cli
from labeling_app import auth, handlers
from labeling_app.sessions import LoginGuard, Throttled
from rlhf.data import accounts
from rlhf.data.accounts import AccessDenied
from rlhf.data.store import session_scope
from security_support import OWN, api_login, browser_client, ui_login


# --------------------------------------------------------------------------- sessions that end


def _passwd(db):
    accounts.set_password(db, "ana", "a-new-passphrase")


def _role(db):
    accounts.set_role(db, "ana", "expert")


def _disable(db):
    accounts.set_disabled(db, "ana")


@pytest.mark.parametrize("change", [_passwd, _role, _disable], ids=["passwd", "role", "disable"])
def test_password_role_or_disable_ends_open_sessions_and_tokens(home, change):
    with browser_client() as c:
        token = api_login(c, "ana")
        assert ui_login(c, "ana").status_code == 200
        assert c.get("/config").status_code == 200 and c.get("/api/me", headers=token).status_code == 200
        with session_scope() as db:
            change(db)
        assert c.get("/config").status_code == 401  # gradio's session: every route it guards asks the token map
        assert c.post("/gradio_api/queue/join", json={}, headers={"Origin": OWN}).status_code == 401
        r = c.get("/api/me", headers=token)
        assert r.status_code == 401 and "session has ended" in r.json()["detail"]
        password = "a-new-passphrase" if change is _passwd else PASSWORD
        ok = ui_login(c, "ana", password).status_code == 200
        assert ok == (change is not _disable)  # a fresh login works, unless the account is disabled
        assert (c.post("/api/login", json={"name": "ana", "password": password}).status_code == 200) == ok


def test_users_disable_and_enable(home):
    r = run_cli("users", "disable", "ana")
    assert r.returncode == 0 and "ana is disabled" in r.stdout, r.stderr
    assert "disabled" in next(line for line in run_cli("users", "list").stdout.splitlines() if line.startswith("ana "))
    with session_scope() as db:
        assert accounts.authenticate(db, "ana", PASSWORD) is None
    with pytest.raises(AccessDenied, match="no active account 'ana'"):
        handlers.whoami(me("ana"))  # `require` refuses a disabled user whatever session they hold
    assert run_cli("users", "enable", "ana").returncode == 0
    assert handlers.whoami(me("ana")).name == "ana"
    with session_scope() as db:
        assert accounts.authenticate(db, "ana", PASSWORD).name == "ana"
    bad = run_cli("users", "disable", "nobody")
    assert bad.returncode == 2 and "no user 'nobody'" in bad.stderr


def test_api_tokens_carry_the_session_version():
    secret = b"k" * 32
    token = auth.make_token(secret, "ana.b@x", now=1000.0, version=7)
    assert auth.token_claims(secret, token, now=1001.0) == auth.LoggedIn("ana.b@x", version=7)
    assert auth.read_token(secret, token, now=1001.0) == "ana.b@x"


# --------------------------------------------------------------------------- login throttling


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_doubles_per_failure_is_capped_and_counts_accounts_and_addresses_apart():
    clock = Clock()
    g = LoginGuard(account_free=3, address_free=5, cap_seconds=8, forget_seconds=600, clock=clock)
    waits = []
    for _ in range(7):
        g.record("ana", "10.0.0.1", ok=False)
        waits.append(g.wait_seconds("ana", "10.0.0.9"))  # another address: the account's own count
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    clock.t += 8
    assert g.wait_seconds("ana", "10.0.0.9") == 0  # the wait is from the last failure
    g.record("ana", "10.0.0.9", ok=True)
    assert g.wait_seconds("ana", "10.0.0.9") == 0  # a good login forgives the account...
    g.record("bob", "10.0.0.1", ok=False)
    assert g.wait_seconds("cy", "10.0.0.1") == 8  # ...not the address that failed 8 times (one good account unlocks nothing)
    for name in ("a", "b", "c", "d", "e"):  # one address guessing many accounts
        g.record(name, "10.0.0.2", ok=False)
    assert g.wait_seconds("zed", "10.0.0.2") == 1 and g.wait_seconds("zed", "10.0.0.3") == 0
    clock.t += 601
    assert g.wait_seconds("ana", "10.0.0.1") == 0 and g.wait_seconds("zed", "10.0.0.2") == 0  # forgotten
    small = LoginGuard(max_keys=10)
    for i in range(50):
        small.record(f"user{i}", "", ok=False)
    assert len(small._failures) == 10  # a flood of made-up names cannot fill the memory


def test_throttled_logins_say_when_to_try_again(home):
    clock = Clock()
    with browser_client(guard=LoginGuard(clock=clock)) as c:
        for _ in range(5):
            assert c.post("/api/login", json={"name": "ana", "password": "wrong-guess"}).status_code == 401
        r = c.post("/api/login", json={"name": "ana", "password": PASSWORD})  # even the right password waits
        assert r.status_code == 429 and r.json()["detail"] == "too many login attempts: try again in 1 s"
        assert r.headers["retry-after"] == "1"
        r = ui_login(c, "ana")  # gradio's login form: the same guard
        assert r.status_code == 429 and r.json()["detail"] == "too many login attempts: try again in 1 s"
        clock.t += 1
        assert ui_login(c, "ana").status_code == 200
        assert ui_login(c, "bob").status_code == 200  # other accounts from the same address were never held up


def test_at_most_two_password_checks_run_at_once(monkeypatch):
    """32 parallel logins: the argon2 checks (64 MiB each) queue for two slots instead of running side by side."""
    running, most, lock = [0], [0], threading.Lock()

    def slow_check(name, password):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return None

    monkeypatch.setattr(auth, "check_password", slow_check)
    guard = LoginGuard(hashes=2)

    async def burst():
        return await asyncio.gather(*(guard.login(f"u{i}", "x", f"10.0.{i}.1") for i in range(32)), return_exceptions=True)

    results = asyncio.run(burst())
    assert results == [None] * 32 and most[0] == 2


def test_a_burst_of_failures_is_throttled_while_it_waits_for_a_slot(monkeypatch):
    monkeypatch.setattr(auth, "check_password", lambda name, password: time.sleep(0.01))
    guard = LoginGuard(hashes=2, account_free=5)

    async def burst():
        return await asyncio.gather(*(guard.login("ana", "x", f"10.0.{i}.1") for i in range(32)), return_exceptions=True)

    results = asyncio.run(burst())
    assert 5 <= results.count(None) <= 6  # five free failures, plus one already checking when the fifth failed
    assert all(isinstance(r, Throttled) for r in results if r is not None)


@pytest.mark.slow
def test_a_burst_of_bad_logins_keeps_the_served_app_small_and_responsive():
    """The review's numbers, on a served app with real argon2 hashes (tests/measure_login_rss.py): 32 parallel bad
    logins once took the server from ~245 MB to ~1.2 GB and an annotator's call up to 14-23 s."""
    import re
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, str(REPO / "tests" / "measure_login_rss.py"), "--distinct"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    grew = int(re.search(r"\(\+(\d+) MB\)", out.stdout).group(1))
    slowest = int(re.search(r"max (\d+) ms", out.stdout).group(1))
    assert grew < 300 and slowest < 3000, out.stdout
