"""Reward-model stage: `just rm` = `python -m stages.rm [--config data/configs/rm.yaml] [--key value ...]`.

A recipe: config -> seed -> preferences snapshot, split by prompt -> model -> evaluate -> train (trl RewardTrainer,
one pair per row, or the listwise trainer: rlhf.train.rm.fit) -> evaluate -> save -> register. `--processes N` runs
it under `accelerate launch` (rlhf.train.distributed); `--resume RUN_DIR` continues a run from its newest checkpoint.
"""

from __future__ import annotations

from rlhf.config import parse_args, to_dict
from rlhf.data import registry
from rlhf.data.pairs import split_pairs
from rlhf.data.store import session_scope
from rlhf.errors import run_or_exit
from rlhf.train import distributed, modeling, resume, stage
from rlhf.train.reward import evaluate, rubric_for
from rlhf.train.rm import RMStageConfig, build_model, check, fit, gold_counts

PINS = {"model": None, "dataset": "preferences"}  # references pinned to the NAME@vN they mean at start
SHOWN = ("accuracy", "accuracy/rubric", "calibration/ece", "reward/mean", "reward/std", "reward/length_corr")


@distributed.launchable
def main(argv: list[str] | None = None) -> dict:
    # step 1. config (references pinned; a resumed run takes its stored one), seed, run folder
    cfg, run_dir = resume.resumed(parse_args(RMStageConfig, argv))
    check(cfg)
    run = stage.start("rm", cfg, PINS, run_dir)
    cfg = run.cfg

    # step 2. data: a frozen snapshot, split by prompt (no prompt in both train and eval)
    with session_scope() as s:
        ds = registry.load(s, cfg.dataset)
        gold = gold_counts(registry.get_version(s, cfg.dataset).lineage)  # annotators' gold items, for `weighted`
    train_rows, eval_rows, how = split_pairs(ds, cfg.eval_fraction, cfg.seed)
    rubric = rubric_for(ds, cfg.rubric)
    distributed.say(f"data: {cfg.dataset}: {len(train_rows)} train pairs, {len(eval_rows)} eval pairs (eval = {how})")

    # step 3. model and tokenizer
    resolved = modeling.resolve(cfg.model)
    tokenizer = modeling.load_tokenizer(resolved)
    model, peft_config = build_model(cfg, resolved)

    # step 4. evaluate before, train (trl RewardTrainer, or listwise), evaluate after (held-out pairs, main process)
    kw = dict(rubric=rubric, batch_size=cfg.eval_batch_size, max_length=cfg.max_length)
    before = distributed.main_only(evaluate, model, tokenizer, eval_rows, **kw)
    fitted = fit(cfg, run, model, peft_config, tokenizer, train_rows, gold)
    after = distributed.main_only(evaluate, fitted.model, tokenizer, eval_rows, **kw)

    # step 5. save (LoRA merged: a plain sequence classifier) and register with the metrics
    stage.plot_history(fitted.log_history, run.dir / "loss.png", ("loss", "accuracy"), f"RM {cfg.model} ({cfg.trainer})")
    metrics = {**after, **fitted.extra, "accuracy_before": before["accuracy"], "accuracy/rubric_before": before.get("accuracy/rubric"),
               "train_seconds": fitted.train_seconds, "train_pairs": fitted.train_pairs, "eval_pairs": len(eval_rows),
               "eval_split": how, "rubric": rubric, "processes": distributed.num_processes()}
    ref, out = stage.save_and_register(run, fitted.model, tokenizer, base=cfg.model, datasets=[cfg.dataset], metrics=metrics,
                                       config={**to_dict(cfg), "rubric": rubric or ""})

    # step 6. report
    shown = [k for k in SHOWN if after.get(k) is not None] + sorted(k for k in after if k.startswith("accuracy/tag/"))
    width = max(len(k) for k in shown)
    distributed.say(f"\nRM {ref} on {len(eval_rows)} held-out pairs ({how}):\n  {'metric':<{width}} {'before':>8} {'after':>8}\n"
                    + "\n".join(f"  {k:<{width}} {before.get(k, float('nan')):>8.3f} {after[k]:>8.3f}" for k in shown)
                    + f"\nrun folder (loss.png, result.json): {run.dir}\nmodel: {out}")
    return stage.finish(run, {
        "model": ref, "dataset": cfg.dataset, "accuracy": after["accuracy"], "accuracy_before": before["accuracy"],
        "accuracy_rubric": after.get("accuracy/rubric"), "accuracy_rubric_before": before.get("accuracy/rubric"),
        "rubric": rubric, "ece": after["calibration/ece"], "length_corr": after["reward/length_corr"],
        "rubric_length_corr": after.get("rubric/length_corr"), "trainer": cfg.trainer, "labels": cfg.labels,
        "train_pairs": fitted.train_pairs, "eval_pairs": len(eval_rows), "train_loss": metrics["train_loss"],
        "train_seconds": metrics["train_seconds"], "processes": metrics["processes"]})


if __name__ == "__main__":
    run_or_exit(main)
