#!/usr/bin/env bash
# Create .venv (if missing) and install soundloom with its test, server and FAISS extras.
# torch==2.13.0 is installed first so the local CPU build is used and nothing pulls the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,server,faiss,lint,export]"
