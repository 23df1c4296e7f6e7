"""Soundscape mixing speed: real-time factor per CPU core, per mood, with events pre-rendered.

    python benchmarks/bench_scapes.py [--minutes 10] [--rate 48000] [--layouts stereo binaural foa]
    python benchmarks/bench_scapes.py --pool POOL [--pool-model features] [--verify gates|full|off]

For each layout and mood (calm, neutral, energetic) it mixes ``--minutes`` of a bed with chimes and
drops from a bank rendered before the clock starts (the case of events rendered ahead by a model),
through spatialisation and the true-peak limiter. The bed is a synthetic seamless 10 s loop, or with
``--pool`` the real thing: the mood-steered :class:`~soundloom.scapes.bed.Bed` over a chunk pool
(search, seam checks, crossfades, resampling, all on the clock; the built-in ambient one-shots as
events). It prints:

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


def _ambient(label: str, seed: int, params: dict, sample_rate: int):
    from soundloom.data.ambient import make_ambient_oneshot

    return make_ambient_oneshot(label, seed, 0, sample_rate)


def bench(layout: str, mood: str, minutes: float, rate: int, block: int, args) -> tuple[float, float]:
    if args.pool is None:
        events = {
            "chimes": CachedEvents(partial(chime), CHIME_LABELS, rate),
            "drops": CachedEvents(partial(drop), DROP_LABELS, rate),
        }
        bed, sources = synthetic_bed(rate, block=block, loudness_lufs=Mood.of(mood).bed_loudness_lufs), SOURCES
    else:
        from soundloom.data.ambient import AMBIENT_ONESHOT_CLASSES
        from soundloom.scapes.bed import Bed

        events = {"ambient": CachedEvents(_ambient, AMBIENT_ONESHOT_CLASSES, rate)}
        sources = [EventSource("ambient", AMBIENT_ONESHOT_CLASSES)]
        # opening reads (or computes and caches) the chunk features and embeddings: before the clock starts
        the_bed = Bed.open(args.pool, args.pool_model, mood=mood, sample_rate=rate, verify=args.verify)
        bed = the_bed.blocks()
    n_blocks = int(minutes * 60 * rate / block)
    with Mixer(bed, events, Schedule(sources, mood, seed=1), rate, layout=layout, block_size=block, live=False) as m:
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
        + ("" if args.pool is None else f"  bed joins {len(the_bed.joins)} pass {_pass_rate(the_bed):.2f}")
    )
    if args.pool is not None:
        the_bed.close()
    return audio_s, cpu


def _pass_rate(bed) -> float:
    return sum(j["pass"] for j in bed.joins) / max(1, len(bed.joins))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--layouts", nargs="+", default=["stereo"], choices=["stereo", "binaural", "foa"])
    ap.add_argument("--moods", nargs="+", default=["calm", "neutral", "energetic"])
    ap.add_argument("--pool", default=None, help="A chunk pool: the bed is the mood-steered Bed over it.")
    ap.add_argument("--pool-model", default="features", help="Transition run (or 'features') for --pool.")
    ap.add_argument("--verify", default="gates", choices=["gates", "full", "off"], help="Bed seam checks.")
    args = ap.parse_args()
    total_audio = 0.0
    for layout in args.layouts:
        for mood in args.moods:
            audio_s, _ = bench(layout, mood, args.minutes, args.rate, args.block, args)
            total_audio += audio_s
    whole = time.process_time()
    print(
        f"whole process: {total_audio / 60:.1f} min of audio in {whole:.2f} CPU s: RTF/core {total_audio / whole:.1f}x"
    )


if __name__ == "__main__":
    main()
