"""Many processes: `--processes N` / `--accelerate-config FILE` run a stage under `accelerate launch`, and the
few rank rules every stage follows there.

    just sft --processes 2                                   # DDP (data/configs/accelerate/ddp.yaml); a CPU: one gloo group
    just sft --processes 8 --accelerate-config data/configs/accelerate/deepspeed-zero2.yaml

`launchable` wraps a recipe's `main(argv)`. Asked for more than one process (or for a config), the process
the user started takes these two options out, runs `python -m accelerate.commands.launch --config_file FILE
--num_processes N -m stages.<stage> <every other option unchanged>`, passes its output through and returns
the `RESULT` the main process printed. Inside the launch each process runs the recipe as usual; what must
happen once (pin references, make the run folder, evaluate, save, register, print RESULT) goes through
`main_only`: the main process does it, the others wait for its value. Without a launch all of this is a
plain call.

Batch arithmetic: `batch_size` is per process, as in transformers: global batch = batch_size x grad_accum x
processes. Rows are dealt to processes by accelerate's batch sampler in the same seeded order a 1-process
run uses, so a 2-process run at batch_size B/2 sees the same global batches as a 1-process run at B
(`check_even_split` says how the last, shorter batch is handled).
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from rlhf import paths
from rlhf.errors import RlhfError

CONFIGS = paths.REPO_ROOT / "data" / "configs" / "accelerate"
DEFAULT_CONFIG = CONFIGS / "ddp.yaml"
OPTIONS = ("--processes", "--accelerate-config")
HELP = ("launch: --processes N (run under `accelerate launch`, N processes; default 1) and --accelerate-config FILE "
        f"(default {DEFAULT_CONFIG.relative_to(paths.REPO_ROOT)}; fsdp2.yaml, deepspeed-zero2.yaml, deepspeed-zero3.yaml)")


def split_options(argv: list[str]) -> tuple[int | None, str | None, list[str]]:
    """(processes, accelerate config, the other options unchanged) from a stage's command line.

    >>> split_options(["--epochs", "1", "--processes", "2", "--accelerate-config=x.yaml"])
    (2, 'x.yaml', ['--epochs', '1'])
    """
    found: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    raise RlhfError(f"command line: {name} needs a value")
                value, i = argv[i + 1], i + 1
            found[name] = value
        else:
            rest.append(arg)
        i += 1
    processes = None
    if "--processes" in found:
        try:
            processes = int(found["--processes"])
        except ValueError:
            raise RlhfError(f"--processes {found['--processes']!r}: expected a whole number of processes") from None
        if processes < 1:
            raise RlhfError(f"--processes {processes}: must be at least 1")
    return processes, found.get("--accelerate-config"), rest


def inside_launch() -> bool:
    """True in a process started by `accelerate launch` / torchrun (they set WORLD_SIZE and LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def load_config(path: str | Path):
    """The accelerate config at `path`, read by accelerate's own loader (an unknown key is an error)."""
    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(path)
    if not path.is_file():
        raise RlhfError(f"--accelerate-config {path}: no such file (shipped: {', '.join(p.name for p in sorted(CONFIGS.glob('*.yaml')))})")
    try:
        return load_config_from_file(str(path))
    except (TypeError, ValueError) as e:
        raise RlhfError(f"--accelerate-config {path}: not an accelerate config: {str(e).splitlines()[0]}") from None


def check_config(path: str | Path, processes: int = 1) -> dict:
    """Load an accelerate config the way `accelerate launch` does (its config loader, its launch-argument checks,
    the environment it hands the processes, the FSDP / DeepSpeed plugin built from that environment) without
    starting anything; a DeepSpeed config is also checked against DeepSpeed's own schema when it is installed.
    Returns what was found; any problem is an RlhfError naming the file."""
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    cfg = load_config(path)
    try:
        args = launch_command_parser().parse_args(["--config_file", str(path), "--num_processes", str(processes),
                                                   "-m", "stages.sft"])
        args, defaults, _ = _validate_launch_command(args)
        found = {"file": str(path), "distributed_type": cfg.distributed_type.value, "num_processes": cfg.num_processes}
        if args.use_deepspeed:
            args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
            _, env = prepare_deepspeed_cmd_env(args)
        else:
            env = prepare_multi_gpu_env(args)
        with mock.patch.dict(os.environ, env):
            if args.use_fsdp:
                plugin = FullyShardedDataParallelPlugin()
                found["fsdp"] = {"version": plugin.fsdp_version, "state_dict_type": plugin.state_dict_type.name,
                                 "reshard_after_forward": plugin.reshard_after_forward}
            if args.use_deepspeed:
                found["deepspeed"] = DeepSpeedPlugin().deepspeed_config
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise RlhfError(f"--accelerate-config {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if "deepspeed" in found:
        found["deepspeed_schema"] = check_deepspeed_schema(found["deepspeed"], where=str(path))
    return found


def check_deepspeed_schema(ds_config: dict, where: str = "DeepSpeed config") -> str:
    """'ok' when DeepSpeed accepts `ds_config` (its "auto" values filled as the trainer fills them: batch 8, no
    accumulation, clipping 1.0; outside a launch DeepSpeed sees one process); 'not installed' without the
    `deepspeed` extra."""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        return "not installed"
    import copy
    import logging

    from deepspeed.runtime.config import DeepSpeedConfig

    filled = copy.deepcopy(ds_config)
    micro, accum = 8, 1
    autos = {"train_micro_batch_size_per_gpu": micro, "gradient_accumulation_steps": accum,
             "train_batch_size": micro * accum, "gradient_clipping": 1.0}
    for key, value in autos.items():
        if filled.get(key, "auto") == "auto":
            filled[key] = value
    if filled.get("steps_per_print") == float("inf"):
        filled["steps_per_print"] = 10**9
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    try:
        DeepSpeedConfig(filled)
    except Exception as e:  # pydantic's ValidationError and DeepSpeed's own asserts
        raise RlhfError(f"{where}: DeepSpeed rejects the config: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return "ok"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(module: str, argv: list[str], processes: int | None, config: str | None) -> list[str]:
    """The `accelerate launch` command line that runs `python -m module argv` on `processes` processes."""
    config_path = Path(config) if config else DEFAULT_CONFIG
    cfg = load_config(config_path)
    n = processes or cfg.num_processes or 1
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_path), "--num_processes", str(n),
            "--main_process_port", str(free_port()), "-m", module, *argv]


def relaunch(module: str, argv: list[str], processes: int | None, config: str | None) -> dict:
    """Run the stage under `accelerate launch`; its output passes through; returns the main process's RESULT."""
    import json

    cmd = launch_command(module, argv, processes, config)
    n = int(cmd[cmd.index("--num_processes") + 1])
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # share the cores instead of N processes each taking all of them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    print(f"launch: {n} process(es) under accelerate ({cmd[cmd.index('--config_file') + 1]})", flush=True)
    result = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=paths.REPO_ROOT) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
        code = proc.wait()
    if code != 0 or result is None:
        raise RlhfError(f"the {n}-process run of {module} failed (exit {code}): its first error is above")
    return next(iter(result.values()))


def launchable(main: Callable[[list[str] | None], dict]) -> Callable[[list[str] | None], dict]:
    """Decorate a recipe's `main(argv)` so that `--processes N` / `--accelerate-config FILE` run it under
    `accelerate launch` (see the module docstring); one process and no config: a plain call."""
    module = main.__globals__["__spec__"].name  # "stages.sft", also when run as `python -m stages.sft`

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> dict:
        argv = list(sys.argv[1:] if argv is None else argv)
        if "-h" in argv or "--help" in argv:
            print(HELP)
        processes, config, rest = split_options(argv)
        if inside_launch() or (processes in (None, 1) and config is None):
            return main(rest)
        return relaunch(module, rest, processes, config)

    return run


# --- inside a launch --------------------------------------------------------------------------------


def state():
    """accelerate's PartialState (it starts the process group: gloo on a CPU, nccl on GPUs); None outside a launch."""
    if not inside_launch():
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def num_processes() -> int:
    s = state()
    return s.num_processes if s else 1


def is_main() -> bool:
    s = state()
    return s is None or s.is_main_process


def main_only(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """`fn(*args, **kwargs)` on the main process only; every process returns its value (the others wait for it).
    The value must pickle (paths, dicts, numbers). An error on the main process ends the launch (torchrun stops
    the others)."""
    s = state()
    if s is None or s.num_processes == 1:
        return fn(*args, **kwargs)
    from accelerate.utils import broadcast_object_list

    box = [fn(*args, **kwargs) if s.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def say(*args) -> None:
    """print() on the main process only (the others would repeat each line)."""
    if is_main():
        print(*args, flush=True)


def barrier() -> None:
    s = state()
    if s is not None:
        s.wait_for_everyone()


def check_even_split(rows: int, batch_size: int, processes: int) -> None:
    """Refuse a split that would give one process fewer batches than another.

    Each process takes per-process batches of `batch_size` rows in turn (accelerate's batch sampler with
    `even_batches=False`, set in `stage.trainer_args`): no row is repeated and none dropped. When the rows do
    not fill the last global batch, its rows go to the first processes in per-process chunks (e.g. 24 rows,
    batch_size 7, 2 processes: steps of 7+7, then 7+3). If the rows would run out before the last process
    got a batch, that process would wait for a step the others never take (accelerate's default instead
    repeats rows from the start); that case is an error naming batch sizes that work.

    >>> check_even_split(24, 7, 2)
    >>> check_even_split(18, 4, 2)
    Traceback (most recent call last):
    ...
    rlhf.errors.RlhfError: 18 training rows in batches of 4 per process make 5 batches, not a multiple of 2 processes: the last step would leave a process without rows. Use --batch-size 3 or 5 (or 1 process)
    """
    if processes <= 1:
        return
    per_epoch = -(-rows // batch_size)
    if per_epoch % processes == 0:
        return
    fits = [b for b in range(1, rows + 1) if (-(-rows // b)) % processes == 0]
    near = sorted(fits, key=lambda b: (abs(b - batch_size), b))[:2]
    hint = f"Use --batch-size {' or '.join(map(str, sorted(near)))}" if near else "Use fewer processes"
    raise RlhfError(f"{rows} training rows in batches of {batch_size} per process make {per_epoch} batches, not a multiple "
                    f"of {processes} processes: the last step would leave a process without rows. {hint} (or 1 process)")


def check_engine() -> None:
    """Stop with a clear message where the rank rules do not hold yet: an engine that shards the weights
    (FSDP, DeepSpeed ZeRO-3) over more than one process cannot evaluate or save on the main process alone.
    (ZeRO-1/2 keep whole weights on every process: the main process can evaluate and save them.)"""
    n = int(os.environ.get("WORLD_SIZE", "1")) if inside_launch() else 1
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    zero3 = (os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
             and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "") == "3")
    if n > 1 and (fsdp or zero3):
        raise RlhfError(f"{'FSDP' if fsdp else 'DeepSpeed ZeRO-3'} with {n} processes shards the weights, and this stage "
                        "evaluates and saves on the main process: use ddp.yaml or deepspeed-zero2.yaml for several "
                        "processes (fsdp2.yaml / deepspeed-zero3.yaml run with --processes 1)")
