"""SFT stage: `just sft` = `python -m stages.sft [--config data/configs/sft.yaml] [--key value ...]`.

A recipe: config -> seed -> registry dataset -> model -> trainer -> evaluate -> train ->
evaluate -> save -> register. Every step is one call into `rlhf`.
"""

from __future__ import annotations

from rlhf import fs
from rlhf.config import parse_args
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.errors import run_or_exit
from rlhf.train import modeling, stage
from rlhf.train.sampling import greedy_answers
from rlhf.train.sft import SFTStageConfig, build_model, split_datasets

PINS = {"model": None, "dataset": "sft"}  # references pinned to the NAME@vN they mean at start


def main(argv: list[str] | None = None) -> dict:
    from trl import SFTConfig, SFTTrainer

    # step 1. config (references pinned), seed, run folder
    run = stage.start("sft", parse_args(SFTStageConfig, argv), PINS)
    cfg = run.cfg

    # step 2. data: a frozen registry snapshot, split by prompt (held-out prompts are never trained on)
    with session_scope() as s:
        ds = registry.load(s, cfg.dataset)
    train_ds, eval_ds, heldout_rows = split_datasets(ds)
    print(f"data: {cfg.dataset}: {len(train_ds)} train, {len(eval_ds)} held-out", flush=True)

    # step 3. model and tokenizer
    resolved = modeling.resolve(cfg.model)
    tokenizer = modeling.load_tokenizer(resolved)
    model, peft_config = build_model(cfg, resolved)

    # step 4. trainer (trl SFTTrainer: conversational prompt/completion rows -> loss on the answer only)
    args = SFTConfig(**stage.trainer_args(cfg, run.dir), packing=cfg.packing, completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config)
    print(f"model: {cfg.model} ({cfg.mode}): {stage.params(trainer.model)}", flush=True)

    # step 5. evaluate before, train, evaluate after
    sample_prompts = [r["prompt"] for r in heldout_rows.select(range(min(cfg.samples, len(heldout_rows))))]
    before = trainer.evaluate()["eval_loss"]
    samples_before = greedy_answers(trainer.model, tokenizer, sample_prompts, cfg.sample_tokens)
    train_out = trainer.train()
    after = trainer.evaluate()["eval_loss"]
    samples_after = greedy_answers(trainer.model, tokenizer, sample_prompts, cfg.sample_tokens)

    # step 6. save and register (model folder renamed into place, the row in the same transaction)
    samples = [{"prompt": p[-1]["content"], "before": b, "after": a} for p, b, a in zip(sample_prompts, samples_before, samples_after)]
    fs.write_json(run.dir / "samples.json", samples)
    stage.plot_history(trainer.state.log_history, run.dir / "loss.png", ("loss",), f"SFT {cfg.model} ({cfg.mode})")
    metrics = {"eval_loss_before": before, "eval_loss_after": after, "train_loss": train_out.training_loss,
               "train_seconds": train_out.metrics.get("train_runtime"), "train_rows": len(train_ds), "eval_rows": len(eval_ds)}
    ref, out = stage.save_and_register(run, trainer.model, tokenizer, base=cfg.model, datasets=[cfg.dataset], metrics=metrics)

    # step 7. report
    print(f"\nSFT {ref}: held-out eval loss {before:.4f} -> {after:.4f}")
    for smp in samples:
        print(f"- {smp['prompt'][:70]}\n    before: {smp['before'][:160]!r}\n    after:  {smp['after'][:160]!r}")
    print(f"run folder (samples.json, loss.png): {run.dir}\nmodel: {out}")
    return stage.finish(run, {"model": ref, "dataset": cfg.dataset, **metrics})


if __name__ == "__main__":
    run_or_exit(main)
