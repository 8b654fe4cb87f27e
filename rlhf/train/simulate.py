"""Simulated annotators: rank stored candidates with a rubric, plus calibrated noise. Never people.

A simulated annotator `sim:<rubric>:<i>` is a `User` with `simulated=True` and no password (it
cannot log in); its rankings have origin "simulated", so snapshots leave them out unless asked
(`--include-simulated`) and the app can tell them apart.

The noise model (Thurstone, 1927: a judge perceives each item's quality plus Gaussian noise):

    perceived_i = rubric(prompt, response_i) + sigma * eps_g(i),   eps ~ N(0, 1)

and the ranking is the responses sorted by perceived quality, best first. Responses the rubric
scores exactly equal form one group g that shares one noise draw, so they stay tied. A pair
(i, j) with rubric gap d = |s_i - s_j| > 0 is then flipped with probability

    P(flip i, j) = Phi(-d / (sigma * sqrt(2)))

(a difference of two independent N(0, sigma^2) draws). `sigma` is chosen per ranking (the root of a
monotone function, `rlhf.stats.solve_increasing`) so that the mean of P(flip) over the ranking's
non-tied pairs equals the requested noise P: the expected fraction of flipped pairs is exactly P
for every ranking, and as in real annotation, close calls flip more often than clear ones. P = 0
is the rubric's own order; P = 0.5 is a random order. `measured_flip_rate` counts the flips a set
of rankings actually has.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from rlhf.errors import RlhfError
from rlhf.stats import normal_cdf, solve_increasing

SIM_PREFIX = "sim:"


def annotator_name(rubric: str, index: int) -> str:
    """`sim:<rubric>:<i>`: says it is simulated, which rubric it follows, and which of N it is."""
    return f"{SIM_PREFIX}{rubric}:{index}"


def rubric_of(annotator: str) -> str | None:
    """The rubric a simulated annotator name follows (`sim:concise_helpful:0` -> `concise_helpful`), else None."""
    if not annotator.startswith(SIM_PREFIX):
        return None
    rubric, _, index = annotator[len(SIM_PREFIX):].rpartition(":")
    return rubric if rubric and index.isdigit() else None


def expected_flip_rate(scores: list[float], sigma: float) -> float:
    """Mean P(flip) over the non-tied pairs of `scores` under noise `sigma` (0 when all are tied)."""
    gaps = [abs(a - b) for i, a in enumerate(scores) for b in scores[i + 1:] if a != b]
    if not gaps:
        return 0.0
    if sigma <= 0:
        return 0.0
    return sum(normal_cdf(-d / (sigma * math.sqrt(2.0))) for d in gaps) / len(gaps)


def calibrate_sigma(scores: list[float], noise: float) -> float:
    """The sigma whose expected flip rate over these scores' non-tied pairs is `noise` (to 1e-9)."""
    if noise <= 0:
        return 0.0
    if noise >= 0.5:
        return math.inf
    gaps = [abs(a - b) for i, a in enumerate(scores) for b in scores[i + 1:] if a != b]
    if not gaps:
        return 0.0
    # the rate rises monotonically from 0 (sigma = 0) towards 0.5
    return solve_increasing(lambda sigma: expected_flip_rate(scores, sigma), noise, 0.0, max(gaps))


def noisy_order(scores: list[float], noise: float, rng: random.Random) -> list[list[int]]:
    """A best-first order (inner lists are ties) of `scores` with a fraction `noise` of pairs flipped in expectation.

    >>> noisy_order([0.1, 2.0, 0.1, 1.0], 0.0, random.Random(0))
    [[1], [3], [0, 2]]
    """
    if not 0 <= noise <= 0.5:
        raise RlhfError(f"--noise {noise}: expected a fraction of flipped pairs in [0, 0.5]")
    groups: dict[float, list[int]] = {}
    for i, s in enumerate(scores):
        groups.setdefault(s, []).append(i)
    sigma = calibrate_sigma(scores, noise)
    perceived = []
    for s, members in groups.items():
        eps = rng.gauss(0.0, 1.0)
        value = eps if math.isinf(sigma) else s + sigma * eps
        perceived.append((value, members))
    perceived.sort(key=lambda vm: -vm[0])
    return [sorted(members) for _, members in perceived]


def flips(scores: list[float], order: list[list[int]]) -> tuple[int, int]:
    """(flipped, compared): non-tied pairs of `scores` that `order` puts the other way round, and how many there are."""
    position = {i: g for g, members in enumerate(order) for i in members}
    flipped = compared = 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            if scores[i] == scores[j]:
                continue
            compared += 1
            better, worse = (i, j) if scores[i] > scores[j] else (j, i)
            flipped += position[better] >= position[worse]  # a tie the rubric does not make counts as a flip
    return flipped, compared


def measured_flip_rate(rankings: list[tuple[list[float], list[list[int]]]]) -> float:
    """Fraction of all the rubric's non-tied pairs, over many (scores, order) rankings, that the orders flip."""
    counts = [flips(scores, order) for scores, order in rankings]
    compared = sum(c for _, c in counts)
    return sum(f for f, _ in counts) / compared if compared else 0.0


@dataclass
class SimulateReport:
    rubric: str
    noise: float
    annotators: list[str]
    prompts_seen: int = 0
    prompts_short: int = 0  # fewer than 2 candidate responses: nothing to rank
    already_ranked: int = 0  # (prompt, annotator, answer set) ranked before: skipped
    added: int = 0
    pairs: int = 0  # preference pairs the new rankings yield (ties dropped)
    flipped: int = 0  # of the rubric's non-tied pairs, how many the new rankings flipped
    compared: int = 0
    status: str = "pending"
    ranking_ids: list[int] = field(default_factory=list)

    @property
    def flip_rate(self) -> float:
        return self.flipped / self.compared if self.compared else 0.0

    def summary(self) -> dict:
        return {"rubric": self.rubric, "noise": self.noise, "annotators": self.annotators, "prompts_seen": self.prompts_seen,
                "prompts_short": self.prompts_short, "already_ranked": self.already_ranked, "rankings_added": self.added,
                "pairs": self.pairs, "measured_flip_rate": round(self.flip_rate, 4), "status": self.status}


def noise_levels(noise: float | list[float], annotators: int) -> tuple[list[float], int]:
    """(noise of each annotator, number of annotators): one level for all, or one per annotator (mixed reliability).

    >>> noise_levels(0.1, 2)
    ([0.1, 0.1], 2)
    >>> noise_levels([0.05, 0.2, 0.45], 1)
    ([0.05, 0.2, 0.45], 3)
    """
    levels = list(noise) if isinstance(noise, (list, tuple)) else [float(noise)] * annotators
    if isinstance(noise, (list, tuple)) and annotators not in (1, len(levels)):
        raise RlhfError(f"--noise has {len(levels)} levels (one per annotator) but --annotators is {annotators}")
    for level in levels:
        if not 0 <= level <= 0.5:
            raise RlhfError(f"--noise {level}: expected a fraction of flipped pairs in [0, 0.5]")
    return levels, len(levels)


def simulate_rankings(rubric_spec: str, noise: float | list[float], model_version: str | None = None, prompts_ref: str | None = None,
                      seed: int = 0, annotators: int = 1, overlap: int = 1, approve: bool = False,
                      progress: bool = True) -> SimulateReport:
    """Rank every prompt's model responses with `annotators` simulated annotators (`overlap` of them per prompt);
    `noise` is one level for all or a list, one per annotator (annotators of mixed reliability).

    Prompt p (in id order) goes to annotators (p + 0 .. p + overlap - 1) mod N, so with overlap > 1 the same
    responses are ranked by several annotators (for agreement metrics). Each (prompt, annotator) draws its
    noise from its own seeded stream: results do not depend on which prompts are new. One transaction.
    """
    from sqlalchemy import select
    from tqdm.auto import tqdm

    from rlhf.data.pairs import ranking_to_pairs
    from rlhf.rubrics import load_rubric, prompt_text
    from rlhf.data.store import session_scope
    from rlhf.data import registry
    from rlhf.data.records import Approval, add_ranking, get_or_create_user
    from rlhf.data.store.models import Prompt, Ranking, Response

    levels, annotators = noise_levels(noise, annotators)
    if annotators < 1 or not 1 <= overlap <= annotators:
        raise RlhfError(f"--annotators {annotators} --overlap {overlap}: need 1 <= overlap <= annotators")
    name, rubric = load_rubric(rubric_spec)
    names = [annotator_name(name, i) for i in range(annotators)]
    report = SimulateReport(rubric=name, noise=noise, annotators=names, status="approved" if approve else "pending")
    approval = Approval("simulate", f"simulated rankings approved with --approve (rubric {name})") if approve else None

    restrict: set[str] | None = None
    if prompts_ref:
        from rlhf.train.generate import load_prompt_rows

        _, rows = load_prompt_rows(prompts_ref, "all")
        restrict = {r["prompt_id"] for r in rows}
    with session_scope() as s:
        if model_version:  # sft@latest -> the sft@vN its responses were stored under
            model_version = registry.pin_model(s, model_version, strict=model_version.endswith("@latest"))
        users = [get_or_create_user(s, n, role="annotator", simulated=True) for n in names]
        for u in users:
            if not u.simulated:
                raise RlhfError(f"user {u.name!r} exists and is a person, not a simulated annotator: pick another rubric name")
        q = select(Response).where(Response.origin == "model").order_by(Response.prompt_id, Response.id)
        if model_version:
            q = q.where(Response.model_version == model_version)
        by_prompt: dict[int, list[Response]] = {}
        for r in s.scalars(q):
            by_prompt.setdefault(r.prompt_id, []).append(r)
        prompts = s.scalars(select(Prompt).order_by(Prompt.id)).all()
        if restrict is not None:
            prompts = [p for p in prompts if p.external_id in restrict]
        # what each simulated annotator ranked before: a prompt with new candidates (the next round's) is ranked again
        ranked = {(p, a, frozenset(ids)) for p, a, ids in s.execute(
            select(Ranking.prompt_id, Ranking.annotator_id, Ranking.response_ids).where(Ranking.origin == "simulated"))}
        for pi, prompt in enumerate(tqdm(prompts, desc=f"ranking with {name}", unit="prompt", disable=not progress)):
            report.prompts_seen += 1
            responses = by_prompt.get(prompt.id, [])
            if len(responses) < 2:
                report.prompts_short += 1
                continue
            question = prompt_text(prompt.messages)
            scores = [float(rubric(question, r.text)) for r in responses]
            bad = [i for i, x in enumerate(scores) if not math.isfinite(x)]
            if bad:
                raise RlhfError(f"--rubric {rubric_spec}: returned {scores[bad[0]]} for response {responses[bad[0]].id} "
                                f"of prompt {prompt.external_id!r}: a rubric must return a finite number")
            for a in range(overlap):
                who = (pi + a) % annotators
                user, level = users[who], levels[who]
                ids = [r.id for r in responses]
                if (prompt.id, user.id, frozenset(ids)) in ranked:
                    report.already_ranked += 1
                    continue
                rng = random.Random(f"{seed}:{user.name}:{prompt.external_id}")
                order = noisy_order(scores, level, rng)
                reason = (f"simulated by rubric {name} with noise {level}: scores "
                          + ", ".join(f"{x:.3f}" for x in scores))
                row, created = add_ranking(s, prompt, ids, order, annotator=user, origin="simulated", reason=reason,
                                           shown_order=ids, approved=approval)
                ranked.add((prompt.id, user.id, frozenset(ids)))
                if not created:  # the same order by the same annotator is stored already
                    report.already_ranked += 1
                    continue
                f, c = flips(scores, order)
                report.flipped, report.compared = report.flipped + f, report.compared + c
                report.added += 1
                report.pairs += len(ranking_to_pairs(order))
                report.ranking_ids.append(row.id)
    return report
