"""Reward-model throughput: our stage's settings vs trl RewardTrainer defaults, same model, data and batch.

    python bench/rm.py                                # CPU, tiny random-init SmolLM2-shaped model
    python bench/rm.py --device cuda --size 360m      # on a GPU (sizes: tiny, 135m, 360m, 1.7b)

Each side runs in its own subprocess (clean peak-memory figures) for the same number of optimizer
steps on the same conversational preference rows, some with prompts longer than max length.
Reports pairs/s, real (non-padding) tokens/s, peak memory, and how many of the given pairs each
side trains on. Ends with `RESULT {json}`.

"trl" = RewardTrainer with its defaults: it tokenizes the conversations itself, drops every pair
longer than max_length, full fine-tuning, activation checkpointing on, bf16 only where the device
has it. "Ours" = what stages/rm.py does (rlhf.train.rm.RMStageConfig defaults): prompts cut from the
left so no pair is dropped (pre-tokenized `chosen_ids`/`rejected_ids`), LoRA on the mode and layers
the config says, no activation checkpointing, fused AdamW on CUDA.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import parser, peak_memory_gib, side_setup, sides, timed_train, trainer_args, words  # noqa: E402


def synthetic_pairs(n: int, seed: int, max_prompt_words: int) -> list[dict]:
    """Conversational prompt/chosen/rejected rows; a fifth have very long prompts (what trl would drop)."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q = words(rng, max_prompt_words * 4 if i % 5 == 0 else rng.randint(5, max_prompt_words))
        a, b = (words(rng, rng.randint(10, 50)) for _ in range(2))
        rows.append({"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": a}],
                     "rejected": [{"role": "assistant", "content": b}], "prompt_id": f"p{i}", "split": "train"})
    return rows


def run_side(args) -> dict:
    import datasets
    import torch
    from trl import RewardConfig, RewardTrainer

    from rlhf.train import modeling
    from rlhf.train.reward import tokenize_pairs
    from rlhf.train.rm import RMStageConfig, build_model

    cuda = args.device == "cuda"
    tmp, model_dir, tok = side_setup(args, "rm", num_labels=1)
    rows = datasets.Dataset.from_list(synthetic_pairs(args.rows, args.seed, args.max_prompt_words))
    common = trainer_args(args, tmp)
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.side == "ours":
        cfg = RMStageConfig(model=str(model_dir), max_length=args.max_length, batch_size=args.batch_size)
        model, peft_config = build_model(cfg, modeling.resolve(str(model_dir)))
        model = model.to(device=args.device, dtype=dtype)
        train = tokenize_pairs(rows, tok, args.max_length, progress=False).select_columns(["chosen_ids", "rejected_ids"])
        extra = dict(activation_checkpointing=False, gradient_checkpointing=False, learning_rate=cfg.lr,
                     optim="adamw_torch_fused" if cuda else "adamw_torch",
                     center_rewards_coefficient=cfg.center_rewards_coefficient or None)
        mode = cfg.mode + (f", top {cfg.lora_layers} layers" if cfg.lora_layers else "") + (
            f", {cfg.keep_layers} layers kept" if cfg.keep_layers else "")
    else:
        model = modeling.load_model(str(model_dir), mode="full", task="reward", dtype=dtype).to(args.device)
        peft_config, train, extra, mode = None, rows.select_columns(["prompt", "chosen", "rejected"]), {}, "full"  # trl defaults
    trainer = RewardTrainer(model=model, args=RewardConfig(**common, **extra), train_dataset=train, processing_class=tok,
                            peft_config=peft_config)
    kept = len(trainer.train_dataset)
    counted = {"tokens": 0, "pairs": 0}
    orig_step = trainer.training_step

    def counting_step(model, inputs, *a, **k):
        counted["tokens"] += int(inputs["attention_mask"].sum())
        counted["pairs"] += inputs["input_ids"].shape[0] // 2
        return orig_step(model, inputs, *a, **k)

    trainer.training_step = counting_step
    seconds = timed_train(trainer, cuda)
    out = {"side": args.side, "mode": mode, "seconds": round(seconds, 2), "pairs": counted["pairs"],
           "pairs_per_s": round(counted["pairs"] / seconds, 2), "tokens_per_s": round(counted["tokens"] / seconds, 1),
           "pairs_kept": kept, "pairs_given": len(rows), "loss": trainer.state.log_history[-1].get("train_loss")}
    if cuda:
        out["device_name"] = torch.cuda.get_device_name()
    out["peak_mem_gib"] = peak_memory_gib(cuda)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--rows", type=int, default=200, help="preference pairs given to each side")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--max-prompt-words", type=int, default=60)
    args = ap.parse_args()
    results = sides(args, run_side, __file__)
    if results is None:
        return
    ours, trl = results["ours"], results["trl"]
    ratios = {k: round(ours[k] / trl[k], 2) for k in ("pairs_per_s", "tokens_per_s", "peak_mem_gib") if trl[k]}
    print(f"RM benchmark: {args.size} on {args.device}, batch {args.batch_size} pairs, max length {args.max_length}, "
          f"{args.steps} steps")
    print(f"{'':<16}{'trl defaults':>16}{'ours':>22}{'ours/trl':>10}")
    print(f"{'mode':<16}{trl['mode']:>16}{ours['mode']:>22}")
    for key, fmt in (("pairs_per_s", ".2f"), ("tokens_per_s", ".1f"), ("peak_mem_gib", ".2f")):
        print(f"{key:<16}{trl[key]:>16{fmt}}{ours[key]:>22{fmt}}{ratios.get(key, float('nan')):>10.2f}")
    print(f"{'pairs trained':<16}{str(trl['pairs_kept']) + '/' + str(trl['pairs_given']):>16}"
          f"{str(ours['pairs_kept']) + '/' + str(ours['pairs_given']):>22}")
    print("RESULT " + json.dumps({"bench": "rm", "device": args.device, "size": args.size, "trl": trl, "ours": ours,
                                  "ratios": ratios}))


if __name__ == "__main__":
    main()
