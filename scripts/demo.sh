#!/usr/bin/env bash
# The main job on the built-in synthetic data (no downloads): install, make data, scan, prepare,
# plot. Everything lands in ${1:-demo}/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-demo}"
bash scripts/setup.sh
. .venv/bin/activate
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/4 built-in data: labeled one-shots (9 classes) and synthetic songs"
soundloom synth-data "$OUT/data" --n-per-class 40 --songs 4 --song-seconds 120

step "2/4 pre-flight scan of the one-shots"
soundloom scan "$OUT/data/oneshots"

step "3/4 feature store (log spectrograms, dataset statistics)"
soundloom prepare "$OUT/data/oneshots" --out "$OUT/features"

step "4/4 plots"
soundloom plot "$OUT"/data/oneshots/*/*_0000.wav --out "$OUT/plots/oneshots.png"

step "done: $OUT/"
ls "$OUT"
