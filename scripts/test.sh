#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -n "${TEST_WORKERS:-auto}" -q --durations=15 "$@"
