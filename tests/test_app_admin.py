"""Admin handlers of the labeling app: role checks, imports, users, snapshots, settings, background jobs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from conftest import write_jsonl
from labeling_app import admin
from labeling_app import handlers as h
from labeling_app import queue
from rlhf.data.accounts import AccessDenied
from labeling_app.state import UserSession
from rlhf.data import accounts
from rlhf.data.store import session_scope
from rlhf.data.store.app_models import LabelItem
from rlhf.data.store.job_models import Job
from rlhf.data.store.models import Prompt, User
from rlhf.errors import RlhfError

from app_support import PASSWORD, PROMPTS, candidates, count, home, me  # noqa: F401 (home: fixture)


# --------------------------------------------------------------------------- role checks

ADMIN_CALLS = {
    "import": lambda s: admin.admin_import_prompts(s, "/nonexistent.jsonl"),
    "generate": lambda s: admin.admin_generate(s, "sft@latest", "prompts@latest", 4),
    "prioritize": lambda s: admin.admin_prioritize(s, "rm@latest"),
    "jobs": lambda s: admin.admin_jobs(s),
    "create_user": lambda s: admin.admin_create_user(s, "mallory", "admin", PASSWORD),
    "snapshot": lambda s: admin.admin_snapshot(s, "prompts"),
    "counts": lambda s: admin.admin_counts(s),
    "get_settings": lambda s: admin.admin_get_settings(s),
    "save_settings": lambda s: admin.admin_save_settings(s, rank_overlap=1),
    "refresh_queue": lambda s: admin.admin_refresh_queue(s),
    "model_choices": lambda s: admin.admin_model_choices(s),
}


@pytest.mark.parametrize("action", sorted(ADMIN_CALLS))
@pytest.mark.parametrize("who", ["ana", "eve", "", "ghost"])
def test_admin_handlers_refuse_everyone_but_admins(home, action, who):
    with pytest.raises(AccessDenied) as e:
        ADMIN_CALLS[action](me(who))
    assert isinstance(e.value, PermissionError)
    if who == "ana":
        assert "ana is annotator, this needs the admin role" in str(e.value)
    with session_scope() as db:  # nothing happened
        assert db.scalar(select(User).where(User.name == "mallory")) is None
        assert queue.get_settings(db)["rank_overlap"] == queue.DEFAULTS["rank_overlap"]


def test_ui_listeners_turn_refusals_into_gr_errors(home):
    """The gradio layer passes the logged-in name on: a hand-made API call to an admin listener is refused too."""
    import gradio as gr

    from labeling_app import app as ui

    as_ana, as_root = SimpleNamespace(username="ana"), SimpleNamespace(username="root")
    for listener, args in ((ui.on_admin_refresh, ()), (ui.on_admin_sync, ()), (ui.on_admin_jobs, ()),
                           (ui.on_admin_create_user, ("mallory", "admin", PASSWORD)),
                           (ui.on_admin_snapshot, ("prompts", False)), (ui.on_admin_import, (None,))):
        with pytest.raises(gr.Error, match="needs the admin role"):
            listener(as_ana, UserSession(), *args)
    counts = ui.on_admin_refresh(as_root, UserSession())[0]
    assert ["users", "admin", 1] in counts
    with pytest.raises(gr.Error, match="not logged in"):
        ui.on_load(SimpleNamespace(username=None), UserSession())


def test_every_listener_gets_the_request_under_its_own_api_name(home):
    """gradio's rule (labeling_app/listeners.py): it passes the request only to a parameter annotated gr.Request."""
    import gradio as gr
    from gradio.helpers import special_args

    from labeling_app import app as ui
    from labeling_app import review_layout

    for listener in (ui.on_load, ui.on_rank_submit, review_layout.on_load, review_layout.on_adjudicate):
        inputs = ["state", "input"]
        special_args(listener, inputs, request="the request")
        assert inputs == ["the request", "state", "input"], listener.__name__
    assert (ui.on_load.__name__, review_layout.on_load.__name__) == ("on_load", "review_on_load")
    with pytest.raises(gr.Error, match="ana is annotator, this needs the expert or admin role"):
        review_layout.on_queue(SimpleNamespace(username="ana"), None, "", "", "")


def test_role_change_applies_at_the_next_call(home):
    assert admin.admin_counts(me("root"))
    with session_scope() as db:
        accounts.set_role(db, "root", "annotator")
    with pytest.raises(AccessDenied):
        admin.admin_counts(me("root"))
    assert h.whoami(me("root")).pages == ("write", "rank")
    assert h.whoami(me("eve")).role == "expert"


# --------------------------------------------------------------------------- admin


def test_admin_imports_prompts_with_the_cli_validation(home, tmp_path):
    root = me("root")
    assert admin.admin_refresh_queue(root) == "queue refreshed: 3 new write items, 0 new rank items"
    uploads = tmp_path / "gradio-upload-123"  # gradio keeps uploads under a temporary name
    uploads.mkdir()
    good = write_jsonl(uploads / "new.jsonl", [{"id": "p9", "messages": [{"role": "user", "content": "New one"}]}, PROMPTS[0]])
    assert admin.admin_import_prompts(root, str(good), "new.jsonl") == \
        "new.jsonl: 1 prompts added, 1 exact duplicates skipped; 1 new write items"
    bad = write_jsonl(uploads / "bad.jsonl",
                      [{"id": "p10", "messages": [{"role": "user", "content": "fine"}]},
                       {"id": "p11", "messages": [{"role": "robot", "content": "?"}]}])
    with pytest.raises(RlhfError) as e:
        admin.admin_import_prompts(root, str(bad), "bad.jsonl")
    assert str(e.value) == "bad.jsonl:2: messages[0].role: expected one of system, user, assistant, got 'robot'"
    with session_scope() as db:  # all or nothing: p10 was not stored either
        assert sorted(db.scalars(select(Prompt.external_id))) == ["p1", "p2", "p3", "p9"]


def test_admin_creates_users_who_can_then_log_in(home):
    assert admin.admin_create_user(me("root"), "fay", "annotator", PASSWORD) == "created fay (annotator): they can log in now"
    assert h.whoami(me("fay")).role == "annotator"
    with pytest.raises(RlhfError, match="already exists"):
        admin.admin_create_user(me("root"), "fay", "admin", PASSWORD)
    with pytest.raises(RlhfError, match="too short"):
        admin.admin_create_user(me("root"), "gus", "annotator", "short")


def test_admin_snapshots_counts_and_settings(home):
    root, ana = me("root"), me("ana")
    h.write_next(ana)
    h.write_submit(ana, "An answer.")
    with pytest.raises(RlhfError, match="nothing to snapshot"):
        admin.admin_snapshot(root, "sft")  # only approved data by default
    assert admin.admin_snapshot(root, "sft", include_pending=True) == "sft@v1: new version, 1 rows"
    assert admin.admin_snapshot(root, "sft", include_pending=True) == "sft@v1: unchanged content, existing version, 1 rows"
    rows = {(a, b): n for a, b, n in admin.admin_counts(root)}
    assert rows[("users", "annotator")] == 3 and rows[("prompts", "train")] == 3
    assert rows[("demonstrations", "pending")] == 1 and rows[("write assignments", "done")] == 1
    assert rows[("write items", "complete (overlap 1)")] == 1 and rows[("write items", "still open")] == 2
    assert admin.admin_save_settings(root, rank_overlap=5, guidelines="New rules") == "settings saved: guidelines, rank_overlap"
    assert admin.admin_get_settings(root)["rank_overlap"] == 5
    assert h.write_next(me("bob")).guidelines == "New rules"
    with pytest.raises(RlhfError, match="outside 1..50"):
        admin.admin_save_settings(root, rank_overlap=0)
    with pytest.raises(RlhfError, match="unknown setting"):
        admin.admin_save_settings(root, colour="red")


def test_admin_generation_checks_its_options_before_starting_a_job(home):
    """Bad options start nothing; a started job's life (done, failed, died) is tests/test_jobs.py."""
    root = me("root")
    with pytest.raises(RlhfError, match="model"):
        admin.admin_generate(root, "--help", "prompts@latest", 4)
    with pytest.raises(RlhfError, match="use 2..9"):
        admin.admin_generate(root, "sft@latest", "prompts@latest", 1)
    with pytest.raises(RlhfError, match="k: expected a whole number, got 'four'"):
        admin.admin_generate(root, "sft@latest", "prompts@latest", "four")
    with pytest.raises(RlhfError, match="prompts: expected a name like sft@latest or prompts@v1, got 'prompts@v1 --k 9'"):
        admin.admin_generate(root, "sft@latest", "prompts@v1 --k 9", 4)
    assert count(Job) == 0 and admin.admin_jobs(root) == "no jobs yet"


def test_sync_is_idempotent_and_groups_candidates_per_model_version(home):
    candidates("p1", version="sft@v1")
    candidates("p1", version="ppo@v1", k=3)
    candidates("p2", version="imported")  # from imported rankings: already ranked
    candidates("p3", version="sft@v1", k=1)  # one answer is nothing to rank
    with session_scope() as db:
        first = queue.sync_items(db)
    with session_scope() as db:
        assert queue.sync_items(db) == {"write": 0, "rank": 0}
        keys = sorted(db.scalars(select(LabelItem.key).where(LabelItem.kind == "rank")))
    assert first["rank"] == 2 and len(keys) == 2 and all(k.startswith("rank:") for k in keys)
