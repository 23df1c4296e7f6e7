#!/usr/bin/env bash
# Install (scripts/system-deps.sh, scripts/setup.sh), check lint, format and layer contracts, then run the whole test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
lint-imports
python -m pytest -n "${TEST_WORKERS:-auto}" -q --durations=15 "$@"
