"""What the SFT and RM benchmarks share: synthetic text, peak memory, and running each side in its own process."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VOCAB = "the a model answer data token train reward policy value kernel batch cache memory speed gpu cpu".split()


def words(rng, n: int) -> str:
    """`n` words drawn from a small fixed vocabulary (the benchmarks time tokens, not meaning)."""
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def peak_memory_gib(cuda: bool) -> float:
    """Peak allocated GPU memory on CUDA, else this process's peak RSS (Linux reports KiB)."""
    if cuda:
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def run_sides(script: str, argv: list[str], sides=("trl", "ours")) -> dict[str, dict]:
    """Run `script --side S argv...` for each side in a fresh process (clean peak-memory figures); their `SIDE {json}` lines."""
    results = {}
    for side in sides:
        proc = subprocess.run([sys.executable, script, "--side", side, *argv], capture_output=True, text=True, cwd=REPO)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SIDE ")), None)
        if proc.returncode != 0 or line is None:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            sys.exit(f"{Path(script).name}: the {side} side failed")
        results[side] = json.loads(line[len("SIDE "):])
    return results


def side_setup(args, prefix: str, num_labels: int | None = None):
    """(temp dir, random-init model dir, tokenizer) for one side: seeded, RLHF_HOME inside the temp dir."""
    import os
    import tempfile

    import torch

    from rlhf.train import modeling

    torch.manual_seed(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    os.environ.setdefault("RLHF_HOME", str(tmp / "home"))
    model_dir = modeling.random_model(args.size, tmp / "model", seed=args.seed, num_labels=num_labels)
    return tmp, model_dir, modeling.load_tokenizer(str(model_dir))


def trainer_args(args, tmp: Path) -> dict:
    """TrainingArguments both sides share: same steps, batch, seed and max length; no saving, logging or tqdm."""
    cuda = args.device == "cuda"
    return dict(output_dir=str(tmp / "out"), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                logging_steps=10_000, save_strategy="no", report_to=[], seed=args.seed, max_length=args.max_length,
                bf16=cuda, use_cpu=not cuda, disable_tqdm=True, dataloader_num_workers=0)


def timed_train(trainer, cuda: bool) -> float:
    """Seconds `trainer.train()` takes (peak GPU memory counted from here; CUDA synchronised at both ends)."""
    import time

    import torch

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.train()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def parser(doc: str):
    """The options every side-by-side bench takes: device, model size, batch, seed (and the hidden --side)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--size", default="tiny", help="tiny | 135m | 360m | 1.7b (random-init SmolLM2 shapes)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    ap.add_argument("--dry-run", action="store_true", help="check the options and print them; run nothing (bench/gpu_check.sh)")
    return ap


def dry_run(args) -> bool:
    """With --dry-run: check what can be checked without running (the model size is a known shape), print the
    options as `DRY-RUN {json}` and return True."""
    if not getattr(args, "dry_run", False):
        return False
    from rlhf.train.modeling import SHAPES

    if args.size not in SHAPES:
        sys.exit(f"--size {args.size}: expected one of {', '.join(SHAPES)}")
    print("DRY-RUN " + json.dumps(vars(args)), flush=True)
    return True


def sides(args, run_side, script: str) -> dict[str, dict] | None:
    """In a side's process: run it and print its `SIDE {json}` line (returns None). In the driver: both sides' results
    (None with --dry-run)."""
    if dry_run(args):
        return None
    if args.side:
        print("SIDE " + json.dumps(run_side(args)), flush=True)
        return None
    return run_sides(script, sys.argv[1:])
