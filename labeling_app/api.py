"""A small JSON API beside the UI, over the same handlers and the same role checks.

    POST /api/login          {"name", "password"}                 -> {"token", "name", "role"}
    GET  /api/me                                                   -> {"name", "role", "pages"}
    GET  /api/next/{kind}    kind = write | rank                   -> the view (assignment_id, messages, candidates...)
    POST /api/submit/write   {"assignment_id", "text"}             -> receipt {"status": stored | duplicate, "id"}
    POST /api/submit/rank    {"assignment_id", "ranks", "all_bad", "reason"}
    POST /api/skip/{kind}    {"assignment_id", "reason"}
    POST /api/draft          {"assignment_id", "text"}
    GET  /api/progress/{kind}

Every call but login carries `Authorization: Bearer <token>`. Errors: 401 (no or bad token, or a
session ended by a password or role change or a disabled account), 403 (wrong role, someone else's
item), 400 (a mistake the caller can fix, a field too long), 413 (a body too large), 429 (too many
failed logins: `Retry-After` says when to try again), each with {"detail": "..."}.
Routes are plain `def`s: FastAPI runs them in its thread pool, like gradio runs the UI's; login is
async because it waits for the login guard (`sessions.LoginGuard`) without holding a thread.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from labeling_app import handlers
from labeling_app.auth import make_token, still_valid, token_claims
from labeling_app.sessions import Throttled
from labeling_app.slots import MAX_SLOTS
from labeling_app.state import UserSession
from rlhf.data.accounts import AccessDenied
from rlhf.data.formats import MAX_TEXT_CHARS
from rlhf.errors import RlhfError

router = APIRouter(prefix="/api")
Kind = Literal["write", "rank"]


# every field has a maximum size; the body as a whole is capped before it is read (security.Config.body_limit)
AssignmentId = Annotated[int, Field(ge=1, le=2**31 - 1)]
Reason = Annotated[str, Field(max_length=handlers.REASON_CHARS)]
Rank = Annotated[int, Field(ge=1, le=MAX_SLOTS)]


class Login(BaseModel):
    name: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class WriteSubmit(BaseModel):
    assignment_id: AssignmentId
    text: str = Field(max_length=MAX_TEXT_CHARS)


class RankSubmit(BaseModel):
    assignment_id: AssignmentId
    ranks: list[Rank | None] = Field(max_length=MAX_SLOTS)  # rank of each shown candidate, in shown order: 1 = best, equal = tie
    all_bad: bool = False
    reason: Reason = ""


class Skip(BaseModel):
    assignment_id: AssignmentId
    reason: Reason = ""


def validation_message(exc) -> str:
    """FastAPI's list of validation errors as one line: `text: String should have at most 20000 characters`."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def caller(request: Request) -> str:
    """The user a request's token names, if the token is valid and its session has not ended (checked on every call)."""
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else ""
    who = token_claims(request.app.state.api_secret, token) if token else None
    if who is None:
        raise HTTPException(401, detail="log in first: POST /api/login, then send Authorization: Bearer <token>")
    if not still_valid(who):
        raise HTTPException(401, detail="your session has ended (password or role changed, or account disabled): "
                                        "log in again with POST /api/login")
    return who.name


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except AccessDenied as e:
        raise HTTPException(403, detail=str(e)) from None
    except RlhfError as e:
        raise HTTPException(400, detail=str(e)) from None


def _session(name: str, kind: str | None = None, assignment_id: int | None = None) -> UserSession:
    s = UserSession(username=name)
    if kind == "write":
        s.write_assignment = assignment_id
    elif kind == "rank":
        s.rank_assignment = assignment_id
    return s


@router.post("/login")
async def login(body: Login, request: Request):
    address = request.client.host if request.client else ""
    try:
        who = await request.app.state.sessions.guard.login(body.name, body.password, address)
    except Throttled as e:
        return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": str(e.seconds)})
    if who is None:
        return JSONResponse({"detail": "wrong name or password"}, status_code=401)
    return {"token": make_token(request.app.state.api_secret, who.name, version=who.version), "name": who.name,
            "role": who.role}


@router.get("/me")
def me(name: str = Depends(caller)):
    return handlers.as_dict(_call(handlers.whoami, _session(name)))


@router.get("/next/{kind}")
def next_item(kind: Kind, name: str = Depends(caller)):
    fn = handlers.write_next if kind == "write" else handlers.rank_next
    return handlers.as_dict(_call(fn, _session(name)))


@router.post("/submit/write")
def submit_write(body: WriteSubmit, name: str = Depends(caller)):
    return handlers.as_dict(_call(handlers.write_submit, _session(name, "write", body.assignment_id), body.text))


@router.post("/submit/rank")
def submit_rank(body: RankSubmit, name: str = Depends(caller)):
    s = _session(name, "rank", body.assignment_id)
    return handlers.as_dict(_call(handlers.rank_submit, s, body.ranks, body.all_bad, body.reason))


@router.post("/skip/{kind}")
def skip(kind: Kind, body: Skip, name: str = Depends(caller)):
    fn = handlers.write_skip if kind == "write" else handlers.rank_skip
    return handlers.as_dict(_call(fn, _session(name, kind, body.assignment_id), body.reason))


@router.post("/draft")
def draft(body: WriteSubmit, name: str = Depends(caller)):
    return handlers.as_dict(_call(handlers.write_save_draft, _session(name, "write", body.assignment_id), body.text))


@router.get("/progress/{kind}")
def progress(kind: Kind, name: str = Depends(caller)):
    return handlers.as_dict(_call(handlers.progress, _session(name), kind))
