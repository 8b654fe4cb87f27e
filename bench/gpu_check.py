"""The one-shot GPU check (issue 14): what a lent GPU must confirm, in one run of under 8 minutes, into one JSON.

    bash bench/gpu_check.sh              # one CUDA GPU: writes $OUT/gpu_check.json (./gpu_check.json without $OUT)
    bash bench/gpu_check.sh --dry-run    # any machine: every command parses, every config loads (tests/test_gpu_check.py)

Steps, each in its own process with its own time budget (the whole run stops at 460 s):
  tests       `pytest -m gpu`: QLoRA NF4 + double quant + bf16 compute loads; one step of each stage (SFT, RM, PPO)
  bench_sft   bench/sft.py --device cuda --size 1.7b      (ours vs trl SFTTrainer defaults)
  bench_rm    bench/rm.py --device cuda --size 360m
  bench_ppo   bench/ppo.py --device cuda --size 360m      (ours vs trl 1.12 PPOTrainer)
  qlora_7b    peak GPU memory of one QLoRA SFT step (trl SFTTrainer, batch 2 x 512 tokens) on a 7B-shaped
              random-init model
  fsdp2, zero3  the stage under `accelerate launch --num_processes 1` with fsdp2.yaml / deepspeed-zero3.yaml:
              the config loads and training takes its steps (the 2-GPU shape on one GPU)
A step that fails is recorded (exit code, last lines of its output) and the next one runs. The last line
printed is `RESULT {json}` with each step's status and headline figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PY = sys.executable
TOTAL_S = 460
ACCEL = REPO / "data" / "configs" / "accelerate"


def steps() -> list[tuple[str, int, list[str]]]:
    """(name, seconds allowed, command) of every step; `--dry-run` is added to each for the dry run."""
    me = str(Path(__file__).resolve())
    return [
        ("tests", 100, [PY, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"]),
        ("bench_sft", 100, [PY, "bench/sft.py", "--device", "cuda", "--size", "1.7b", "--steps", "8"]),
        ("bench_rm", 50, [PY, "bench/rm.py", "--device", "cuda", "--size", "360m"]),
        ("bench_ppo", 100, [PY, "bench/ppo.py", "--device", "cuda", "--size", "360m", "--updates", "4"]),
        ("qlora_7b", 90, [PY, me, "--step", "qlora-7b"]),
        ("fsdp2", 60, [PY, me, "--step", "sharded", "--config", "fsdp2.yaml"]),
        ("zero3", 60, [PY, me, "--step", "sharded", "--config", "deepspeed-zero3.yaml"]),
    ]


def dry(cmd: list[str]) -> list[str]:
    return [*cmd, "--collect-only"] if "pytest" in cmd else [*cmd, "--dry-run"]


def result_line(text: str) -> dict | None:
    lines = [ln for ln in text.splitlines() if ln.startswith(("RESULT ", "DRY-RUN "))]
    return json.loads(lines[-1].split(" ", 1)[1]) if lines else None


def run_all(dry_run: bool) -> dict:
    out: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "dry_run": dry_run, "steps": {}}
    if not dry_run:
        import torch

        out["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
        out["torch"] = torch.__version__
    start = time.monotonic()
    for name, budget, cmd in steps():
        left = TOTAL_S - (time.monotonic() - start)
        if left < 10:
            out["steps"][name] = {"status": "not run", "why": f"the {TOTAL_S} s budget was spent"}
            continue
        cmd = dry(cmd) if dry_run else cmd
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=min(budget, left),
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
            code, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            code, text = "timeout", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        found = result_line(text)
        if found is None and "pytest" in cmd:  # "4 passed", "6 tests collected", ...
            found = dict((word, int(n)) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|tests? collected)", text))
        status = "ok" if code == 0 else ("skipped" if "SKIPPED-STEP" in text else "failed")
        out["steps"][name] = {"status": status, "exit": code, "seconds": round(time.monotonic() - t0, 1),
                              "command": " ".join(cmd[1:]), "result": found,
                              **({} if status == "ok" and found else {"tail": text[-1500:]})}
        print(f"{name}: {status} ({out['steps'][name]['seconds']} s)", flush=True)
    return out


# --- the steps this file runs itself ------------------------------------------------------------------


def qlora_7b(dry_run: bool) -> dict:
    """Peak GPU memory of one QLoRA SFT step on a 7B-shaped random-init model (saved in bf16, loaded as NF4)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from rlhf.train import modeling

    modeling.quantization_config(torch.bfloat16)  # bitsandbytes' config builds
    if dry_run:  # the shape alone (SmolLM2's vocabulary: 49152), no tokenizer
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=49152, **modeling.SHAPES["7b"]))
        return {"params": sum(p.numel() for p in model.parameters())}
    tok = modeling.builtin_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **modeling.SHAPES["7b"])
    params = None
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tmp = Path(tempfile.mkdtemp(prefix="qlora7b-"))
    with torch.device("cuda"):
        AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(tmp / "m")
    tok.save_pretrained(tmp / "m")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = modeling.load_model(str(tmp / "m"), mode="qlora", device_map={"": 0})
    loaded = torch.cuda.max_memory_allocated()
    params = sum(p.numel() for p in model.parameters())  # as stored: 4-bit weights count half
    model, peft_config = modeling.prepare_for_training(model, "qlora", "CAUSAL_LM", 16, 32)
    rows = [{"prompt": [{"role": "user", "content": "word " * 200}], "completion": [{"role": "assistant", "content": "answer " * 250}]}] * 4
    args = SFTConfig(output_dir=str(tmp / "out"), per_device_train_batch_size=2, max_steps=1, max_length=512, bf16=True,
                     report_to=[], save_strategy="no", logging_steps=1, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=peft_config)
    t0 = time.perf_counter()
    trainer.train()
    torch.cuda.synchronize()
    return {"params": params, "loaded_gib": round(loaded / 2**30, 2), "peak_step_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "step_seconds": round(time.perf_counter() - t0, 2), "batch": "2 x 512 tokens", "lora_r": 16}


def sharded(config: str, dry_run: bool) -> dict:
    """The SFT stage on a random 135M-shaped model under `accelerate launch --num_processes 1` with `config`."""
    import importlib.util

    from rlhf.config import parse_args
    from rlhf.train import distributed
    from rlhf.train.sft import SFTStageConfig

    found = distributed.check_config(ACCEL / config, processes=1)
    argv = ["--epochs", "1", "--batch-size", "4", "--max-length", "128", "--samples", "1", "--sample-tokens", "4",
            "--report-to", "none", "--checkpoint-every", "0", "--mode", "full"]
    parse_args(SFTStageConfig, [*argv, "--model", "x", "--dataset", "sft@v1"])
    if dry_run:
        return {"config": found}
    if "deepspeed" in found and importlib.util.find_spec("deepspeed") is None:
        print("SKIPPED-STEP deepspeed is not installed (the .[deepspeed] extra)")
        sys.exit(3)
    home = Path(tempfile.mkdtemp(prefix="sharded-"))
    os.environ["RLHF_HOME"] = str(home)
    from rlhf.data import registry
    from rlhf.data.ingest import import_demonstrations, import_prompts
    from rlhf.data.store import session_scope
    from rlhf.train import modeling

    prompts = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"Tell me fact {i}."}], "tags": ["heldout"] if i < 4 else []}
               for i in range(20)]
    demos = [{"prompt_id": p["id"], "messages": p["messages"] + [{"role": "assistant", "content": f"Fact {i} is short."}]}
             for i, p in enumerate(prompts)]
    for name, rows in (("p", prompts), ("d", demos)):
        (home / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with session_scope() as s:
        import_prompts(s, home / "p.jsonl")
        import_demonstrations(s, home / "d.jsonl", approved_by="lead")
    with session_scope() as s:
        ref = registry.snapshot(s, "sft")[0].ref
    model = modeling.random_model("135m", home / "m135", seed=0)
    cmd = [PY, "-m", "stages.sft", "--model", str(model), "--dataset", ref, *argv,
           "--processes", "1", "--accelerate-config", str(ACCEL / config)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    if proc.returncode != 0:
        sys.exit(proc.returncode)
    return {"config": config, "stage": result_line(proc.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="check every command and config; run nothing on a GPU")
    ap.add_argument("--step", choices=("qlora-7b", "sharded"), help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gpu_check.json (default $OUT, else .)")
    args = ap.parse_args()
    if args.step:
        found = qlora_7b(args.dry_run) if args.step == "qlora-7b" else sharded(args.config, args.dry_run)
        print(("DRY-RUN " if args.dry_run else "RESULT ") + json.dumps(found, default=str), flush=True)
        return
    out = run_all(args.dry_run)
    path = Path(args.out) / ("gpu_check_dry_run.json" if args.dry_run else "gpu_check.json")
    path.write_text(json.dumps(out, indent=1, default=str))
    summary = {name: step["status"] for name, step in out["steps"].items()}
    print(f"wrote {path}")
    print("RESULT " + json.dumps({"gpu_check": summary, "device": out.get("device"), "json": str(path)}), flush=True)
    if any(s == "failed" for s in summary.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
