"""Reading a reward model: pair tokenization, scores r(x, y), the tokenizer check, held-out evaluation.

A reward model r(x, y) is a sequence classifier with one output (`num_labels=1`) read at the last
token of the chat-formatted prompt x + answer y. Every reader of one (the RM stage, PPO's reward,
`rlhf score`) tokenizes through `tokenize_response`: the prompt is cut from the LEFT so the answer
is always whole (the most recent turns of a conversation matter most); an answer longer than
`max_length` on its own is an error.

Shapes: N pairs, M scored responses, T tokens.
"""

from __future__ import annotations

import math
from collections import defaultdict

from rlhf.errors import RlhfError
from rlhf.stats import bt_ece, pearson
from rlhf.train.modeling import eval_mode


# --- tokenization -----------------------------------------------------------------------------


def _ids(out) -> list[int]:
    return list(out["input_ids"] if not isinstance(out, list) else out)


def tokenize_response(tokenizer, prompt: list[dict], answer: str, max_length: int) -> tuple[list[int], bool]:
    """(input ids of the chat-formatted prompt + answer, whether the prompt was cut from the left).

    The answer's tokens (with the template's end-of-turn) are kept whole; the prompt keeps its last
    `max_length - len(answer)` tokens. An answer that alone does not fit is an RlhfError.
    """
    prompt_ids = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
    full = _ids(tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": answer}], tokenize=True))
    if full[:len(prompt_ids)] != prompt_ids:  # a template that renders the prompt differently once answered
        common = next((i for i, (a, b) in enumerate(zip(full, prompt_ids)) if a != b), min(len(full), len(prompt_ids)))
        prompt_ids = full[:common]
    answer_ids = full[len(prompt_ids):]
    if len(full) <= max_length:
        return full, False
    room = max_length - len(answer_ids)
    if room < 1:
        raise RlhfError(f"an answer is {len(answer_ids)} tokens, longer than --max-length {max_length} on its own "
                        f"(answer starts {answer[:60]!r}): raise --max-length or generate shorter candidates")
    return prompt_ids[-room:] + answer_ids, True


def tokenize_pairs(ds, tokenizer, max_length: int, progress: bool = True):
    """A copy of a preferences dataset with `chosen_ids` / `rejected_ids` (prompts cut from the left) and
    `truncated` (bool); trl's RewardTrainer takes these as they are and never drops a pair."""
    from tqdm.auto import tqdm

    cache: dict[tuple[str, str], tuple[list[int], bool]] = {}

    def tok(prompt, answer):
        key = (repr(prompt), answer)
        if key not in cache:
            cache[key] = tokenize_response(tokenizer, prompt, answer, max_length)
        return cache[key]

    chosen, rejected, truncated = [], [], []
    for row in tqdm(ds, desc="tokenizing pairs", unit="pair", disable=not progress, total=len(ds)):
        c, ct = tok(row["prompt"], row["chosen"][-1]["content"])
        r, rt = tok(row["prompt"], row["rejected"][-1]["content"])
        chosen.append(c)
        rejected.append(r)
        truncated.append(ct or rt)
    return ds.add_column("chosen_ids", chosen).add_column("rejected_ids", rejected).add_column("truncated", truncated)


def check_same_tokenizer(tok_a, tok_b, what: str = "the reward model and the policy") -> None:
    """Raise RlhfError unless two tokenizers map text to the same ids (same vocabulary, specials, chat template)."""
    problems = []
    if tok_a.get_vocab() != tok_b.get_vocab():
        problems.append(f"vocabularies differ ({len(tok_a)} vs {len(tok_b)} tokens)")
    for attr in ("eos_token_id", "bos_token_id", "pad_token_id"):
        if getattr(tok_a, attr, None) != getattr(tok_b, attr, None):
            problems.append(f"{attr} {getattr(tok_a, attr, None)} vs {getattr(tok_b, attr, None)}")
    if getattr(tok_a, "chat_template", None) != getattr(tok_b, "chat_template", None):
        problems.append("chat templates differ")
    if problems:
        raise RlhfError(f"tokenizer mismatch between {what}: {'; '.join(problems)}: "
                        "train the reward model from the policy's base (or its SFT version) so both read the same tokens")


# --- scoring ----------------------------------------------------------------------------------


def score_texts(model, tokenizer, prompts_messages: list[list[dict]], responses: list[str], batch_size: int = 16,
                max_length: int = 1024, progress: bool = False) -> list[float]:
    """r(x, y) for each (prompt messages, response text): right-padded batches, prompts cut from the left."""
    import torch
    from tqdm.auto import tqdm

    if len(prompts_messages) != len(responses):
        raise RlhfError(f"{len(prompts_messages)} prompts but {len(responses)} responses")
    seqs = [tokenize_response(tokenizer, p, r, max_length)[0] for p, r in zip(prompts_messages, responses)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths per batch: less padding
    rewards = [0.0] * len(seqs)
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    with eval_mode(model):
        for start in tqdm(range(0, len(order), batch_size), desc="scoring", unit="batch", disable=not progress):
            idx = order[start:start + batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)  # (B, T)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, :len(seqs[i])] = torch.tensor(seqs[i])
                mask[row, :len(seqs[i])] = 1
            with torch.no_grad():
                out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits  # (B, 1)
            for row, i in enumerate(idx):
                rewards[i] = float(out[row, 0])
    return rewards


# --- evaluation -------------------------------------------------------------------------------


def rubric_for(rows, override: str = "") -> str | None:
    """The rubric to check against: `override`, else the one all simulated annotators of the rows used."""
    from rlhf.train.simulate import rubric_of

    if override:
        return override
    found = {rubric_of(a) for a in rows["annotator"]} - {None}
    return found.pop() if len(found) == 1 else None


def evaluate(model, tokenizer, rows, rubric: str | None = None, batch_size: int = 32, max_length: int = 1024,
             progress: bool = True) -> dict:
    """Held-out metrics of a reward model on preference rows (prompt/chosen/rejected + tags, annotator).

    - `accuracy`: share of pairs with r(chosen) > r(rejected); per tag `accuracy/tag/<tag>` and per
      annotator `accuracy/annotator/<name>`.
    - pairs of the same two responses judged by several annotators: `agreement/annotators` (share of such
      response pairs on which all agree), `accuracy/consensus` (RM on those), `accuracy/contested` (share
      of the contested judgements the RM sides with: 0.5 is as good as it gets with two annotators).
    - `accuracy/rubric`: agreement with the rubric's own preference, rubric ties left out (the gold
      standard behind simulated annotators; the noise in their labels does not count against the RM).
    - `calibration/ece`, `reward/mean`, `reward/std`, `reward/length_corr` (Pearson r of reward with
      the answer's word count; `rubric/length_corr` for comparison: how much length the labels reward).
    Every distinct (prompt, response) is scored once.
    """
    key = lambda p, a: (repr(p), a)  # noqa: E731
    texts: dict[tuple, tuple[list[dict], str]] = {}
    pairs = []
    for row in rows:
        c, r = row["chosen"][-1]["content"], row["rejected"][-1]["content"]
        texts.setdefault(key(row["prompt"], c), (row["prompt"], c))
        texts.setdefault(key(row["prompt"], r), (row["prompt"], r))
        pairs.append((key(row["prompt"], c), key(row["prompt"], r), row))
    keys = list(texts)
    scores = score_texts(model, tokenizer, [texts[k][0] for k in keys], [texts[k][1] for k in keys], batch_size, max_length,
                         progress=progress)
    reward = dict(zip(keys, scores))
    margins = [reward[c] - reward[r] for c, r, _ in pairs]
    correct = [m > 0 for m in margins]
    n = len(pairs)
    metrics: dict[str, float] = {"pairs": n, "accuracy": sum(correct) / n if n else 0.0, "calibration/ece": bt_ece(margins)}
    by_tag, by_annotator = defaultdict(list), defaultdict(list)
    for ok, (_, _, row) in zip(correct, pairs):
        for tag in row.get("tags") or []:
            if tag != "heldout":
                by_tag[tag].append(ok)
        by_annotator[row.get("annotator") or "(unknown)"].append(ok)
    metrics.update({f"accuracy/tag/{t}": sum(v) / len(v) for t, v in sorted(by_tag.items())})
    metrics.update({f"accuracy/annotator/{a}": sum(v) / len(v) for a, v in sorted(by_annotator.items())})

    # the same two responses judged by several annotators: agreement, and the RM on consensus vs contested pairs
    judged = defaultdict(list)  # unordered response pair -> [(RM agrees with this judgement, winner key)]
    for ok, (c, r, _) in zip(correct, pairs):
        judged[frozenset((c, r))].append((ok, c))
    multi = {k: v for k, v in judged.items() if len(v) > 1}
    if multi:
        consensus = [v for v in multi.values() if len({w for _, w in v}) == 1]
        contested = [v for v in multi.values() if len({w for _, w in v}) > 1]
        metrics["agreement/annotators"] = len(consensus) / len(multi)
        if consensus:
            metrics["accuracy/consensus"] = sum(v[0][0] for v in consensus) / len(consensus)
        if contested:
            metrics["accuracy/contested"] = sum(ok for v in contested for ok, _ in v) / sum(len(v) for v in contested)

    values = list(reward.values())
    mean = sum(values) / len(values)
    metrics["reward/mean"] = mean
    metrics["reward/std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    lengths = [len(texts[k][1].split()) for k in keys]
    metrics["reward/length_corr"] = pearson(values, lengths)

    if rubric:
        from rlhf.rubrics import load_rubric, prompt_text

        name, fn = load_rubric(rubric)
        gold = {k: float(fn(prompt_text(texts[k][0]), texts[k][1])) for k in keys}
        agree = [(reward[c] > reward[r]) == (gold[c] > gold[r]) for c, r, _ in pairs if gold[c] != gold[r]]
        label_agree = [gold[c] > gold[r] for c, r, _ in pairs if gold[c] != gold[r]]
        metrics["accuracy/rubric"] = sum(agree) / len(agree) if agree else 0.0
        metrics["rubric/pairs"] = len(agree)
        metrics["rubric/label_agreement"] = sum(label_agree) / len(label_agree) if label_agree else 0.0  # = 1 - noise
        metrics["rubric/length_corr"] = pearson([gold[k] for k in keys], lengths)
    return metrics
