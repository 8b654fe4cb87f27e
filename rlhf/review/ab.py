"""Blind A/B review sessions: two model versions answer the same prompts; experts pick the better one.

A session (`create_session`) takes model A (the baseline), model B (the challenger) and the
prompts of a registry snapshot, generates both models' answers (greedy by default, or seeded
sampling), and stores one item per prompt with the sides drawn at random. A judge sees only
"Answer A" (left) and "Answer B" (right), never a model name (`next_pair`), and picks A, B or a
tie with an optional reason (`judge`). `judge_simulated` lets a rubric (`rlhf.rubrics`) play
the expert for the demo; its judgements are stored with origin "simulated".

The report (`session_report` here; `rlhf.review.reports` renders it as markdown and a plot):

- Win rate of B over A, ties counted half: `p = (wins_B + ties / 2) / n` over the n
  judgements (each judge's latest verdict on each item counts once).
- Its 95% interval is the Wilson score interval (`rlhf.stats.wilson_interval`, z = 1.96). Treating
  a tie as half a win is an approximation: a tie carries less variance than a coin flip, so the
  interval is, if anything, a little wide.
- Ties, a per-tag breakdown (a prompt's tags), per-judge tallies, and inter-expert agreement on
  shared items: percent agreement and Cohen's kappa over the three outcomes (a, b, tie)
  (`rlhf.stats.cohen_kappa`).

Reveal rule: while a session is open (`closed_at` is None) a judge who asks for the report sees
only their own judgements and no model names, so nothing anchors the pairs still to judge; an
admin sees everything, and everyone does once an admin closes it (`close_session`, `rlhf
review-session close`). A closed session takes no more judgements. Callers without a viewer (the
CLI, run by whoever holds the machine) get the whole report.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rlhf.data.accounts import ADMINS, REVIEWERS, require
from rlhf.errors import NotFoundError, RlhfError
from rlhf.stats import cohen_kappa, wilson_interval
from rlhf.data.store.models import Prompt, Response, User, utcnow
from rlhf.data.store.review_models import CHOICES, ABItem, ABJudgement, ABSession

SIDE_LABELS = {"left": "A", "right": "B"}  # what a judge sees; model names never reach the page


# --------------------------------------------------------------------------- tallies


@dataclass
class Tally:
    """Outcomes of some judgements, from B's side."""

    b: int = 0  # B better
    a: int = 0  # A better
    tie: int = 0

    def add(self, winner: str) -> None:
        setattr(self, winner, getattr(self, winner) + 1)

    @property
    def n(self) -> int:
        return self.a + self.b + self.tie

    @property
    def win_rate(self) -> float:
        """(wins_B + ties / 2) / n"""
        return (self.b + self.tie / 2) / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.b + self.tie / 2, self.n)


# --------------------------------------------------------------------------- creating a session


@dataclass(frozen=True)
class Generation:
    """How both models answer: the same settings for A and B."""

    max_new_tokens: int = 128
    """longest answer in tokens"""
    temperature: float = 0.0
    """0 = greedy (deterministic); > 0 = sampling with `seed`"""
    top_p: float = 1.0
    """nucleus sampling mass when sampling"""
    seed: int = 0
    """seeds the sampling, the sides of each item and the presentation order"""
    batch_size: int = 8
    """prompts per generate() call"""


def _prompt_rows(session: Session, prompts_ref: str, split: str | None, limit: int | None) -> list[Prompt]:
    """The store's Prompt rows behind a registry snapshot (prompts, sft or preferences), in snapshot order."""
    from rlhf.data import registry

    ds = registry.load(session, prompts_ref)
    if "prompt_id" not in ds.column_names:
        raise RlhfError(f"{prompts_ref}: its rows have no prompt_id column; use a prompts snapshot "
                        "(rlhf registry snapshot prompts)")
    wanted, seen = [], set()
    for pid in ds["prompt_id"]:
        if pid not in seen:
            seen.add(pid)
            wanted.append(pid)
    by_ext = {p.external_id: p for p in session.scalars(select(Prompt).where(Prompt.external_id.in_(wanted)))}
    missing = [pid for pid in wanted if pid not in by_ext]
    if missing:
        raise NotFoundError(f"{prompts_ref}: prompts {missing[:5]} are not in the store (was the database replaced?)")
    rows = [by_ext[pid] for pid in wanted if split is None or by_ext[pid].split == split]
    if limit:
        rows = rows[:limit]
    if not rows:
        raise RlhfError(f"{prompts_ref}: no prompts" + (f" in split {split!r}" if split else ""))
    return rows


def create_session(session: Session, model_a: str, model_b: str, prompts_ref: str, gen: Generation = Generation(),
                   split: str | None = None, limit: int | None = None, created_by: str = "",
                   progress: bool = True, answers: tuple[list[str], list[str]] | None = None) -> ABSession:
    """Generate both models' answers to the snapshot's prompts and store a blind session.

    `answers` (A's, B's) skips generation: for answers made elsewhere (and for tests).
    """
    from rlhf.data import registry
    from rlhf.data.records import add_response

    model_a, model_b = (registry.pin_model(session, model_a, answers is None),
                        registry.pin_model(session, model_b, answers is None))
    if model_a == model_b:
        raise RlhfError(f"--a and --b are both {model_a}: an A/B session compares two different models")
    prompts_ref = registry.get_version(session, prompts_ref).ref  # pin @latest to the version used
    prompts = _prompt_rows(session, prompts_ref, split, limit)
    if answers is None:
        from rlhf.train.sampling import answers as model_answers

        how = dict(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p, seed=gen.seed,
                   batch_size=gen.batch_size, progress=progress)
        answers = (model_answers(model_a, [p.messages for p in prompts], **how),
                   model_answers(model_b, [p.messages for p in prompts], **how))
    if any(len(a) != len(prompts) for a in answers):
        raise RlhfError("create_session: need one answer per prompt from each model")
    settings = {**gen.__dict__, "split": split, "limit": limit}
    ab = ABSession(name=f"{model_b} vs {model_a} on {prompts_ref}", model_a=model_a, model_b=model_b,
                   prompts_ref=prompts_ref, generation=settings, seed=gen.seed, created_by=created_by or "")
    session.add(ab)
    session.flush()
    rng = random.Random(gen.seed)
    positions = list(range(len(prompts)))
    rng.shuffle(positions)  # presentation order: not the snapshot's (which may group topics)
    for i, prompt in enumerate(prompts):
        ra = add_response(session, prompt, answers[0][i], origin="model", model_version=model_a,
                          generation={**settings, "ab_session": ab.id})
        rb = add_response(session, prompt, answers[1][i], origin="model", model_version=model_b,
                          generation={**settings, "ab_session": ab.id})
        session.add(ABItem(session_id=ab.id, prompt_id=prompt.id, response_a_id=ra.id, response_b_id=rb.id,
                           a_on_left=rng.random() < 0.5, position=positions[i]))
    session.flush()
    return ab


def get_session(session: Session, ref: int | str) -> ABSession:
    """A session by id (`3`, `ab#3`)."""
    text = str(ref).strip().removeprefix("ab#").removeprefix("#")
    ab = session.get(ABSession, int(text)) if text.isdigit() else None
    if ab is None:
        known = session.scalars(select(ABSession.id).order_by(ABSession.id)).all()
        raise NotFoundError(f"no review session {ref!r}; " + (f"known: {', '.join(f'ab#{i}' for i in known)}" if known
                                                             else "create one with `rlhf review-session create`"))
    return ab


def list_sessions(session: Session) -> list[tuple[ABSession, int, int]]:
    """(session, items, judgements) for every session, newest first."""
    out = []
    for ab in session.scalars(select(ABSession).order_by(ABSession.id.desc())):
        items = session.scalar(select(func.count(ABItem.id)).where(ABItem.session_id == ab.id))
        judged = session.scalar(select(func.count(ABJudgement.id)).join(ABItem, ABJudgement.item_id == ABItem.id)
                                .where(ABItem.session_id == ab.id))
        out.append((ab, items, judged))
    return out


def close_session(session: Session, session_ref: int | str, by: User | str | None = None) -> tuple[ABSession, bool]:
    """End judging and reveal the report to every judge: (session, closed now). Closing twice changes nothing.

    `by`: the admin doing it (checked); None for the CLI, run by whoever holds the machine.
    """
    if by is not None:
        require(session, by, ADMINS, "close an A/B session", login=False)
    ab = get_session(session, session_ref)
    done = session.execute(update(ABSession).where(ABSession.id == ab.id, ABSession.closed_at.is_(None))
                           .values(closed_at=utcnow()).execution_options(synchronize_session=False)).rowcount == 1
    session.refresh(ab)
    return ab, done


def _open(ab: ABSession) -> ABSession:
    if ab.closed_at is not None:
        raise RlhfError(f"ab#{ab.id} was closed {ab.closed_at:%Y-%m-%d %H:%M}: it takes no more judgements")
    return ab


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class BlindPair:
    """What a judge sees: a prompt and two answers, sides randomized, no model names."""

    session_id: int
    item_id: int
    number: int  # 1-based place in the session
    total: int
    judged: int  # items this judge has already judged
    messages: list[dict]
    left: str  # "Answer A"
    right: str  # "Answer B"


def next_pair(session: Session, session_ref: int | str, judge: User | str) -> BlindPair | None:
    """The first item (in presentation order) this judge has not judged yet; None when done."""
    user = require(session, judge, REVIEWERS, "A/B judging", login=False)
    ab = get_session(session, session_ref)
    if ab.closed_at is not None:
        return None
    items = session.scalars(select(ABItem).where(ABItem.session_id == ab.id).order_by(ABItem.position, ABItem.id)).all()
    done = set(session.scalars(select(ABJudgement.item_id).join(ABItem, ABJudgement.item_id == ABItem.id)
                               .where(ABItem.session_id == ab.id, ABJudgement.judge_id == user.id)))
    for number, item in enumerate(items, start=1):
        if item.id in done:
            continue
        return blind_pair(session, item, number, len(items), len(done))
    return None


def blind_pair(session: Session, item: ABItem, number: int = 0, total: int = 0, judged: int = 0) -> BlindPair:
    a, b = session.get(Response, item.response_a_id), session.get(Response, item.response_b_id)
    left, right = (a, b) if item.a_on_left else (b, a)
    prompt = session.get(Prompt, item.prompt_id)
    return BlindPair(item.session_id, item.id, number, total, judged, list(prompt.messages), left.text, right.text)


def normalize_choice(choice: str) -> str:
    """left | right | tie; "A"/"B" (the labels a judge sees) mean left/right."""
    c = (choice or "").strip().lower()
    c = {"a": "left", "b": "right", "answer a": "left", "answer b": "right"}.get(c, c)
    if c not in CHOICES:
        raise RlhfError(f"unknown choice {choice!r}: expected A, B or tie")
    return c


def judge(session: Session, judge_user: User | str, item_id: int, choice: str, reason: str | None = None) -> ABJudgement:
    """Record one judgement (left/A, right/B or tie) by an expert; the newest per judge and item counts."""
    user = require(session, judge_user, REVIEWERS, "A/B judging", login=False)
    item = session.get(ABItem, item_id)
    if item is None:
        raise NotFoundError(f"no A/B item with id {item_id}")
    _open(session.get(ABSession, item.session_id))
    c = normalize_choice(choice)
    winner = "tie" if c == "tie" else ("a" if (c == "left") == item.a_on_left else "b")
    j = ABJudgement(item_id=item.id, judge_id=user.id, judge_name=user.name, choice=c, winner=winner,
                    reason=(reason or "").strip() or None, origin="simulated" if user.simulated else "human")
    session.add(j)
    session.flush()
    return j


def judge_simulated(session: Session, session_ref: int | str, rubric: str = "concise_helpful",
                    tie_margin: float = 0.05) -> tuple[str, int]:
    """A rubric judges every item it has not judged yet (scores within `tie_margin` are a tie).

    Returns (judge name, judgements added). The judge is a simulated expert user `rubric:NAME`.
    """
    from rlhf.rubrics import load_rubric, prompt_text
    from rlhf.data.records import get_or_create_user

    name, fn = load_rubric(rubric)
    user = get_or_create_user(session, f"rubric:{name}"[:128], role="expert", simulated=True)
    if not user.simulated:
        raise RlhfError(f"user {user.name!r} exists and is a person, not a simulated judge")
    added = 0
    while (pair := next_pair(session, session_ref, user)) is not None:
        q = prompt_text(pair.messages)
        left, right = float(fn(q, pair.left)), float(fn(q, pair.right))
        choice = "tie" if abs(left - right) <= tie_margin else ("left" if left > right else "right")
        judge(session, user, pair.item_id, choice, f"rubric {name}: A {left:.2f} vs B {right:.2f}")
        added += 1
    return user.name, added


# --------------------------------------------------------------------------- the report


@dataclass
class Agreement:
    judge_1: str
    judge_2: str
    shared: int  # items both judged
    percent: float  # share of shared items with the same outcome
    kappa: float


@dataclass
class ItemVotes:
    item_id: int
    prompt: str  # external id
    tags: list[str]
    votes: Tally


@dataclass
class ABReport:
    session_id: int
    name: str
    model_a: str
    model_b: str
    prompts_ref: str
    generation: dict
    items: int
    judged_items: int
    overall: Tally
    by_tag: dict[str, Tally]
    by_judge: dict[str, Tally]
    simulated_judges: list[str]
    agreement: list[Agreement]
    per_item: list[ItemVotes] = field(default_factory=list)
    revealed: bool = True  # False: an open session seen by a judge (their own judgements only, no model names)


def latest_judgements(session: Session, session_id: int, humans_only: bool = False) -> list[ABJudgement]:
    """The newest judgement of each judge on each item of a session."""
    q = (select(ABJudgement).join(ABItem, ABJudgement.item_id == ABItem.id).where(ABItem.session_id == session_id)
         .order_by(ABJudgement.id))
    if humans_only:
        q = q.where(ABJudgement.origin == "human")
    latest: dict[tuple[int, str], ABJudgement] = {}
    for j in session.scalars(q):
        latest[(j.item_id, j.judge_name)] = j
    return list(latest.values())


HIDDEN = "(hidden until an admin closes the session)"


def session_report(session: Session, session_ref: int | str, humans_only: bool = False,
                   viewer: User | str | None = None) -> ABReport:
    """The session's report; with a `viewer` (an expert or admin), by the reveal rule in the module docstring."""
    ab = get_session(session, session_ref)
    user = require(session, viewer, REVIEWERS, "A/B report", login=False) if viewer is not None else None
    revealed = user is None or user.role in ADMINS or ab.closed_at is not None
    items = {it.id: it for it in session.scalars(select(ABItem).where(ABItem.session_id == ab.id))}
    prompts = {p.id: p for p in session.scalars(select(Prompt).where(Prompt.id.in_([it.prompt_id for it in items.values()])))}
    judgements = latest_judgements(session, ab.id, humans_only)
    if not revealed:
        judgements = [j for j in judgements if j.judge_id == user.id]
    overall, by_tag, by_judge = Tally(), defaultdict(Tally), defaultdict(Tally)
    votes: dict[int, Tally] = defaultdict(Tally)
    labels: dict[str, dict[int, str]] = defaultdict(dict)
    simulated = set()
    for j in judgements:
        overall.add(j.winner)
        by_judge[j.judge_name].add(j.winner)
        votes[j.item_id].add(j.winner)
        labels[j.judge_name][j.item_id] = j.winner
        if j.origin == "simulated":
            simulated.add(j.judge_name)
        for tag in prompts[items[j.item_id].prompt_id].tags or ["(untagged)"]:
            by_tag[tag].add(j.winner)
    agreement = []
    for j1, j2 in combinations(sorted(labels), 2):
        shared = sorted(set(labels[j1]) & set(labels[j2]))
        if not shared:
            continue
        x, y = [labels[j1][i] for i in shared], [labels[j2][i] for i in shared]
        agreement.append(Agreement(j1, j2, len(shared), sum(a == b for a, b in zip(x, y)) / len(shared), cohen_kappa(x, y)))
    per_item = [ItemVotes(i, prompts[items[i].prompt_id].external_id, list(prompts[items[i].prompt_id].tags), votes[i])
                for i in sorted(votes, key=lambda i: items[i].position)]
    names = (ab.name, ab.model_a, ab.model_b) if revealed else (f"ab#{ab.id} on {ab.prompts_ref}", HIDDEN, HIDDEN)
    return ABReport(session_id=ab.id, name=names[0], model_a=names[1], model_b=names[2], prompts_ref=ab.prompts_ref,
                    generation=dict(ab.generation), items=len(items), judged_items=len(votes), overall=overall,
                    by_tag=dict(sorted(by_tag.items())), by_judge=dict(sorted(by_judge.items())),
                    simulated_judges=sorted(simulated), agreement=agreement, per_item=per_item, revealed=revealed)
