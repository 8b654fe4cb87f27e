"""The domain expert's pages in gradio: Review queue, Agreement dashboard, Adjudicate, blind A/B.

Layout only, in FastChat's shape: one function lays out each tab, module-level listeners call a
handler in `review_handlers.py` and map the view it returns onto components, and
`add_review_tabs` ends in one "# Register listeners" block. `build_ui` (app.py) calls it inside
its `gr.Tabs()`, after the annotator tabs:

    review_layout.add_review_tabs(demo)

The tabs start hidden; app.py's load listener shows them to experts and admins only, in the same
response as the header (cosmetics: every handler checks the role again on the server). A mistake (a
rejection without a reason, an incomplete adjudication) is shown next to its buttons (`@ui.inline`).
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from labeling_app import render
from labeling_app import review_handlers as rh
from labeling_app.listeners import listener
from labeling_app.slots import MAX_SLOTS, RankSlots
from rlhf.review import reports
from rlhf.review.agreement import DEFAULT_THRESHOLD

KIND_CHOICES = [("all kinds", ""), ("demonstrations", "demonstration"), ("rankings", "ranking")]
TABS = ("review", "agreement", "adjudicate", "ab")  # what add_review_tabs returns, in this order

ui = listener(rh.ReviewSession, prefix="review_")  # the prefix keeps gradio's API names apart from the app's


# --------------------------------------------------------------------------- layout, one tab each


def _review_tab() -> SimpleNamespace:
    with gr.Tab("Review", id="review", elem_id="tab-review", visible=False) as tab:
        # inside a Tab, not directly in the caller's gr.Tabs: a non-Tab child of Tabs breaks tab switching (gradio 6.31)
        state = gr.State(rh.ReviewSession())
        with gr.Row():
            kind = gr.Dropdown(KIND_CHOICES, value="", label="Kind", elem_id="review-filter-kind")
            tag = gr.Dropdown([("all tags", "")], value="", label="Tag", elem_id="review-filter-tag")
            ann = gr.Dropdown([("all annotators", "")], value="", label="Annotator", elem_id="review-filter-annotator")
            refresh = gr.Button("Refresh", elem_id="review-refresh")
        summary = gr.Markdown(elem_id="review-summary")
        table = gr.Dataframe(headers=rh.QUEUE_COLUMNS, interactive=False, label="Waiting for review (oldest first)",
                             elem_id="review-table")
        with gr.Row():
            with gr.Column(scale=3):
                item = gr.Dropdown([], label="Item on screen", elem_id="review-item")
                html = gr.HTML(elem_id="review-item-html")
                edit = gr.Textbox(label="Edited answer (demonstrations: change it and press 'Save edit')", lines=6,
                                  elem_id="review-edit-text")
                reason = gr.Textbox(label="Reason (required to reject; optional otherwise)", max_lines=2,
                                    elem_id="review-reason")
                with gr.Row():
                    approve = gr.Button("Approve", variant="primary", elem_id="review-approve")
                    reject = gr.Button("Reject", variant="stop", elem_id="review-reject")
                    save = gr.Button("Save edit as a new version", elem_id="review-edit")
                msg = gr.HTML(elem_id="review-message")
            with gr.Column(scale=1):
                gr.Markdown("### History of this item")
                history = gr.Markdown(elem_id="review-history")
    return SimpleNamespace(tab=tab, state=state, filters=[kind, tag, ann], refresh=refresh, item=item, edit=edit,
                           reason=reason, approve=approve, reject=reject, save=save,
                           view=[tag, ann, summary, table, item, html, edit, reason, msg, history])


def _agreement_tab() -> SimpleNamespace:
    with gr.Tab("Agreement", id="agreement", elem_id="tab-agreement", visible=False) as tab:
        with gr.Row():
            threshold = gr.Number(value=DEFAULT_THRESHOLD, label="Adjudication threshold (alpha)",
                                  elem_id="agreement-threshold")
            simulated = gr.Checkbox(label="Include simulated annotators", elem_id="agreement-simulated")
            refresh = gr.Button("Refresh", elem_id="agreement-refresh")
        summary = gr.Markdown(elem_id="agreement-summary")
        gr.Markdown("#### Agreement and bias")  # a heading above, not gradio's label badge over the plot's first title
        plot = gr.Image(type="filepath", label="Agreement and bias", show_label=False, interactive=False,
                        elem_id="agreement-plot")
        items = gr.Dataframe(headers=reports.AGREEMENT_ITEM_COLUMNS, interactive=False, label="Items ranked by 2+ annotators")
        people = gr.Dataframe(headers=reports.AGREEMENT_ANNOTATOR_COLUMNS, interactive=False, label="Annotators")
    return SimpleNamespace(tab=tab, inputs=[threshold, simulated], refresh=refresh, view=[summary, plot, items, people])


def _adjudicate_tab() -> SimpleNamespace:
    with gr.Tab("Adjudicate", id="adjudicate", elem_id="tab-adjudicate", visible=False) as tab:
        with gr.Row():
            threshold = gr.Number(value=DEFAULT_THRESHOLD, label="Threshold (alpha)", elem_id="adjudicate-threshold")
            refresh = gr.Button("Refresh", elem_id="adjudicate-refresh")
        table = gr.Dataframe(headers=rh.ADJ_COLUMNS, interactive=False, label="Contested items")
        item = gr.Dropdown([], label="Item on screen", elem_id="adjudicate-item")
        prompt = gr.HTML(elem_id="adjudicate-prompt")
        slots = RankSlots.layout("adj-cand-{i}", "adj-rank-{i}", "Your rank of answer {letter}")
        gr.HTML('<div id="adj-order-preview" class="order-preview"></div>')
        ranks = gr.Dataframe(interactive=False, label="The annotators' ranks (1 = best)")
        reason = gr.Textbox(label="Why this order (required, kept with the decision)", max_lines=1,
                            elem_id="adjudicate-reason")
        with gr.Row():
            submit = gr.Button("Record as consensus", variant="primary", elem_id="adjudicate-submit")
            gold = gr.Button("Mark as gold (your order is the reference)", elem_id="adjudicate-gold")
        gr.HTML(render.key_hints("adjudicate"))
        msg = gr.HTML(elem_id="adjudicate-message")
    return SimpleNamespace(tab=tab, threshold=threshold, refresh=refresh, item=item, reason=reason, submit=submit,
                           gold=gold, radios=slots.radios, view=[table, item, prompt, *slots.components, ranks, reason, msg])


def _ab_tab() -> SimpleNamespace:
    with gr.Tab("A/B", id="ab", elem_id="tab-ab", visible=False) as tab:
        with gr.Row():
            session = gr.Dropdown([], label="Review session", elem_id="ab-session")
            refresh = gr.Button("Refresh sessions", elem_id="ab-refresh")
        progress = gr.Markdown(elem_id="ab-progress")
        item = gr.State(None)
        prompt = gr.HTML(elem_id="ab-prompt")
        with gr.Row():
            left = gr.HTML(elem_id="ab-left")
            right = gr.HTML(elem_id="ab-right")
        with gr.Row():
            choose = {"left": gr.Button("A is better", variant="primary", elem_id="ab-choose-a", interactive=False),
                      "tie": gr.Button("Tie", elem_id="ab-choose-tie", interactive=False),
                      "right": gr.Button("B is better", variant="primary", elem_id="ab-choose-b", interactive=False)}
        reason = gr.Textbox(label="Why (optional)", max_lines=2, elem_id="ab-reason")
        msg = gr.HTML(elem_id="ab-message")
        with gr.Accordion("Session report (names the models once the session is closed)", open=False):
            with gr.Row():
                report_btn = gr.Button("Show report", elem_id="ab-report")
                close_btn = gr.Button("Close this session (admins: ends judging, reveals the models)",
                                      variant="stop", elem_id="ab-close", visible=False)
            report_plot = gr.Image(type="filepath", interactive=False, label="Win rate of B", show_label=False)
            report = gr.Markdown(elem_id="ab-report-md")
    return SimpleNamespace(tab=tab, session=session, refresh=refresh, item=item, reason=reason, choose=choose,
                           report_btn=report_btn, close_btn=close_btn, report=[report_plot, report],
                           view=[item, progress, prompt, left, right, reason, msg, *choose.values()])


# --------------------------------------------------------------------------- view -> components


def _queue_out(v: rh.QueueView) -> tuple:
    item = v.item
    demo = bool(item and item.kind == "demonstration")
    return (gr.update(choices=[("all tags", "")] + [(t, t) for t in v.tags]),
            gr.update(choices=[("all annotators", "")] + [(a, a) for a in v.annotators]),
            v.summary, v.rows, gr.update(choices=v.keys, value=item.key if item else None), v.item_html(),
            gr.update(value=item.answer if demo else "", interactive=demo), "", render.message(v.message, "ok"),
            v.history_md())


def _adj_out(v: rh.AdjudicationView) -> tuple:
    headers = ["annotator"] + [f"answer {render.LETTERS[i]}" for i in range(v.k)]
    return (v.rows, gr.update(choices=v.choices, value=v.prompt_id), v.item_html(), *RankSlots.show(v.candidate_html()),
            gr.update(value=v.annotator_ranks, headers=headers) if v.k else [], "", render.message(v.message, "ok"))


def _ab_out(v: rh.ABView) -> tuple:
    """The pair on screen; the A/B buttons work only while there is one (no open session: inactive)."""
    left, right = v.answers_html()
    active = gr.update(interactive=v.item_id is not None)
    return v.item_id, v.progress, v.prompt_html(), left, right, "", render.message(v.message, "ok"), *[active] * 3


def _stay(n: int, at: int):
    """An inline mistake: the page as it is (n outputs after the state), the message (error tone) in output `at`."""

    def view(rs, message: str, *inputs) -> tuple:
        out = [gr.update()] * n
        out[at] = render.message(message, "error")
        return (rs, *out)

    return view


QUEUE_STAY = _stay(10, 8)  # _queue_out: tag, annotator, summary, table, item, html, edit, reason, message, history
ADJ_STAY = _stay(3 * MAX_SLOTS + 6, 3 * MAX_SLOTS + 5)  # _adj_out: table, item, prompt, slots, ranks, reason, message
AB_STAY = _stay(10, 6)  # _ab_out: item, progress, prompt, left, right, reason, message, three buttons


def _threshold(thr) -> float:
    return thr if thr is not None else DEFAULT_THRESHOLD


# --------------------------------------------------------------------------- listeners


@ui
def on_load(rs):
    """The admin-only controls of these pages (app.py's on_load shows the tabs). Never refuses: hides them instead."""
    return rs, gr.update(visible=rh.is_admin(rs))


@ui
def on_queue(rs, kind, tag, ann, key=None):
    return (rs, *_queue_out(rh.review_queue(rs, kind or "", tag or "", ann or "", key)))


@ui
def on_open(rs, key, kind, tag, ann):
    return (rs, *_queue_out(rh.review_queue(rs, kind or "", tag or "", ann or "", key)))


@ui.inline(QUEUE_STAY)
def on_approve(rs, key, reason, kind, tag, ann):
    return (rs, *_queue_out(rh.review_approve(rs, key, reason, kind or "", tag or "", ann or "")))


@ui.inline(QUEUE_STAY)
def on_reject(rs, key, reason, kind, tag, ann):
    return (rs, *_queue_out(rh.review_reject(rs, key, reason, kind or "", tag or "", ann or "")))


@ui.inline(QUEUE_STAY)
def on_edit(rs, key, text, reason, kind, tag, ann):
    return (rs, *_queue_out(rh.review_edit(rs, key, text, reason, kind or "", tag or "", ann or "")))


@ui
def on_agreement(rs, thr, sim):
    v = rh.agreement_dashboard(rs, _threshold(thr), bool(sim))
    return rs, v.summary, v.plot_path, v.item_rows, v.annotator_rows


@ui
def on_adjudication(rs, thr, prompt_id=None):
    return (rs, *_adj_out(rh.adjudication_queue(rs, _threshold(thr), prompt_id)))


@ui.inline(ADJ_STAY)
def on_adjudicate(rs, thr, prompt_id, reason, *ranks):
    return (rs, *_adj_out(rh.adjudicate_submit(rs, prompt_id, list(ranks), reason, _threshold(thr))))


@ui.inline(ADJ_STAY)
def on_mark_gold(rs, thr, prompt_id, *ranks):
    return (rs, *_adj_out(rh.mark_gold(rs, prompt_id, list(ranks), _threshold(thr))))


@ui
def on_ab_sessions(rs, current):
    choices = rh.ab_sessions(rs)
    ids = [c[1] for c in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return (rs, gr.update(choices=choices, value=value), *_ab_out(rh.ab_next(rs, value)))


@ui
def on_ab_next(rs, session_id):
    return (rs, *_ab_out(rh.ab_next(rs, session_id)))


def _on_ab_choice(choice: str):
    """The listener of one A/B button: record `choice` (left | tie | right) for the pair on screen."""

    def on_ab(rs, session_id, item_id, reason):
        return (rs, *_ab_out(rh.ab_judge(rs, session_id, item_id, choice, reason)))

    on_ab.__name__ = f"on_ab_{choice}"
    return ui.inline(AB_STAY)(on_ab)


@ui.inline(lambda rs, message, *inputs: (rs, gr.update(), render.message(message, "error")))
def on_ab_report(rs, session_id):
    md, path = rh.ab_report(rs, session_id)
    return rs, path, md


@ui.inline(lambda rs, message, *inputs: (rs, gr.update(), render.message(message, "error")))
def on_ab_close(rs, session_id):
    md, path = rh.ab_report(rs, session_id, rh.ab_close(rs, session_id))
    return rs, path, md


# --------------------------------------------------------------------------- the tabs


def add_review_tabs(demo: gr.Blocks) -> dict:
    """Lay out the expert tabs inside the caller's `gr.Blocks` / `gr.Tabs` and register their listeners.

    Returns the tab components by name (`TABS`); they start hidden and are shown on page load to
    experts and admins.
    """
    q, a, d, b = _review_tab(), _agreement_tab(), _adjudicate_tab(), _ab_tab()
    state = q.state

    # Register listeners
    queue_in, queue_view = [state, *q.filters], [state, *q.view]
    demo.load(on_load, [state], [state, b.close_btn])
    q.tab.select(on_queue, queue_in, queue_view)
    q.refresh.click(on_queue, queue_in, queue_view)
    for f in q.filters:
        f.input(on_queue, queue_in, queue_view)
    q.item.input(on_open, [state, q.item, *q.filters], queue_view)
    q.approve.click(on_approve, [state, q.item, q.reason, *q.filters], queue_view, concurrency_id="review")
    q.reject.click(on_reject, [state, q.item, q.reason, *q.filters], queue_view, concurrency_id="review")
    q.save.click(on_edit, [state, q.item, q.edit, q.reason, *q.filters], queue_view, concurrency_id="review")
    a.tab.select(on_agreement, [state, *a.inputs], [state, *a.view])
    a.refresh.click(on_agreement, [state, *a.inputs], [state, *a.view])
    d.tab.select(on_adjudication, [state, d.threshold], [state, *d.view])
    d.refresh.click(on_adjudication, [state, d.threshold], [state, *d.view])
    d.item.input(on_adjudication, [state, d.threshold, d.item], [state, *d.view])
    d.submit.click(on_adjudicate, [state, d.threshold, d.item, d.reason, *d.radios], [state, *d.view],
                   concurrency_id="review")
    d.gold.click(on_mark_gold, [state, d.threshold, d.item, *d.radios], [state, *d.view], concurrency_id="review")
    b.tab.select(on_ab_sessions, [state, b.session], [state, b.session, *b.view])
    b.refresh.click(on_ab_sessions, [state, b.session], [state, b.session, *b.view])
    b.session.input(on_ab_next, [state, b.session], [state, *b.view])
    for choice, button in b.choose.items():
        button.click(_on_ab_choice(choice), [state, b.session, b.item, b.reason], [state, *b.view], concurrency_id="ab")
    b.report_btn.click(on_ab_report, [state, b.session], [state, *b.report])
    b.close_btn.click(on_ab_close, [state, b.session], [state, *b.report])
    return dict(zip(TABS, (q.tab, a.tab, d.tab, b.tab)))
