"""`rlhf users`: accounts of the labeling app (annotator, expert, admin).

Passwords come from an interactive prompt (asked twice) or, when stdin is not a terminal, from
the first line of stdin (`printf '%s\\n' "$PW" | rlhf users add ana --role annotator`). Never
from a flag: flags end up in shell history and `ps`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy import func, select

from rlhf.cli import app
from rlhf.errors import RlhfError

users_app = typer.Typer(help="Accounts of the labeling app: annotator, expert, admin.", no_args_is_help=True)
app.add_typer(users_app, name="users")

RoleOpt = Annotated[str, typer.Option("--role", help="annotator | expert | admin")]


def read_password(confirm: bool = True) -> str:
    """The new password: prompted (hidden, twice) on a terminal, else the first line of stdin."""
    if sys.stdin is not None and sys.stdin.isatty():
        return typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    password = line.rstrip("\r\n")
    if not password:
        raise RlhfError("no password on stdin: pipe one line, or run in a terminal to be prompted")
    return password


@users_app.command("add")
def users_add(name: str, role: RoleOpt = "annotator"):
    """Create NAME with ROLE; the password is prompted for (or read from stdin)."""
    from rlhf.data import accounts as auth
    from rlhf.data.store import session_scope

    auth.check_name(name), auth.check_role(role)  # fail before asking for a password
    password = read_password()
    with session_scope() as s:
        user = auth.create_user(s, name, role, password)
        uname, urole = user.name, user.role
    typer.echo(f"user {uname} ({urole}) can now log in to the labeling app")


@users_app.command("passwd")
def users_passwd(name: str):
    """Set a new password for NAME (prompted, or read from stdin)."""
    from rlhf.data import accounts as auth
    from rlhf.data.store import session_scope

    password = read_password()
    with session_scope() as s:
        auth.set_password(s, name, password)
    typer.echo(f"password of {name} changed; their open sessions and API tokens have ended")


@users_app.command("role")
def users_role(name: str, role: str):
    """Change NAME's role (annotator | expert | admin)."""
    from rlhf.data import accounts as auth
    from rlhf.data.store import session_scope

    with session_scope() as s:
        auth.set_role(s, name, role)
    typer.echo(f"{name} is now {role}; their open sessions and API tokens have ended")


@users_app.command("disable")
def users_disable(name: str):
    """Disable NAME: their open sessions and API tokens end, and they cannot log in (their work stays)."""
    from rlhf.data import accounts as auth
    from rlhf.data.store import session_scope

    with session_scope() as s:
        auth.set_disabled(s, name, True)
    typer.echo(f"{name} is disabled: logged out everywhere, cannot log in (`rlhf users enable {name}` undoes it)")


@users_app.command("enable")
def users_enable(name: str):
    """Let a disabled NAME log in again."""
    from rlhf.data import accounts as auth
    from rlhf.data.store import session_scope

    with session_scope() as s:
        auth.set_disabled(s, name, False)
    typer.echo(f"{name} can log in again")


@users_app.command("list")
def users_list():
    """Every user: role, whether they can log in, and how much they have labelled."""
    from rlhf.data.store import session_scope
    from rlhf.data.store.models import Demonstration, Ranking, User

    with session_scope() as s:
        demos = dict(s.execute(select(Demonstration.annotator_id, func.count()).group_by(Demonstration.annotator_id)).all())
        ranks = dict(s.execute(select(Ranking.annotator_id, func.count()).group_by(Ranking.annotator_id)).all())
        users = s.scalars(select(User).order_by(User.role, User.name)).all()
        if not users:
            typer.echo("no users yet: rlhf users add NAME --role annotator|expert|admin")
        for u in users:
            login = "simulated" if u.simulated else "disabled" if u.disabled else ("can log in" if u.password_hash else "no password")
            typer.echo(f"{u.name:<24} {u.role:<10} {login:<12} {demos.get(u.id, 0):>6} demonstrations {ranks.get(u.id, 0):>6} rankings")

