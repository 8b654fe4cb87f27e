"""Logins and sessions of the app: the throttle, gradio's session tokens, the login and logout pages.

- `LoginGuard`: every password check of the app (gradio's login form and `POST /api/login`) goes
  through `LoginGuard.login`. Failed attempts are counted per account and per client address; past
  a few free ones each key waits `2**extra` seconds (capped) before the next check is even made
  ("too many login attempts: try again in N s", 429). At most `hashes` argon2 checks run at once
  (each takes 64 MiB and ~0.3 s of CPU): a burst of logins waits its turn instead of swelling the
  server and starving annotators.
- `SessionTokens`: gradio's own `token -> user name` map, replaced by one that remembers each
  login's session version and age, so a password change, a role change or a disabled account ends
  the session at its next request (gradio asks the map on every route it guards).
- `/login` (GET): the login form; `/logout` (GET: a confirmation button, POST: log out).
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from typing import Callable

import anyio
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from labeling_app import auth, security

COOKIE_PREFIXES = ("access-token-", "access-token-unsecure-")


class Throttled(Exception):
    def __init__(self, seconds: int):
        self.seconds = seconds
        super().__init__(f"too many login attempts: try again in {seconds} s")


class LoginGuard:
    """Per-account and per-address backoff plus a bound on concurrent password hashes (one per app)."""

    def __init__(self, hashes: int = 2, account_free: int = 5, address_free: int = 20, cap_seconds: float = 300.0,
                 forget_seconds: float = 900.0, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.hashes, self.cap, self.forget, self.max_keys, self.clock = hashes, cap_seconds, forget_seconds, max_keys, clock
        self.free = {"account": account_free, "address": address_free}
        self._failures: collections.OrderedDict[tuple[str, str], list[float]] = collections.OrderedDict()  # key -> [n, last]
        self._lock = threading.Lock()
        self._sem: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _keys(self, name: str, address: str) -> list[tuple[str, str]]:
        return [("account", (name or "").strip()[:128])] + ([("address", address)] if address else [])

    def wait_seconds(self, name: str, address: str) -> int:
        """Seconds before the next attempt for this account from this address may be checked (0: now)."""
        now, wait = self.clock(), 0.0
        with self._lock:
            for key in self._keys(name, address):
                n, last = self._failures.get(key, (0, 0.0))
                if n and now - last > self.forget:
                    self._failures.pop(key, None)
                    continue
                extra = n - self.free[key[0]]
                if extra >= 0:
                    wait = max(wait, last + min(self.cap, 2.0 ** extra) - now)
        return math.ceil(wait) if wait > 0 else 0

    def record(self, name: str, address: str, ok: bool) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(name, address):
                if ok and key[0] == "account":  # the address keeps its count: one good account must not unlock guessing
                    self._failures.pop(key, None)
                elif not ok:
                    n, _ = self._failures.pop(key, (0, 0.0))
                    self._failures[key] = [n + 1, now]
                    while len(self._failures) > self.max_keys:
                        self._failures.popitem(last=False)

    def _check(self, name: str, address: str) -> None:
        wait = self.wait_seconds(name, address)
        if wait:
            raise Throttled(wait)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem[0] is not loop:
            self._sem = (loop, asyncio.Semaphore(self.hashes))
        return self._sem[1]

    async def login(self, name: str, password: str, address: str) -> auth.LoggedIn | None:
        """The account when name and password are right, None when not; `Throttled` before any check when too many failed."""
        self._check(name, address)
        async with self._semaphore():
            self._check(name, address)  # again: attempts that held the slots before may have failed meanwhile
            who = await anyio.to_thread.run_sync(auth.check_password, name, password)
        self.record(name, address, who is not None)
        return who


class SessionTokens(dict):
    """gradio's `app.tokens` (token -> user name) with each login's session version and start; stale tokens read as absent."""

    def __init__(self, lifetime: float = auth.TOKEN_SECONDS, clock: Callable[[], float] = time.time):
        super().__init__()
        self.lifetime, self.clock = lifetime, clock
        self.pending: dict[str, int] = {}  # name -> session version of the login gradio is about to store
        self._meta: dict[str, tuple[int, float]] = {}  # token -> (session version, logged in at)

    def __setitem__(self, token: str, name: str) -> None:
        version = self.pending.pop(name, None)
        if version is None:  # not a login through `gradio_auth`: a session that never validates
            version = -1
        now = self.clock()
        for old in [t for t, (_, at) in self._meta.items() if now - at > self.lifetime]:
            self.pop(old, None)
        super().__setitem__(token, name)
        self._meta[token] = (version, now)

    def pop(self, token, default=None):
        self._meta.pop(token, None)
        return super().pop(token, default)

    def __delitem__(self, token) -> None:
        self._meta.pop(token, None)
        super().__delitem__(token)

    def get(self, token, default=None):
        name = super().get(token) if token else None
        if name is None:
            return default
        version, at = self._meta.get(token, (-1, 0.0))
        if self.clock() - at > self.lifetime or not auth.still_valid(auth.LoggedIn(name, version=version)):
            self.pop(token)
            return default
        return name


class Sessions:
    """The app's login state: the guard, gradio's token map (once gradio is mounted) and its cookie names."""

    def __init__(self, guard: LoginGuard | None = None):
        self.guard = guard or LoginGuard()
        self.tokens = SessionTokens()
        self.cookie_id = ""

    def attach(self, gradio_app) -> None:
        """Take over gradio's token map (call right after `gr.mount_gradio_app`)."""
        gradio_app.tokens = self.tokens
        self.cookie_id = gradio_app.cookie_id

    async def gradio_auth(self, username: str, password: str) -> bool:
        """gradio's `auth=` callback: throttled, bounded, remembers the session version for the token gradio makes next."""
        try:
            who = await self.guard.login(username, password, security.CLIENT.get())
        except Throttled as e:
            raise HTTPException(429, detail=str(e), headers={"Retry-After": str(e.seconds)}) from None
        if who is None:
            return False
        self.tokens.pending[who.name] = who.version
        return True

    def token_of(self, headers: dict) -> str:
        jar = security.cookies(headers)
        return next((jar[p + self.cookie_id] for p in COOKIE_PREFIXES if jar.get(p + self.cookie_id)), "")

    def user_for(self, headers: dict) -> str | None:
        """The logged-in user of a request's session cookie, if the session is still valid."""
        token = self.token_of(headers)
        return self.tokens.get(token) if token else None

    def add_routes(self, app, auth_message: str = "") -> None:
        """`GET /login` (the form), `GET /logout` (a button) and `POST /logout` on the outer FastAPI app, before gradio's."""
        @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
        def login_page():
            return HTMLResponse(LOGIN_PAGE.replace("{message}", auth_message), headers={"Cache-Control": "no-store"})

        @app.get("/logout", response_class=HTMLResponse, include_in_schema=False)
        def logout_page():
            return HTMLResponse(LOGOUT_PAGE, headers={"Cache-Control": "no-store"})

        @app.post("/logout", include_in_schema=False)
        def logout(request: Request):
            token = self.token_of({k.lower(): v for k, v in request.headers.items()})
            if token:
                self.tokens.pop(token, None)
            response = RedirectResponse("/login", status_code=303)
            for prefix in COOKIE_PREFIXES:
                response.delete_cookie(prefix + self.cookie_id, path="/")
            return response


_STYLE = """<style>body{font-family:system-ui,sans-serif;background:#f6f6f7;margin:0}
main{max-width:380px;margin:12vh auto;background:#fff;padding:28px;border-radius:10px;box-shadow:0 1px 6px #0002}
label{display:block;margin:12px 0 4px}input{width:100%;box-sizing:border-box;padding:8px;font-size:15px}
button{margin-top:16px;width:100%;padding:10px;font-size:15px;background:#f97316;color:#fff;border:0;border-radius:6px}
#error{color:#b91c1c;min-height:1.2em;margin-top:12px}</style>"""

LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · RLHF labeling</title>
<meta name="viewport" content="width=device-width, initial-scale=1">""" + _STYLE + """</head><body><main>
<h2>RLHF labeling</h2><p>{message}</p>
<form id="login"><label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Login</button><div id="error" role="alert"></div></form></main>
<script>
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("error");
  err.textContent = "";
  let r;
  try { r = await fetch("login", {method: "POST", body: new FormData(ev.target), credentials: "same-origin"}); }
  catch (e) { err.textContent = "The server did not answer: try again."; return; }
  if (r.ok) { location.href = "./"; return; }
  let detail = "";
  try { detail = (await r.json()).detail; } catch (e) {}
  err.textContent = r.status === 400 ? "Wrong name or password." : (typeof detail === "string" && detail) || ("Login failed (" + r.status + ").");
});
</script></body></html>"""

LOGOUT_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log out · RLHF labeling</title>""" + _STYLE + """
</head><body><main><h2>Log out?</h2><form method="post" action="logout"><button type="submit">Log out</button></form>
<p><a href="./">Back to the app</a></p></main></body></html>"""
