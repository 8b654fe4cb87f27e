"""SFT stage: `just sft` = `python -m stages.sft [--config data/configs/sft.yaml] [--key value ...]`.

A recipe: config -> seed -> registry dataset -> model -> trainer -> evaluate -> train ->
evaluate -> save -> register. Every step is one call into `rlhf`.
"""

from __future__ import annotations

import json
import time

from rlhf.train import modeling
from rlhf.data import registry
from rlhf.train import training
from rlhf.config import describe, parse_args, seed_everything, to_dict
from rlhf.errors import run_or_exit
from rlhf.train.sft import SFTStageConfig, build_model, split_datasets
from rlhf.data.store import session_scope
from rlhf.data.versions import next_version, register_model


def main(argv: list[str] | None = None) -> dict:
    from trl import SFTConfig, SFTTrainer

    t0 = time.time()
    # step 1. config and seed
    cfg = parse_args(SFTStageConfig, argv)
    print(f"SFT config:\n{describe(cfg)}", flush=True)
    seed_everything(cfg.seed)
    run_dir = training.new_run_dir("sft", cfg.seed)

    # step 2. data: a frozen registry snapshot, split by prompt (held-out prompts are never trained on)
    with session_scope() as s:
        dataset_ref = registry.get_version(s, cfg.dataset, kind="sft").ref
        ds = registry.load(s, dataset_ref)
    train_ds, eval_ds, heldout_rows = split_datasets(ds)
    print(f"data: {dataset_ref}: {len(train_ds)} train, {len(eval_ds)} held-out", flush=True)

    # step 3. model and tokenizer
    resolved = modeling.resolve(cfg.model)
    tokenizer = modeling.load_tokenizer(resolved)
    model, peft_config = build_model(cfg, resolved)

    # step 4. trainer (trl SFTTrainer: conversational prompt/completion rows -> loss on the answer only)
    args = SFTConfig(**training.trainer_args(cfg, run_dir), packing=cfg.packing, completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config)
    trainable, total = training.count_params(trainer.model)
    print(f"model: {cfg.model} ({cfg.mode}): {trainable:,} trainable of {total:,} parameters", flush=True)

    # step 5. evaluate before, train, evaluate after
    sample_prompts = [r["prompt"] for r in heldout_rows.select(range(min(cfg.samples, len(heldout_rows))))]
    before = trainer.evaluate()["eval_loss"]
    samples_before = training.generate_samples(trainer.model, tokenizer, sample_prompts, cfg.sample_tokens)
    train_out = trainer.train()
    after = trainer.evaluate()["eval_loss"]
    samples_after = training.generate_samples(trainer.model, tokenizer, sample_prompts, cfg.sample_tokens)

    # step 6. save and register (model folder renamed into place, then one transaction for the row)
    samples = [{"prompt": p[-1]["content"], "before": b, "after": a} for p, b, a in zip(sample_prompts, samples_before, samples_after)]
    training.write_json(run_dir / "samples.json", samples)
    training.plot_history(trainer.state.log_history, run_dir / "loss.png", ("loss",), f"SFT {cfg.model} ({cfg.mode})")
    metrics = {"eval_loss_before": before, "eval_loss_after": after, "train_loss": train_out.training_loss,
               "train_seconds": train_out.metrics.get("train_runtime"), "train_rows": len(train_ds), "eval_rows": len(eval_ds)}
    with session_scope() as s:
        version = next_version(s, cfg.name)
        out = training.save_model(trainer.model, tokenizer, modeling.paths.models_dir() / cfg.name / f"v{version}",
                                  merge=cfg.mode != "qlora")
        mv = register_model(s, name=cfg.name, stage="sft", base=cfg.model, path=str(out), dataset_versions=[dataset_ref],
                            config=to_dict(cfg), metrics=metrics, seed=cfg.seed, version=version)
        ref = mv.ref
    training.write_json(run_dir / "result.json", {"model": ref, "config": to_dict(cfg), "metrics": metrics})

    # step 7. report
    print(f"\nSFT {ref}: held-out eval loss {before:.4f} -> {after:.4f}")
    for smp in samples:
        print(f"- {smp['prompt'][:70]}\n    before: {smp['before'][:160]!r}\n    after:  {smp['after'][:160]!r}")
    print(f"run folder (samples.json, loss.png): {run_dir}\nmodel: {out}")
    result = {"model": ref, "dataset": dataset_ref, **metrics, "seconds": round(time.time() - t0, 1)}
    print("RESULT " + json.dumps({"sft": result}), flush=True)
    return result


if __name__ == "__main__":
    run_or_exit(main)
