"""A small JSON API beside the UI, over the same handlers and the same role checks.

    POST /api/login          {"name", "password"}                 -> {"token", "name", "role"}
    GET  /api/me                                                   -> {"name", "role", "pages"}
    GET  /api/next/{kind}    kind = write | rank                   -> the view (assignment_id, messages, candidates...)
    POST /api/submit/write   {"assignment_id", "text"}             -> receipt {"status": stored | duplicate, "id"}
    POST /api/submit/rank    {"assignment_id", "ranks", "all_bad", "reason"}
    POST /api/skip/{kind}    {"assignment_id", "reason"}
    POST /api/draft          {"assignment_id", "text"}
    GET  /api/progress/{kind}

Every call but login carries `Authorization: Bearer <token>`. Errors: 401 (no or bad token),
403 (wrong role, someone else's item), 400 (a mistake the caller can fix), each with {"detail": "..."}.
Routes are plain `def`s: FastAPI runs them in its thread pool, like gradio runs the UI's.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from labeling_app import handlers
from labeling_app.auth import make_token, read_token
from labeling_app.state import UserSession
from rlhf.data import accounts
from rlhf.data.accounts import AccessDenied
from rlhf.errors import RlhfError
from rlhf.data.store import session_scope

router = APIRouter(prefix="/api")
Kind = Literal["write", "rank"]


class Login(BaseModel):
    name: str
    password: str


class WriteSubmit(BaseModel):
    assignment_id: int
    text: str


class RankSubmit(BaseModel):
    assignment_id: int
    ranks: list[int | None]  # rank of each shown candidate, in shown order: 1 = best, equal = tie
    all_bad: bool = False
    reason: str = ""


class Skip(BaseModel):
    assignment_id: int
    reason: str = ""


def caller(request: Request) -> str:
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else ""
    name = read_token(request.app.state.api_secret, token) if token else None
    if not name:
        raise HTTPException(401, detail="log in first: POST /api/login, then send Authorization: Bearer <token>")
    return name


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
def login(body: Login, request: Request):
    with session_scope() as db:
        user = accounts.authenticate(db, body.name, body.password)
        if user is None:
            return JSONResponse({"detail": "wrong name or password"}, status_code=401)
        name, role = user.name, user.role
    return {"token": make_token(request.app.state.api_secret, name), "name": name, "role": role}


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
