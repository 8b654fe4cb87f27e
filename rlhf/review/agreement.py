"""How much annotators agree on rankings, how they lean, and which items an expert must settle.

Notation: an *item* is one prompt that two or more annotators ranked; its *units* are the
responses ranked for it. A ranking (best first, inner lists are ties) becomes one *mid-rank*
per response: `[[0], [2, 1], [3]]` -> response 0: 1, responses 1 and 2: 2.5, response 3: 4.
Tied responses share the mean of the places they occupy, which is what both statistics below
expect of ties.

- Krippendorff's alpha, ordinal (Krippendorff, "Computing Krippendorff's Alpha-Reliability",
  2011): coders = annotators, units = responses, values = mid-ranks; a response an annotator did
  not rank is a missing value. `alpha = 1 - (n-1) * sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck` with
  the coincidence matrix o, value counts n_c and the ordinal distance
  `d_ck = sum_{g=c..k} n_g - (n_c + n_k) / 2`. Per item (one prompt's responses) and overall
  (every item's responses as units). 1 = perfect, 0 = chance, < 0 = systematic disagreement.
- Kendall's tau-b between two annotators' mid-ranks on the responses both ranked,
  `(n_c - n_d) / sqrt((n_0 - n_x)(n_0 - n_y))` (n_x, n_y: pairs tied in x, in y); per item the
  mean over annotator pairs, overall the mean over every pair of every item.
- Per annotator: mean tau with the item's consensus (the mean rank over its annotators, or the
  expert's ranking once the item is adjudicated), mean tau with expert adjudications, and the
  share of the annotator's reviewed items an expert approved.
- Position bias: how often the first *shown* candidate lands in the best group, against the
  rate a judge ignoring position would give (|best| / K per ranking). Length bias: the same for
  the longest candidate. `z` is the excess in standard errors (normal approximation).
- Adjudication: an item whose alpha is under the threshold goes to the expert queue; the
  expert's ranking (origin human, status approved) becomes the consensus, the annotators'
  rankings of it are marked superseded, and a Review row says who and why.

Rankings made by review actions themselves (an edit's preference pair, an adjudication) are
expert decisions, not annotations: they are kept out of the annotator statistics.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.errors import NotFoundError, RlhfError
from rlhf.data.formats import content_hash
from rlhf.data.store.models import Prompt, Ranking, Response, Review, User

DEFAULT_THRESHOLD = 0.5
"""items whose ordinal alpha is below this go to the adjudication queue (0.667 is Krippendorff's
"tentative conclusions" bar; rankings of close candidates rarely reach it, so the default is lower)"""

DERIVED_VERDICTS = ("edit", "adjudicate")  # a Review with one of these on a ranking: the ranking is an expert's decision


# --------------------------------------------------------------------------- statistics (pure)


def mid_ranks(order: Sequence[Sequence[int]]) -> dict[int, float]:
    """Response index -> mid-rank (1 = best; a tie shares the mean of its places).

    >>> mid_ranks([[0], [2, 1], [3]])
    {0: 1.0, 2: 2.5, 1: 2.5, 3: 4.0}
    """
    ranks, place = {}, 1
    for group in order:
        mid = place + (len(group) - 1) / 2
        for idx in group:
            ranks[idx] = float(mid)
        place += len(group)
    return ranks


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b with ties; nan when one side has every value tied (or fewer than 2 values).

    >>> round(kendall_tau_b([1, 2, 3], [1, 2.5, 2.5]), 4)  # (2 - 0) / sqrt(3 * 2)
    0.8165
    """
    if len(x) != len(y):
        raise ValueError("kendall_tau_b: x and y differ in length")
    n0 = nc = nd = tx = ty = 0
    for i, j in combinations(range(len(x)), 2):
        n0 += 1
        dx, dy = x[i] - x[j], y[i] - y[j]
        tx += dx == 0
        ty += dy == 0
        if dx * dy > 0:
            nc += 1
        elif dx * dy < 0:
            nd += 1
    denom = math.sqrt((n0 - tx) * (n0 - ty))
    return (nc - nd) / denom if denom else math.nan


def krippendorff_alpha_ordinal(data: Sequence[Sequence[float | None]]) -> float:
    """Ordinal alpha of a coders x units table (None or nan = missing); nan when undefined.

    Units with fewer than two values are not pairable and drop out, as in Krippendorff (2011).
    """
    units = list(zip(*data)) if data else []
    values_in: list[list[float]] = []
    for unit in units:
        vals = [float(v) for v in unit if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if len(vals) >= 2:
            values_in.append(vals)
    domain = sorted({v for vals in values_in for v in vals})
    if len(domain) < 2:
        return math.nan
    index = {v: i for i, v in enumerate(domain)}
    k = len(domain)
    o = [[0.0] * k for _ in range(k)]  # coincidence matrix
    for vals in values_in:
        m = len(vals)
        for a, b in combinations(range(m), 2):
            c, d = index[vals[a]], index[vals[b]]
            o[c][d] += 1 / (m - 1)
            o[d][c] += 1 / (m - 1)
    n_c = [sum(row) for row in o]
    n = sum(n_c)
    cum = [0.0]
    for count in n_c:
        cum.append(cum[-1] + count)

    def d2(c: int, e: int) -> float:  # ordinal metric: sum of counts from c to e, minus half of both ends
        lo, hi = min(c, e), max(c, e)
        return (cum[hi + 1] - cum[lo] - (n_c[lo] + n_c[hi]) / 2) ** 2

    observed = sum(o[c][e] * d2(c, e) for c in range(k) for e in range(k) if c != e)
    expected = sum(n_c[c] * n_c[e] * d2(c, e) for c in range(k) for e in range(k) if c != e)
    if expected == 0:
        return math.nan
    return 1 - (n - 1) * observed / expected


def _mean(xs: Iterable[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return sum(vals) / len(vals) if vals else math.nan


@dataclass(frozen=True)
class RankingRecord:
    """One annotator's ranking of one prompt's responses, as the statistics need it."""

    ranking_id: int
    prompt_id: int
    annotator: str
    response_ids: tuple[int, ...]  # `order` indexes into this
    order: tuple[tuple[int, ...], ...]  # best first, inner tuples are ties
    shown_order: tuple[int, ...] | None = None  # response ids as the annotator saw them, top to bottom
    lengths: dict[int, int] = field(default_factory=dict)  # response id -> characters

    def ranks(self) -> dict[int, float]:
        """Response id -> mid-rank."""
        return {self.response_ids[i]: r for i, r in mid_ranks(self.order).items()}

    @property
    def best(self) -> set[int]:
        return {self.response_ids[i] for i in self.order[0]}


def tau_between(a: dict[int, float], b: dict[int, float]) -> float:
    """tau-b on the responses both rank-maps cover."""
    shared = sorted(set(a) & set(b))
    return kendall_tau_b([a[r] for r in shared], [b[r] for r in shared]) if len(shared) >= 2 else math.nan


def item_alpha(rank_maps: Sequence[dict[int, float]]) -> float:
    """Ordinal alpha of several annotators' rank maps over the union of their responses (missing = unranked)."""
    units = sorted({r for m in rank_maps for r in m})
    return krippendorff_alpha_ordinal([[m.get(u) for u in units] for m in rank_maps])


@dataclass
class BiasStat:
    """How often a feature (shown first, longest) wins, against the rate of a judge who ignores it."""

    n: int = 0  # rankings counted
    hits: float = 0.0  # rankings where the feature landed in the best group (fractional for tied longest)
    expected: float = 0.0  # sum over rankings of |best| / K
    variance: float = 0.0  # sum of p(1-p): the Poisson-binomial variance of `hits` under no bias

    def add(self, hit: float, p: float) -> None:
        self.n += 1
        self.hits += hit
        self.expected += p
        self.variance += p * (1 - p)

    @property
    def rate(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def chance(self) -> float:
        return self.expected / self.n if self.n else math.nan

    @property
    def z(self) -> float:
        return (self.hits - self.expected) / math.sqrt(self.variance) if self.variance > 0 else math.nan


def position_hit(rec: RankingRecord) -> tuple[float, float] | None:
    """(1 if the first-shown response is among the best else 0, |best|/K); None without a shown order."""
    if not rec.shown_order:
        return None
    return float(rec.shown_order[0] in rec.best), len(rec.best) / len(rec.response_ids)


def length_hit(rec: RankingRecord) -> tuple[float, float] | None:
    """(share of the longest responses that are among the best, |best|/K); None without lengths."""
    if not rec.lengths:
        return None
    longest_len = max(rec.lengths[r] for r in rec.response_ids)
    longest = [r for r in rec.response_ids if rec.lengths[r] == longest_len]
    return sum(r in rec.best for r in longest) / len(longest), len(rec.best) / len(rec.response_ids)


# --------------------------------------------------------------------------- reports


@dataclass
class ItemAgreement:
    prompt_id: int
    external_id: str
    tags: list[str]
    annotators: list[str]
    ranking_ids: list[int]
    alpha: float  # ordinal Krippendorff's alpha over this prompt's responses
    mean_tau: float  # mean pairwise tau-b over annotator pairs
    consensus: dict[int, float]  # response id -> consensus rank (mean rank, or the adjudicated ranking's)
    adjudicated_by: str | None = None
    adjudication_ranking_id: int | None = None

    def contested(self, threshold: float) -> bool:
        return len(self.annotators) >= 2 and not math.isnan(self.alpha) and self.alpha < threshold


@dataclass
class AnnotatorAgreement:
    annotator: str
    rankings: int = 0
    shared_items: int = 0  # items this annotator ranked along with someone else
    tau_consensus: float = math.nan
    tau_expert: float = math.nan  # vs expert adjudications of items they ranked
    adjudicated_items: int = 0
    approved: int = 0  # items (demonstrations + rankings) whose latest expert verdict is approve
    rejected: int = 0
    position: BiasStat = field(default_factory=BiasStat)
    length: BiasStat = field(default_factory=BiasStat)

    @property
    def approval_rate(self) -> float:
        done = self.approved + self.rejected
        return self.approved / done if done else math.nan


@dataclass
class AgreementReport:
    threshold: float
    items: list[ItemAgreement]  # prompts ranked by two or more annotators
    annotators: list[AnnotatorAgreement]
    alpha: float  # overall ordinal alpha, every item's responses as units
    mean_tau: float  # mean tau-b over every annotator pair of every item
    rankings: int  # annotator rankings considered

    @property
    def contested(self) -> list[ItemAgreement]:
        return [it for it in self.items if it.contested(self.threshold)]

    @property
    def queue(self) -> list[ItemAgreement]:
        """The adjudication queue: contested items no expert has settled yet."""
        return [it for it in self.contested if it.adjudicated_by is None]


def compute(records: Sequence[RankingRecord], threshold: float = DEFAULT_THRESHOLD,
            adjudications: dict[int, RankingRecord] | None = None, verdicts: dict[str, tuple[int, int]] | None = None,
            prompts: dict[int, tuple[str, list[str]]] | None = None) -> AgreementReport:
    """The whole report from plain records (no database): tests feed hand-made cases here.

    `adjudications`: prompt id -> the expert's ranking; `verdicts`: annotator -> (approved, rejected);
    `prompts`: prompt id -> (external id, tags).
    """
    adjudications = adjudications or {}
    prompts = prompts or {}
    latest: dict[tuple[int, str], RankingRecord] = {}
    for rec in sorted(records, key=lambda r: r.ranking_id):  # an annotator's newer ranking of a prompt replaces the older
        latest[(rec.prompt_id, rec.annotator)] = rec
    by_prompt: dict[int, list[RankingRecord]] = defaultdict(list)
    for rec in latest.values():
        by_prompt[rec.prompt_id].append(rec)

    people: dict[str, AnnotatorAgreement] = {}

    def person(name: str) -> AnnotatorAgreement:
        return people.setdefault(name, AnnotatorAgreement(name))

    for rec in latest.values():
        a = person(rec.annotator)
        a.rankings += 1
        if (hit := position_hit(rec)) is not None:
            a.position.add(*hit)
        if (hit := length_hit(rec)) is not None:
            a.length.add(*hit)

    items, all_taus = [], []
    tau_cons: dict[str, list[float]] = defaultdict(list)
    tau_exp: dict[str, list[float]] = defaultdict(list)
    for pid in sorted(by_prompt):
        recs = sorted(by_prompt[pid], key=lambda r: r.annotator)
        maps = [r.ranks() for r in recs]
        adj = adjudications.get(pid)
        for rec, m in zip(recs, maps):
            if adj is not None:
                tau_exp[rec.annotator].append(tau_between(m, adj.ranks()))
                person(rec.annotator).adjudicated_items += 1
        if len(recs) < 2:
            continue
        taus = [tau_between(a, b) for a, b in combinations(maps, 2)]
        all_taus.extend(taus)
        units = sorted({r for m in maps for r in m})
        if adj is not None:
            consensus = adj.ranks()
        else:  # the mean rank over the annotators who ranked each response
            consensus = {u: _mean(m[u] for m in maps if u in m) for u in units}
        for rec, m in zip(recs, maps):
            tau_cons[rec.annotator].append(tau_between(m, consensus))
            person(rec.annotator).shared_items += 1
        ext, tags = prompts.get(pid, (str(pid), []))
        items.append(ItemAgreement(
            prompt_id=pid, external_id=ext, tags=list(tags), annotators=[r.annotator for r in recs],
            ranking_ids=[r.ranking_id for r in recs], alpha=item_alpha(maps), mean_tau=_mean(taus), consensus=consensus,
            adjudicated_by=adj.annotator if adj else None, adjudication_ranking_id=adj.ranking_id if adj else None))

    for name, a in people.items():
        a.tau_consensus = _mean(tau_cons.get(name, []))
        a.tau_expert = _mean(tau_exp.get(name, []))
        a.approved, a.rejected = (verdicts or {}).get(name, (0, 0))
    for name, (ok, bad) in (verdicts or {}).items():  # annotators with reviewed demonstrations but no rankings
        if name not in people:
            people[name] = AnnotatorAgreement(name, approved=ok, rejected=bad)

    # overall alpha: every item's responses are units, every annotator a coder (missing where they did not rank)
    coders = sorted({r.annotator for pid, recs in by_prompt.items() if len(recs) >= 2 for r in recs})
    units = [(pid, u) for pid, recs in sorted(by_prompt.items()) if len(recs) >= 2
             for u in sorted({rid for r in recs for rid in r.response_ids})]
    rank_of = {(r.prompt_id, r.annotator): r.ranks() for recs in by_prompt.values() for r in recs}
    table = [[rank_of.get((pid, c), {}).get(u) for pid, u in units] for c in coders]
    overall = krippendorff_alpha_ordinal(table) if units else math.nan
    return AgreementReport(threshold=threshold, items=items, annotators=sorted(people.values(), key=lambda a: a.annotator),
                           alpha=overall, mean_tau=_mean(all_taus), rankings=len(latest))


# --------------------------------------------------------------------------- the store


def derived_ranking_ids(session: Session) -> dict[int, str]:
    """Rankings that review actions made (edit preferences, adjudications): ranking id -> verdict."""
    rows = session.execute(select(Review.item_id, Review.verdict)
                           .where(Review.item_type == "ranking", Review.verdict.in_(DERIVED_VERDICTS))).all()
    return {item_id: verdict for item_id, verdict in rows}


def _record(r: Ranking, name: str, texts: dict[int, str]) -> RankingRecord:
    return RankingRecord(ranking_id=r.id, prompt_id=r.prompt_id, annotator=name, response_ids=tuple(r.response_ids),
                         order=tuple(tuple(g) for g in r.order),
                         shown_order=tuple(r.shown_order) if r.shown_order else None,
                         lengths={rid: len(texts[rid]) for rid in r.response_ids if rid in texts})


def load(session: Session, include_simulated: bool = False) -> tuple[list[RankingRecord], dict[int, RankingRecord],
                                                                     dict[str, tuple[int, int]], dict[int, tuple[str, list[str]]]]:
    """(annotator records, adjudications by prompt, expert verdicts by annotator, prompt labels) from the store.

    Annotator rankings: every status but rejected (a superseded ranking still shows what its
    annotator thought); origin human (and simulated on request); never a review-made ranking.
    """
    derived = derived_ranking_ids(session)
    q = (select(Ranking, User.name).outerjoin(User, Ranking.annotator_id == User.id)
         .where(Ranking.status != "rejected").order_by(Ranking.id))
    rows = session.execute(q).all()
    ids = {rid for r, _ in rows for rid in r.response_ids}
    texts = dict(session.execute(select(Response.id, Response.text).where(Response.id.in_(ids))).all()) if ids else {}
    records, adjudications = [], {}
    for r, name in rows:
        if derived.get(r.id) == "adjudicate":
            adjudications[r.prompt_id] = _record(r, name or "?", texts)  # ordered by id: the latest one wins
            continue
        if r.id in derived or (r.origin == "simulated" and not include_simulated):
            continue
        records.append(_record(r, name or f"anonymous-{r.id}", texts))
    verdicts = expert_verdicts(session)
    pids = {r.prompt_id for r in records}
    prompts = {p.id: (p.external_id, list(p.tags)) for p in session.scalars(select(Prompt).where(Prompt.id.in_(pids)))}
    return records, adjudications, verdicts, prompts


def expert_verdicts(session: Session) -> dict[str, tuple[int, int]]:
    """Annotator -> (approved, rejected) over their demonstrations and rankings, by each item's latest verdict."""
    from rlhf.data.store.models import Demonstration

    latest: dict[tuple[str, int], tuple[str, str]] = {}
    for rev in session.scalars(select(Review).where(Review.verdict.in_(("approve", "reject", "edit")),
                                                    Review.item_type.in_(("demonstration", "ranking")))
                               .order_by(Review.id)):
        latest[(rev.item_type, rev.item_id)] = (rev.verdict, rev.reviewer_name)
    derived = derived_ranking_ids(session)
    authors: dict[tuple[str, int], str] = {}
    for kind, model in (("demonstration", Demonstration), ("ranking", Ranking)):
        ids = [i for k, i in latest if k == kind]
        if ids:
            for item_id, name in session.execute(select(model.id, User.name).join(User, model.annotator_id == User.id)
                                                 .where(model.id.in_(ids))):
                authors[(kind, item_id)] = name
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, (verdict, reviewer) in latest.items():
        if key not in authors or (key[0] == "ranking" and key[1] in derived) or reviewer == authors[key]:
            continue  # unknown author, a review-made ranking, or an expert's own edit: not a verdict on an annotator
        if verdict == "approve":
            out[authors[key]][0] += 1
        elif verdict in ("reject", "edit"):  # an edited demonstration was not acceptable as written
            out[authors[key]][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def report(session: Session, threshold: float = DEFAULT_THRESHOLD, include_simulated: bool = False) -> AgreementReport:
    """The agreement report of everything in the store."""
    records, adjudications, verdicts, prompts = load(session, include_simulated)
    return compute(records, threshold, adjudications, verdicts, prompts)


# --------------------------------------------------------------------------- output


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def format_report(rep: AgreementReport) -> str:
    """The plain-text tables `rlhf agreement` prints (and the dashboard mirrors)."""
    lines = [f"Rankings: {rep.rankings} by {len([a for a in rep.annotators if a.rankings])} annotators; "
             f"{len(rep.items)} items ranked by 2+ annotators",
             f"Overall: Krippendorff's alpha (ordinal) = {_f(rep.alpha)}, mean pairwise Kendall tau-b = {_f(rep.mean_tau)}",
             "", "Items (ranked by 2+ annotators):",
             f"  {'prompt':<24} {'tags':<18} {'n':>2} {'alpha':>7} {'tau':>7}  status"]
    for it in rep.items:
        status = (f"adjudicated by {it.adjudicated_by}" if it.adjudicated_by else
                  "CONTESTED -> adjudication queue" if it.contested(rep.threshold) else "ok")
        lines.append(f"  {it.external_id[:24]:<24} {','.join(it.tags)[:18]:<18} {len(it.annotators):>2} "
                     f"{_f(it.alpha):>7} {_f(it.mean_tau):>7}  {status}")
    if not rep.items:
        lines.append("  (none yet: agreement needs prompts ranked by two or more annotators)")
    lines += ["", "Annotators:",
              f"  {'annotator':<16} {'rank':>4} {'tau~cons':>8} {'tau~exp':>8} {'approved':>9} "
              f"{'first-shown wins':>18} {'longest wins':>18}"]
    for a in rep.annotators:
        pos = f"{_f(a.position.rate, 2)} vs {_f(a.position.chance, 2)}" if a.position.n else "n/a"
        ln = f"{_f(a.length.rate, 2)} vs {_f(a.length.chance, 2)}" if a.length.n else "n/a"
        appr = f"{a.approved}/{a.approved + a.rejected}" if a.approved + a.rejected else "-"
        lines.append(f"  {a.annotator[:16]:<16} {a.rankings:>4} {_f(a.tau_consensus):>8} {_f(a.tau_expert):>8} {appr:>9} "
                     f"{pos:>18} {ln:>18}")
    lines += ["", f"Adjudication queue (alpha < {rep.threshold:g}, not yet adjudicated): {len(rep.queue)} item(s)"
              + (": " + ", ".join(it.external_id for it in rep.queue) if rep.queue else "")]
    return "\n".join(lines)


def item_rows(rep: AgreementReport) -> list[list]:
    """Rows for a table widget: prompt, tags, annotators, alpha, tau, status."""
    return [[it.external_id, ", ".join(it.tags), ", ".join(it.annotators), round(it.alpha, 3) if not math.isnan(it.alpha) else None,
             round(it.mean_tau, 3) if not math.isnan(it.mean_tau) else None,
             f"adjudicated by {it.adjudicated_by}" if it.adjudicated_by else
             ("contested" if it.contested(rep.threshold) else "ok")] for it in rep.items]


def annotator_rows(rep: AgreementReport) -> list[list]:
    def r(x):
        return None if math.isnan(x) else round(x, 3)

    return [[a.annotator, a.rankings, r(a.tau_consensus), r(a.tau_expert), r(a.approval_rate), r(a.position.rate),
             r(a.position.chance), r(a.length.rate), r(a.length.chance)] for a in rep.annotators]


ITEM_COLUMNS = ["prompt", "tags", "annotators", "alpha", "tau", "status"]
ANNOTATOR_COLUMNS = ["annotator", "rankings", "tau vs consensus", "tau vs expert", "approval rate", "first-shown wins",
                     "chance", "longest wins", "chance "]


def plot(rep: AgreementReport, path: str | Path) -> Path:
    """A PNG: per-item alpha against the threshold, per-annotator tau with the consensus, and both biases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    names = [it.external_id for it in rep.items]
    vals = [0 if math.isnan(it.alpha) else it.alpha for it in rep.items]
    ax.bar(range(len(vals)), vals, color=["tab:red" if it.contested(rep.threshold) else "tab:blue" for it in rep.items])
    ax.axhline(rep.threshold, color="k", ls="--", lw=1, label=f"threshold {rep.threshold:g}")
    ax.set_xticks(range(len(vals)), names, rotation=60, ha="right", fontsize=7)
    ax.set_title(f"alpha per item (overall {_f(rep.alpha, 2)})")
    ax.legend(fontsize=7)
    ax = axes[1]
    people = [a for a in rep.annotators if a.rankings]
    ax.bar([a.annotator for a in people], [0 if math.isnan(a.tau_consensus) else a.tau_consensus for a in people])
    ax.set_ylim(-1, 1)
    ax.set_title("tau with the consensus")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax = axes[2]
    x = range(len(people))
    w = 0.2
    ax.bar([i - 1.5 * w for i in x], [a.position.rate if a.position.n else 0 for a in people], w, label="first shown wins")
    ax.bar([i - 0.5 * w for i in x], [a.position.chance if a.position.n else 0 for a in people], w, label="chance", alpha=0.5)
    ax.bar([i + 0.5 * w for i in x], [a.length.rate if a.length.n else 0 for a in people], w, label="longest wins")
    ax.bar([i + 1.5 * w for i in x], [a.length.chance if a.length.n else 0 for a in people], w, label="chance ", alpha=0.5)
    ax.set_xticks(list(x), [a.annotator for a in people], rotation=45, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title("position and length bias")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
