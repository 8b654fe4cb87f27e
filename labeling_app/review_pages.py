"""The domain expert's pages: Review queue, Agreement dashboard, Adjudication, blind A/B judging.

Same shape as the rest of the app: every action is a plain handler `(session, inputs) -> view`
(testable without a server) that first reloads the caller and checks their role is expert or
admin (`require`, on the server: a hidden tab is only cosmetics), then does its work in ONE
store transaction through `rlhf.review.actions` / `rlhf.review.agreement` / `rlhf.review.ab`. `add_review_tabs` lays
the pages out inside the app's `gr.Blocks` and registers their listeners.

Wiring (in `labeling_app/app.py`, inside `with gr.Tabs():`, after the last tab):

    from labeling_app import review_pages
    ...
    review_pages.add_review_tabs(demo)

The tabs start hidden and a `demo.load` listener shows them to experts and admins only.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field

from sqlalchemy import select

from labeling_app import render
from labeling_app.auth import require
from rlhf.review import ab
from rlhf.review import agreement, reports
from rlhf.review import actions as review
from rlhf.errors import RlhfError
from rlhf.data.store import session_scope
from rlhf.data.store.models import Prompt, Response

REVIEWERS = ("expert", "admin")
MAX_SLOTS = 9  # candidate slots on the adjudication page (rankings have at most 9 candidates in the app)
KIND_CHOICES = [("all kinds", ""), ("demonstrations", "demonstration"), ("rankings", "ranking")]


@dataclass
class ReviewSession:
    """What one browser tab has on screen; who the caller is comes from the login on every call."""

    username: str = ""


def _tmp_png(prefix: str) -> str:
    """A fresh PNG path in the system temp folder (gradio serves files from there)."""
    fh = tempfile.NamedTemporaryFile(prefix=prefix, suffix=".png", delete=False)
    fh.close()
    return fh.name


def _num(x: float, digits: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


# --------------------------------------------------------------------------- review queue


@dataclass
class ItemView:
    key: str  # demonstration:ID | ranking:ID
    kind: str
    prompt_ref: str
    tags: list[str]
    annotator: str
    waiting_since: str
    messages: list[dict]
    answer: str = ""  # demonstration: the answer under review (also the edit box's starting text)
    version: int = 1
    candidates: list[str] = field(default_factory=list)  # ranking: texts, best first as the annotator ordered them
    ranks: list[int] = field(default_factory=list)  # ranking: the rank of each candidate above (equal = tie)
    all_bad: bool = False
    note: str = ""  # the annotator's reason on a ranking
    history: list[str] = field(default_factory=list)

    def html(self) -> str:
        head = (f'<div class="review-meta">{render.text(self.kind)} #{render.text(self.key.split(":")[1])} · '
                f'prompt {render.text(self.prompt_ref)} · tags {render.text(", ".join(self.tags) or "-")} · '
                f'by {render.text(self.annotator or "?")} · waiting since {render.text(self.waiting_since)}</div>')
        parts = [head, render.conversation(self.messages)]
        if self.kind == "demonstration":
            parts.append(f'<div class="cand"><div class="cand-label">Answer (version {self.version})</div>'
                         f'<div class="cand-text" id="review-answer-text">{render.text(self.answer)}</div></div>')
        else:
            if self.all_bad:
                parts.append(render.notice("The annotator marked every answer as bad."))
            for rank, cand in zip(self.ranks, self.candidates):
                parts.append(f'<div class="cand"><div class="cand-label">Rank {rank}</div>'
                             f'<div class="cand-text">{render.text(cand)}</div></div>')
            if self.note:
                parts.append(f'<div class="review-note">Annotator\'s reason: {render.text(self.note)}</div>')
        return "".join(parts)


@dataclass
class QueueView:
    rows: list[list]  # key, kind, waiting since, annotator, prompt, tags, preview
    keys: list[str]
    item: ItemView | None
    tags: list[str]
    annotators: list[str]
    message: str = ""

    @property
    def summary(self) -> str:
        return f"{len(self.keys)} item(s) waiting for review, oldest first."

    def item_html(self) -> str:
        return self.item.html() if self.item else render.notice("Nothing waiting for review with these filters.")

    def history_md(self) -> str:
        return "\n".join(f"- {h}" for h in self.item.history) if self.item and self.item.history else ""


QUEUE_COLUMNS = ["item", "kind", "waiting since", "annotator", "prompt", "tags", "preview"]


def _item_view(db, it: review.QueueItem) -> ItemView:
    view = ItemView(key=it.key, kind=it.kind, prompt_ref=it.prompt_external_id, tags=it.tags, annotator=it.annotator,
                    waiting_since=f"{it.created_at:%Y-%m-%d %H:%M}", messages=it.messages, answer=it.answer or "",
                    version=it.version, all_bad=it.all_bad, note=it.reason or "")
    if it.kind == "ranking":
        for place, group in enumerate(it.order, start=1):
            for idx in group:
                view.candidates.append(it.responses[idx])
                view.ranks.append(place)
    view.history = [f"{r.created_at:%Y-%m-%d %H:%M} {r.reviewer_name}: {r.verdict}" + (f" ({r.reason})" if r.reason else "")
                    for r in review.history(db, it.kind, it.id)]
    return view


def review_queue(s: ReviewSession, kind: str = "", tag: str = "", annotator: str = "", key: str | None = None,
                 message: str = "") -> QueueView:
    """Pending items (oldest first, filtered), with `key` (or the oldest) opened."""
    with session_scope() as db:
        require(db, s.username, REVIEWERS, "review queue")
        items = review.queue(db, kind or None, tag or None, annotator or None)
        tags, names = review.queue_filters(db)
        rows = [[it.key, it.kind, f"{it.created_at:%Y-%m-%d %H:%M}", it.annotator, it.prompt_external_id, ", ".join(it.tags),
                 " ".join((it.answer or f"{len(it.responses)} answers ranked").split())[:80]] for it in items]
        current = next((it for it in items if it.key == key), items[0] if items else None)
        return QueueView(rows, [it.key for it in items], _item_view(db, current) if current else None, tags, names, message)


def review_approve(s: ReviewSession, key: str, reason: str = "", kind: str = "", tag: str = "",
                   annotator: str = "") -> QueueView:
    """Approve the item on screen; the queue moves on to the next oldest."""
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "approve")
        item_kind, item_id = review.parse_key(key)
        review.approve(db, user, item_kind, item_id, reason)
    return review_queue(s, kind, tag, annotator, message=f"Approved {key}.")


def review_reject(s: ReviewSession, key: str, reason: str, kind: str = "", tag: str = "", annotator: str = "") -> QueueView:
    """Reject the item on screen with a reason (required)."""
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "reject")
        item_kind, item_id = review.parse_key(key)
        review.reject(db, user, item_kind, item_id, reason)
    return review_queue(s, kind, tag, annotator, message=f"Rejected {key}.")


def review_edit(s: ReviewSession, key: str, text: str, reason: str = "", kind: str = "", tag: str = "",
                annotator: str = "") -> QueueView:
    """Store the edited answer as a new approved version plus an (edited > original) preference."""
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "edit")
        item_kind, item_id = review.parse_key(key)
        if item_kind != "demonstration":
            raise RlhfError("only demonstrations can be edited: reject a ranking, or adjudicate its prompt")
        res = review.edit_demonstration(db, user, item_id, text, reason)
        msg = (f"Saved your edit as demonstration {res.new.id} (version {res.new.version}); "
               f"the original is kept, and the pair (edited > original) is ranking {res.preference.id}.")
    return review_queue(s, kind, tag, annotator, message=msg)


# --------------------------------------------------------------------------- agreement dashboard


@dataclass
class AgreementView:
    summary: str  # markdown
    item_rows: list[list]
    annotator_rows: list[list]
    plot_path: str | None
    text: str  # the same table `rlhf agreement` prints


def agreement_dashboard(s: ReviewSession, threshold: float = agreement.DEFAULT_THRESHOLD,
                        include_simulated: bool = False) -> AgreementView:
    with session_scope() as db:
        require(db, s.username, REVIEWERS, "agreement")
        rep = agreement.report(db, float(threshold), include_simulated)
    summary = (f"**{rep.rankings} rankings**, {len(rep.items)} prompts ranked by 2+ annotators · "
               f"Krippendorff's alpha (ordinal) **{reports.fmt(rep.alpha)}** · mean pairwise Kendall tau-b "
               f"**{reports.fmt(rep.mean_tau)}** · {len(rep.queue)} item(s) waiting for adjudication "
               f"(alpha < {float(threshold):g})")
    path = reports.agreement_plot(rep, _tmp_png("rlhf-agreement-")) if rep.rankings else None
    return AgreementView(summary, reports.agreement_item_rows(rep), reports.agreement_annotator_rows(rep), str(path) if path else None,
                         reports.agreement_text(rep))


# --------------------------------------------------------------------------- adjudication


@dataclass
class AdjudicationView:
    rows: list[list]  # prompt, tags, annotators, alpha, tau
    choices: list[tuple[str, int]]  # (label, prompt id) of the queue
    prompt_id: int | None = None  # the item on screen
    messages: list[dict] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # texts, in the order of `response_ids`
    response_ids: list[int] = field(default_factory=list)
    annotator_ranks: list[list] = field(default_factory=list)  # rows: annotator, rank of candidate A, B, ...
    message: str = ""

    @property
    def k(self) -> int:
        return len(self.candidates)

    def item_html(self) -> str:
        if self.prompt_id is None:
            return render.notice("No contested items: every prompt ranked by several annotators is above the threshold "
                                 "or already adjudicated.")
        return render.conversation(self.messages)

    def candidate_html(self) -> list[str]:
        return [render.candidate(i, t) for i, t in enumerate(self.candidates)]


ADJ_COLUMNS = ["prompt", "tags", "annotators", "alpha", "tau"]


def adjudication_queue(s: ReviewSession, threshold: float = agreement.DEFAULT_THRESHOLD, prompt_id: int | None = None,
                       message: str = "") -> AdjudicationView:
    """Contested items (alpha under the threshold, not yet adjudicated), with one opened."""
    with session_scope() as db:
        require(db, s.username, REVIEWERS, "adjudication queue")
        rep = agreement.report(db, float(threshold))
        items = rep.queue
        view = AdjudicationView(
            rows=[[it.external_id, ", ".join(it.tags), ", ".join(it.annotators), _num(it.alpha), _num(it.mean_tau)]
                  for it in items],
            choices=[(f"{it.external_id} (alpha {reports.fmt(it.alpha, 2)})", it.prompt_id) for it in items],
            message=message)
        current = next((it for it in items if it.prompt_id == prompt_id), items[0] if items else None)
        if current is None:
            return view
        ids = sorted(current.consensus)  # every response the annotators ranked (the adjudication's default order)
        texts = dict(db.execute(select(Response.id, Response.text).where(Response.id.in_(ids))).all())
        records, _, _, _ = agreement.load(db)
        ranks = {rec.annotator: rec.ranks() for rec in records if rec.ranking_id in current.ranking_ids}
        view.prompt_id, view.messages = current.prompt_id, list(db.get(Prompt, current.prompt_id).messages)
        view.response_ids, view.candidates = ids, [texts[i] for i in ids]
        view.annotator_ranks = [[name, *[_num(m.get(i), 1) for i in ids]] for name, m in sorted(ranks.items())]
        return view


def ranks_to_order(ranks: list) -> list[list[int]]:
    """Per-candidate ranks (1 = best, equal = tie) -> a best-first order of candidate indices.

    >>> ranks_to_order(["2", "1", "2"])
    [[1], [0, 2]]
    """
    values = []
    for i, r in enumerate(ranks):
        if r in (None, ""):
            raise RlhfError(f"answer {render.LETTERS[i]} has no rank: give every answer a rank (equal ranks are a tie)")
        values.append((int(r), i))
    order: dict[int, list[int]] = {}
    for r, i in sorted(values):
        order.setdefault(r, []).append(i)
    return [order[r] for r in sorted(order)]


def adjudicate_submit(s: ReviewSession, prompt_id: int, ranks: list, reason: str,
                      threshold: float = agreement.DEFAULT_THRESHOLD) -> AdjudicationView:
    """Record the expert's ranking of the item on screen as its consensus (who and why kept in a Review)."""
    if prompt_id is None:
        raise RlhfError("no contested item on screen")
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "adjudicate")
        current = next((it for it in agreement.report(db, float(threshold)).items if it.prompt_id == int(prompt_id)), None)
        if current is None:
            raise RlhfError(f"prompt {prompt_id} has no rankings by several annotators")
        ids = sorted(current.consensus)
        order = ranks_to_order(list(ranks)[:len(ids)])
        ranking = review.adjudicate(db, user, int(prompt_id), order, reason, response_ids=ids, shown_order=ids)
        msg = f"Recorded your ranking of {current.external_id} as its consensus (ranking {ranking.id})."
    return adjudication_queue(s, threshold, message=msg)


# --------------------------------------------------------------------------- blind A/B


@dataclass
class ABView:
    session_id: int | None
    item_id: int | None = None  # the pair on screen
    number: int = 0
    total: int = 0
    judged: int = 0
    messages: list[dict] = field(default_factory=list)
    left: str = ""  # shown as "Answer A"
    right: str = ""  # shown as "Answer B"
    message: str = ""

    @property
    def progress(self) -> str:
        if self.session_id is None:
            return "No review session yet: create one with `rlhf review-session create`."
        if self.item_id is None:
            return f"Session ab#{self.session_id}: you have judged every pair ({self.judged}/{self.total}). Thank you!"
        return f"Session ab#{self.session_id} · pair {self.number} of {self.total} · you judged {self.judged}"

    def prompt_html(self) -> str:
        return render.conversation(self.messages) if self.item_id else render.notice(self.progress)

    def answers_html(self) -> tuple[str, str]:
        if self.item_id is None:
            return "", ""
        return render.candidate(0, self.left), render.candidate(1, self.right)


def ab_sessions(s: ReviewSession) -> list[tuple[str, int]]:
    """(label, id) of every session, newest first; labels name no model (judges stay blind)."""
    with session_scope() as db:
        require(db, s.username, REVIEWERS, "A/B sessions")
        return [(f"ab#{sess.id} · {sess.prompts_ref} · {items} pairs", sess.id) for sess, items, _ in ab.list_sessions(db)]


def ab_next(s: ReviewSession, session_id: int | None, message: str = "") -> ABView:
    """The next pair of the session this expert has not judged (sides as drawn, names hidden)."""
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "A/B judging")
        if session_id in (None, ""):
            return ABView(None, message=message)
        pair = ab.next_pair(db, session_id, user)
        if pair is None:
            items = next((n for sess, n, _ in ab.list_sessions(db) if sess.id == int(session_id)), 0)
            return ABView(int(session_id), total=items, judged=items, message=message)
        return ABView(pair.session_id, pair.item_id, pair.number, pair.total, pair.judged, pair.messages, pair.left,
                      pair.right, message)


def ab_judge(s: ReviewSession, session_id: int, item_id: int, choice: str, reason: str = "") -> ABView:
    """Record A (left), B (right) or tie for the pair on screen, then show the next one."""
    if item_id in (None, ""):
        raise RlhfError("no pair on screen: pick a session first")
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "A/B judging")
        j = ab.judge(db, user, int(item_id), choice, reason)
        said = {"left": "A", "right": "B", "tie": "a tie"}[j.choice]
    return ab_next(s, session_id, message=f"Recorded: {said}.")


def ab_report(s: ReviewSession, session_id: int) -> tuple[str, str | None]:
    """(markdown, plot path) of a session's report: win rate of B with its 95% interval, tags, agreement."""
    if session_id in (None, ""):
        raise RlhfError("pick a session first")
    with session_scope() as db:
        require(db, s.username, REVIEWERS, "A/B report")
        rep = ab.session_report(db, session_id)
    path = reports.ab_plot(rep, _tmp_png("rlhf-ab-")) if rep.overall.n else None
    return reports.ab_markdown(rep), str(path) if path else None


def can_review(s: ReviewSession) -> bool:
    """Whether the caller may see the expert pages (cosmetics only: every handler checks again)."""
    try:
        with session_scope() as db:
            require(db, s.username, REVIEWERS, "review pages")
        return True
    except PermissionError:
        return False


# --------------------------------------------------------------------------- layout


def add_review_tabs(demo) -> dict:
    """Lay out the expert tabs inside the caller's `gr.Blocks` / `gr.Tabs` and register their listeners.

    Returns the tab components by name ("review", "agreement", "adjudicate", "ab"); they start
    hidden and are shown on page load to experts and admins.
    """
    import gradio as gr

    def ui(fn):
        """Listener wrapper: the caller from the login; people-facing errors as gr.Error."""

        def wrapper(request: gr.Request, rs: ReviewSession, *args):
            rs = rs if isinstance(rs, ReviewSession) else ReviewSession()
            rs.username = getattr(request, "username", None) or ""
            try:
                return fn(rs, *args)
            except (PermissionError, RlhfError) as e:
                raise gr.Error(str(e), duration=8) from None

        # not functools.wraps: gradio passes the request only to a positional parameter annotated gr.Request
        # (inserted at its index, before the listener's inputs); the annotation must be the class itself, since
        # gradio is imported here and a string would not resolve. The prefix keeps API names apart from the app's.
        wrapper.__name__, wrapper.__doc__ = f"review_{fn.__name__}", fn.__doc__
        wrapper.__annotations__["request"] = gr.Request
        return wrapper

    with gr.Tab("Review", id="review", elem_id="tab-review", visible=False) as review_tab:
        # inside a Tab, not directly in the caller's gr.Tabs: a non-Tab child of Tabs breaks tab switching (gradio 6.31)
        rstate = gr.State(ReviewSession())
        with gr.Row():
            f_kind = gr.Dropdown(KIND_CHOICES, value="", label="Kind", elem_id="review-filter-kind")
            f_tag = gr.Dropdown([("all tags", "")], value="", label="Tag", elem_id="review-filter-tag")
            f_ann = gr.Dropdown([("all annotators", "")], value="", label="Annotator", elem_id="review-filter-annotator")
            q_refresh = gr.Button("Refresh", elem_id="review-refresh")
        q_summary = gr.Markdown(elem_id="review-summary")
        q_table = gr.Dataframe(headers=QUEUE_COLUMNS, interactive=False, label="Waiting for review (oldest first)",
                               elem_id="review-table")
        with gr.Row():
            with gr.Column(scale=3):
                q_item = gr.Dropdown([], label="Item on screen", elem_id="review-item")
                q_html = gr.HTML(elem_id="review-item-html")
                q_edit = gr.Textbox(label="Edited answer (demonstrations: change it and press 'Save edit')", lines=6,
                                    elem_id="review-edit-text")
                q_reason = gr.Textbox(label="Reason (required to reject; optional otherwise)", max_lines=2,
                                      elem_id="review-reason")
                with gr.Row():
                    q_approve = gr.Button("Approve", variant="primary", elem_id="review-approve")
                    q_reject = gr.Button("Reject", variant="stop", elem_id="review-reject")
                    q_save = gr.Button("Save edit as a new version", elem_id="review-edit")
                q_msg = gr.Markdown(elem_id="review-message")
            with gr.Column(scale=1):
                gr.Markdown("### History of this item")
                q_hist = gr.Markdown(elem_id="review-history")
    with gr.Tab("Agreement", id="agreement", elem_id="tab-agreement", visible=False) as agreement_tab:
        with gr.Row():
            a_thr = gr.Number(value=agreement.DEFAULT_THRESHOLD, label="Adjudication threshold (alpha)", elem_id="agreement-threshold")
            a_sim = gr.Checkbox(label="Include simulated annotators", elem_id="agreement-simulated")
            a_refresh = gr.Button("Refresh", elem_id="agreement-refresh")
        a_summary = gr.Markdown(elem_id="agreement-summary")
        a_plot = gr.Image(type="filepath", label="Agreement and bias", interactive=False, elem_id="agreement-plot")
        a_items = gr.Dataframe(headers=reports.AGREEMENT_ITEM_COLUMNS, interactive=False, label="Items ranked by 2+ annotators")
        a_people = gr.Dataframe(headers=reports.AGREEMENT_ANNOTATOR_COLUMNS, interactive=False, label="Annotators")
    with gr.Tab("Adjudicate", id="adjudicate", elem_id="tab-adjudicate", visible=False) as adjudicate_tab:
        with gr.Row():
            d_thr = gr.Number(value=agreement.DEFAULT_THRESHOLD, label="Threshold (alpha)", elem_id="adjudicate-threshold")
            d_refresh = gr.Button("Refresh", elem_id="adjudicate-refresh")
        d_table = gr.Dataframe(headers=ADJ_COLUMNS, interactive=False, label="Contested items")
        d_item = gr.Dropdown([], label="Item on screen", elem_id="adjudicate-item")
        d_prompt = gr.HTML(elem_id="adjudicate-prompt")
        d_groups, d_htmls, d_radios = [], [], []
        for i in range(MAX_SLOTS):
            with gr.Group(visible=False, elem_id=f"adj-cand-{i}") as g:
                d_htmls.append(gr.HTML())
                d_radios.append(gr.Radio(choices=[], label=f"Your rank of answer {render.LETTERS[i]}", elem_id=f"adj-rank-{i}"))
            d_groups.append(g)
        d_ranks = gr.Dataframe(interactive=False, label="The annotators' ranks (1 = best)")
        d_reason = gr.Textbox(label="Why this order (required, kept with the decision)", elem_id="adjudicate-reason")
        d_submit = gr.Button("Record as consensus", variant="primary", elem_id="adjudicate-submit")
        d_msg = gr.Markdown(elem_id="adjudicate-message")
    with gr.Tab("A/B", id="ab", elem_id="tab-ab", visible=False) as ab_tab:
        with gr.Row():
            b_session = gr.Dropdown([], label="Review session", elem_id="ab-session")
            b_refresh = gr.Button("Refresh sessions", elem_id="ab-refresh")
        b_progress = gr.Markdown(elem_id="ab-progress")
        b_item = gr.State(None)
        b_prompt = gr.HTML(elem_id="ab-prompt")
        with gr.Row():
            b_left = gr.HTML(elem_id="ab-left")
            b_right = gr.HTML(elem_id="ab-right")
        with gr.Row():
            b_a = gr.Button("A is better", variant="primary", elem_id="ab-choose-a")
            b_tie = gr.Button("Tie", elem_id="ab-choose-tie")
            b_b = gr.Button("B is better", variant="primary", elem_id="ab-choose-b")
        b_reason = gr.Textbox(label="Why (optional)", max_lines=2, elem_id="ab-reason")
        b_msg = gr.Markdown(elem_id="ab-message")
        with gr.Accordion("Session report (reveals the models)", open=False):
            b_report_btn = gr.Button("Show report", elem_id="ab-report")
            b_report_plot = gr.Image(type="filepath", interactive=False, label="Win rate of B")
            b_report = gr.Markdown(elem_id="ab-report-md")

    # ---- view -> components
    def queue_out(v: QueueView):
        item = v.item
        return (gr.update(choices=[("all tags", "")] + [(t, t) for t in v.tags]),
                gr.update(choices=[("all annotators", "")] + [(a, a) for a in v.annotators]),
                v.summary, v.rows, gr.update(choices=v.keys, value=item.key if item else None), v.item_html(),
                gr.update(value=item.answer if item and item.kind == "demonstration" else "",
                          interactive=bool(item and item.kind == "demonstration")),
                "", v.message, v.history_md())

    queue_view = [f_tag, f_ann, q_summary, q_table, q_item, q_html, q_edit, q_reason, q_msg, q_hist]
    filters = [f_kind, f_tag, f_ann]

    def adj_out(v: AdjudicationView):
        groups, htmls, radios = [], [], []
        choices = [str(i) for i in range(1, v.k + 1)]
        for i in range(MAX_SLOTS):
            shown = i < v.k
            groups.append(gr.update(visible=shown))
            htmls.append(v.candidate_html()[i] if shown else "")
            radios.append(gr.update(choices=choices if shown else [], value=None))
        headers = ["annotator"] + [f"answer {render.LETTERS[i]}" for i in range(v.k)]
        return (v.rows, gr.update(choices=v.choices, value=v.prompt_id), v.item_html(), *groups, *htmls, *radios,
                gr.update(value=v.annotator_ranks, headers=headers) if v.k else [], "", v.message)

    adj_view = [d_table, d_item, d_prompt, *d_groups, *d_htmls, *d_radios, d_ranks, d_reason, d_msg]

    def ab_out(v: ABView):
        left, right = v.answers_html()
        return v.item_id, v.progress, v.prompt_html(), left, right, "", v.message

    ab_view = [b_item, b_progress, b_prompt, b_left, b_right, b_reason, b_msg]

    # ---- listeners
    @ui
    def on_load(rs):
        show = can_review(rs)
        return (rs, *[gr.update(visible=show, interactive=show)] * 4)

    @ui
    def on_queue(rs, kind, tag, ann, key=None):
        return (rs, *queue_out(review_queue(rs, kind or "", tag or "", ann or "", key)))

    @ui
    def on_open(rs, key, kind, tag, ann):
        return (rs, *queue_out(review_queue(rs, kind or "", tag or "", ann or "", key)))

    @ui
    def on_approve(rs, key, reason, kind, tag, ann):
        return (rs, *queue_out(review_approve(rs, key, reason, kind or "", tag or "", ann or "")))

    @ui
    def on_reject(rs, key, reason, kind, tag, ann):
        return (rs, *queue_out(review_reject(rs, key, reason, kind or "", tag or "", ann or "")))

    @ui
    def on_edit(rs, key, text, reason, kind, tag, ann):
        return (rs, *queue_out(review_edit(rs, key, text, reason, kind or "", tag or "", ann or "")))

    @ui
    def on_agreement(rs, thr, sim):
        v = agreement_dashboard(rs, thr if thr is not None else agreement.DEFAULT_THRESHOLD, bool(sim))
        return rs, v.summary, v.plot_path, v.item_rows, v.annotator_rows

    @ui
    def on_adjudication(rs, thr, prompt_id=None):
        return (rs, *adj_out(adjudication_queue(rs, thr if thr is not None else agreement.DEFAULT_THRESHOLD, prompt_id)))

    @ui
    def on_adjudicate(rs, thr, prompt_id, reason, *ranks):
        return (rs, *adj_out(adjudicate_submit(rs, prompt_id, list(ranks), reason,
                                               thr if thr is not None else agreement.DEFAULT_THRESHOLD)))

    @ui
    def on_ab_sessions(rs, current):
        choices = ab_sessions(rs)
        ids = [c[1] for c in choices]
        value = current if current in ids else (ids[0] if ids else None)
        return (rs, gr.update(choices=choices, value=value), *ab_out(ab_next(rs, value)))

    @ui
    def on_ab_next(rs, session_id):
        return (rs, *ab_out(ab_next(rs, session_id)))

    def on_ab_choice(choice):
        @ui
        def handler(rs, session_id, item_id, reason):
            return (rs, *ab_out(ab_judge(rs, session_id, item_id, choice, reason)))

        handler.__name__ = f"on_ab_{choice}"
        return handler

    @ui
    def on_ab_report(rs, session_id):
        md, path = ab_report(rs, session_id)
        return rs, path, md

    tabs = [review_tab, agreement_tab, adjudicate_tab, ab_tab]
    demo.load(on_load, [rstate], [rstate, *tabs])
    review_tab.select(on_queue, [rstate, *filters], [rstate, *queue_view])
    q_refresh.click(on_queue, [rstate, *filters], [rstate, *queue_view])
    for f in filters:
        f.input(on_queue, [rstate, *filters], [rstate, *queue_view])
    q_item.input(on_open, [rstate, q_item, *filters], [rstate, *queue_view])
    q_approve.click(on_approve, [rstate, q_item, q_reason, *filters], [rstate, *queue_view], concurrency_id="review")
    q_reject.click(on_reject, [rstate, q_item, q_reason, *filters], [rstate, *queue_view], concurrency_id="review")
    q_save.click(on_edit, [rstate, q_item, q_edit, q_reason, *filters], [rstate, *queue_view], concurrency_id="review")
    agreement_view = [rstate, a_summary, a_plot, a_items, a_people]
    agreement_tab.select(on_agreement, [rstate, a_thr, a_sim], agreement_view)
    a_refresh.click(on_agreement, [rstate, a_thr, a_sim], agreement_view)
    adjudicate_tab.select(on_adjudication, [rstate, d_thr], [rstate, *adj_view])
    d_refresh.click(on_adjudication, [rstate, d_thr], [rstate, *adj_view])
    d_item.input(on_adjudication, [rstate, d_thr, d_item], [rstate, *adj_view])
    d_submit.click(on_adjudicate, [rstate, d_thr, d_item, d_reason, *d_radios], [rstate, *adj_view], concurrency_id="review")
    ab_tab.select(on_ab_sessions, [rstate, b_session], [rstate, b_session, *ab_view])
    b_refresh.click(on_ab_sessions, [rstate, b_session], [rstate, b_session, *ab_view])
    b_session.input(on_ab_next, [rstate, b_session], [rstate, *ab_view])
    for button, choice in ((b_a, "left"), (b_tie, "tie"), (b_b, "right")):
        button.click(on_ab_choice(choice), [rstate, b_session, b_item, b_reason], [rstate, *ab_view], concurrency_id="ab")
    b_report_btn.click(on_ab_report, [rstate, b_session], [rstate, b_report_plot, b_report])
    return {"review": review_tab, "agreement": agreement_tab, "adjudicate": adjudicate_tab, "ab": ab_tab}
