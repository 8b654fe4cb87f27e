"""Who is calling: login for gradio and for the JSON API. What is app-specific, nothing more.

Access control lives on the server: every handler starts with `rlhf.data.accounts.require(...)`,
which reloads the caller from the users table (a role change or a removed password applies at
the next click) and raises `AccessDenied` (a PermissionError) when the role is wrong. Hidden tabs
are only cosmetics.

API tokens are `name.expiry.signature` (HMAC-SHA256 with a per-process random key kept on the
FastAPI app), so no token table and nothing shared between users in module globals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from rlhf.data import accounts
from rlhf.data.store import session_scope

TOKEN_SECONDS = 12 * 3600


def check_login(username: str, password: str) -> bool:
    """gradio's `auth=` callback: the users table, argon2 hashes."""
    with session_scope() as db:
        return accounts.authenticate(db, username, password) is not None


async def check_login_async(username: str, password: str) -> bool:
    """The same, off the event loop (an argon2 check takes ~0.3 s of CPU)."""
    import anyio

    return await anyio.to_thread.run_sync(check_login, username, password)


def make_token(secret: bytes, username: str, now: float | None = None) -> str:
    expiry = int((now or time.time()) + TOKEN_SECONDS)
    name = base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")
    payload = f"{name}.{expiry}"
    sig = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{sig}"


def read_token(secret: bytes, token: str, now: float | None = None) -> str | None:
    """The user name in a valid, unexpired token, else None."""
    try:
        name, expiry, sig = token.split(".")
        good = hmac.new(secret, f"{name}.{expiry}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, sig) or int(expiry) < (now or time.time()):
            return None
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
