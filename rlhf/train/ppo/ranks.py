"""PPO on many processes: what makes `--processes N` at batch_size B give the numbers of one process at N x B.

Under `accelerate launch` every process samples, measures and trains its own share of the global batch: process p
holds the update's global episodes p*B .. p*B + B - 1 (the prompts `PPOTrainer.prompt_indices` deals it; an RLOO
prompt's k samples are consecutive, so they stay on one process and its leave-one-out baseline is local). Four
rules make the split invisible:

1. Sampling: the episode with global index i of update u is sampled from its own generator, seeded by (run seed,
   u, i) (`episode_seeds`, `rollout.SeededSampling`): the same response whichever process samples it and
   whatever else is in its batch.
2. Minibatches: every process draws the same permutation of the global batch from a generator seeded by (run
   seed, u, epoch) (`minibatch_order`); minibatch m is a slice of it and each process trains on the episodes of
   that slice it holds (`my_rows`, between none and all of them, in micro-batches of at most micro_batch_size);
   a process holding none runs one zero-weighted micro-batch, so DDP's gradient all-reduce meets every process.
3. Normalisation: policy and value losses are token sums divided by the token count of the GLOBAL minibatch,
   times the number of processes since DDP averages the processes' gradients: their sum is then the gradient of
   the 1-process minibatch's token mean (the same holds for micro-batches on one process).
4. Statistics: advantage whitening, reward normalisation, the KL controller, stop checks and logged metrics use
   every process's episodes (`whiten`, `gather`, `global_batch`).

With one process nothing here communicates and every number is the plain 1-process one.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import torch

from rlhf.train.ppo import core
from rlhf.train.ppo.rollout import whiten_batch

METRIC_FIELDS = ("response_mask", "has_eos", "entropy", "values", "returns", "raw_scores", "scores", "kl", "non_score_rewards")
"""The rollout fields `PPOTrainer.metrics` and the stop checks read: gathered over processes by `global_batch`."""


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs, machines and Python versions."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def episode_seeds(seed: int, update: int, first: int, n: int) -> list[int]:
    """Sampling seeds of the global episodes first .. first + n - 1 of `update`.

    >>> episode_seeds(0, 3, 4, 2) == episode_seeds(0, 3, 0, 6)[4:]
    True
    """
    return [_seed(seed, update, i) for i in range(first, first + n)]


def minibatch_order(seed: int, update: int, epoch: int, n: int) -> torch.Tensor:
    """(n,) the permutation of the n global episodes that `epoch` of `update` cuts into minibatches; the same on
    every process, and on resume (a function of its arguments only)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, update, epoch, -1)))


def my_rows(minibatch: torch.Tensor, rank: int, per_process: int) -> torch.Tensor:
    """The local rows of this process's episodes in a global minibatch (in the minibatch's order).

    >>> my_rows(torch.tensor([5, 0, 7, 2]), rank=1, per_process=4).tolist()
    [1, 3]
    """
    mine = (minibatch >= rank * per_process) & (minibatch < (rank + 1) * per_process)
    return minibatch[mine] - rank * per_process


def micro_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    """`rows` in consecutive pieces of at most `size` (none when `rows` is empty)."""
    return list(torch.split(rows, size)) if len(rows) else []


def gather(acc, x: torch.Tensor) -> torch.Tensor:
    """Every process's `x` concatenated in process order along dim 0; (B, T) tensors padded (zeros) to the longest
    T first. One process: `x` itself."""
    if acc.num_processes == 1:
        return x
    dtype = x.dtype
    y = x.long() if dtype == torch.bool else x  # gloo gathers no bool tensors
    if y.dim() == 2:
        y = acc.pad_across_processes(y.contiguous(), dim=1)
    out = acc.gather(y.contiguous())
    return out.bool() if dtype == torch.bool else out


def global_batch(acc, roll):
    """The `METRIC_FIELDS` of every process's rollout together, in global episode order (the rollout itself on
    one process): what the 1-process run would hold for the same global batch."""
    if acc.num_processes == 1:
        return roll
    return SimpleNamespace(**{f: gather(acc, getattr(roll, f)) for f in METRIC_FIELDS})


def whiten(acc, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Advantage whitening over the real tokens of the GLOBAL batch: every process's rollout together, so the
    result does not depend on how the episodes are split across processes (one process: rollout.whiten_batch)."""
    if acc.num_processes == 1:
        return whiten_batch(x, mask)
    m = mask.to(x.dtype)
    sums = torch.stack([(x * m).sum(), (x * x * m).sum(), m.sum()]).to(acc.device)
    total, total_sq, n = acc.reduce(sums, reduction="sum").to(x.device)
    if n < 2:  # no variance to scale by, as whiten_batch
        return x
    mean = total / n
    var = (total_sq / n - mean * mean) * n / (n - 1)  # unbiased, as core.masked_var
    return core.whiten_with(x, mask, mean, var)
