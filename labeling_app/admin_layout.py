"""The Admin tab in gradio: imports, candidate generation, users, snapshots, project settings, counts.

Layout only, in FastChat's shape, like `app.py`: `_admin_tab` lays it out, module-level listeners
call `admin.py` and map its result onto components, `add_admin_tab` ends in one "# Register
listeners" block. A mistake (a bad file, a short password, a setting out of range) is one line in
the action's own Result box, starting "error:", never a toast over the page; a refused role stays a
refusal (`listeners.listener`).
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from labeling_app import admin
from labeling_app.listeners import listener
from labeling_app.state import UserSession

DATASETS = ("prompts", "sft", "preferences")

ui = listener(UserSession)


def _line(message: str) -> str:
    return f"error: {' '.join(message.split())}"


# --------------------------------------------------------------------------- listeners


@ui
def on_admin_refresh(s: UserSession):
    settings = admin.admin_get_settings(s)
    models = admin.admin_model_choices(s)
    return (admin.admin_counts(s), gr.update(choices=models), *[settings.get(k, v) for k, v in admin.FORM_DEFAULTS.items()])


@ui.inline(lambda s, msg, file: (_line(msg), gr.update(), None))
def on_admin_import(s: UserSession, file):
    """The one-line result (or error) in the result box; the upload is cleared for the next file."""
    path = getattr(file, "name", file)
    return admin.admin_import_prompts(s, path), admin.admin_counts(s), None


@ui.inline(lambda s, msg, *inputs: _line(msg))
def on_admin_generate(s: UserSession, model: str, prompts_ref: str, k):
    return admin.admin_generate(s, model, prompts_ref, k)


@ui.inline(lambda s, msg, *inputs: _line(msg))
def on_admin_prioritize(s: UserSession, model: str):
    return admin.admin_prioritize(s, model)


@ui
def on_admin_jobs(s: UserSession):
    return admin.admin_jobs(s), admin.admin_counts(s)


@ui.inline(lambda s, msg, *inputs: (_line(msg), gr.update(), gr.update()))
def on_admin_create_user(s: UserSession, name: str, role: str, password: str):
    return admin.admin_create_user(s, name, role, password), "", admin.admin_counts(s)


@ui.inline(lambda s, msg, *inputs: _line(msg))
def on_admin_snapshot(s: UserSession, name: str, include_pending: bool):
    return admin.admin_snapshot(s, name, include_pending)


@ui.inline(lambda s, msg, *inputs: (_line(msg), gr.update()))
def on_admin_save_settings(s: UserSession, *values):
    msg = admin.admin_save_settings(s, **dict(zip(admin.FORM_DEFAULTS, values)))
    return msg, admin.admin_counts(s)


@ui
def on_admin_quality(s: UserSession):
    return admin.admin_quality(s)


@ui
def on_admin_sync(s: UserSession):
    return admin.admin_refresh_queue(s), admin.admin_counts(s)


def _settings_form() -> list:
    """The settings' inputs, in the order of `admin.FORM_DEFAULTS`."""
    with gr.Row():
        write_g = gr.Textbox(label="Write guidelines (markdown; a change raises its version)", lines=8,
                             elem_id="admin-write-guidelines")
        rank_g = gr.Textbox(label="Rank guidelines (markdown; a change raises its version)", lines=8,
                            elem_id="admin-rank-guidelines")
    with gr.Row():
        write_n = gr.Number(label="Write overlap N", precision=0)
        rank_n = gr.Number(label="Rank overlap N", precision=0)
        max_k = gr.Number(label="Max candidates K", precision=0)
        lease = gr.Number(label="Open item held for (minutes)", precision=0)
        goal = gr.Number(label="Daily goal per person (items)", precision=0, elem_id="admin-goal")
        demos = gr.Checkbox(label="Add submitted demonstrations as human candidates")
    with gr.Row():
        policy = gr.Dropdown(["random", "uncertainty"], label="Rank queue: random (oldest first) or uncertainty "
                             "(the reward model's least sure items first)", elem_id="admin-queue-policy")
        explore = gr.Number(label="Exploration share (uncertainty: random items)", elem_id="admin-exploration")
        gold_rate = gr.Number(label="Gold share of claims", elem_id="admin-gold-rate")
        threshold = gr.Number(label="Quality flag under", elem_id="admin-quality-threshold")
        show_feedback = gr.Checkbox(label="Show feedback after a submit (model order, consensus)",
                                    elem_id="admin-show-feedback")
    fields = {"guidelines": write_g, "rank_guidelines": rank_g, "write_overlap": write_n, "rank_overlap": rank_n,
              "max_candidates": max_k, "lease_minutes": lease, "session_goal": goal, "demos_as_candidates": demos,
              "queue_policy": policy, "exploration": explore, "gold_rate": gold_rate, "quality_threshold": threshold,
              "show_feedback": show_feedback}
    return [fields[k] for k in admin.FORM_DEFAULTS]


def _admin_tab() -> SimpleNamespace:
    with gr.Tab("Admin", id="admin", elem_id="tab-admin", visible=False) as tab:
        with gr.Row():
            counts = gr.Dataframe(headers=["what", "state", "count"], interactive=False, label="Counts per state")
            refresh = gr.Button("Refresh counts and settings", elem_id="admin-refresh")
        with gr.Accordion("Import prompts (JSONL, validated like rlhf import prompts: all or nothing)", open=True):
            upload = gr.File(label="prompts .jsonl", file_types=[".jsonl"], elem_id="admin-upload")
            import_btn = gr.Button("Import", elem_id="admin-import")
            import_msg = gr.Textbox(label="Result", interactive=False, elem_id="admin-import-msg")
        with gr.Accordion("Background jobs: generate candidates (rlhf generate), prioritize the queue "
                          "(rlhf queue prioritize)", open=False):
            with gr.Row():
                gen_model = gr.Dropdown(["sft@latest"], value="sft@latest", allow_custom_value=True,
                                        label="Model version (NAME@vN, NAME@latest, built-in or a folder)")
                gen_prompts = gr.Textbox(label="Prompts snapshot", value="prompts@latest")
                gen_k = gr.Number(label="K answers per prompt", value=4, precision=0)
            with gr.Row():
                prio_model = gr.Textbox(label="Reward model(s) for the uncertainty queue (rm@latest, NAME@vN, "
                                              "or rm@v1,rm@v2: an ensemble)", value="rm@latest",
                                        elem_id="admin-prioritize-model")
            with gr.Row():
                gen_btn = gr.Button("Generate")
                prio_btn = gr.Button("Prioritize by RM uncertainty", elem_id="admin-prioritize")
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
        with gr.Accordion("Annotator quality (gold accuracy: tau-b > 0 with the expert's reference)", open=False,
                          elem_id="admin-quality"):
            quality = gr.Dataframe(headers=admin.QUALITY_COLUMNS, interactive=False, elem_id="admin-quality-table")
            quality_btn = gr.Button("Refresh quality", elem_id="admin-quality-refresh")
        with gr.Accordion("Project settings", open=False, elem_id="admin-settings"):
            settings = _settings_form()
            with gr.Row():
                set_btn = gr.Button("Save settings", elem_id="admin-save-settings")
                sync_btn = gr.Button("Refresh queue from the store")
            set_msg = gr.Textbox(label="Result", interactive=False, elem_id="admin-settings-msg")
    return SimpleNamespace(**locals())  # every component above


def add_admin_tab(state) -> gr.Tab:
    """Lay out the Admin tab inside the caller's `gr.Tabs` and register its listeners; returns the (hidden) tab."""
    a = _admin_tab()

    # Register listeners
    a.refresh.click(on_admin_refresh, [state], [a.counts, a.gen_model, *a.settings])
    a.tab.select(on_admin_refresh, [state], [a.counts, a.gen_model, *a.settings])
    a.import_btn.click(on_admin_import, [state, a.upload], [a.import_msg, a.counts, a.upload])
    a.gen_btn.click(on_admin_generate, [state, a.gen_model, a.gen_prompts, a.gen_k], [a.gen_msg])
    a.prio_btn.click(on_admin_prioritize, [state, a.prio_model], [a.gen_msg])
    a.jobs_btn.click(on_admin_jobs, [state], [a.gen_msg, a.counts])
    a.user_btn.click(on_admin_create_user, [state, a.new_name, a.new_role, a.new_password],
                     [a.user_msg, a.new_password, a.counts])
    a.snap_btn.click(on_admin_snapshot, [state, a.snap_name, a.snap_pending], [a.snap_msg])
    a.set_btn.click(on_admin_save_settings, [state, *a.settings], [a.set_msg, a.counts])
    a.sync_btn.click(on_admin_sync, [state], [a.set_msg, a.counts])
    a.quality_btn.click(on_admin_quality, [state], [a.quality])
    return a.tab

