"""The Gradio layout (`build_ui`), the server that mounts it beside the JSON API (`create_app`), and `launch`.

Layout only: every listener calls a handler in `handlers.py` and maps the view it returns onto
components here. The caller is always `request.username` (gradio's login against the users
table); the per-tab `UserSession` only remembers which items are on screen.
"""

from __future__ import annotations

import secrets

import gradio as gr

from labeling_app import admin, handlers, render, review_pages
from labeling_app.auth import AccessDenied, check_login_async
from labeling_app.state import UserSession
from rlhf.errors import RlhfError

MAX_SLOTS = 9  # candidate slots laid out; `max_candidates` (<= 9) of them are used
DATASETS = ("prompts", "sft", "preferences")


def _ui(fn):
    """Listener wrapper: the caller from the request into the session; people-facing errors as gr.Error."""

    def wrapper(request: gr.Request, s: UserSession, *args):
        s = s if isinstance(s, UserSession) else UserSession()
        s.username = getattr(request, "username", None) or ""
        try:
            return fn(s, *args)
        except (AccessDenied, RlhfError) as e:
            raise gr.Error(str(e), duration=8) from None

    # not functools.wraps: gradio reads this signature and passes the request only to a positional
    # parameter annotated gr.Request (it inserts it at that index, before the listener's inputs)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


# --------------------------------------------------------------------------- view -> components


def _write_outputs(s: UserSession, v: handlers.WriteView) -> tuple:
    active = v.assignment_id is not None
    return (s, v.assignment_id, v.conversation_html(), gr.update(value=v.draft, interactive=active), v.guidelines,
            v.progress.line("write"), v.message)


def _rank_outputs(s: UserSession, v: handlers.RankView) -> tuple:
    groups, htmls, radios = [], [], []
    choices = [str(i) for i in range(1, v.k + 1)]
    for i in range(MAX_SLOTS):
        shown = i < v.k
        groups.append(gr.update(visible=shown))
        htmls.append(v.candidate_html()[i] if shown else "")
        radios.append(gr.update(choices=choices if shown else [], value=None, label=f"Rank of answer {render.LETTERS[i]}"))
    return (s, v.assignment_id, v.conversation_html(), *groups, *htmls, *radios, gr.update(value=False),
            gr.update(value=""), v.guidelines, v.progress.line("rank"), v.message)


# --------------------------------------------------------------------------- listeners


@_ui
def on_load(s: UserSession):
    me = handlers.whoami(s)
    header = f"Signed in as **{render.text(me.name)}** ({me.role}) · [Log out](/logout)"
    return (s, header, gr.update(visible="admin" in me.pages),
            *_write_outputs(s, handlers.write_next(s))[1:], *_rank_outputs(s, handlers.rank_next(s))[1:])


def _on_screen(token) -> int | None:
    """The assignment id the browser had on screen when the event fired (a hidden component)."""
    try:
        return int(token) if token not in (None, "") else None
    except (TypeError, ValueError):
        return None


@_ui
def on_write_submit(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    receipt = handlers.write_submit(s, text)
    return _write_outputs(s, handlers.write_next(s, receipt.message))


@_ui
def on_write_skip(s: UserSession, token):
    s.write_assignment = _on_screen(token)
    receipt = handlers.write_skip(s)
    return _write_outputs(s, handlers.write_next(s, receipt.message))


@_ui
def on_write_draft(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    return handlers.write_save_draft(s, text).message


@_ui
def on_rank_submit(s: UserSession, token, *args):
    s.rank_assignment = _on_screen(token)
    ranks, (all_bad, reason) = list(args[:MAX_SLOTS]), args[MAX_SLOTS:]
    receipt = handlers.rank_submit(s, ranks, all_bad, reason)
    return _rank_outputs(s, handlers.rank_next(s, receipt.message))


@_ui
def on_rank_skip(s: UserSession, token):
    s.rank_assignment = _on_screen(token)
    receipt = handlers.rank_skip(s)
    return _rank_outputs(s, handlers.rank_next(s, receipt.message))


@_ui
def on_progress_write(s: UserSession):
    return handlers.progress(s, "write").line("write")


@_ui
def on_progress_rank(s: UserSession):
    return handlers.progress(s, "rank").line("rank")


@_ui
def on_admin_refresh(s: UserSession):
    settings = admin.admin_get_settings(s)
    models = admin.admin_model_choices(s)
    return (admin.admin_counts(s), gr.update(choices=models), settings["guidelines"], settings["write_overlap"],
            settings["rank_overlap"], settings["max_candidates"], settings["lease_minutes"], settings["demos_as_candidates"])


@_ui
def on_admin_import(s: UserSession, file):
    """The one-line result (or error) in the result box; the upload is cleared for the next file."""
    path = getattr(file, "name", file)
    try:
        message = admin.admin_import_prompts(s, path)
    except AccessDenied:
        raise
    except RlhfError as e:
        message = f"error: {e}"
    return message, admin.admin_counts(s), None


@_ui
def on_admin_generate(s: UserSession, model: str, prompts_ref: str, k):
    return admin.admin_generate(s, model, prompts_ref, k)


@_ui
def on_admin_jobs(s: UserSession):
    return admin.admin_jobs(s), admin.admin_counts(s)


@_ui
def on_admin_create_user(s: UserSession, name: str, role: str, password: str):
    return admin.admin_create_user(s, name, role, password), "", admin.admin_counts(s)


@_ui
def on_admin_snapshot(s: UserSession, name: str, include_pending: bool):
    return admin.admin_snapshot(s, name, include_pending)


@_ui
def on_admin_save_settings(s: UserSession, guidelines, write_overlap, rank_overlap, max_candidates, lease, demos):
    msg = admin.admin_save_settings(s, guidelines=guidelines, write_overlap=write_overlap, rank_overlap=rank_overlap,
                                       max_candidates=max_candidates, lease_minutes=lease, demos_as_candidates=demos)
    return msg, admin.admin_counts(s)


@_ui
def on_admin_sync(s: UserSession):
    return admin.admin_refresh_queue(s), admin.admin_counts(s)


# --------------------------------------------------------------------------- layout


def build_ui() -> gr.Blocks:
    with gr.Blocks(title="RLHF labeling") as demo:
        state = gr.State(UserSession())
        # the assignment on screen, sent back with every submit: the event's own submission token
        write_token = gr.Number(visible=False, precision=0, elem_id="write-token")
        rank_token = gr.Number(visible=False, precision=0, elem_id="rank-token")
        with gr.Row():
            header = gr.Markdown("Signed in", elem_id="header")
        with gr.Tabs():
            with gr.Tab("Write", id="write", elem_id="tab-write") as write_tab:
                write_progress = gr.Markdown(elem_id="progress-write")
                with gr.Row():
                    with gr.Column(scale=3):
                        write_prompt = gr.HTML(elem_id="write-prompt")
                        write_answer = gr.Textbox(label="Your ideal answer", lines=8, max_lines=30, elem_id="write-answer",
                                                  placeholder="Write the answer the best assistant would give.")
                        with gr.Row():
                            write_submit = gr.Button("Submit (Ctrl+Enter)", variant="primary", elem_id="write-submit")
                            write_draft = gr.Button("Save draft (Ctrl+S)", elem_id="write-draft")
                            write_skip = gr.Button("Skip (S)", elem_id="write-skip")
                        write_msg = gr.Markdown(elem_id="write-message")
                    with gr.Column(scale=2):
                        gr.Markdown("### Guidelines")
                        write_guidelines = gr.Markdown(elem_id="write-guidelines")
            with gr.Tab("Rank", id="rank", elem_id="tab-rank") as rank_tab:
                rank_progress = gr.Markdown(elem_id="progress-rank")
                with gr.Row():
                    with gr.Column(scale=3):
                        rank_prompt = gr.HTML(elem_id="rank-prompt")
                        slot_groups, slot_htmls, slot_radios = [], [], []
                        for i in range(MAX_SLOTS):
                            with gr.Group(visible=False, elem_id=f"cand-{i}", elem_classes=["cand-slot"]) as g:
                                slot_htmls.append(gr.HTML(elem_id=f"cand-text-{i}"))
                                slot_radios.append(gr.Radio(choices=[], label=f"Rank of answer {render.LETTERS[i]}",
                                                            elem_id=f"cand-rank-{i}"))
                            slot_groups.append(g)
                        gr.HTML('<div id="order-preview"></div>')
                        with gr.Row():
                            all_bad = gr.Checkbox(label="All bad: none of these is acceptable", elem_id="rank-all-bad")
                            reason = gr.Textbox(label="Reason (optional, one line)", max_lines=1, elem_id="rank-reason")
                        with gr.Row():
                            rank_submit = gr.Button("Submit (Enter)", variant="primary", elem_id="rank-submit")
                            rank_skip = gr.Button("Skip (S)", elem_id="rank-skip")
                        rank_msg = gr.Markdown(elem_id="rank-message")
                    with gr.Column(scale=2):
                        gr.Markdown("### Guidelines")
                        rank_guidelines = gr.Markdown(elem_id="rank-guidelines")
            with gr.Tab("Admin", id="admin", elem_id="tab-admin", visible=False) as admin_tab:
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
                    set_guidelines = gr.Textbox(label="Guidelines (markdown)", lines=10)
                    with gr.Row():
                        set_write_n = gr.Number(label="Write overlap N", precision=0)
                        set_rank_n = gr.Number(label="Rank overlap N", precision=0)
                        set_k = gr.Number(label="Max candidates K", precision=0)
                        set_lease = gr.Number(label="Open item held for (minutes)", precision=0)
                        set_demos = gr.Checkbox(label="Add submitted demonstrations as human candidates")
                    with gr.Row():
                        set_btn = gr.Button("Save settings")
                        sync_btn = gr.Button("Refresh queue from the store")
                    set_msg = gr.Textbox(label="Result", interactive=False)
            review_pages.add_review_tabs(demo)  # the experts' pages (issue 6): hidden unless expert or admin

        # Register listeners
        write_view = [state, write_token, write_prompt, write_answer, write_guidelines, write_progress, write_msg]
        rank_view = [state, rank_token, rank_prompt, *slot_groups, *slot_htmls, *slot_radios, all_bad, reason, rank_guidelines,
                     rank_progress, rank_msg]
        settings_view = [set_guidelines, set_write_n, set_rank_n, set_k, set_lease, set_demos]
        demo.load(on_load, [state], [state, header, admin_tab, *write_view[1:], *rank_view[1:]])
        write_submit.click(on_write_submit, [state, write_token, write_answer], write_view)
        write_skip.click(on_write_skip, [state, write_token], write_view)
        write_draft.click(on_write_draft, [state, write_token, write_answer], [write_msg])
        rank_inputs = [state, rank_token, *slot_radios, all_bad, reason]
        rank_submit.click(on_rank_submit, rank_inputs, rank_view)
        reason.submit(on_rank_submit, rank_inputs, rank_view)
        rank_skip.click(on_rank_skip, [state, rank_token], rank_view)
        write_tab.select(on_progress_write, [state], [write_progress])
        rank_tab.select(on_progress_rank, [state], [rank_progress])
        refresh.click(on_admin_refresh, [state], [counts, gen_model, *settings_view])
        admin_tab.select(on_admin_refresh, [state], [counts, gen_model, *settings_view])
        import_btn.click(on_admin_import, [state, upload], [import_msg, counts, upload])
        gen_btn.click(on_admin_generate, [state, gen_model, gen_prompts, gen_k], [gen_msg])
        jobs_btn.click(on_admin_jobs, [state], [gen_msg, counts])
        user_btn.click(on_admin_create_user, [state, new_name, new_role, new_password], [user_msg, new_password, counts])
        snap_btn.click(on_admin_snapshot, [state, snap_name, snap_pending], [snap_msg])
        set_btn.click(on_admin_save_settings, [state, *settings_view], [set_msg, counts])
        sync_btn.click(on_admin_sync, [state], [set_msg, counts])
    return demo


# --------------------------------------------------------------------------- server


def create_app(concurrency: int = 16):
    """FastAPI app: the JSON API under /api and the Gradio UI at /, one login (the users table)."""
    from fastapi import FastAPI

    from labeling_app import api, queue
    from rlhf.data.store import session_scope

    with session_scope() as db:  # migrate the store and build the queue before the first request
        queue.sync_items(db)
    app = FastAPI(title="RLHF labeling app", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.api_secret = secrets.token_bytes(32)  # API tokens die with the process
    app.include_router(api.router)
    demo = build_ui().queue(default_concurrency_limit=concurrency)
    return gr.mount_gradio_app(app, demo, path="/", auth=check_login_async, css=render.CSS, head=render.KEYBOARD_JS,
                               auth_message="Log in with the account an admin made for you (<code>rlhf users add</code>).",
                               footer_links=[], show_error=True)


def launch(host: str = "127.0.0.1", port: int = 7860, log_level: str = "warning") -> None:
    import uvicorn

    app = create_app()
    print(f"labeling app on http://{host}:{port}  (JSON API under /api; add people with `rlhf users add NAME --role R`)")
    # keep-alive longer than uvicorn's 5 s: a browser or client reusing a connection the server just closed gets a reset
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30)
