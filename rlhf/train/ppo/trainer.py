"""The PPO loop: rollout -> rewards -> advantages -> several epochs of clipped updates, on `accelerate`.

`PPOTrainer.train()` reads as numbered steps, each a call into `rollout` or `core`. Details and
their sources (Huang et al. 2024 = https://arxiv.org/abs/2403.17031):

* Several PPO epochs over shuffled minibatches of each rollout, one optimizer step per minibatch,
  gradient accumulation over micro-batches (Schulman et al. 2017; CleanRL `update_epochs`); the losses are
  token means over the whole minibatch, whatever its cut into micro-batches or processes (`ranks`).
* On many processes (`accelerate launch`) the run equals one process at the same global batch: per-episode
  sampling seeds, one global minibatch permutation, global token counts and statistics (`ranks`).
* Adam with eps 1e-5 and a learning rate annealed linearly to 0 (Huang et al. 2024; OpenAI baselines).
* Dropout is off throughout (the model stays in eval mode), so the log-probs of the first minibatch
  of the first epoch equal the rollout's: ratio 1 there (logged as `policy/first_ratio_dev`, which
  should be ~0: Huang et al. 2024 "check the ratio is 1 at the start").
* Optional adaptive KL coefficient (Ziegler et al. 2019) and running reward normalisation.
* A run stops with a clear message when the KL to the reference exceeds `kl_stop` nats per sequence,
  or a reward or loss is NaN; the last checkpoint (written before) is kept untouched.

Metric names (the same across stages): objective/kl, objective/reward (RM score), objective/
non_score_reward, objective/entropy, policy/clipfrac, policy/approx_kl, loss/policy, loss/value,
val/clipfrac, val/explained_variance, val/mean_response_length, time/generate, time/score, time/train.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch

from rlhf.errors import RlhfError
from rlhf.train.ppo import checkpoint, core, ranks, rollout
from rlhf.train.ppo.controllers import AdaptiveKLController, FixedKLController, RunningMoments
from rlhf.train.ppo.config import PPOStageConfig
from rlhf.train.ppo.models import PolicyValue


class TrainingStopped(RlhfError):
    """Training hit a stop condition (KL explosion, NaN); the last checkpoint is intact."""


class PPOTrainer:
    """Actor-critic PPO for a LoRA policy against a reward function.

    Args:
        cfg: the stage config (generation, PPO and optimisation fields are used here).
        model: the policy and its critic (`PolicyValue`); only its `requires_grad` parameters train.
        tokenizer: the policy's tokenizer (left padding is done here; pad must differ from EOS).
        prompts: training prompts as chat messages.
        score_fn: (messages, texts, response_ids, response_mask) -> (B,) scores (an RM, a rubric, a toy).
        run_dir: where checkpoints, metrics.jsonl and samples.jsonl go.
        accelerator: an `accelerate.Accelerator` (one is made when None).
    """

    def __init__(self, cfg: PPOStageConfig, model: PolicyValue, tokenizer, prompts: list[list[dict]], score_fn: rollout.ScoreFn,
                 run_dir: Path, accelerator=None):
        from accelerate import Accelerator

        cfg.check()
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise RlhfError("PPO needs a pad token distinct from EOS (a padded position is not an end of answer); "
                            "load the tokenizer with rlhf.train.modeling.load_tokenizer")
        if not prompts:
            raise RlhfError("no training prompts: the prompts snapshot has no rows with split 'train'")
        self.cfg, self.tokenizer, self.score_fn, self.run_dir = cfg, tokenizer, score_fn, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

        # Model: the policy and critic, prepared by accelerate (DDP under `accelerate launch`)
        # cpu=True on machines without CUDA, so `torchrun`/`accelerate launch` processes join one gloo group
        self.accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        model.eval()  # no dropout anywhere, so rollout and training forwards agree (ratio 1 at the start)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise RlhfError("the model has no trainable parameters (expected a LoRA adapter and a value head)")

        # Optimization: Adam, eps 1e-5, learning rate annealed linearly to 0 over all optimizer steps
        optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=0.0)
        total_steps = cfg.updates * cfg.ppo_epochs * cfg.num_minibatches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.unwrapped: PolicyValue = self.accelerator.unwrap_model(self.model)

        # Data: prompts tokenized once; the order is a function of (seed, update), so resuming needs no state
        self.messages = prompts
        self.encoded = rollout.encode_prompts(tokenizer, prompts, cfg.max_prompt_length)
        self._perms: dict[int, list[int]] = {}

        # State: update index, KL coefficient, reward statistics
        self.update = 0
        self.kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl
                       else FixedKLController(cfg.kl_coef))
        self.reward_moments = RunningMoments() if cfg.normalize_rewards else None
        self.history: list[dict] = []
        self.last_checkpoint: Path | None = None
        self._tracker = None

    # --- the loop -------------------------------------------------------------------------------

    def train(self, stop_after: int | None = None) -> list[dict]:
        """Run updates until `cfg.updates` (or `stop_after` more updates, as if killed then); returns the metrics."""
        cfg = self.cfg
        self._start_tracking()
        done_now = 0
        try:
            while self.update < cfg.updates and (stop_after is None or done_now < stop_after):
                t_update = time.perf_counter()
                timings: dict[str, float] = {}

                # step 1. a batch of training prompts
                rows = self.prompt_indices(self.update)
                prompt_ids, prompt_mask = rollout.left_pad([self.encoded[i] for i in rows], self.tokenizer.pad_token_id)
                device = self.accelerator.device
                prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)

                # step 2. rollout: sample responses (each episode from its own seed), log-probs of policy and
                # reference, values, RM scores
                acc, B = self.accelerator, cfg.batch_size
                seeds = ranks.episode_seeds(cfg.seed, self.update, acc.process_index * B, B)
                roll = rollout.collect(self.unwrapped, self.tokenizer, [self.messages[i] for i in rows], prompt_ids,
                                       prompt_mask, self.score_fn, cfg, self.reward_moments, timings, seeds,
                                       lambda x: ranks.gather(acc, x))
                self.check_scores(roll)

                # step 3. per-token rewards (KL penalty + score at EOS), GAE advantages (whitened over the global
                # batch) and returns; the global batch's measurements for the KL check, controller and metrics
                roll = rollout.with_advantages(roll, self.kl_ctl.value, cfg, lambda x, m: ranks.whiten(acc, x, m))
                every = ranks.global_batch(acc, roll)
                self.check_kl(every)

                # step 4. PPO epochs over minibatches
                t0 = time.perf_counter()
                train_stats = self.optimise(roll)
                timings["time/train"] = time.perf_counter() - t0

                # step 5. adapt the KL coefficient (Ziegler et al. 2019), log, save
                kl_before = self.kl_ctl.value
                self.kl_ctl.update(float(every.kl.sum(1).mean()), B * acc.num_processes)
                self.update += 1
                done_now += 1
                timings["time/update"] = time.perf_counter() - t_update
                metrics = self.metrics(every, train_stats, timings, kl_before)
                self.log(metrics, roll)
                if self.update % cfg.checkpoint_every == 0 or self.update == cfg.updates:
                    self.save()
        finally:
            self._finish_tracking()
        return self.history

    STATS = ("loss/policy", "loss/value", "policy/clipfrac", "policy/approx_kl", "val/clipfrac", "policy/ratio")
    """Per-minibatch token means logged as the mean over the update's minibatches."""

    def optimise(self, roll: rollout.Rollout) -> dict[str, float]:
        """`ppo_epochs` passes over the GLOBAL batch in shuffled minibatches, one optimizer step per minibatch; each
        process trains on its own episodes of a minibatch (`ranks`: the same numbers on any number of processes)."""
        cfg, acc = self.cfg, self.accelerator
        W, B = acc.num_processes, cfg.batch_size
        mb = W * B // cfg.num_minibatches  # episodes of a global minibatch
        tokens = ranks.gather(acc, roll.response_mask.sum(1).float())  # (W*B,) real tokens of each global episode
        parts, grad_norms, first_dev = [], [], 0.0
        for epoch in range(cfg.ppo_epochs):
            order = ranks.minibatch_order(cfg.seed, self.update, epoch, W * B)  # the same on every process and on resume
            for m in range(cfg.num_minibatches):
                minibatch = order[m * mb:(m + 1) * mb]
                n_tokens = tokens[minibatch].sum().clamp(min=1)
                pieces = ranks.micro_batches(ranks.my_rows(minibatch, acc.process_index, B), cfg.micro_batch_size)
                part = torch.zeros(len(self.STATS))  # this process's share of the minibatch's token means
                for i, rows in enumerate(pieces or [None]):  # None: no episode here, a zero-weighted pass meets DDP's sync
                    sync = contextlib.nullcontext() if i == max(len(pieces), 1) - 1 else acc.no_sync(self.model)
                    with sync:
                        loss, stats, dev = self.micro_batch_loss(roll, torch.tensor([0]) if rows is None else rows, n_tokens)
                        if rows is None:
                            loss, stats, dev = loss * 0.0, stats * 0.0, 0.0
                        if not torch.isfinite(loss):
                            self.stop(f"the PPO loss is {loss.item()} at update {self.update + 1} (epoch {epoch + 1}); "
                                      "lower lr or raise kl_coef")
                        acc.backward(loss * W)  # DDP averages the processes' gradients: W x the share sums to the mean
                    part += stats
                    if epoch == 0 and m == 0:
                        first_dev = max(first_dev, dev)
                parts.append(part)
                grad_norms.append(float(acc.clip_grad_norm_(self.params, cfg.max_grad_norm)))
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        per_minibatch = torch.stack(parts)  # (epochs x minibatches, stats)
        if W > 1:
            per_minibatch = acc.reduce(per_minibatch.to(acc.device), reduction="sum").cpu()
            first_dev = float(ranks.gather(acc, torch.tensor([first_dev], device=acc.device)).max())
        out = {k: sum(col) / len(col) for k, col in zip(self.STATS, per_minibatch.T.tolist())}
        return {**out, "policy/first_ratio_dev": first_dev, "policy/grad_norm": sum(grad_norms) / len(grad_norms)}

    def micro_batch_loss(self, roll: rollout.Rollout, rows: torch.Tensor,
                         n_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Clipped policy loss + vf_coef * clipped value loss on some episodes of the rollout, as their share of a
        minibatch of `n_tokens` real tokens; returns the loss, its `STATS` shares and max |ratio - 1|."""
        cfg = self.cfg
        w = rollout.window(roll.prompt_mask, roll.response_mask, rows)
        logprobs, values, logits = rollout.forward_window(self.model, roll, w, cfg.temperature)
        del logits
        cut = lambda x: x[rows, :w.T]  # noqa: E731  (b, T) slice of a rollout field
        mask = cut(roll.response_mask)
        pg_loss, pg_clipfrac, approx_kl, ratio = core.clipped_policy_loss(logprobs, cut(roll.logprobs), cut(roll.advantages),
                                                                          mask, cfg.clip_range, n_tokens)
        if cfg.algorithm == "rloo":  # no critic: the policy loss alone (the value head stays untrained and unused)
            vf_loss, vf_clipfrac = torch.zeros(()), torch.zeros(())
            loss = pg_loss
            if self.accelerator.num_processes > 1:  # DDP needs a gradient, here 0, for every parameter
                loss = loss + 0.0 * values.sum()
        else:
            vf_loss, vf_clipfrac = core.clipped_value_loss(values, cut(roll.values), cut(roll.returns), mask,
                                                           cfg.clip_range_value, n_tokens)
            loss = pg_loss + cfg.vf_coef * vf_loss
        stats = torch.stack([pg_loss.detach(), vf_loss.detach(), pg_clipfrac, approx_kl, vf_clipfrac,
                             core.token_mean(ratio, mask, n_tokens)]).float().cpu()
        return loss, stats, float(((ratio - 1).abs() * mask).max())

    # --- data -----------------------------------------------------------------------------------

    def prompt_indices(self, update: int) -> list[int]:
        """Prompt rows of `update` on this process: consecutive slices of seeded permutations of the prompts
        (rloo: batch_size / rloo_k prompts, each repeated rloo_k times in a row)."""
        n, B = len(self.encoded), self.cfg.batch_size
        k = self.cfg.rloo_k if self.cfg.algorithm == "rloo" else 1
        B //= k
        start = (update * self.accelerator.num_processes + self.accelerator.process_index) * B
        out = []
        for k_ in range(start, start + B):
            epoch, pos = divmod(k_, n)
            if epoch not in self._perms:
                g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
                self._perms[epoch] = torch.randperm(n, generator=g).tolist()
            out.extend([self._perms[epoch][pos]] * k)
        return out

    # --- stop conditions ------------------------------------------------------------------------

    def stop(self, why: str):
        where = (f"the last good checkpoint is {self.last_checkpoint} (continue with --resume {self.run_dir})"
                 if self.last_checkpoint else "no checkpoint was written yet")
        raise TrainingStopped(f"PPO stopped: {why}; {where}")

    def check_scores(self, roll: rollout.Rollout) -> None:
        bad = (~torch.isfinite(roll.raw_scores)).nonzero().flatten().tolist()
        if bad:
            self.stop(f"the reward is NaN/inf at update {self.update + 1} for {len(bad)} of {len(roll.raw_scores)} episodes "
                      f"(first: {roll.texts[bad[0]][:60]!r}); check the reward model")

    def check_kl(self, roll) -> None:
        """`roll`: the global batch (`ranks.global_batch`), so every process stops at the same update."""
        kl = float(roll.kl.sum(1).mean())
        if not torch.isfinite(torch.tensor(kl)):
            self.stop(f"the KL to the reference is {kl} at update {self.update + 1}")
        if self.cfg.kl_stop > 0 and kl > self.cfg.kl_stop:
            self.stop(f"the KL to the reference is {kl:.2f} nats per sequence at update {self.update + 1}, above kl_stop "
                      f"{self.cfg.kl_stop}: the policy is drifting from the SFT model; lower lr or raise kl_coef")

    # --- metrics, samples, checkpoints ----------------------------------------------------------

    def metrics(self, roll, train_stats: dict, timings: dict, kl_coef: float) -> dict[str, float]:
        """The update's numbers over the global batch (`roll`: `ranks.global_batch`), the same on every process."""
        mask = roll.response_mask
        seq_kl = roll.kl.sum(1)  # (B,) sequence-level KL estimate
        non_score = roll.non_score_rewards.sum(1)
        m = {
            "update": self.update,
            "episodes": self.update * self.cfg.batch_size * self.accelerator.num_processes,
            "objective/kl": seq_kl.mean().item(),
            "objective/kl_coef": kl_coef,
            "objective/reward": roll.raw_scores.mean().item(),
            "objective/score": roll.scores.mean().item(),
            "objective/non_score_reward": non_score.mean().item(),
            "objective/rlhf_reward": (roll.scores.to(non_score.device) + non_score).mean().item(),
            "objective/entropy": core.masked_mean(roll.entropy, mask).item(),
            "val/explained_variance": (core.explained_variance(roll.values, roll.returns, mask).item()
                                       if self.cfg.algorithm == "ppo" else 0.0),  # rloo: no critic to explain
            "val/mean_response_length": mask.sum(1).float().mean().item(),
            "val/eos_fraction": roll.has_eos.float().mean().item(),
            "val/mean_value": core.masked_mean(roll.values, mask).item(),
            "lr": self.scheduler.get_last_lr()[0],
            **train_stats,
            **timings,
        }
        return m

    def log(self, metrics: dict, roll: rollout.Rollout) -> None:
        self.history.append(metrics)
        if not self.accelerator.is_main_process:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        m = metrics
        print(f"update {self.update}/{self.cfg.updates}  reward {m['objective/reward']:+.3f}  kl {m['objective/kl']:.3f}  "
              f"len {m['val/mean_response_length']:.1f}  eos {m['val/eos_fraction']:.2f}  ent {m['objective/entropy']:.2f}  "
              f"clip {m['policy/clipfrac']:.3f}  ev {m['val/explained_variance']:+.2f}  {m['time/update']:.1f}s "
              f"(gen {m['time/generate']:.1f} fwd {m['time/forward']:.1f} score {m['time/score']:.1f} train {m['time/train']:.1f})",
              flush=True)
        samples = None
        if self.cfg.samples_every and (self.update % self.cfg.samples_every == 0 or self.update == 1):
            from rlhf.rubrics import prompt_text

            seq_kl = roll.kl.sum(1)
            samples = [{"update": self.update, "prompt": prompt_text(list(roll.messages[i])), "response": roll.texts[i],
                        "reward": float(roll.raw_scores[i]), "ended": bool(roll.has_eos[i]), "kl": float(seq_kl[i])}
                       for i in range(min(4, len(roll.texts)))]
            with open(self.run_dir / "samples.jsonl", "a") as fh:
                for s in samples:
                    fh.write(json.dumps(s, ensure_ascii=False) + "\n")
        if self._tracker is not None:
            logged = {k: v for k, v in metrics.items() if k not in ("update",)}
            if samples:
                logged["samples"] = self._tracker.Table(columns=list(samples[0]), data=[list(s.values()) for s in samples])
            self._tracker.log(logged, step=self.update)

    def state(self) -> dict:
        rm = self.reward_moments
        return {"kl_coef": self.kl_ctl.value, "config": {k: getattr(self.cfg, k) for k in self.cfg.__dataclass_fields__},
                "reward_moments": None if rm is None else rm.state_dict(), "history": self.history}

    def save(self) -> Path | None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.last_checkpoint = checkpoint.save(self.run_dir, self.update, self.unwrapped, self.optimizer, self.scheduler,
                                                   self.state())
        return self.last_checkpoint

    def resume(self, path: Path) -> int:
        """Continue from checkpoint `path` (or the newest one in a run folder); returns its update index."""
        path = Path(path)
        if not (path / "state.json").exists():
            path = checkpoint.latest(path)
        st = checkpoint.load(path, self.unwrapped, self.optimizer, self.scheduler)
        self.update = int(st["update"])
        self.kl_ctl.value = float(st["kl_coef"])
        if self.reward_moments is not None and st.get("reward_moments"):
            self.reward_moments.load_state_dict(st["reward_moments"])
        self.history = list(st.get("history", []))
        self.last_checkpoint = path
        return self.update

    # --- tracking -------------------------------------------------------------------------------

    def _start_tracking(self) -> None:
        if self.cfg.report_to != "trackio" or not self.accelerator.is_main_process or self._tracker is not None:
            return
        from rlhf.train.stage import PROJECT, setup_tracking

        setup_tracking("trackio")
        import trackio

        trackio.init(project=PROJECT, name=self.run_dir.name, config={k: getattr(self.cfg, k) for k in self.cfg.__dataclass_fields__},
                     resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False)
        self._tracker = trackio

    def _finish_tracking(self) -> None:
        if self._tracker is not None:
            self._tracker.finish()
            self._tracker = None
