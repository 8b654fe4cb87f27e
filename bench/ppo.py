"""PPO throughput: ours (rlhf/ppo) vs trl 1.12's PPOTrainer, same models, batch, response length, epochs, seed.

    python bench/ppo.py                                   # CPU, tiny random-init SmolLM2-shaped models
    python bench/ppo.py --size 135m --updates 3           # CPU, 135M-shaped models (slow: minutes)
    python bench/ppo.py --device cuda --size 360m         # on a GPU
    python bench/ppo.py --trl-python /path/to/python      # a Python that has trl==1.12.0

Each side runs in its own subprocess (clean peak-memory figures: peak RSS on CPU, torch's
max_memory_allocated on CUDA) for the same number of updates on the same prompts and models: a
random-init policy (LoRA r=16 on every linear layer, reference = the adapter disabled on both
sides), a random-init one-label reward model, and a critic starting from that reward model. The
first update is warm-up and not timed. Reported: seconds per update, episodes per second, peak
memory, mean RM score of the first and the last update. Ends with `RESULT {json}`.

trl 1.12 is never a dependency of this project: it lives in its own virtual environment
(default /tmp/venv-trl112, created on first use with `python -m venv` + `pip install --no-deps
trl==1.12.0`, reading everything else, torch, transformers, peft, accelerate, from this project's
environment through a .pth file, so both sides run the very same library versions except trl).

"ours" runs twice: `ours-same` with trl's own structure (LoRA on all blocks, a critic with its own
adapter on the reward model, float32 sampling) and `ours` with the defaults of data/configs/ppo.yaml
for `lora_layers`, `value_model` and `sample_dtype` (LoRA on the top blocks, value head on the
policy, a bf16 sampling copy where the CPU has native bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRL_VENV = Path("/tmp/venv-trl112")
PROMPTS = REPO / "data" / "seed" / "prompts.jsonl"


# --- shared by both workers (stdlib + torch/transformers only: the trl side never imports rlhf) ---------------


def load_prompts(tokenizer, n: int) -> list[list[int]]:
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()]
    out = []
    for r in rows[:n]:
        ids = tokenizer.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=True)
        out.append(list(ids["input_ids"] if not isinstance(ids, list) else ids)[-128:])
    return out


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def summary(times: list[float], cpu_marks: list[float], rewards: list[float], args, device: str) -> dict:
    """Wall and CPU seconds per update (the first update is warm-up), episodes/s, peak memory, first/last reward.

    CPU seconds (this process, all threads) are reported beside wall seconds because a shared machine
    stretches wall time; they are the fairer figure when the two sides ran under different load."""
    timed = times[1:] or times
    spu = sum(timed) / len(timed)
    cpu = [b - a for a, b in zip(cpu_marks, cpu_marks[1:])][1:] or [cpu_marks[-1] - cpu_marks[0]]
    return {"seconds_per_update": spu, "episodes_per_second": args.batch_size / spu, "cpu_seconds_per_update": sum(cpu) / len(cpu),
            "peak_memory_mb": peak_memory_mb(device), "reward_first": rewards[0], "reward_last": rewards[-1], "updates": len(times)}


# --- trl 1.12 worker --------------------------------------------------------------------------------------------


def worker_trl(args) -> dict:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    torch.manual_seed(args.seed)
    models = Path(args.models)
    tok = AutoTokenizer.from_pretrained(models / "policy", padding_side="left")
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    policy = AutoModelForCausalLM.from_pretrained(models / "policy", dtype=dtype)
    rm = AutoModelForSequenceClassification.from_pretrained(models / "rm", num_labels=1, dtype=dtype)
    value = AutoModelForSequenceClassification.from_pretrained(models / "rm", num_labels=1, dtype=dtype)
    ds = Dataset.from_dict({"input_ids": load_prompts(tok, args.batch_size * args.updates)})
    cfg = PPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=args.batch_size,
                    gradient_accumulation_steps=1, num_mini_batches=1, num_ppo_epochs=args.ppo_epochs,
                    total_episodes=args.batch_size * args.updates, response_length=args.response_length, temperature=0.7,
                    learning_rate=args.lr, stop_token="eos", missing_eos_penalty=None, kl_coef=0.05, seed=args.seed,
                    local_rollout_forward_batch_size=args.batch_size, num_sample_generations=0, report_to=[],
                    logging_steps=1, save_strategy="no", bf16=args.device == "cuda", use_cpu=args.device == "cpu",
                    gradient_checkpointing=False, activation_checkpointing=False, dataloader_num_workers=0)
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    times, rewards, last, cpu_marks = [], [], [time.perf_counter()], []

    class Clock(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "objective/scores" in logs:
                rewards.append(logs["objective/scores"])

        def on_step_end(self, a, state, control, **kw):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            cpu_marks.append(time.process_time())

    trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=None, reward_model=rm, value_model=value,
                         train_dataset=ds, eval_dataset=ds.select(range(args.batch_size)), peft_config=peft_config,
                         callbacks=[Clock()])
    last[0] = time.perf_counter()
    cpu_marks.append(time.process_time())
    trainer.train()
    return summary(times, cpu_marks, rewards, args, args.device)


# --- our worker ------------------------------------------------------------------------------------------------


def worker_ours(args, lora_layers: int, value_model: str, sample_dtype: str) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    from rlhf.train import modeling
    from rlhf.train.ppo import models, rewards
    from rlhf.train.ppo.config import PPOStageConfig
    from rlhf.train.ppo.trainer import PPOTrainer

    mp = Path(args.models)
    tok = modeling.load_tokenizer(str(mp / "policy"))
    cfg = PPOStageConfig(policy=str(mp / "policy"), reward_model=str(mp / "rm"), lora_layers=lora_layers, value_model=value_model,
                         sample_dtype=sample_dtype,
                         updates=args.updates, batch_size=args.batch_size, num_minibatches=1, ppo_epochs=args.ppo_epochs,
                         max_new_tokens=args.response_length, temperature=0.7, lr=args.lr, kl_coef=0.05, missing_eos_penalty=0.0,
                         normalize_rewards=False, checkpoint_every=10**6, samples_every=0, report_to="none", seed=args.seed)
    torch.manual_seed(args.seed)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    rm = modeling.load_model(str(mp / "rm"), task="reward", dtype=dtype)
    model = models.build(cfg, modeling.load_model(str(mp / "policy"), dtype=dtype), rm)
    score = rewards.reward_model_scorer(model.value_model if value_model == "rm" else rm, tok, batch_size=args.batch_size)
    rows = [json.loads(line)["messages"] for line in PROMPTS.read_text().splitlines() if line.strip()]
    trainer = PPOTrainer(cfg, model, tok, rows[:args.batch_size * args.updates], score, tempfile.mkdtemp(prefix="bench-ours-"))
    cpu_marks, log = [time.process_time()], trainer.log

    def log_and_mark(metrics, roll):  # CPU time at the end of each update, as the trl side's callback does
        cpu_marks.append(time.process_time())
        log(metrics, roll)

    trainer.log = log_and_mark
    history = trainer.train()
    return summary([h["time/update"] for h in history], cpu_marks, [h["objective/reward"] for h in history], args, args.device)


# --- driver ----------------------------------------------------------------------------------------------------


def trl_python(given: str | None) -> str:
    """A Python with trl==1.12.0: the one given, or /tmp/venv-trl112 (created once, ~20 s)."""
    if given:
        return given
    py = TRL_VENV / "bin" / "python"
    probe = [str(py), "-c", "import trl, sys; sys.exit(trl.__version__ != '1.12.0')"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(py)
    print(f"creating {TRL_VENV} with trl==1.12.0 (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(TRL_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "trl==1.12.0"], check=True)
    import site

    # everything but trl comes from this project's environment: the same torch, transformers, peft, accelerate
    (next(TRL_VENV.glob("lib/python*/site-packages")) / "_project_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    if subprocess.run(probe, capture_output=True).returncode != 0:
        sys.exit(f"{py} cannot import trl 1.12.0; pass --trl-python")
    return str(py)


def run_worker(python: str, side: str, args) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", side] + [a for a in sys.argv[1:] if a != "--worker"]
    cmd += ["--models", args.models]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    if side == "trl":  # its own trl 1.12 before any trl on PYTHONPATH (the GPU machine carries trl 1.16 there)
        site_dirs = [str(p) for p in Path(python).parent.parent.glob("lib/python*/site-packages")]  # the venv, not its base
        env["PYTHONPATH"] = os.pathsep.join(site_dirs + [p for p in [env.get("PYTHONPATH", "")] if p])
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("WORKER ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{side} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1][len("WORKER "):])
    out["wall_seconds"] = round(time.time() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--size", default="tiny", help="random-init SmolLM2 shape: tiny, 135m, 360m, 1.7b")
    ap.add_argument("--batch-size", type=int, default=8, help="episodes per update")
    ap.add_argument("--response-length", type=int, default=48, help="new tokens per response")
    ap.add_argument("--ppo-epochs", type=int, default=4, help="PPO epochs per update (one minibatch each)")
    ap.add_argument("--updates", type=int, default=6, help="updates per side (the first is warm-up)")
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads on both sides (0 = torch's default)")
    ap.add_argument("--sides", default="ours,ours-same,trl", help="which sides to run, comma-separated")
    ap.add_argument("--trl-python", default=None, help="a Python interpreter with trl==1.12.0 (default: make /tmp/venv-trl112)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--models", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dry-run", action="store_true", help="check the options and print them; run nothing (bench/gpu_check.sh)")
    args = ap.parse_args()
    if args.dry_run:
        sys.path.insert(0, str(REPO))
        sys.path.insert(0, str(REPO / "bench"))
        from _common import dry_run

        dry_run(args)
        return

    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if args.worker == "trl":
            out = worker_trl(args)
        else:
            import yaml

            yaml_cfg = yaml.safe_load((REPO / "data" / "configs" / "ppo.yaml").read_text())
            same = args.worker == "ours-same"
            out = worker_ours(args, 0 if same else int(yaml_cfg.get("lora_layers", 0)),
                              "rm" if same else yaml_cfg.get("value_model", "rm"),
                              "float32" if same else yaml_cfg.get("sample_dtype", "auto"))
        print("WORKER " + json.dumps(out), flush=True)
        return

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("RLHF_HOME", str(Path(tempfile.gettempdir()) / "rlhf-bench-home"))
    from rlhf.train.modeling import random_model

    models = Path(tempfile.mkdtemp(prefix="bench-ppo-models-"))
    random_model(args.size, models / "policy", seed=args.seed)
    random_model(args.size, models / "rm", seed=args.seed + 1, num_labels=1)
    args.models = str(models)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    results = {}
    for side in sides:
        python = trl_python(args.trl_python) if side == "trl" else sys.executable
        print(f"running {side} ({args.size}, {args.device}, batch {args.batch_size}, {args.response_length} new tokens, "
              f"{args.ppo_epochs} PPO epochs, {args.updates} updates)...", flush=True)
        results[side] = run_worker(python, side, args)

    print(f"\n{'side':<11}{'s/update':>10}{'CPU s/upd':>11}{'episodes/s':>12}{'peak MB':>10}{'reward 1st':>12}{'reward last':>12}")
    for side, r in results.items():
        print(f"{side:<11}{r['seconds_per_update']:>10.2f}{r['cpu_seconds_per_update']:>11.2f}{r['episodes_per_second']:>12.2f}"
              f"{r['peak_memory_mb']:>10.0f}{r['reward_first']:>12.3f}{r['reward_last']:>12.3f}")
    ratios = {}
    if "trl" in results:
        for side in results:
            if side != "trl":
                r, t = results[side], results["trl"]
                ratios[side] = {"speedup": r["episodes_per_second"] / t["episodes_per_second"],
                                "cpu_speedup": t["cpu_seconds_per_update"] / r["cpu_seconds_per_update"],
                                "memory_ratio": r["peak_memory_mb"] / t["peak_memory_mb"]}
                print(f"{side} vs trl: {ratios[side]['speedup']:.2f}x episodes/s ({ratios[side]['cpu_speedup']:.2f}x by CPU time), "
                      f"{ratios[side]['memory_ratio']:.2f}x peak memory")
    settings = {k: getattr(args, k) for k in ("device", "size", "batch_size", "response_length", "ppo_epochs", "updates", "seed",
                                               "threads")}
    print("RESULT " + json.dumps({"settings": settings, **results, "ratios": ratios}), flush=True)


if __name__ == "__main__":
    main()
