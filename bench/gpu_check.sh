#!/usr/bin/env bash
# The one-shot GPU check (issue 14): QLoRA load + one step of each stage (`pytest -m gpu`), the SFT / RM / PPO
# benchmarks on CUDA, the peak memory of one QLoRA SFT step on a 7B-shaped model, and the FSDP2 / ZeRO-3 configs
# taking steps with one process; under 8 minutes, everything into one JSON, a RESULT line last (bench/gpu_check.py).
#
#   bash bench/gpu_check.sh --dry-run        # any machine: every command parses, every config loads
#   bash bench/gpu_check.sh --fetch-wheels   # here, before lending a GPU: what its image lacks, into .whl/
#   bash bench/gpu_check.sh                  # on the GPU machine: writes $OUT/gpu_check.json
#
# On the lent GPU machine (no internet; see /work/.library/device/README.md), with .whl carried:
#   device run, carry [".whl"], command: bash bench/gpu_check.sh
# The wheels go to /tmp/site (PYTHONPATH); trl 1.12 for the PPO baseline stays in .whl/trl112 (bench/ppo.py makes
# its own venv from it); .whl/builtin holds the built-in model's tokenizer and config (RLHF_BUILTIN_DIR), which is
# all the random-init models need, so the 98 MB GGUF never travels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"

case "${1:-}" in
  --dry-run)
    exec "$PY" bench/gpu_check.py --dry-run --out "${OUT:-${TMPDIR:-/tmp}}"
    ;;
  --fetch-wheels)
    ../shared/gpu/wheels.sh trl==1.16.0 datasets==5.2.0 "dill<0.4.2" "multiprocess<0.70.20" sqlalchemy alembic mako \
      gguf transformers==5.23.0 bitsandbytes==0.50.2 hjson py-cpuinfo msgpack einops ninja
    mkdir -p .whl/trl112 .whl/builtin
    python3 -m pip download -q --no-deps --only-binary=:all: -d .whl/trl112 trl==1.12.0
    DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl deepspeed==0.19.8   # sdist only on PyPI
    "$PY" - <<'PYEOF'
import shutil
from pathlib import Path
from rlhf.train import modeling
src = modeling.builtin_path()
for f in src.iterdir():
    if f.suffix != ".safetensors":  # tokenizer files and config.json; no weights
        shutil.copy(f, Path(".whl/builtin") / f.name)
PYEOF
    echo "carry .whl: $(du -sh .whl | cut -f1) (with the tree: keep under 64 MiB)"
    ;;
  "")
    if [ -d .whl ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
      export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/.whl/trl112"
      [ -f .whl/builtin/config.json ] && export RLHF_BUILTIN_DIR="$PWD/.whl/builtin"
    fi
    export RLHF_HOME="${RLHF_HOME:-/tmp/gpu-check-home}"
    exec "$PY" bench/gpu_check.py --out "${OUT:-.}"
    ;;
  *)
    echo "usage: bash bench/gpu_check.sh [--dry-run | --fetch-wheels]" >&2
    exit 2
    ;;
esac
