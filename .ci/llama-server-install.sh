#!/usr/bin/env bash
# A real OpenAI-compatible server for tests/test_openai_server.py: llama.cpp's server (llama_cpp.server). The
# llama_cpp package itself is the prebuilt one that setup.sh puts in the venv (the teacher's backend); only the
# server's web stack goes into TARGET, which only the server's process puts on PYTHONPATH, so the project's
# venv is untouched.
#   bash .ci/llama-server-install.sh [TARGET]    (default .llama-server; ~20 s)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-.llama-server}
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import llama_cpp.server" 2>/dev/null || { echo "no llama_cpp in the venv: run bash setup.sh first"; exit 1; }
[ -f "$TARGET/fastapi/__init__.py" ] && { echo "llama.cpp server's web stack already in $TARGET"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip install --quiet --target "$tmp/site" \
    "fastapi>=0.100" "uvicorn>=0.22" "sse-starlette>=1.6" "pydantic-settings>=2" "starlette-context>=0.3"
rm -rf "$TARGET" && mv "$tmp/site" "$TARGET"
echo "llama.cpp server's web stack installed in $TARGET"
