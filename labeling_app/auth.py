"""Who is calling, and may they? Login for gradio and for the JSON API; role checks for every handler.

Access control lives on the server: every handler starts with `require(...)`, which reloads the
caller from the users table (a role change or a removed password applies at the next click) and
raises `AccessDenied` (a PermissionError) when the role is wrong. Hidden tabs are only cosmetics.

API tokens are `name.expiry.signature` (HMAC-SHA256 with a per-process random key kept on the
FastAPI app), so no token table and nothing shared between users in module globals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data import accounts
from rlhf.data.store import session_scope
from rlhf.data.store.models import User

LABELERS = ("annotator", "expert", "admin")  # who may write and rank
ADMINS = ("admin",)
TOKEN_SECONDS = 12 * 3600


class AccessDenied(PermissionError):
    """The caller is not logged in, or their role may not do this."""


def require(db: Session, username: str | None, roles: tuple[str, ...], action: str) -> User:
    """The calling user, reloaded from the store; AccessDenied unless their role is one of `roles`."""
    if not username:
        raise AccessDenied(f"{action}: not logged in")
    user = db.scalar(select(User).where(User.name == username))
    if user is None or user.simulated or not user.password_hash:
        raise AccessDenied(f"{action}: no active account {username!r}; log in again")
    if user.role not in roles:
        need = " or ".join(roles)
        raise AccessDenied(f"{action}: {user.name} is {user.role}, this needs the {need} role")
    return user


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
