#!/usr/bin/env bash
# The main job on the built-in synthetic data (no downloads): install into .venv, then `soundloom demo`.
# Everything lands in ${1:-demo}/, with demo/report.html to open in a browser.
# TRAIN_MINUTES (default 3) sets the generation model's training budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
soundloom demo --out "${1:-demo}" --train-minutes "${TRAIN_MINUTES:-3}"
