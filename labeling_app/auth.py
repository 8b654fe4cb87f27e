"""Who is calling: checking a login, and API tokens. What is app-specific, nothing more.

Access control lives on the server: every handler starts with `rlhf.data.accounts.require(...)`,
which reloads the caller from the users table (a role change or a removed password applies at
the next click) and raises `AccessDenied` (a PermissionError) when the role is wrong. Hidden tabs
are only cosmetics. Throttling and the login routes themselves: `labeling_app.sessions`.

API tokens are `name.expiry.signature` (HMAC-SHA256 with a per-process random key kept on the
FastAPI app), so no token table and nothing shared between users in module globals. The name
part carries the user's session version (`rlhf.data.accounts`): a password change, a role change
or disabling the account ends every token issued before it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from rlhf.data import accounts
from rlhf.data.store import session_scope

TOKEN_SECONDS = 12 * 3600


@dataclass(frozen=True)
class LoggedIn:
    """Who a login or a token names: the user and the session version it was issued under."""

    name: str
    role: str = ""
    version: int = 0


def check_password(username: str, password: str) -> LoggedIn | None:
    """The account when the name and password are right (enabled people only; argon2 hashes), else None."""
    with session_scope() as db:
        user = accounts.authenticate(db, username, password)
        return LoggedIn(user.name, user.role, user.session_version or 0) if user is not None else None


def check_login(username: str, password: str) -> bool:
    return check_password(username, password) is not None


def still_valid(who: LoggedIn) -> bool:
    """Whether a login or token is still good: same session version, account enabled (one query)."""
    with session_scope() as db:
        return accounts.current_session(db, who.name, who.version) is not None


def make_token(secret: bytes, username: str, now: float | None = None, version: int = 0) -> str:
    expiry = int((now or time.time()) + TOKEN_SECONDS)
    name = base64.urlsafe_b64encode(f"{version}/{username}".encode()).decode().rstrip("=")
    payload = f"{name}.{expiry}"
    sig = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{sig}"


def token_claims(secret: bytes, token: str, now: float | None = None) -> LoggedIn | None:
    """Who a valid, unexpired token names (and its session version), else None. Not yet checked against the store."""
    try:
        name, expiry, sig = token.split(".")
        good = hmac.new(secret, f"{name}.{expiry}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, sig) or int(expiry) < (now or time.time()):
            return None
        version, _, username = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode().partition("/")
        return LoggedIn(username, version=int(version)) if username else None
    except (ValueError, UnicodeDecodeError):
        return None


def read_token(secret: bytes, token: str, now: float | None = None) -> str | None:
    """The user name in a valid, unexpired token, else None."""
    who = token_claims(secret, token, now)
    return who.name if who is not None else None
