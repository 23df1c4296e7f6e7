"""Loops for game engines on real songs: seam gates at the loop's own join, and the files read back.

    python benchmarks/bench_loops.py [--music /work/devdata/music] [--seconds 8 30] [--target streaming]

For the first song of each package in ``<music>/index.csv`` and each loop length it runs
:func:`soundloom.streams.loops.export_loop` (2 s intro, then the loop) and prints:

* the loop: method (beats / zero crossings), crossfade (ms), length error, search time;
* the seam figures of the *written WAV* played as an engine plays it (intro, loop, loop): level jump
  (dB, gate <= 4), spectral cosine (gate >= 0.75), click ratio (gate <= 3), at the wrap and, for a
  crossfade loop, at the crossfade centre (worst shown);
* the same figures for the naive loop a user would cut by hand (same start, exactly ``seconds`` long,
  butt-spliced): the baseline, measured in the same run;
* read-back: ``smpl`` loop (our RIFF parser), OGG ``LOOPSTART`` / ``LOOPLENGTH`` (mutagen), frames
  (soundfile) all equal to the loop we meant; loudness (LUFS) and true peak (dBTP) of the WAV, and
  the true peak of the decoded OGG (lossy coding moves peaks; the preset holds for the PCM file).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from mutagen.oggvorbis import OggVorbis

from soundloom.core.io import read_audio
from soundloom.core.levels import loudness_lufs, true_peak_db
from soundloom.core.loopfiles import LOOP_TARGETS, read_smpl_loops
from soundloom.streams.loops import export_loop
from soundloom.streams.seams import seam_metrics

INTRO_S = 2.0


def first_song_per_package(music: Path) -> list[Path]:
    with open(music / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seen: dict[str, Path] = {}
    for row in rows:
        seen.setdefault(row["package"], music / row["file"])
    return list(seen.values())


def worst(m: dict) -> tuple[float, float, float, bool]:
    return (
        float(m["level_jump_db"].max()),
        float(m["spectral_cosine"].min()),
        float(m["click_ratio"].max()),
        bool(m["pass"].all()),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--music", type=Path, default=Path("/work/devdata/music"))
    ap.add_argument("--seconds", type=float, nargs="+", default=[8.0, 30.0])
    ap.add_argument("--target", default="streaming", choices=sorted(LOOP_TARGETS))
    args = ap.parse_args()
    print(f"{'song':34s} {'S':>4s} {'method':14s} {'xf ms':>5s} {'len err ms':>10s} {'search s':>8s} | "
          f"{'ours: level dB  cos  click pass':31s} | {'naive: level dB  cos  click pass':32s} | "
          f"{'readback':8s} {'LUFS':>6s} {'dBTP':>6s} {'ogg dBTP':>8s}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in first_song_per_package(args.music):
            audio, rate = read_audio(path)
            audio = audio.T  # (samples, channels)
            for seconds in args.seconds:
                t0 = time.perf_counter()
                loop, paths = export_loop(
                    Path(tmp) / path.stem, audio, rate, seconds, target=args.target, intro_s=INTRO_S
                )
                took = time.perf_counter() - t0
                wav, wrate = sf.read(str(paths["wav"]), dtype="float32", always_2d=True)
                (smpl,) = read_smpl_loops(paths["wav"])
                tags = OggVorbis(str(paths["ogg"]))
                doc = json.loads(paths["json"].read_text())
                start, stop = smpl.start, smpl.stop
                readback = (
                    start == doc["loop_start_samples"] == int(tags["LOOPSTART"][0])
                    and stop - start == loop.length == int(tags["LOOPLENGTH"][0]) == doc["loop_length_samples"]
                    and sf.info(str(paths["ogg"])).frames == len(wav) == stop
                    and wrate == rate
                )
                mono = wav.mean(axis=1)
                played = np.concatenate([mono[:stop], mono[start:stop]])
                pos = [stop] + ([stop - loop.crossfade // 2] if loop.crossfade else [])
                ours = worst(seam_metrics(played, np.array(pos), rate))
                src = audio.mean(axis=1)
                n = int(round(seconds * rate))
                naive = np.concatenate([src[loop.start : loop.start + n], src[loop.start : loop.start + n]])
                base = worst(seam_metrics(naive, np.array([n]), rate))
                rows.append((path.name, seconds, ours))
                ogg_tp = true_peak_db(sf.read(str(paths["ogg"]), dtype="float32", always_2d=True)[0].T, rate)
                print(f"{path.name[:34]:34s} {seconds:4.0f} {loop.method:14s} {1000 * loop.crossfade / rate:5.0f} "
                      f"{1000 * (loop.length - n) / rate:10.1f} {took:8.1f} | "
                      f"{ours[0]:13.2f} {ours[1]:5.3f} {ours[2]:6.2f} {'yes' if ours[3] else 'NO':>4s} | "
                      f"{base[0]:14.2f} {base[1]:5.3f} {base[2]:6.2f} {'yes' if base[3] else 'NO':>4s} | "
                      f"{'ok' if readback else 'WRONG':8s} {loudness_lufs(wav[start:stop].T, rate):6.1f} "
                      f"{true_peak_db(wav.T, rate):6.2f} {ogg_tp:8.2f}")  # fmt: skip
    # weakest: the case closest to (or past) a gate, each figure as a fraction of its allowance
    frac = [max(o[0] / 4.0, (1 - o[1]) / 0.25, o[2] / 3.0) for _, _, o in rows]
    name, seconds, o = rows[int(np.argmax(frac))]
    print(f"weakest: {name} {seconds:.0f} s: level {o[0]:.2f} dB, cosine {o[1]:.3f}, click {o[2]:.2f} "
          f"({max(frac):.0%} of the nearest gate's allowance); all pass: {all(r[2][3] for r in rows)}")  # fmt: skip


if __name__ == "__main__":
    main()
