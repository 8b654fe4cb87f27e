"""The Gradio layout of the annotator tabs (`build_ui`); `server.py` serves it beside the JSON API.

Layout only, in FastChat's shape: one function lays out each tab, module-level listeners call a
handler in `handlers.py` and map the view it returns onto components, and `build_ui` ends in one
"# Register listeners" block. The caller is always `request.username` (gradio's login against the
users table, passed on by `listeners.listener`); the per-tab `UserSession` only remembers which
items are on screen. The Admin tab is `admin_layout.py`, the experts' tabs `review_layout.py`.

When items are leased: a page takes an item when someone starts working on it, never on page load
for everyone: Write and Rank take an item when their tab is selected; an annotator lands on Write
(so its item is theirs at once), experts on Review, admins on Admin, who hold nothing until they
open Write or Rank. Mistakes are shown inline, next to the
control (`@ui.inline`), keys and checks before a submit are the page script (`keyboard.py`).
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Iterator

import gradio as gr

from labeling_app import admin_layout, handlers, history, render, review_layout
from labeling_app.admin_layout import (  # noqa: F401  (the admin listeners, also reachable from here)
    on_admin_create_user, on_admin_import, on_admin_jobs, on_admin_refresh, on_admin_snapshot, on_admin_sync)
from labeling_app.listeners import listener
from labeling_app.slots import MAX_SLOTS, RankSlots
from labeling_app.state import UserSession
from rlhf.data.accounts import ADMINS, REVIEWERS

ui = listener(UserSession)  # the caller from gr.Request.username; people's mistakes inline, refusals as gr.Error
LANDING = {"annotator": "write", "expert": "review", "admin": "admin"}

# logout is a POST where the server has made it one (a GET where it has not); then the login page in THIS tab
LOGOUT_JS = """async () => {
  try { const r = await fetch('/logout', {method: 'POST', credentials: 'same-origin'});
        if (r.status === 405) { window.location.href = '/logout'; return; } } catch (e) {}
  window.location.href = '/';
}"""


# --------------------------------------------------------------------------- view -> components


def _messages(v: handlers.Page, tone: str = "ok") -> str:
    return render.message(v.message, tone) + render.message(v.notice, "info")


def _page_parts(v: handlers.Page, kind: str, tone: str) -> tuple:
    """Guidelines, their drawer's label, progress, message and the Undo button: both pages end with these."""
    return (v.guidelines, gr.update(label=v.heading(kind)), render.progress(kind, v.progress, v.pace),
            _messages(v, tone), gr.update(visible=v.undo_id is not None))


def _write_page(s: UserSession, message: str = "", tone: str = "ok") -> tuple:
    """The Write page's outputs: the item on screen (else the next one), with `message` about the last action."""
    v = handlers.write_next(s, message)
    active = v.assignment_id is not None
    return (s, v.assignment_id, v.conversation_html(), gr.update(value=v.draft, interactive=active),
            *_page_parts(v, "write", tone))


def _rank_page(s: UserSession, message: str = "", tone: str = "ok") -> tuple:
    """The Rank page's outputs, the same way; the slots show the item's K candidates (a correction: as ranked)."""
    v = handlers.rank_next(s, message)
    return (s, v.assignment_id, v.conversation_html(), *RankSlots.show(v.candidate_html(), v.ranks),
            gr.update(value=v.all_bad), gr.update(value=v.reason), v.feedback_html(), *_page_parts(v, "rank", tone))


WRITE_OUTPUTS = 9  # state, token, prompt, answer, guidelines, drawer, progress, message, undo
RANK_OUTPUTS = 3 + 3 * MAX_SLOTS + 8  # state, token, prompt, slots, all bad, reason, feedback, guidelines, drawer, ...


def _stay(n: int, at: int):
    """An inline mistake: the page as it is, with the message (error tone) in output `at` of `n`."""

    def view(s: UserSession, message: str, *inputs) -> tuple:
        out = [gr.update()] * n
        out[0], out[at] = s, render.message(message, "error")
        return tuple(out)

    return view


WRITE_STAY, RANK_STAY = _stay(WRITE_OUTPUTS, WRITE_OUTPUTS - 2), _stay(RANK_OUTPUTS, RANK_OUTPUTS - 2)


def _on_screen(token) -> int | None:
    """The assignment id the browser had on screen when the event fired (a hidden component)."""
    try:
        return int(token) if token not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- listeners


@ui
def on_load(s: UserSession):
    """Who is signed in, the tabs their role may see and where they land: all in one response (no late tabs).
    Selecting the landing tab fires its select event, which loads that page."""
    me = handlers.whoami(s)
    header = f'Signed in as <b>{render.text(me.name)}</b> ({render.text(me.role)})'
    admin, review = me.role in ADMINS, me.role in REVIEWERS
    return (s, header, gr.Tabs(selected=LANDING.get(me.role, "write")), gr.update(visible=admin),
            *[gr.update(visible=review)] * len(review_layout.TABS))


@ui.inline(WRITE_STAY)
def on_write_open(s: UserSession):
    return _write_page(s)


@ui.inline(RANK_STAY)
def on_rank_open(s: UserSession):
    return _rank_page(s)


@ui.inline(WRITE_STAY)
def on_write_submit(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    return _write_page(s, handlers.write_submit(s, text).message)


@ui.inline(WRITE_STAY)
def on_write_skip(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    return _write_page(s, handlers.write_skip(s, text=text).message)


@ui.inline(lambda s, message, *inputs: render.message(message, "error"))
def on_write_draft(s: UserSession, token, text: str):
    s.write_assignment = _on_screen(token)
    return render.message(handlers.write_save_draft(s, text).message, "ok")


@ui.inline(RANK_STAY)
def on_rank_submit(s: UserSession, token, *args):
    s.rank_assignment = _on_screen(token)
    ranks, (all_bad, reason) = list(args[:MAX_SLOTS]), args[MAX_SLOTS:]
    return _rank_page(s, handlers.rank_submit(s, ranks, all_bad, reason).message)


@ui.inline(RANK_STAY)
def on_rank_skip(s: UserSession, token):
    s.rank_assignment = _on_screen(token)
    return _rank_page(s, handlers.rank_skip(s).message)


def _back(kind: str, how: str):
    """The listener of Undo or Previous item on one page (`how`: undo | previous): that item back on screen."""
    page, stay = (_write_page, WRITE_STAY) if kind == "write" else (_rank_page, RANK_STAY)

    def listener(s: UserSession):
        return page(s, getattr(handlers, how)(s, kind).message, "info")

    listener.__name__ = f"on_{kind}_{how}"  # gradio's API name: on_write_undo, on_rank_previous, ...
    return ui.inline(stay)(listener)


on_write_undo, on_write_previous, on_rank_undo, on_rank_previous = (
    _back(kind, how) for kind in ("write", "rank") for how in ("undo", "previous"))


def _mine(s: UserSession, message: str = "", tone: str = "ok") -> tuple:
    items = handlers.my_items(s)
    choices = [(f"{it.finished} · {it.kind} · {it.prompt_ref} · {it.state}", it.assignment_id) for it in items if it.can_change]
    return (s, [it.row() for it in items], gr.update(choices=choices, value=None), render.message(message, tone),
            render.message(handlers.my_agreement(s), "info"))


@ui.inline(lambda s, message, *inputs: (s, gr.update(), gr.update(), render.message(message, "error"), gr.update()))
def on_my_items(s: UserSession):
    return _mine(s)


def _open_failed(s: UserSession, message: str, *inputs) -> tuple:
    return (s, gr.update(), *[gr.update()] * (WRITE_OUTPUTS + RANK_OUTPUTS - 2), render.message(message, "error"))


@ui.inline(_open_failed)
def on_my_open(s: UserSession, assignment_id):
    """Open one of my items again on its page (and go there); the other page is left as it is."""
    kind, receipt = handlers.reopen(s, assignment_id)
    write = _write_page(s, receipt.message, "info")[1:] if kind == "write" else [gr.update()] * (WRITE_OUTPUTS - 1)
    rank = _rank_page(s, receipt.message, "info")[1:] if kind == "rank" else [gr.update()] * (RANK_OUTPUTS - 1)
    return (s, gr.Tabs(selected=kind), *write, *rank, "")


# --------------------------------------------------------------------------- layout, one tab each


@contextlib.contextmanager
def _task_tab(title: str, kind: str) -> Iterator[SimpleNamespace]:
    """A labeling tab: progress on top, the work (the block's body) on the left, the guidelines (a drawer) on the right.

    Yields the page's namespace: `tab` and `progress` at once, `guidelines` and `drawer` once the block has ended.
    """
    page = SimpleNamespace()
    with gr.Tab(title, id=kind, elem_id=f"tab-{kind}") as page.tab:
        page.progress = gr.HTML(elem_id=f"progress-{kind}")
        with gr.Row():
            with gr.Column(scale=3, min_width=320):
                yield page
            with gr.Column(scale=2, min_width=320):
                with gr.Accordion(f"{title} guidelines", open=True, elem_id=f"{kind}-guidelines-drawer",
                                  elem_classes=["guidelines-drawer"]) as page.drawer:
                    page.guidelines = gr.Markdown(elem_id=f"{kind}-guidelines")


def _buttons(kind: str, submit: str) -> SimpleNamespace:
    """Submit, (Save draft,) Skip, Undo (shown after a submit or skip), Previous item; the key hints (not on phones)."""
    b = SimpleNamespace()
    with gr.Row():
        b.submit = gr.Button(submit, variant="primary", elem_id=f"{kind}-submit")
        if kind == "write":
            b.draft = gr.Button("Save draft", elem_id="write-draft")
        b.skip = gr.Button("Skip", elem_id=f"{kind}-skip")
        b.undo = gr.Button("Undo", elem_id=f"{kind}-undo", visible=False)
        b.previous = gr.Button("Previous item", elem_id=f"{kind}-previous")
    gr.HTML(render.key_hints(kind))
    b.msg = gr.HTML(elem_id=f"{kind}-message")
    return b


def _write_tab() -> SimpleNamespace:
    with _task_tab("Write", "write") as page:
        prompt = gr.HTML(elem_id="write-prompt")
        page.answer = gr.Textbox(label="Your ideal answer", lines=8, max_lines=30, elem_id="write-answer",
                                 placeholder="Write the answer the best assistant would give.")
        page.b = _buttons("write", "Submit")
    page.view = [prompt, page.answer, page.guidelines, page.drawer, page.progress, page.b.msg, page.b.undo]
    return page


def _rank_tab() -> SimpleNamespace:
    with _task_tab("Rank", "rank") as page:
        prompt = gr.HTML(elem_id="rank-prompt")
        slots = RankSlots.layout("cand-{i}", "cand-rank-{i}", "Rank of answer {letter}", text_id="cand-text-{i}")
        gr.HTML('<div id="order-preview" class="order-preview"></div>')
        with gr.Row():
            page.all_bad = gr.Checkbox(label="All bad: none of these is acceptable", elem_id="rank-all-bad")
            page.reason = gr.Textbox(label="Reason (optional, one line)", max_lines=1, elem_id="rank-reason")
        page.b = _buttons("rank", "Submit")
        page.feedback = gr.HTML(elem_id="rank-feedback")  # after a submit only: the item just ranked (feedback.py)
    page.radios = slots.radios
    page.view = [prompt, *slots.components, page.all_bad, page.reason, page.feedback, page.guidelines, page.drawer,
                 page.progress, page.b.msg, page.b.undo]
    return page


def _mine_tab() -> SimpleNamespace:
    with gr.Tab("My items", id="mine", elem_id="tab-mine") as tab:
        gr.Markdown("Your finished items, newest first. Open one to change it: the change is stored as a new "
                    "version and the earlier one is kept. An answer an expert has reviewed can no longer change.")
        table = gr.Dataframe(headers=history.ITEM_COLUMNS, datatype="str", interactive=False, elem_id="mine-table")
        with gr.Row():
            pick = gr.Dropdown([], label="Item to change", elem_id="mine-pick")
            open_btn = gr.Button("Open it to change", elem_id="mine-open")
            refresh = gr.Button("Refresh", elem_id="mine-refresh")
        msg = gr.HTML(elem_id="mine-message")
        agreement = gr.HTML(elem_id="mine-agreement")
    return SimpleNamespace(tab=tab, table=table, pick=pick, open=open_btn, refresh=refresh, msg=msg, agreement=agreement)


def build_ui() -> gr.Blocks:
    with gr.Blocks(title="RLHF labeling") as demo:
        state = gr.State(UserSession())
        # the assignment on screen, sent back with every submit: the event's own submission token
        write_token = gr.Number(visible=False, precision=0, elem_id="write-token")
        rank_token = gr.Number(visible=False, precision=0, elem_id="rank-token")
        with gr.Row(equal_height=True):
            header = gr.HTML("Signing in…", elem_id="header")
            logout = gr.Button("Log out", size="sm", elem_id="logout", scale=0, min_width=90)
        # the tab gradio selects as the page mounts gets a select event: "My items" takes no lease; on_load then
        # selects the role's landing tab, and that tab's select event loads it (an annotator's Write takes an item)
        with gr.Tabs(elem_id="tabs", selected="mine") as tabs:
            w, r, m = _write_tab(), _rank_tab(), _mine_tab()
            admin_tab = admin_layout.add_admin_tab(state)
            review_tabs = review_layout.add_review_tabs(demo)  # the experts' pages: hidden unless expert or admin

        # Register listeners
        write_view = [state, write_token, *w.view]
        rank_view = [state, rank_token, *r.view]
        mine_view = [state, m.table, m.pick, m.msg, m.agreement]
        demo.load(on_load, [state], [state, header, tabs, admin_tab, *review_tabs.values()])
        logout.click(None, js=LOGOUT_JS)
        w.tab.select(on_write_open, [state], write_view)
        w.b.submit.click(on_write_submit, [state, write_token, w.answer], write_view)
        w.b.skip.click(on_write_skip, [state, write_token, w.answer], write_view)
        w.b.draft.click(on_write_draft, [state, write_token, w.answer], [w.b.msg])
        w.b.undo.click(on_write_undo, [state], write_view)
        w.b.previous.click(on_write_previous, [state], write_view)
        r.tab.select(on_rank_open, [state], rank_view)
        r.b.submit.click(on_rank_submit, [state, rank_token, *r.radios, r.all_bad, r.reason], rank_view)
        r.b.skip.click(on_rank_skip, [state, rank_token], rank_view)
        r.b.undo.click(on_rank_undo, [state], rank_view)
        r.b.previous.click(on_rank_previous, [state], rank_view)
        m.tab.select(on_my_items, [state], mine_view)
        m.refresh.click(on_my_items, [state], mine_view)
        m.open.click(on_my_open, [state, m.pick], [state, tabs, *write_view[1:], *rank_view[1:], m.msg])
    return demo
