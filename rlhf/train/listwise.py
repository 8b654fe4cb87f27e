"""A listwise Bradley-Terry trainer for reward models: every answer of a prompt scored once per step, all its judged
pairs in the loss, the frozen trunk computed once.

Why not trl's `RewardTrainer` here: it takes one (chosen, rejected) pair per batch row, so an answer that takes part
in several pairs of a ranking is encoded once per pair and seen in several batches (InstructGPT, Ouyang et al. 2022,
sec. 3.5: that overfits; they put all C(K,2) pairs of a ranking in one batch element), and its loss has hard labels
only. Here one batch element is one prompt's distinct answers; the loss over its pairs is the cross-entropy of the
Bradley-Terry probability sigmoid(r_a - r_b) against the pair's target (1 for a hard label, the vote fraction for
soft labels; `rlhf.train.preferences`):

    loss = mean over prompts of  mean over pairs  -[t log sigmoid(r_a - r_b) + (1 - t) log sigmoid(r_b - r_a)]
           + center_rewards_coefficient * mean(r^2)          (Eisenstein et al. 2023, eq. 2)

`length_debias` (a product of experts with a length-only expert, as ODIN, Chen et al. 2024, sec. 4, does with a
second head): during training the Bradley-Terry margin is (r_a + w z_a) - (r_b + w z_b), z the answer's length in
tokens standardized over the training answers and w one learned scalar; the saved model is r alone. Whatever
linear preference for longer (or shorter) answers the labels hold is explained by w, so r does not have to learn
length as a shortcut for the qualities the labels are really about.

With LoRA on the top N blocks only, the blocks below are frozen: their output for every answer (the trunk, see
`rlhf.train.trunk`) is computed once before training, and each step runs the top blocks only, so several epochs
cost about what one epoch of the full model costs. The reward is read at the last real token, as
`AutoModelForSequenceClassification` reads it, so the merged model scores exactly as trained.

Shapes: G prompts per step, n answers in the step, T tokens (right-padded), H hidden size, P pairs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from rlhf.errors import RlhfError
from rlhf.train.preferences import PromptGroup
from rlhf.train.reward import tokenize_response
from rlhf.train.trunk import first_adapted_layer, top_forward, trunk_forward


LENGTH_WEIGHT_LR = 0.05  # Adam moves the length weight ~0.05 a step: it reaches the labels' trend in tens of steps


@dataclass(frozen=True)
class Settings:
    epochs: float = 2.0  # passes over the prompt groups
    prompts_per_step: int = 4  # G: prompt groups (each with all its answers) per optimizer step
    lr: float = 1e-3
    warmup_steps: int = 5
    center_rewards_coefficient: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 192  # prompt + answer tokens; prompts cut from the left
    seed: int = 0
    bf16: bool = False  # autocast the top blocks in bfloat16
    length_debias: bool = False  # train r + w * z(length) and keep r: the labels' linear length trend goes to w
    progress: bool = True


def bt_loss(r: torch.Tensor, pairs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of sigmoid(r_a - r_b) against P(a beats b) = `targets`.

    Args:
        r: (n,) rewards; pairs: (P, 2) indices (a, b) into r; targets: (P,) in [0, 1].

    >>> r = torch.tensor([1.0, 0.0])
    >>> round(bt_loss(r, torch.tensor([[0, 1]]), torch.tensor([1.0])).item(), 4)  # -log sigmoid(1)
    0.3133
    >>> round(bt_loss(r, torch.tensor([[0, 1]]), torch.tensor([0.5])).item(), 4)  # soft: 0.5 * (0.3133 + 1.3133)
    0.8133
    """
    margin = r[pairs[:, 0]] - r[pairs[:, 1]]
    return -(targets * torch.nn.functional.logsigmoid(margin) + (1 - targets) * torch.nn.functional.logsigmoid(-margin)).mean()


def _zscore(values: list[float]) -> torch.Tensor:
    """(values - mean) / std of one prompt's answers (0 when they are all alike).

    >>> _zscore([10.0, 20.0, 30.0]).tolist()
    [-1.0, 0.0, 1.0]
    """
    x = torch.tensor(values)
    std = x.std() if len(values) > 1 else torch.tensor(0.0)
    return (x - x.mean()) / std if std > 0 else torch.zeros_like(x)


def _pad(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, T, H) right-padded states and the (n, T) mask of real tokens."""
    width = max(s.shape[0] for s in states)
    out = states[0].new_zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for i, s in enumerate(states):
        out[i, :s.shape[0]] = s
        mask[i, :s.shape[0]] = 1
    return out, mask


def rewards_from_trunk(model, trunk: torch.Tensor, mask: torch.Tensor, start_layer: int) -> torch.Tensor:
    """(n,) rewards: the top blocks on the trunk states, the score head read at each row's last real token."""
    hidden = top_forward(model, trunk, mask, start_layer)  # (n, T, H)
    last = mask.sum(1) - 1
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.score(hidden[torch.arange(hidden.shape[0]), last]).float().squeeze(-1)


def cache_trunk(model, tokenizer, groups: list[PromptGroup], start_layer: int, max_length: int, batch: int = 16,
                progress: bool = True) -> list[list[torch.Tensor]]:
    """Per group, per answer: the (T, H) states entering block `start_layer`, computed once without gradients."""
    from tqdm.auto import tqdm

    seqs = [(gi, ai, tokenize_response(tokenizer, g.prompt, text, max_length)[0])
            for gi, g in enumerate(groups) for ai, text in enumerate(g.responses)]
    seqs.sort(key=lambda s: len(s[2]))  # similar lengths together: less padding
    out: list[list[torch.Tensor | None]] = [[None] * len(g.responses) for g in groups]
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in tqdm(range(0, len(seqs), batch), desc="frozen trunk", unit="batch", disable=not progress):
            chunk = seqs[start:start + batch]
            width = max(len(s) for _, _, s in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (_, _, s) in enumerate(chunk):
                ids[row, :len(s)] = torch.tensor(s)
                mask[row, :len(s)] = 1
            states = trunk_forward(model, ids.to(device), mask.to(device), start_layer)
            for row, (gi, ai, s) in enumerate(chunk):
                out[gi][ai] = states[row, :len(s)].clone()
    return out


def train(model, tokenizer, groups: list[PromptGroup], lora_layers: int, settings: Settings) -> list[dict]:
    """Train `model` (a peft sequence classifier, LoRA on its top `lora_layers` blocks, 0 = all) in place; returns
    the per-step history (loss, pair accuracy against the targets, learning rate)."""
    from tqdm.auto import tqdm

    if not groups:
        raise RlhfError("no prompt groups to train the reward model on")
    start_layer = first_adapted_layer(model, lora_layers)
    trunk = cache_trunk(model, tokenizer, groups, start_layer, settings.max_length, progress=settings.progress)
    params = [p for p in model.parameters() if p.requires_grad]
    lengths = [[float(t.shape[0]) for t in answers] for answers in trunk]  # prompt + answer tokens; z is per prompt below
    length_w = torch.zeros((), requires_grad=settings.length_debias)
    groups_ = [{"params": params}]
    if settings.length_debias:  # one scalar: a larger step than LoRA's, so it settles within the run
        groups_.append({"params": [length_w], "lr": LENGTH_WEIGHT_LR})
    opt = torch.optim.AdamW(groups_, lr=settings.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(groups) / settings.prompts_per_step)
    total = max(1, round(steps_per_epoch * settings.epochs))

    def schedule(step: int) -> float:  # linear warm-up, then cosine to 0 (as the trl stages)
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - settings.warmup_steps) / max(1, total - settings.warmup_steps))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rng = random.Random(settings.seed)
    order: list[int] = []
    history = []
    was_training = model.training
    model.train()
    for mod in model.modules():  # no dropout: the same answer scores the same within a step
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    autocast = torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16, enabled=settings.bf16)
    for step in tqdm(range(total), desc="reward model (listwise)", unit="step", disable=not settings.progress):
        if len(order) < settings.prompts_per_step:
            fresh = list(range(len(groups)))
            rng.shuffle(fresh)
            order += fresh
        chosen, order = order[:settings.prompts_per_step], order[settings.prompts_per_step:]
        states, spans = [], []
        for gi in chosen:
            spans.append(len(states))
            states.extend(trunk[gi])
        padded, mask = _pad(states)
        with autocast:
            r = rewards_from_trunk(model, padded, mask.to(padded.device), start_layer)
        fitted = r
        if settings.length_debias:  # the same prompt's answers differ only in answer length: z within the prompt
            z = torch.cat([_zscore(lengths[gi]) for gi in chosen]).to(r.device)
            fitted = r + length_w * z
        losses, correct, n_pairs = [], 0.0, 0
        for gi, off in zip(chosen, spans):
            g = groups[gi]
            pairs = torch.tensor([(a + off, b + off) for a, b, _ in g.pairs])
            targets = torch.tensor([t for _, _, t in g.pairs], dtype=r.dtype)
            losses.append(bt_loss(fitted, pairs, targets))
            with torch.no_grad():
                correct += float(((r[pairs[:, 0]] > r[pairs[:, 1]]).float() == (targets > 0.5).float()).sum())
                n_pairs += len(g.pairs)
        loss = torch.stack(losses).mean() + settings.center_rewards_coefficient * (r ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history.append({"step": step + 1, "loss": loss.item(), "accuracy": correct / max(1, n_pairs),
                        "learning_rate": sched.get_last_lr()[0], "length_weight": float(length_w)})
    model.train(was_training)
    return history
