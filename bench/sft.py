"""SFT throughput: our stage's training settings vs trl SFTTrainer defaults, same model, data and batch.

    python bench/sft.py                                # CPU, tiny random-init SmolLM2-shaped model
    python bench/sft.py --device cuda --size 1.7b      # on a GPU (sizes: tiny, 135m, 360m, 1.7b)

Each side runs in its own subprocess (clean peak-memory figures). Reports tokens/s (real,
non-padding tokens), peak memory, MFU on CUDA (6 x params x tokens/s over the dense bf16 peak),
and ours/trl ratios. Ends with `RESULT {json}`.

"Ours" = what stages/sft.py does: no activation checkpointing, padding-free BFD packing of
the same rows, fused AdamW and Liger kernels on CUDA. "trl" = SFTTrainer with its defaults
(activation checkpointing on, padded batches), bf16 only where the device has it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import parser, peak_memory_gib, side_setup, sides, timed_train, trainer_args, words  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, per GPU


def synthetic_rows(n: int, seed: int, lengths: tuple[int, int]) -> list[dict]:
    """Conversational prompt/completion rows of varied length (varied lengths are what padding wastes)."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        q = words(rng, rng.randint(5, 30))
        a = words(rng, rng.randint(*lengths))
        rows.append({"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]})
    return rows


def run_side(args) -> dict:
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer

    from rlhf.train import modeling

    cuda = args.device == "cuda"
    tmp, model_dir, tok = side_setup(args, "sft")
    ds = datasets.Dataset.from_list(synthetic_rows(args.rows, args.seed, (20, args.max_answer_words)))
    common = dict(trainer_args(args, tmp), learning_rate=1e-4)
    if args.side == "ours":
        extra = dict(activation_checkpointing=False, gradient_checkpointing=False, packing=True, padding_free=True,
                     optim="adamw_torch_fused" if cuda else "adamw_torch")
        if cuda and args.liger:
            extra["model_init_kwargs"] = {"use_kernels": True}
    else:
        extra = {}  # trl defaults
    dtype = torch.bfloat16 if cuda else torch.float32
    model = modeling.load_model(str(model_dir), mode="full", dtype=dtype).to(args.device)
    trainer = SFTTrainer(model=model, args=SFTConfig(**common, **extra), train_dataset=ds, processing_class=tok)
    # count the real (non-padding) tokens the trainer will see
    counted = {"tokens": 0}
    orig_step = trainer.training_step

    def counting_step(model, inputs, *a, **k):
        mask = inputs.get("attention_mask")
        counted["tokens"] += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
        return orig_step(model, inputs, *a, **k)

    trainer.training_step = counting_step
    seconds = timed_train(trainer, cuda)
    params = sum(p.numel() for p in model.parameters())
    tokens_per_s = counted["tokens"] / seconds
    out = {"side": args.side, "seconds": round(seconds, 2), "tokens": counted["tokens"], "tokens_per_s": round(tokens_per_s, 1),
           "params": params, "loss": trainer.state.log_history[-1].get("train_loss")}
    if cuda:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        out["mfu"] = round(6 * params * tokens_per_s / (peak * 1e12), 4) if peak else None
        out["device_name"] = name
    out["peak_mem_gib"] = peak_memory_gib(cuda)
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--max-answer-words", type=int, default=200)
    ap.add_argument("--liger", action="store_true", help="Liger kernels on CUDA (needs liger-kernel)")
    args = ap.parse_args()
    results = sides(args, run_side, __file__)
    if results is None:
        return
    ours, trl = results["ours"], results["trl"]
    ratios = {"tokens_per_s": round(ours["tokens_per_s"] / trl["tokens_per_s"], 2),
              "peak_mem": round(ours["peak_mem_gib"] / trl["peak_mem_gib"], 2)}
    print(f"SFT benchmark: {args.size} on {args.device}, batch {args.batch_size}, max length {args.max_length}, {args.steps} steps")
    print(f"{'':<14}{'trl defaults':>14}{'ours':>12}{'ours/trl':>10}")
    print(f"{'tokens/s':<14}{trl['tokens_per_s']:>14.1f}{ours['tokens_per_s']:>12.1f}{ratios['tokens_per_s']:>10.2f}")
    print(f"{'peak mem GiB':<14}{trl['peak_mem_gib']:>14.2f}{ours['peak_mem_gib']:>12.2f}{ratios['peak_mem']:>10.2f}")
    if args.device == "cuda":
        print(f"{'MFU':<14}{trl.get('mfu') or 0:>14.3f}{ours.get('mfu') or 0:>12.3f}")
    print("RESULT " + json.dumps({"bench": "sft", "device": args.device, "size": args.size, "trl": trl, "ours": ours, "ratios": ratios}))


if __name__ == "__main__":
    main()
