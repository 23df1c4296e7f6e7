#!/usr/bin/env bash
# The main job on the built-in synthetic data (no downloads). Installs into .venv, then:
#   sounds:  synth one-shots -> scan -> feature store -> train a class-conditional VAE ->
#            generate (conditioned, interpolation, variation, continuation) -> evaluate -> plots
#   streams: synth songs -> chunk on beats -> train the contrastive transition model -> render
#            a loudness-normalised stream (mp3 + cue JSON + timeline plot)
# Everything lands in ${1:-demo}/. About 7 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-demo}"
TRAIN_MINUTES="${TRAIN_MINUTES:-3}"
bash scripts/setup.sh
. .venv/bin/activate
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/9 built-in data: labeled one-shots (9 classes) and synthetic songs"
soundloom synth-data "$OUT/data" --n-per-class 40 --songs 8 --song-seconds 90

step "2/9 pre-flight scan of the one-shots"
soundloom scan "$OUT/data/oneshots"

step "3/9 feature store (log-mel spectrograms, 128 frames, dataset statistics)"
soundloom prepare "$OUT/data/oneshots" --out "$OUT/features" --sample-rate 16000 --seconds 1.016 --kind mel \
  --n-fft 512 --hop 128 --n-mels 64

step "4/9 train a class-conditional VAE for $TRAIN_MINUTES minutes"
soundloom train "$OUT/features" --model cvae --out "$OUT/runs/oneshots" --max-minutes "$TRAIN_MINUTES" --epochs 1000

step "5/9 generate: 3 bells, an interpolation kick -> snare, a variation, a continuation"
soundloom generate "$OUT/runs/oneshots" --n 3 --label bell --out "$OUT/sounds/bell" --seed 1
soundloom generate "$OUT/runs/oneshots" --interpolate "$OUT/data/oneshots/kick/kick_0000.wav" \
  "$OUT/data/oneshots/snare/snare_0000.wav" --steps 5 --out "$OUT/sounds/kick-to-snare"
soundloom generate "$OUT/runs/oneshots" --variation "$OUT/data/oneshots/pluck/pluck_0000.wav" --n 3 \
  --out "$OUT/sounds/pluck-variations" --format ogg
soundloom generate "$OUT/runs/oneshots" --continue "$OUT/data/oneshots/vowel/vowel_0000.wav" --prompt-seconds 0.4 \
  --seconds 1.0 --out "$OUT/sounds/vowel-continued"

step "6/9 evaluate: a small classifier trained on the real one-shots scores reconstructions and samples"
soundloom train-classifier "$OUT/features" --out "$OUT/runs/oneshots/classifier" --max-minutes 1
soundloom eval "$OUT/runs/oneshots" --temperatures 0.8,1.0 | tee "$OUT/runs/oneshots/eval.txt"
soundloom plot "$OUT"/sounds/bell/*.wav "$OUT"/sounds/kick-to-snare/*.wav --out "$OUT/plots/generated.png"
soundloom plot "$OUT"/data/oneshots/*/*_0000.wav --out "$OUT/plots/oneshots.png"

step "7/9 chunk the songs on beats (8 beats a chunk) into a pool"
soundloom chunk "$OUT/data/songs" --out "$OUT/pool" --method beats --beats 8

step "8/9 train the contrastive transition model for 2 minutes"
soundloom train-transitions "$OUT/pool" --model contrastive --out "$OUT/runs/transitions" --max-minutes 2 --steps 3000

step "9/9 render a 3-minute stream and compare the learned model with the features baseline"
soundloom stream "$OUT/pool" --model "$OUT/runs/transitions" --minutes 3 --out "$OUT/stream/stream.mp3"
soundloom eval-transitions "$OUT/pool" --model features --model "$OUT/runs/transitions" --stream-minutes 2

step "done: $OUT/"
echo "listen: $OUT/sounds/*/ and $OUT/stream/stream.mp3; look: $OUT/plots/*.png, $OUT/stream/*.png"
