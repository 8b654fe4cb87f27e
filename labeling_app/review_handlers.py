"""The domain expert's pages as plain handlers `(session, inputs) -> view`: Review queue, Agreement dashboard,
Adjudication, blind A/B judging. Their layout is `review_layout.py`.

Every handler first reloads the caller and checks their role is expert or admin (`require`, on
the server: a hidden tab is only cosmetics), then does its work in ONE store transaction through
`rlhf.review.actions` / `rlhf.review.agreement` / `rlhf.review.ab`, and returns a small view
dataclass that renders its own escaped HTML (`render`). Tests call them without a server.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field

from sqlalchemy import select

from labeling_app import queue, render
from rlhf.data.accounts import ADMINS, REVIEWERS, require
from rlhf.data.formats import ranks_to_order
from rlhf.data.store import session_scope
from rlhf.data.store.models import Prompt, Response
from rlhf.errors import RlhfError
from rlhf.review import ab, agreement, reports
from rlhf.review import actions as review


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
    return AgreementView(summary, reports.agreement_item_rows(rep), reports.agreement_annotator_rows(rep),
                         str(path) if path else None, reports.agreement_text(rep))


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
        return render.conversation(self.messages, item=f"adjudicate:{self.prompt_id}")

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
        order = ranks_to_order(list(ranks), k=len(ids))
        ranking = review.adjudicate(db, user, int(prompt_id), order, reason, response_ids=ids, shown_order=ids)
        msg = f"Recorded your ranking of {current.external_id} as its consensus (ranking {ranking.id})."
    return adjudication_queue(s, threshold, message=msg)


def mark_gold(s: ReviewSession, prompt_id: int, ranks: list, threshold: float = agreement.DEFAULT_THRESHOLD) -> AdjudicationView:
    """Mark the rank item on screen gold, the expert's ranks in the slots as its reference (`rlhf.data.gold`):
    it then goes into annotators' queues at the `gold_rate` setting, unmarked. Marking twice is a no-op."""
    from rlhf.data import gold

    if prompt_id in (None, ""):
        raise RlhfError("no contested item on screen")
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "mark gold")
        current = next((it for it in agreement.report(db, float(threshold)).items if it.prompt_id == int(prompt_id)), None)
        queue.sync_items(db)  # rankings imported from files: their candidate set may not be a queue item yet
        item = gold.rank_item_holding(db, int(prompt_id), ids := sorted(current.consensus) if current else [])
        order = ranks_to_order(list(ranks), k=len(ids))  # indices into `ids` (the slots) -> into the item's own order
        _, status = gold.mark_gold(db, user, item.id, order=[sorted(item.response_ids.index(ids[i]) for i in g) for g in order])
        msg = (f"{item.key} is already gold with this reference." if status == "unchanged" else
               f"{'Marked' if status == 'marked' else 'Changed'} {item.key} as gold with your order as its reference.")
    return adjudication_queue(s, threshold, int(prompt_id), message=msg)


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
    closed: bool = False  # the session takes no more judgements

    @property
    def progress(self) -> str:
        if self.session_id is None:
            return "No review session yet: create one with `rlhf review-session create`."
        if self.closed:
            return f"Session ab#{self.session_id} is closed: judging has ended; its report names the models."
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
        return [(f"ab#{sess.id} · {sess.prompts_ref} · {items} pairs" + (" · closed" if sess.closed_at else ""), sess.id)
                for sess, items, _ in ab.list_sessions(db)]


def ab_next(s: ReviewSession, session_id: int | None, message: str = "") -> ABView:
    """The next pair of the session this expert has not judged (sides as drawn, names hidden)."""
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "A/B judging")
        if session_id in (None, ""):
            return ABView(None, message=message)
        if ab.get_session(db, session_id).closed_at is not None:
            return ABView(int(session_id), closed=True, message=message)
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


def ab_report(s: ReviewSession, session_id: int, message: str = "") -> tuple[str, str | None]:
    """(markdown, plot path) of a session's report: win rate of B with its 95% interval, tags, agreement.

    By the reveal rule (`rlhf.review.ab`): while the session is open an expert sees only their own
    judgements and no model names; an admin, or anyone once it is closed, sees everything."""
    if session_id in (None, ""):
        raise RlhfError("pick a session first")
    with session_scope() as db:
        user = require(db, s.username, REVIEWERS, "A/B report")
        rep = ab.session_report(db, session_id, viewer=user)
    path = reports.ab_plot(rep, _tmp_png("rlhf-ab-")) if rep.overall.n else None
    head = [f"**{message}**"] if message else []
    if not rep.revealed:
        head.append("*This session is still open: the report shows only your own judgements and hides the model "
                    "names, so nothing anchors the pairs left to judge. An admin closes it to reveal everything.*")
    return "\n\n".join([*head, reports.ab_markdown(rep)]), str(path) if path else None


def ab_close(s: ReviewSession, session_id: int) -> str:
    """An admin ends judging of a session and reveals its report to every judge; one line about it."""
    if session_id in (None, ""):
        raise RlhfError("pick a session first")
    with session_scope() as db:
        user = require(db, s.username, ADMINS, "close an A/B session")
        sess, now = ab.close_session(db, session_id, user)
        return f"ab#{sess.id} {'is now closed' if now else 'was already closed'}: every judge sees this report."


def _has_role(s: ReviewSession, roles: tuple[str, ...]) -> bool:
    try:
        with session_scope() as db:
            require(db, s.username, roles, "see these pages")
        return True
    except PermissionError:
        return False


def is_admin(s: ReviewSession) -> bool:
    """Whether the caller sees the admin-only controls of these pages (cosmetics only: every handler checks again)."""
    return _has_role(s, ADMINS)


def can_review(s: ReviewSession) -> bool:
    """Whether the caller may see the expert pages (cosmetics only: every handler checks again)."""
    return _has_role(s, REVIEWERS)
