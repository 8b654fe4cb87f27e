"""The Gradio layout of the annotator and admin tabs (`build_ui`); `server.py` serves it beside the JSON API.

Layout only, in FastChat's shape: one function lays out each tab, module-level listeners call a
handler in `handlers.py` / `admin.py` and map the view it returns onto components, and `build_ui`
ends in one "# Register listeners" block. The caller is always `request.username` (gradio's login
against the users table, passed on by `listeners.listener`); the per-tab `UserSession` only
remembers which items are on screen. The experts' tabs come from `review_layout.py`.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Iterator

import gradio as gr

from labeling_app import admin, handlers, render, review_layout
from labeling_app.listeners import listener
from labeling_app.slots import MAX_SLOTS, RankSlots
from labeling_app.state import UserSession
from rlhf.errors import RlhfError

DATASETS = ("prompts", "sft", "preferences")

ui = listener(UserSession)  # the caller from gr.Request.username; people-facing errors as gr.Error


# --------------------------------------------------------------------------- view -> components


def _write_page(s: UserSession, message: str = "") -> tuple:
    """The Write page's outputs: the caller's next (or still open) item, with `message` about the last action."""
    v = handlers.write_next(s, message)
    active = v.assignment_id is not None
    return (s, v.assignment_id, v.conversation_html(), gr.update(value=v.draft, interactive=active), v.guidelines,
            v.progress.line("write"), v.message)


def _rank_page(s: UserSession, message: str = "") -> tuple:
    """The Rank page's outputs, the same way; the slots show the item's K candidates, unranked."""
    v = handlers.rank_next(s, message)
    return (s, v.assignment_id, v.conversation_html(), *RankSlots.show(v.candidate_html()), gr.update(value=False),
            gr.update(value=""), v.guidelines, v.progress.line("rank"), v.message)


def _on_screen(token) -> int | None:
    """The assignment id the browser had on screen when the event fired (a hidden component)."""
    try:
        return int(token) if token not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- listeners


@ui
def on_load(s: UserSession):
    me = handlers.whoami(s)
    header = f"Signed in as **{render.text(me.name)}** ({me.role}) · [Log out](/logout)"
    return (s, header, gr.update(visible="admin" in me.pages), *_write_page(s)[1:], *_rank_page(s)[1:])


@ui
def on_write_submit(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    return _write_page(s, handlers.write_submit(s, text).message)


@ui
def on_write_skip(s: UserSession, token):
    s.write_assignment = _on_screen(token)
    return _write_page(s, handlers.write_skip(s).message)


@ui
def on_write_draft(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    return handlers.write_save_draft(s, text).message


@ui
def on_rank_submit(s: UserSession, token, *args):
    s.rank_assignment = _on_screen(token)
    ranks, (all_bad, reason) = list(args[:MAX_SLOTS]), args[MAX_SLOTS:]
    return _rank_page(s, handlers.rank_submit(s, ranks, all_bad, reason).message)


@ui
def on_rank_skip(s: UserSession, token):
    s.rank_assignment = _on_screen(token)
    return _rank_page(s, handlers.rank_skip(s).message)


@ui
def on_progress_write(s: UserSession):
    return handlers.progress(s, "write").line("write")


@ui
def on_progress_rank(s: UserSession):
    return handlers.progress(s, "rank").line("rank")


@ui
def on_admin_refresh(s: UserSession):
    settings = admin.admin_get_settings(s)
    models = admin.admin_model_choices(s)
    return (admin.admin_counts(s), gr.update(choices=models), settings["guidelines"], settings["write_overlap"],
            settings["rank_overlap"], settings["max_candidates"], settings["lease_minutes"], settings["demos_as_candidates"])


@ui
def on_admin_import(s: UserSession, file):
    """The one-line result (or error) in the result box; the upload is cleared for the next file."""
    path = getattr(file, "name", file)
    try:
        message = admin.admin_import_prompts(s, path)
    except PermissionError:  # a refusal stays a refusal (a gr.Error), not a result line
        raise
    except RlhfError as e:
        message = f"error: {e}"
    return message, admin.admin_counts(s), None


@ui
def on_admin_generate(s: UserSession, model: str, prompts_ref: str, k):
    return admin.admin_generate(s, model, prompts_ref, k)


@ui
def on_admin_jobs(s: UserSession):
    return admin.admin_jobs(s), admin.admin_counts(s)


@ui
def on_admin_create_user(s: UserSession, name: str, role: str, password: str):
    return admin.admin_create_user(s, name, role, password), "", admin.admin_counts(s)


@ui
def on_admin_snapshot(s: UserSession, name: str, include_pending: bool):
    return admin.admin_snapshot(s, name, include_pending)


@ui
def on_admin_save_settings(s: UserSession, guidelines, write_overlap, rank_overlap, max_candidates, lease, demos):
    msg = admin.admin_save_settings(s, guidelines=guidelines, write_overlap=write_overlap, rank_overlap=rank_overlap,
                                       max_candidates=max_candidates, lease_minutes=lease, demos_as_candidates=demos)
    return msg, admin.admin_counts(s)


@ui
def on_admin_sync(s: UserSession):
    return admin.admin_refresh_queue(s), admin.admin_counts(s)


# --------------------------------------------------------------------------- layout, one tab each


@contextlib.contextmanager
def _task_tab(title: str, kind: str) -> Iterator[SimpleNamespace]:
    """A labeling tab: the progress line on top, the work (the block's body) on the left, the guidelines on the right.

    Yields the page's namespace: `tab` and `progress` at once, `guidelines` once the block has ended.
    """
    page = SimpleNamespace()
    with gr.Tab(title, id=kind, elem_id=f"tab-{kind}") as page.tab:
        page.progress = gr.Markdown(elem_id=f"progress-{kind}")
        with gr.Row():
            with gr.Column(scale=3):
                yield page
            with gr.Column(scale=2):
                gr.Markdown("### Guidelines")
                page.guidelines = gr.Markdown(elem_id=f"{kind}-guidelines")


def _write_tab() -> SimpleNamespace:
    with _task_tab("Write", "write") as page:
        prompt = gr.HTML(elem_id="write-prompt")
        page.answer = gr.Textbox(label="Your ideal answer", lines=8, max_lines=30, elem_id="write-answer",
                                 placeholder="Write the answer the best assistant would give.")
        with gr.Row():
            page.submit = gr.Button("Submit (Ctrl+Enter)", variant="primary", elem_id="write-submit")
            page.draft = gr.Button("Save draft (Ctrl+S)", elem_id="write-draft")
            page.skip = gr.Button("Skip (S)", elem_id="write-skip")
        page.msg = gr.Markdown(elem_id="write-message")
    page.view = [prompt, page.answer, page.guidelines, page.progress, page.msg]
    return page


def _rank_tab() -> SimpleNamespace:
    with _task_tab("Rank", "rank") as page:
        prompt = gr.HTML(elem_id="rank-prompt")
        slots = RankSlots.layout("cand-{i}", "cand-rank-{i}", "Rank of answer {letter}", text_id="cand-text-{i}",
                                 classes=["cand-slot"])  # these ids: the keyboard script (render.KEYBOARD_JS)
        gr.HTML('<div id="order-preview"></div>')
        with gr.Row():
            page.all_bad = gr.Checkbox(label="All bad: none of these is acceptable", elem_id="rank-all-bad")
            page.reason = gr.Textbox(label="Reason (optional, one line)", max_lines=1, elem_id="rank-reason")
        with gr.Row():
            page.submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rank-submit")
            page.skip = gr.Button("Skip (S)", elem_id="rank-skip")
        msg = gr.Markdown(elem_id="rank-message")
    page.radios = slots.radios
    page.view = [prompt, *slots.components, page.all_bad, page.reason, page.guidelines, page.progress, msg]
    return page


def _admin_tab() -> SimpleNamespace:
    with gr.Tab("Admin", id="admin", elem_id="tab-admin", visible=False) as tab:
        with gr.Row():
            counts = gr.Dataframe(headers=["what", "state", "count"], interactive=False, label="Counts per state")
            refresh = gr.Button("Refresh counts and settings", elem_id="admin-refresh")
        with gr.Accordion("Import prompts (JSONL, validated like rlhf import prompts: all or nothing)", open=True):
            upload = gr.File(label="prompts .jsonl", file_types=[".jsonl"], elem_id="admin-upload")
            import_btn = gr.Button("Import", elem_id="admin-import")
            import_msg = gr.Textbox(label="Result", interactive=False, elem_id="admin-import-msg")
        with gr.Accordion("Generate candidates (rlhf generate, in the background)", open=False):
            with gr.Row():
                gen_model = gr.Dropdown(["sft@latest"], value="sft@latest", allow_custom_value=True,
                                        label="Model version (NAME@vN, NAME@latest, built-in or a folder)")
                gen_prompts = gr.Textbox(label="Prompts snapshot", value="prompts@latest")
                gen_k = gr.Number(label="K answers per prompt", value=4, precision=0)
            with gr.Row():
                gen_btn = gr.Button("Generate")
                jobs_btn = gr.Button("Check jobs")
            gen_msg = gr.Textbox(label="Jobs", interactive=False, lines=6)
        with gr.Accordion("Users", open=False):
            with gr.Row():
                new_name = gr.Textbox(label="Name", elem_id="admin-user-name")
                new_role = gr.Dropdown(["annotator", "expert", "admin"], value="annotator", label="Role")
                new_password = gr.Textbox(label="Password (8+ characters)", type="password")
            user_btn = gr.Button("Create user", elem_id="admin-create-user")
            user_msg = gr.Textbox(label="Result", interactive=False, elem_id="admin-user-msg")
        with gr.Accordion("Snapshot a dataset", open=False):
            with gr.Row():
                snap_name = gr.Dropdown(list(DATASETS), value="sft", label="Dataset")
                snap_pending = gr.Checkbox(label="Include items not yet approved by an expert")
            snap_btn = gr.Button("Snapshot")
            snap_msg = gr.Textbox(label="Result", interactive=False)
        with gr.Accordion("Project settings", open=False):
            guidelines = gr.Textbox(label="Guidelines (markdown)", lines=10)
            with gr.Row():
                write_n = gr.Number(label="Write overlap N", precision=0)
                rank_n = gr.Number(label="Rank overlap N", precision=0)
                max_k = gr.Number(label="Max candidates K", precision=0)
                lease = gr.Number(label="Open item held for (minutes)", precision=0)
                demos = gr.Checkbox(label="Add submitted demonstrations as human candidates")
            with gr.Row():
                set_btn = gr.Button("Save settings")
                sync_btn = gr.Button("Refresh queue from the store")
            set_msg = gr.Textbox(label="Result", interactive=False)
    return SimpleNamespace(settings=[guidelines, write_n, rank_n, max_k, lease, demos], **locals())  # every component above


def build_ui() -> gr.Blocks:
    with gr.Blocks(title="RLHF labeling") as demo:
        state = gr.State(UserSession())
        # the assignment on screen, sent back with every submit: the event's own submission token
        write_token = gr.Number(visible=False, precision=0, elem_id="write-token")
        rank_token = gr.Number(visible=False, precision=0, elem_id="rank-token")
        with gr.Row():
            header = gr.Markdown("Signed in", elem_id="header")
        with gr.Tabs():
            w, r, a = _write_tab(), _rank_tab(), _admin_tab()
            review_layout.add_review_tabs(demo)  # the experts' pages (issue 6): hidden unless expert or admin

        # Register listeners
        write_view = [state, write_token, *w.view]
        rank_view = [state, rank_token, *r.view]
        demo.load(on_load, [state], [state, header, a.tab, *write_view[1:], *rank_view[1:]])
        w.submit.click(on_write_submit, [state, write_token, w.answer], write_view)
        w.skip.click(on_write_skip, [state, write_token], write_view)
        w.draft.click(on_write_draft, [state, write_token, w.answer], [w.msg])
        rank_inputs = [state, rank_token, *r.radios, r.all_bad, r.reason]
        r.submit.click(on_rank_submit, rank_inputs, rank_view)
        r.reason.submit(on_rank_submit, rank_inputs, rank_view)
        r.skip.click(on_rank_skip, [state, rank_token], rank_view)
        w.tab.select(on_progress_write, [state], [w.progress])
        r.tab.select(on_progress_rank, [state], [r.progress])
        a.refresh.click(on_admin_refresh, [state], [a.counts, a.gen_model, *a.settings])
        a.tab.select(on_admin_refresh, [state], [a.counts, a.gen_model, *a.settings])
        a.import_btn.click(on_admin_import, [state, a.upload], [a.import_msg, a.counts, a.upload])
        a.gen_btn.click(on_admin_generate, [state, a.gen_model, a.gen_prompts, a.gen_k], [a.gen_msg])
        a.jobs_btn.click(on_admin_jobs, [state], [a.gen_msg, a.counts])
        a.user_btn.click(on_admin_create_user, [state, a.new_name, a.new_role, a.new_password],
                         [a.user_msg, a.new_password, a.counts])
        a.snap_btn.click(on_admin_snapshot, [state, a.snap_name, a.snap_pending], [a.snap_msg])
        a.set_btn.click(on_admin_save_settings, [state, *a.settings], [a.set_msg, a.counts])
        a.sync_btn.click(on_admin_sync, [state], [a.set_msg, a.counts])
    return demo
