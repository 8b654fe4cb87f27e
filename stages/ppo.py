"""PPO stage: `just ppo` = `python -m stages.ppo --config data/configs/ppo.yaml [--key value ...]`.

A recipe: config -> seed -> prompts snapshot -> policy (+ LoRA), reward model, critic -> evaluate
the SFT policy -> PPO -> evaluate the PPO policy -> save merged -> register `ppo@vN`. Every step is
one call into `rlhf`. `--resume RUN_DIR` continues a run from its last checkpoint; `--processes N` runs it
under `accelerate launch` (rlhf.train.distributed): rollouts on every process, evaluation, saving and
registering on the main one.
"""

from __future__ import annotations

import json
import time

from rlhf import fs
from rlhf.config import parse_args
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.errors import RlhfError, run_or_exit
from rlhf.rubrics import load_rubric, prompt_text
from rlhf.train import distributed, modeling, stage
from rlhf.train.ppo import evaluate, models, rewards
from rlhf.train.ppo.config import PPOStageConfig, resumed
from rlhf.train.plots import ppo_curves
from rlhf.train.ppo.trainer import PPOTrainer

PINS = {"policy": None, "reward_model": None, "prompts": "prompts"}  # pinned to the NAME@vN they mean at start


@distributed.launchable
def main(argv: list[str] | None = None) -> dict:
    import torch

    # step 1. config (references pinned; a resumed run takes its stored one), seed, run folder
    cfg, run_dir = resumed(parse_args(PPOStageConfig, argv))
    run = stage.start("ppo", cfg, PINS, run_dir)
    cfg, run_dir = run.cfg, run.dir
    distributed.say(f"run folder: {run_dir}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rubric_name, rubric_fn = load_rubric(cfg.rubric)

    # step 2. data: a frozen prompts snapshot; train on split "train", evaluate on "heldout"
    with session_scope() as s:
        ds = registry.load(s, cfg.prompts, kind="prompts")
    train = [r["messages"] for r in ds if r["split"] != "heldout"]
    heldout = [r["messages"] for r in ds if r["split"] == "heldout"]
    if not heldout:
        raise RlhfError(f"{cfg.prompts} has no held-out prompts to evaluate on: tag some prompts 'heldout'")
    heldout = heldout[:cfg.eval_prompts or None]
    distributed.say(f"data: {cfg.prompts}: {len(train)} train prompts, {len(heldout)} held-out")

    # step 3. models: the policy with a fresh LoRA adapter (its reference: the adapter disabled), RM, critic
    tokenizer = modeling.load_tokenizer(cfg.policy)
    reward_model, score_fn = rewards.load(cfg, tokenizer)
    model = models.build(cfg, modeling.resolve(cfg.policy), reward_model)
    distributed.say(f"model: {cfg.policy} + LoRA on the top {cfg.lora_layers or 'all'} blocks, critic {cfg.value_model}: "
                    f"{stage.params(model)}")

    # step 4. the SFT policy on held-out prompts (the same model, adapter disabled), on the main process
    sft = distributed.main_only(evaluate.evaluate, model, tokenizer, heldout, score_fn, rubric_fn, cfg, use_adapter=False)
    distributed.say(f"SFT on held-out: {json.dumps({k: round(v, 4) for k, v in sft['summary'].items()})}")

    # step 5. PPO
    trainer = PPOTrainer(cfg, model, tokenizer, train, score_fn, run_dir)
    if cfg.resume:
        distributed.say(f"resuming from update {trainer.resume(run_dir)}")
    t_train = time.time()
    history = trainer.train()
    train_seconds = time.time() - t_train

    # step 6. the PPO policy on the same held-out prompts, and its win rate over SFT by the rubric (main process)
    ppo = distributed.main_only(evaluate.evaluate, model, tokenizer, heldout, score_fn, rubric_fn, cfg, use_adapter=True)
    win, ci = evaluate.win_rate(ppo["rubric"], sft["rubric"]), evaluate.win_interval(ppo["rubric"], sft["rubric"])
    curves = distributed.main_only(ppo_curves, run_dir / "metrics.jsonl", run_dir / "ppo_curves.png",
                                   f"{cfg.algorithm.upper()} {cfg.policy} on {cfg.prompts}")

    # step 7. save the merged policy and register it (model folder renamed into place, the row in the same transaction)
    samples = [{"prompt": prompt_text(m), "sft": a, "ppo": b, "rubric_sft": ra, "rubric_ppo": rb}
               for m, a, b, ra, rb in zip(heldout, sft["texts"], ppo["texts"], sft["rubric"], ppo["rubric"])]
    distributed.main_only(fs.write_json, run_dir / "heldout_samples.json", samples)
    n_done = len([h for h in history if "time/update" in h])
    metrics = {"sft": sft["summary"], "ppo": ppo["summary"], "win_rate": win, "win_rate_ci": ci, "rubric": rubric_name,
               "updates": cfg.updates, "episodes": cfg.updates * cfg.batch_size,
               "seconds_per_update": sum(h["time/update"] for h in history) / max(1, n_done),
               "train_seconds": round(train_seconds, 1), "final": {k: v for k, v in history[-1].items() if "/" in k}}
    ref, out = stage.save_and_register(run, model.policy, tokenizer, base=cfg.policy, datasets=[cfg.prompts], metrics=metrics)

    # step 8. report: before/after table, a few answers, RESULT line
    if distributed.is_main():
        print(f"\nPPO {ref} vs SFT {cfg.policy} on {len(heldout)} held-out prompts\n  {'metric':<26}{'SFT':>10}{'PPO':>10}")
        for label, key, fmt in evaluate.SUMMARY_ROWS:
            print(f"  {label:<26}{fmt.format(sft['summary'][key]):>10}{fmt.format(ppo['summary'][key]):>10}")
        print(f"  {'win rate PPO vs SFT':<26}{'':>10}{win:>10.3f}   [{ci[0]:.3f}, {ci[1]:.3f}] (rubric {rubric_name}, ties half)")
        for smp in samples[:3]:
            print(f"- {smp['prompt'][:70]}\n    SFT: {smp['sft'][:150]!r}\n    PPO: {smp['ppo'][:150]!r}")
        print(f"PPO: {metrics['seconds_per_update']:.1f} s/update, {train_seconds:.0f} s training\nrun folder: {run_dir} "
              f"(curves: {curves})\nmodel: {out}")
    return stage.finish(run, {"model": ref, "policy": cfg.policy, "reward_model": cfg.reward_model, "prompts": cfg.prompts,
                              "sft": sft["summary"], "ppo": ppo["summary"], "win_rate": win, "win_rate_ci": ci,
                              "curves": str(curves), "samples": str(run_dir / "heldout_samples.json"),
                              "algorithm": cfg.algorithm, "updates": cfg.updates,
                              "seconds_per_update": round(metrics["seconds_per_update"], 2),
                              "train_seconds": metrics["train_seconds"]})


if __name__ == "__main__":
    run_or_exit(main)
