"""DPO stage: `just dpo` = `python -m stages.dpo --config data/configs/dpo.yaml [--key value ...]`;
`--resume RUN_DIR` continues a run from its newest complete checkpoint.

A recipe: config -> seed -> preferences snapshot (pairs off the held-out prompts) -> policy + LoRA (its
reference: the adapter disabled) -> evaluate the SFT policy -> trl DPOTrainer -> evaluate the DPO policy the
way PPO and RLOO are evaluated -> save merged -> register `dpo@vN` with the preferences and prompts it used.
"""

from __future__ import annotations

import json

from rlhf import fs
from rlhf.config import parse_args
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.errors import RlhfError, run_or_exit
from rlhf.rubrics import load_rubric, prompt_text
from rlhf.train import distributed, modeling, resume, stage
from rlhf.train.dpo import DPOStageConfig, build_policy, preference_rows
from rlhf.train.ppo import evaluate, models, rewards

PINS = {"policy": None, "reward_model": None, "dataset": "preferences", "prompts": "prompts"}


@distributed.launchable
def main(argv: list[str] | None = None) -> dict:
    from trl import DPOConfig, DPOTrainer

    # step 1. config (references pinned; a resumed run takes its stored one), seed, run folder
    cfg, run_dir = resume.resumed(parse_args(DPOStageConfig, argv))
    run = stage.start("dpo", cfg, PINS, run_dir)
    cfg = run.cfg
    rubric_name, rubric_fn = load_rubric(cfg.rubric)

    # step 2. data: the snapshot's pairs off the held-out prompts; the held-out prompts to judge the policy on
    with session_scope() as s:
        train_ds, held_pairs = preference_rows(registry.load(s, cfg.dataset))
        heldout = [r["messages"] for r in registry.load(s, cfg.prompts, kind="prompts") if r["split"] == "heldout"]
    if not heldout:
        raise RlhfError(f"{cfg.prompts} has no held-out prompts to evaluate on: tag some prompts 'heldout'")
    heldout = heldout[:cfg.eval_prompts or None]
    distributed.say(f"data: {cfg.dataset}: {len(train_ds)} train pairs ({held_pairs} on held-out prompts left out); "
                    f"{cfg.prompts}: {len(heldout)} held-out prompts")

    # step 3. the policy with a fresh LoRA adapter, the reward model that scores its answers (evaluation only)
    tokenizer = modeling.load_tokenizer(cfg.policy)
    policy = build_policy(cfg, modeling.resolve(cfg.policy))
    _, score_fn = rewards.load(cfg, tokenizer)
    judged = models.PolicyValue(policy, cfg.lora_layers)  # the evaluation's view: adapter on = DPO, off = SFT

    # step 4. the SFT policy on the held-out prompts (the same model, adapter disabled)
    sft = distributed.main_only(evaluate.evaluate, judged, tokenizer, heldout, score_fn, rubric_fn, cfg, False)
    distributed.say(f"SFT on held-out: {json.dumps({k: round(v, 4) for k, v in sft['summary'].items()})}")

    # step 5. DPO (trl: the reference log-probs with the adapter disabled)
    args = DPOConfig(**stage.trainer_args(cfg, run.dir), beta=cfg.beta, loss_type=[cfg.loss_type])
    trainer = DPOTrainer(model=policy, ref_model=None, args=args, train_dataset=train_ds, processing_class=tokenizer,
                         callbacks=[resume.CheckpointCallback(run)])
    distributed.say(f"model: {cfg.policy} + LoRA on the top {cfg.lora_layers or 'all'} blocks: {stage.params(trainer.model)}")
    train_out = trainer.train(resume_from_checkpoint=resume.checkpoint_to_resume(run))

    # step 6. the DPO policy on the same held-out prompts, and its win rate over SFT by the rubric
    judged = models.PolicyValue(trainer.model, cfg.lora_layers)
    dpo = distributed.main_only(evaluate.evaluate, judged, tokenizer, heldout, score_fn, rubric_fn, cfg, True)
    win, ci = evaluate.win_rate(dpo["rubric"], sft["rubric"]), evaluate.win_interval(dpo["rubric"], sft["rubric"])

    # step 7. save the merged policy and register it
    samples = [{"prompt": prompt_text(m), "sft": a, "dpo": b, "rubric_sft": ra, "rubric_dpo": rb}
               for m, a, b, ra, rb in zip(heldout, sft["texts"], dpo["texts"], sft["rubric"], dpo["rubric"])]
    distributed.main_only(fs.write_json, run.dir / "heldout_samples.json", samples)
    stage.plot_history(trainer.state.log_history, run.dir / "loss.png", ("loss", "rewards/accuracies"), f"DPO {cfg.policy}")
    metrics = {"sft": sft["summary"], "dpo": dpo["summary"], "win_rate": win, "win_rate_ci": ci, "rubric": rubric_name,
               "train_loss": train_out.training_loss, "train_seconds": train_out.metrics.get("train_runtime"),
               "train_pairs": len(train_ds)}
    ref, out = stage.save_and_register(run, trainer.model, tokenizer, base=cfg.policy, datasets=[cfg.dataset, cfg.prompts],
                                       metrics=metrics)

    # step 8. report
    if distributed.is_main():
        print(f"\nDPO {ref} vs SFT {cfg.policy} on {len(heldout)} held-out prompts\n  {'metric':<26}{'SFT':>10}{'DPO':>10}")
        for label, key, fmt in evaluate.SUMMARY_ROWS:
            print(f"  {label:<26}{fmt.format(sft['summary'][key]):>10}{fmt.format(dpo['summary'][key]):>10}")
        print(f"  {'win rate DPO vs SFT':<26}{'':>10}{win:>10.3f}   [{ci[0]:.3f}, {ci[1]:.3f}] (rubric {rubric_name}, ties half)")
        print(f"run folder: {run.dir}\nmodel: {out}")
    return stage.finish(run, {"model": ref, "policy": cfg.policy, "dataset": cfg.dataset, "prompts": cfg.prompts,
                              "sft": sft["summary"], "dpo": dpo["summary"], "win_rate": win, "win_rate_ci": ci,
                              "train_seconds": metrics["train_seconds"]})


if __name__ == "__main__":
    run_or_exit(main)
