"""The project settings of the labeling app: their defaults, their checks, and reading and storing them.

Stored one row per key in `app_settings` (JSON values); a key never stored reads as its default here.
`labeling_app.queue` re-exports all of this (the queue, the handlers and the admin page read settings
through it); the admin page's form is `admin.FORM_DEFAULTS`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.store.app_models import AppSetting
from rlhf.data.store.models import utcnow

DEFAULT_GUIDELINES = """\
**Writing an ideal answer**
- Answer the last user message as the best assistant would: correct, helpful, honest, safe.
- Follow the conversation so far; keep the answer as long as it needs to be, no longer.
- If the request is harmful, decline briefly and offer a safe alternative.
"""

DEFAULT_RANK_GUIDELINES = """\
**Ranking candidates**
- Order the answers best to worst. Give equal numbers to answers that are equally good (a tie).
- Judge correctness first, then helpfulness, then clarity. Ignore length for its own sake.
- If every answer is unacceptable, tick *All bad* (you may still order them).
- Skip anything you cannot judge; it will not come back to you.
"""

QUEUE_POLICIES = ("random", "uncertainty")
DEFAULTS: dict[str, object] = {
    "guidelines": DEFAULT_GUIDELINES,  # markdown shown beside every Write item (the key predates Rank's own text)
    "rank_guidelines": DEFAULT_RANK_GUIDELINES,  # markdown shown beside every Rank item
    "write_guidelines_version": 1,  # +1 whenever the Write text changes (the page then says so once)
    "rank_guidelines_version": 1,
    "session_goal": 50,  # items a day per person (the progress bar's goal)
    "write_overlap": 1,  # different people who write an answer to each prompt
    "rank_overlap": 3,  # different people who rank each candidate set (3 lets agreement be measured)
    "max_candidates": 6,  # most candidates shown in one rank item (K)
    "lease_minutes": 60,  # an open assignment holds its overlap place this long
    "demos_as_candidates": False,  # also add each submitted demonstration as a human candidate to rank
    "queue_policy": "random",  # rank items: random = oldest first, model-blind; uncertainty = highest item priority first
    "exploration": 0.2,  # uncertainty policy: this share of claims takes a random available item instead
    "gold_rate": 0.1,  # this share of claims serves a gold item the person has not seen (when there is one)
    "quality_threshold": 0.5,  # the admin page flags annotators whose gold accuracy or agreement is below this
    "show_feedback": True,  # after a submit, show the reward model's order and the consensus of the item just ranked
}
INT_SETTINGS = {"write_overlap": (1, 50), "rank_overlap": (1, 50), "max_candidates": (2, 9), "lease_minutes": (1, 24 * 60),
                "write_guidelines_version": (1, 10**9), "rank_guidelines_version": (1, 10**9), "session_goal": (1, 10000)}
FLOAT_SETTINGS = {"exploration": (0.0, 1.0), "gold_rate": (0.0, 1.0), "quality_threshold": (-1.0, 1.0)}
BOOL_SETTINGS = ("demos_as_candidates", "show_feedback")


class QueueError(Exception):
    """A queue rule refused the action (e.g. submitting an item that is not yours)."""


# --------------------------------------------------------------------------- settings


def get_settings(session: Session) -> dict:
    """The project settings, read once per transaction (kept in `session.info` until it ends)."""
    cached = session.info.get("app_settings")
    if cached is None:
        stored = dict(session.execute(select(AppSetting.key, AppSetting.value)).all())
        cached = session.info["app_settings"] = {k: stored.get(k, v) for k, v in DEFAULTS.items()}
    return dict(cached)


def put_settings(session: Session, values: dict, by: str) -> dict:
    """Validate and store settings; unknown keys are an error."""
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise QueueError(f"unknown setting(s): {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}")
    clean = {}
    for key, value in values.items():
        if key in INT_SETTINGS or key in FLOAT_SETTINGS:
            whole = key in INT_SETTINGS
            lo, hi = INT_SETTINGS[key] if whole else FLOAT_SETTINGS[key]
            try:
                value = int(value) if whole else float(value)
            except (TypeError, ValueError):
                raise QueueError(f"{key}: expected a {'whole ' if whole else ''}number, got {value!r}") from None
            if not lo <= value <= hi:  # also refuses nan
                raise QueueError(f"{key}: {value} is outside {lo}..{hi}")
        elif key == "queue_policy":
            value = str(value or "").strip()
            if value not in QUEUE_POLICIES:
                raise QueueError(f"queue_policy: {value!r} is not one of {', '.join(QUEUE_POLICIES)}")
        elif key in BOOL_SETTINGS:
            value = bool(value)
        elif key in ("guidelines", "rank_guidelines"):
            value = str(value or "")
        clean[key] = value
    session.info.pop("app_settings", None)
    for key, value in clean.items():
        row = session.get(AppSetting, key)
        if row is None:
            session.add(AppSetting(key=key, value=value, updated_by=by))
        else:
            row.value, row.updated_by, row.updated_at = value, by, utcnow()
    session.flush()
    return get_settings(session)
