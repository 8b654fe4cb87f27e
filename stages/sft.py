"""SFT stage: `just sft` = `python -m stages.sft [--config data/configs/sft.yaml] [--key value ...]`.

A recipe: config -> seed -> registry dataset -> model -> trainer -> evaluate -> train ->
evaluate -> save -> register. Every step is one call into `rlhf`. `--processes N` runs it under
`accelerate launch` (rlhf.train.distributed); `--resume RUN_DIR` continues a run from its newest checkpoint.
"""

from __future__ import annotations

from rlhf import fs
from rlhf.config import parse_args
from rlhf.data import registry
from rlhf.data.store import session_scope
from rlhf.errors import run_or_exit
from rlhf.train import distributed, modeling, resume, stage
from rlhf.train.sampling import greedy_answers
from rlhf.train.sft import SFTStageConfig, build_model, heldout_loss, split_datasets

PINS = {"model": None, "dataset": "sft"}  # references pinned to the NAME@vN they mean at start


@distributed.launchable
def main(argv: list[str] | None = None) -> dict:
    from trl import SFTConfig, SFTTrainer

    # step 1. config (references pinned; a resumed run takes its stored one), seed, run folder
    cfg, run_dir = resume.resumed(parse_args(SFTStageConfig, argv))
    run = stage.start("sft", cfg, PINS, run_dir)
    cfg = run.cfg

    # step 2. data: a frozen registry snapshot, split by prompt (held-out prompts are never trained on)
    with session_scope() as s:
        ds = registry.load(s, cfg.dataset)
    train_ds, eval_ds, heldout_rows = split_datasets(ds)
    distributed.say(f"data: {cfg.dataset}: {len(train_ds)} train, {len(eval_ds)} held-out")

    # step 3. model and tokenizer
    resolved = modeling.resolve(cfg.model)
    tokenizer = modeling.load_tokenizer(resolved)
    model, peft_config = build_model(cfg, resolved)

    # step 4. trainer (trl SFTTrainer: conversational prompt/completion rows -> loss on the answer only)
    args = SFTConfig(**stage.trainer_args(cfg, run.dir), packing=cfg.packing, completion_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[resume.CheckpointCallback(run)])
    distributed.check_even_split(len(trainer.train_dataset), cfg.batch_size, distributed.num_processes())
    distributed.say(f"model: {cfg.model} ({cfg.mode}): {stage.params(trainer.model)}")

    # step 5. evaluate before, train, evaluate after (held-out loss and greedy samples on the main process)
    sample_prompts = [r["prompt"] for r in heldout_rows.select(range(min(cfg.samples, len(heldout_rows))))]

    def evaluate() -> tuple[float, list[str]]:
        return heldout_loss(trainer), greedy_answers(trainer.model, tokenizer, sample_prompts, cfg.sample_tokens)

    before = distributed.main_only(evaluate)
    train_out = trainer.train(resume_from_checkpoint=resume.checkpoint_to_resume(run))
    after = distributed.main_only(evaluate)

    # step 6. save and register (model folder renamed into place, the row in the same transaction)
    samples = [{"prompt": p[-1]["content"], "before": b, "after": a} for p, b, a in zip(sample_prompts, before[1], after[1])]
    distributed.main_only(fs.write_json, run.dir / "samples.json", samples)
    stage.plot_history(trainer.state.log_history, run.dir / "loss.png", ("loss",), f"SFT {cfg.model} ({cfg.mode})")
    metrics = {"eval_loss_before": before[0], "eval_loss_after": after[0],
               "train_loss": resume.train_loss(trainer.state.log_history),  # every step, also across a resume
               "train_seconds": train_out.metrics.get("train_runtime"), "train_rows": len(train_ds),
               "eval_rows": len(eval_ds), "processes": distributed.num_processes()}
    ref, out = stage.save_and_register(run, trainer.model, tokenizer, base=cfg.model, datasets=[cfg.dataset], metrics=metrics)

    # step 7. report
    if distributed.is_main():
        print(f"\nSFT {ref}: held-out eval loss {before[0]:.4f} -> {after[0]:.4f}")
        for smp in samples:
            print(f"- {smp['prompt'][:70]}\n    before: {smp['before'][:160]!r}\n    after:  {smp['after'][:160]!r}")
        print(f"run folder (samples.json, loss.png): {run.dir}\nmodel: {out}")
    return stage.finish(run, {"model": ref, "dataset": cfg.dataset, **metrics})


if __name__ == "__main__":
    run_or_exit(main)
