"""The domain expert's pages in gradio: Review queue, Agreement dashboard, Adjudicate, blind A/B.

Layout only, in FastChat's shape: one function lays out each tab, module-level listeners call a
handler in `review_handlers.py` and map the view it returns onto components, and
`add_review_tabs` ends in one "# Register listeners" block. `build_ui` (app.py) calls it inside
its `gr.Tabs()`, after the annotator tabs:

    review_layout.add_review_tabs(demo)

The tabs start hidden; a `demo.load` listener shows them to experts and admins only (cosmetics:
every handler checks the role again on the server).
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from labeling_app import render
from labeling_app import review_handlers as rh
from labeling_app.listeners import listener
from labeling_app.slots import RankSlots
from rlhf.review import reports
from rlhf.review.agreement import DEFAULT_THRESHOLD

KIND_CHOICES = [("all kinds", ""), ("demonstrations", "demonstration"), ("rankings", "ranking")]

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
                msg = gr.Markdown(elem_id="review-message")
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
        plot = gr.Image(type="filepath", label="Agreement and bias", interactive=False, elem_id="agreement-plot")
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
        ranks = gr.Dataframe(interactive=False, label="The annotators' ranks (1 = best)")
        reason = gr.Textbox(label="Why this order (required, kept with the decision)", elem_id="adjudicate-reason")
        submit = gr.Button("Record as consensus", variant="primary", elem_id="adjudicate-submit")
        msg = gr.Markdown(elem_id="adjudicate-message")
    return SimpleNamespace(tab=tab, threshold=threshold, refresh=refresh, item=item, reason=reason, submit=submit,
                           radios=slots.radios, view=[table, item, prompt, *slots.components, ranks, reason, msg])


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
            choose = {"left": gr.Button("A is better", variant="primary", elem_id="ab-choose-a"),
                      "tie": gr.Button("Tie", elem_id="ab-choose-tie"),
                      "right": gr.Button("B is better", variant="primary", elem_id="ab-choose-b")}
        reason = gr.Textbox(label="Why (optional)", max_lines=2, elem_id="ab-reason")
        msg = gr.Markdown(elem_id="ab-message")
        with gr.Accordion("Session report (reveals the models)", open=False):
            report_btn = gr.Button("Show report", elem_id="ab-report")
            report_plot = gr.Image(type="filepath", interactive=False, label="Win rate of B")
            report = gr.Markdown(elem_id="ab-report-md")
    return SimpleNamespace(tab=tab, session=session, refresh=refresh, item=item, reason=reason, choose=choose,
                           report_btn=report_btn, report=[report_plot, report],
                           view=[item, progress, prompt, left, right, reason, msg])


# --------------------------------------------------------------------------- view -> components


def _queue_out(v: rh.QueueView) -> tuple:
    item = v.item
    demo = bool(item and item.kind == "demonstration")
    return (gr.update(choices=[("all tags", "")] + [(t, t) for t in v.tags]),
            gr.update(choices=[("all annotators", "")] + [(a, a) for a in v.annotators]),
            v.summary, v.rows, gr.update(choices=v.keys, value=item.key if item else None), v.item_html(),
            gr.update(value=item.answer if demo else "", interactive=demo), "", v.message, v.history_md())


def _adj_out(v: rh.AdjudicationView) -> tuple:
    headers = ["annotator"] + [f"answer {render.LETTERS[i]}" for i in range(v.k)]
    return (v.rows, gr.update(choices=v.choices, value=v.prompt_id), v.item_html(), *RankSlots.show(v.candidate_html()),
            gr.update(value=v.annotator_ranks, headers=headers) if v.k else [], "", v.message)


def _ab_out(v: rh.ABView) -> tuple:
    left, right = v.answers_html()
    return v.item_id, v.progress, v.prompt_html(), left, right, "", v.message


def _threshold(thr) -> float:
    return thr if thr is not None else DEFAULT_THRESHOLD


# --------------------------------------------------------------------------- listeners


@ui
def on_load(rs):
    show = rh.can_review(rs)
    return (rs, *[gr.update(visible=show, interactive=show)] * 4)


@ui
def on_queue(rs, kind, tag, ann, key=None):
    return (rs, *_queue_out(rh.review_queue(rs, kind or "", tag or "", ann or "", key)))


@ui
def on_open(rs, key, kind, tag, ann):
    return (rs, *_queue_out(rh.review_queue(rs, kind or "", tag or "", ann or "", key)))


@ui
def on_approve(rs, key, reason, kind, tag, ann):
    return (rs, *_queue_out(rh.review_approve(rs, key, reason, kind or "", tag or "", ann or "")))


@ui
def on_reject(rs, key, reason, kind, tag, ann):
    return (rs, *_queue_out(rh.review_reject(rs, key, reason, kind or "", tag or "", ann or "")))


@ui
def on_edit(rs, key, text, reason, kind, tag, ann):
    return (rs, *_queue_out(rh.review_edit(rs, key, text, reason, kind or "", tag or "", ann or "")))


@ui
def on_agreement(rs, thr, sim):
    v = rh.agreement_dashboard(rs, _threshold(thr), bool(sim))
    return rs, v.summary, v.plot_path, v.item_rows, v.annotator_rows


@ui
def on_adjudication(rs, thr, prompt_id=None):
    return (rs, *_adj_out(rh.adjudication_queue(rs, _threshold(thr), prompt_id)))


@ui
def on_adjudicate(rs, thr, prompt_id, reason, *ranks):
    return (rs, *_adj_out(rh.adjudicate_submit(rs, prompt_id, list(ranks), reason, _threshold(thr))))


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
    return ui(on_ab)


@ui
def on_ab_report(rs, session_id):
    md, path = rh.ab_report(rs, session_id)
    return rs, path, md


# --------------------------------------------------------------------------- the tabs


def add_review_tabs(demo: gr.Blocks) -> dict:
    """Lay out the expert tabs inside the caller's `gr.Blocks` / `gr.Tabs` and register their listeners.

    Returns the tab components by name ("review", "agreement", "adjudicate", "ab"); they start
    hidden and are shown on page load to experts and admins.
    """
    q, a, d, b = _review_tab(), _agreement_tab(), _adjudicate_tab(), _ab_tab()
    state = q.state

    # Register listeners
    tabs = [q.tab, a.tab, d.tab, b.tab]
    demo.load(on_load, [state], [state, *tabs])
    queue_in, queue_view = [state, *q.filters], [state, *q.view]
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
    b.tab.select(on_ab_sessions, [state, b.session], [state, b.session, *b.view])
    b.refresh.click(on_ab_sessions, [state, b.session], [state, b.session, *b.view])
    b.session.input(on_ab_next, [state, b.session], [state, *b.view])
    for choice, button in b.choose.items():
        button.click(_on_ab_choice(choice), [state, b.session, b.item, b.reason], [state, *b.view], concurrency_id="ab")
    b.report_btn.click(on_ab_report, [state, b.session], [state, *b.report])
    return {"review": q.tab, "agreement": a.tab, "adjudicate": d.tab, "ab": b.tab}
