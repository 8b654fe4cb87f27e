"""Accounts: argon2id password hashes, creating users, checking a login, and the one role check.

Used by `rlhf users`, the labeling app and the review actions. Passwords are never stored or
logged; only the argon2id hash (salt and cost parameters inside it) is kept in
`users.password_hash`. A user without a hash (imported or simulated) cannot log in.

Roles: who may do what is named once here (`LABELERS`, `REVIEWERS`, `ADMINS`) and checked by
`require`, on the server, before anything is written; every refusal is an `AccessDenied`
(a PermissionError) saying `ACTION: what is wrong`.

Sessions: `users.session_version` is copied into every app login and API token; changing the
password, the role or disabling the account adds 1, which ends every open session and token of
that user at their next request (`current_session`). A disabled user cannot log in or act.

Cost: argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, 64 MiB, p=4), about 0.3 s a
check on a 2-core machine. `RLHF_PASSWORD_HASH=fast` switches *new* hashes to a cheap profile
for tests and load benchmarks only; a hash always verifies with the parameters stored in it, and
a hash weaker than the current profile is re-made at the next successful login.
"""

from __future__ import annotations

import functools
import os
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.errors import RlhfError
from rlhf.data.store.models import ROLES, User

LABELERS = ("annotator", "expert", "admin")  # who may write demonstrations and rank
REVIEWERS = ("expert", "admin")  # who may approve, reject, edit, adjudicate and judge A/B pairs
ADMINS = ("admin",)  # who may import, generate, manage users and change settings
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8


def hasher() -> PasswordHasher:
    if os.environ.get("RLHF_PASSWORD_HASH") == "fast":  # tests and benchmarks only (see module docstring)
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def hash_password(password: str) -> str:
    return hasher().hash(password)


@functools.cache
def _dummy_hash() -> str:
    return PasswordHasher().hash("not-a-password")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches `stored_hash` (argon2 compares in constant time)."""
    if not stored_hash:
        # spend the same time as a real check, so a login cannot tell unknown users apart
        stored_hash, password = _dummy_hash(), password + "\x00"
    try:
        return PasswordHasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise RlhfError(f"user name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise RlhfError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise RlhfError(f"password too short: use at least {MIN_PASSWORD} characters")
    return password


def create_user(session: Session, name: str, role: str, password: str) -> User:
    """A new user who can log in. An existing user without a password (imported) gets one and the role."""
    name, role, password = check_name(name), check_role(role), check_password(password)
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and user.password_hash:
        raise RlhfError(f"user {name!r} already exists: use `rlhf users passwd {name}` to change the password")
    if user is None:
        user = User(name=name, role=role, password_hash=None, simulated=False)
        session.add(user)
    user.role, user.password_hash, user.simulated = role, hash_password(password), False
    session.flush()
    return user


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise RlhfError(f"no user {name!r}: `rlhf users list` shows them")
    return user


def end_sessions(user: User) -> None:
    """Every open app session and API token of `user` ends at its next request (they log in again)."""
    user.session_version = (user.session_version or 0) + 1


def set_password(session: Session, name: str, password: str) -> User:
    user = _user(session, name)
    user.password_hash = hash_password(check_password(password))
    end_sessions(user)
    return user


def set_role(session: Session, name: str, role: str) -> User:
    user = _user(session, name)
    user.role = check_role(role)
    end_sessions(user)
    return user


def set_disabled(session: Session, name: str, disabled: bool = True) -> User:
    """Disable (ends the user's sessions; no login, no action) or enable an account; its rows stay."""
    user = _user(session, name)
    user.disabled = bool(disabled)
    if disabled:
        end_sessions(user)
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user when `name`/`password` match an enabled person's account, else None (simulated users never log in).

    A hash made with a cheaper profile than the current one (`hasher()`) is re-made with it now,
    while the password is at hand.
    """
    user = session.scalar(select(User).where(User.name == (name or "").strip()))
    ok = verify_password(user.password_hash if user is not None else None, password or "")
    if not ok or user is None or user.simulated or not user.password_hash or user.disabled:
        return None
    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)  # same password: open sessions stay
    return user


def current_session(session: Session, name: str, version: int) -> User | None:
    """The user a login or token names when it is still valid: same session version, enabled, able to log in."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None or user.disabled or user.simulated or not user.password_hash or user.session_version != version:
        return None
    return user


class AccessDenied(RlhfError, PermissionError):
    """The caller is not logged in, or their role may not do this (checked on the server, whatever the page showed)."""


def require(session: Session, user_or_name: User | str | None, roles: tuple[str, ...], action: str,
            login: bool = True) -> User:
    """The acting user, reloaded from the store (a role change applies at once); AccessDenied unless their role is in `roles`.

    `login`: the caller came in over the network (the app, the API), so the account must be a
    person's who can log in now (a password, not simulated, not disabled). Scripts and the CLI, run by whoever
    holds the machine, pass `login=False`: any user with the role may act, simulated judges too.
    """
    if isinstance(user_or_name, User):
        user = session.get(User, user_or_name.id)
        name = user_or_name.name
    else:
        name = (user_or_name or "").strip()
        if not name:
            raise AccessDenied(f"{action}: not logged in")
        user = session.scalar(select(User).where(User.name == name))
    if login and (user is None or user.simulated or not user.password_hash or user.disabled):
        raise AccessDenied(f"{action}: no active account {name!r}; log in again")
    if user is None:
        raise AccessDenied(f"{action}: no user {name!r}: `rlhf users list` shows them")
    if user.role not in roles:
        raise AccessDenied(f"{action}: {user.name} is {user.role}, this needs the {' or '.join(roles)} role")
    return user
