"""Reward-model stage: `just rm` = `python -m stages.rm [--config data/configs/rm.yaml] [--key value ...]`.

A recipe: config -> seed -> preferences snapshot, split by prompt -> tokenize (prompts cut from the
left) -> model -> trl RewardTrainer -> evaluate -> train -> evaluate -> save -> register.
"""

from __future__ import annotations

import json
import time

from rlhf.train import modeling
from rlhf.data import registry
from rlhf.train import training
from rlhf.config import describe, parse_args, seed_everything, to_dict
from rlhf.errors import run_or_exit
from rlhf.data.pairs import split_pairs
from rlhf.train.rm import RMStageConfig, build_model, evaluate, rubric_for, tokenize_pairs, undo_bf16_on_cpu
from rlhf.data.store import session_scope
from rlhf.data.versions import next_version, register_model

SHOWN = ("accuracy", "accuracy/rubric", "calibration/ece", "reward/mean", "reward/std", "reward/length_corr")


def main(argv: list[str] | None = None) -> dict:
    from trl import RewardConfig, RewardTrainer

    t0 = time.time()
    # step 1. config and seed
    cfg = parse_args(RMStageConfig, argv)
    print(f"RM config:\n{describe(cfg)}", flush=True)
    seed_everything(cfg.seed)
    run_dir = training.new_run_dir("rm", cfg.seed)

    # step 2. data: a frozen snapshot, split by prompt (no prompt in both train and eval)
    with session_scope() as s:
        dataset_ref = registry.get_version(s, cfg.dataset, kind="preferences").ref
        ds = registry.load(s, dataset_ref)
    train_rows, eval_rows, how = split_pairs(ds, cfg.eval_fraction, cfg.seed)
    rubric = rubric_for(ds, cfg.rubric)
    print(f"data: {dataset_ref}: {len(train_rows)} train pairs, {len(eval_rows)} eval pairs (eval = {how})", flush=True)

    # step 3. model and tokenizer; tokenize ourselves so trl never drops a long pair
    resolved = modeling.resolve(cfg.model)
    tokenizer = modeling.load_tokenizer(resolved)
    tokenized = tokenize_pairs(train_rows, tokenizer, cfg.max_length)
    print(f"tokens: {sum(tokenized['truncated'])} of {len(tokenized)} pairs had their prompt cut from the left to "
          f"{cfg.max_length} tokens", flush=True)
    train_ds = tokenized.select_columns(["chosen_ids", "rejected_ids"])
    model, peft_config = build_model(cfg, resolved)

    # step 4. trainer (trl RewardTrainer: Bradley-Terry loss on chosen_ids/rejected_ids)
    args = RewardConfig(**training.trainer_args(cfg, run_dir), disable_dropout=True,
                        center_rewards_coefficient=cfg.center_rewards_coefficient or None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer, peft_config=peft_config)
    if cfg.mode == "qlora":
        undo_bf16_on_cpu(trainer.model)
    trainable, total = training.count_params(trainer.model)
    print(f"model: {cfg.model} ({cfg.mode}): {trainable:,} trainable of {total:,} parameters", flush=True)

    # step 5. evaluate before, train, evaluate after (held-out pairs; accuracy vs the rubric when known)
    kw = dict(rubric=rubric, batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
    before = evaluate(trainer.model, tokenizer, eval_rows, **kw)
    train_out = trainer.train()
    after = evaluate(trainer.model, tokenizer, eval_rows, **kw)

    # step 6. save (LoRA merged: a plain sequence classifier) and register with the metrics
    training.plot_history(trainer.state.log_history, run_dir / "loss.png", ("loss", "accuracy"), f"RM {cfg.model} ({cfg.mode})")
    steps = train_out.global_step or 1
    metrics = {**after, "accuracy_before": before["accuracy"], "accuracy/rubric_before": before.get("accuracy/rubric"),
               "train_loss": train_out.training_loss, "train_seconds": train_out.metrics.get("train_runtime"),
               "seconds_per_step": round(train_out.metrics.get("train_runtime", 0.0) / steps, 3),
               "train_pairs": len(train_ds), "eval_pairs": len(eval_rows), "eval_split": how, "rubric": rubric}
    config = {**to_dict(cfg), "rubric": rubric or ""}
    with session_scope() as s:
        version = next_version(s, cfg.name)
        out = training.save_model(trainer.model, tokenizer, modeling.paths.models_dir() / cfg.name / f"v{version}",
                                  merge=cfg.mode != "qlora")
        ref = register_model(s, name=cfg.name, stage="rm", base=cfg.model, path=str(out), dataset_versions=[dataset_ref],
                             config=config, metrics=metrics, seed=cfg.seed, version=version).ref
    training.write_json(run_dir / "result.json", {"model": ref, "config": config, "metrics": metrics})

    # step 7. report
    shown = [k for k in SHOWN if after.get(k) is not None] + sorted(k for k in after if k.startswith("accuracy/tag/"))
    width = max(len(k) for k in shown)
    print(f"\nRM {ref} on {len(eval_rows)} held-out pairs ({how}):\n  {'metric':<{width}} {'before':>8} {'after':>8}")
    for k in shown:
        print(f"  {k:<{width}} {before.get(k, float('nan')):>8.3f} {after[k]:>8.3f}")
    print(f"run folder (loss.png, result.json): {run_dir}\nmodel: {out}")
    result = {"model": ref, "dataset": dataset_ref, "accuracy": after["accuracy"], "accuracy_before": before["accuracy"],
              "accuracy_rubric": after.get("accuracy/rubric"), "accuracy_rubric_before": before.get("accuracy/rubric"),
              "rubric": rubric, "ece": after["calibration/ece"],
              "length_corr": after["reward/length_corr"], "train_pairs": len(train_ds), "eval_pairs": len(eval_rows),
              "train_seconds": metrics["train_seconds"], "seconds": round(time.time() - t0, 1)}
    print("RESULT " + json.dumps({"rm": result}), flush=True)
    return result


if __name__ == "__main__":
    run_or_exit(main)
