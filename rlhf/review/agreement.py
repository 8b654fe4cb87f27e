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

The statistics themselves come from `rlhf.stats` (krippendorff and scipy); this module turns the store's
rankings into their inputs (`load`), computes the report (`compute`, pure: tests feed it hand-made cases)
and `rlhf.review.reports` renders it (text, table rows, plot).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhf.data.store.models import Prompt, Ranking, Response, Review, User
from rlhf.stats import kendall_tau_b, krippendorff_alpha_ordinal, mean, mid_ranks

DEFAULT_THRESHOLD = 0.5
"""items whose ordinal alpha is below this go to the adjudication queue (0.667 is Krippendorff's
"tentative conclusions" bar; rankings of close candidates rarely reach it, so the default is lower)"""

DERIVED_VERDICTS = ("edit", "adjudicate")  # a Review with one of these on a ranking: the ranking is an expert's decision


# --------------------------------------------------------------------------- records


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
            consensus = {u: mean(m[u] for m in maps if u in m) for u in units}
        for rec, m in zip(recs, maps):
            tau_cons[rec.annotator].append(tau_between(m, consensus))
            person(rec.annotator).shared_items += 1
        ext, tags = prompts.get(pid, (str(pid), []))
        items.append(ItemAgreement(
            prompt_id=pid, external_id=ext, tags=list(tags), annotators=[r.annotator for r in recs],
            ranking_ids=[r.ranking_id for r in recs], alpha=item_alpha(maps), mean_tau=mean(taus), consensus=consensus,
            adjudicated_by=adj.annotator if adj else None, adjudication_ranking_id=adj.ranking_id if adj else None))

    for name, a in people.items():
        a.tau_consensus = mean(tau_cons.get(name, []))
        a.tau_expert = mean(tau_exp.get(name, []))
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
                           alpha=overall, mean_tau=mean(all_taus), rankings=len(latest))


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
