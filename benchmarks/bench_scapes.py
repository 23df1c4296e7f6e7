"""Soundscape mixing speed: real-time factor per CPU core, per mood, with events pre-rendered.

    python benchmarks/bench_scapes.py [--minutes 10] [--rate 48000] [--layouts stereo binaural foa]

For each layout and mood (calm, neutral, energetic) it mixes ``--minutes`` of a synthetic bed (a
seamless 10 s loop of filtered noise and a pad) with chimes and drops from a bank rendered before
the clock starts (the case of events rendered ahead by a model), through spatialisation and the
true-peak limiter, and prints:

* in-process RTF per core: audio seconds / CPU seconds (``time.process_time``, every thread) of
  the mixing alone;
* whole-process RTF per core: all audio mixed / the process's CPU seconds since start-up
  (interpreter, imports, bed and event banks included), printed last.

Target: >= 50x real time per core for stereo.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

from soundloom.core.levels import gain_to_db
from soundloom.scapes.mixer import Mixer
from soundloom.scapes.mood import Mood
from soundloom.scapes.schedule import EventSource, Schedule
from soundloom.scapes.synthetic import CHIME_LABELS, DROP_LABELS, CachedEvents, chime, drop, synthetic_bed

SOURCES = [EventSource("chimes", CHIME_LABELS), EventSource("drops", DROP_LABELS)]


def bench(layout: str, mood: str, minutes: float, rate: int, block: int) -> tuple[float, float]:
    events = {
        "chimes": CachedEvents(partial(chime), CHIME_LABELS, rate),
        "drops": CachedEvents(partial(drop), DROP_LABELS, rate),
    }
    bed = synthetic_bed(rate, block=block, loudness_lufs=Mood.of(mood).bed_loudness_lufs)
    n_blocks = int(minutes * 60 * rate / block)
    with Mixer(bed, events, Schedule(SOURCES, mood, seed=1), rate, layout=layout, block_size=block, live=False) as m:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        peak = 0.0
        for _, b in zip(range(n_blocks), m.blocks()):
            peak = max(peak, float(abs(b).max()))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        score = m.score()
    audio_s = n_blocks * block / rate
    print(
        f"{layout:9s} {mood:10s} {audio_s / 60:5.1f} min  cpu {cpu:6.2f} s  wall {wall:6.2f} s  "
        f"RTF/core {audio_s / cpu:7.1f}x  events {len(score['events']):4d}  skipped {len(score['skipped'])}  "
        f"limited {score['limiter']['reduced_samples']} samples  sample peak {gain_to_db(peak):6.1f} dBFS  "
        f"[{score['renderer']}]"
    )
    return audio_s, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--layouts", nargs="+", default=["stereo"], choices=["stereo", "binaural", "foa"])
    args = ap.parse_args()
    total_audio = 0.0
    for layout in args.layouts:
        for mood in ("calm", "neutral", "energetic"):
            audio_s, _ = bench(layout, mood, args.minutes, args.rate, args.block)
            total_audio += audio_s
    whole = time.process_time()
    print(
        f"whole process: {total_audio / 60:.1f} min of audio in {whole:.2f} CPU s: RTF/core {total_audio / whole:.1f}x"
    )


if __name__ == "__main__":
    main()
