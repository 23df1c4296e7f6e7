"""A run's spectral floor per class as floats and as the files ``Generator.save`` writes, against the recordings.

    python benchmarks/bench_written_floor.py RUN DATA_DIR [--n 48] [--temperature 0.8] [--seed 11] [--bits 16 24]

``DATA_DIR`` is the class-folder layout the run's store was prepared from. Per class: the median floor of ``--n``
conditioned sounds (``core.floor.spectral_floor_db``, the evaluation's quietest tenth at ~32 ms) minus the median
over all that class's recordings, measured on the rendered floats and on each sound written as a wav of each
``--bits`` and read back; beside them the median crest factor (peak over RMS, dB) of the generated sounds and of the
recordings, which sets how far under a sound's loudest bin its rounding noise lies. Prints one table and the largest
gap per column. Reads files; nothing is timed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from soundloom.core.floor import spectral_floor_db
from soundloom.core.io import load_audio
from soundloom.sounds.generator import Generator


def crest_db(clips: list[np.ndarray]) -> float:
    """Median over clips ``(samples,)`` of peak over RMS, dB."""
    return float(
        np.median([20 * np.log10(np.abs(c).max() / np.sqrt(np.mean(np.square(c, dtype=np.float64)))) for c in clips])
    )


def class_gaps(gen: Generator, data: Path, n: int, temperature: float, seed: int, bits: list[int]) -> dict:
    """Per class: ``{"floats": dB, "<b>-bit": dB, ..., "crest gen": dB, "crest rec": dB}``: generated minus recorded
    median floors, and the crest factors."""
    rate = gen.spec.sample_rate
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in gen.labels:
            real = [load_audio(str(f), rate)[0] for f in sorted((data / label).glob("*.wav"))]
            ref = float(np.median(spectral_floor_db(real, rate)))
            sounds = gen.sample(n, label=label, temperature=temperature, seed=seed)
            row = {"floats": float(np.median(spectral_floor_db([s.audio for s in sounds], rate))) - ref}
            for b in bits:
                paths = gen.save(sounds, Path(tmp) / f"{label}-{b}", bits=b)
                clips = [load_audio(str(p), rate)[0] for p in paths]
                row[f"{b}-bit"] = float(np.median(spectral_floor_db(clips, rate))) - ref
            row["crest gen"], row["crest rec"] = crest_db([s.audio for s in sounds]), crest_db(real)
            out[label] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--bits", type=int, nargs="+", default=[16, 24])
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = Generator.from_run(args.run)
    gaps = class_gaps(gen, args.data, args.n, args.temperature, args.seed, args.bits)
    cols = list(next(iter(gaps.values())))
    print(f"{args.run}: floor gap (generated - recorded, dB), {args.n} a class, T = {args.temperature:g}")
    print(f"{'class':12s}" + "".join(f"{c:>12s}" for c in cols))
    for label, row in gaps.items():
        print(f"{label:12s}" + "".join(f"{row[c]:12.1f}" for c in cols))
    cols = [c for c in cols if not c.startswith("crest")]  # the largest gap per floor column
    worst = {c: max(gaps, key=lambda k: abs(gaps[k][c])) for c in cols}
    print(f"{'largest':12s}" + "".join(f"{gaps[worst[c]][c]:+12.1f}" for c in cols))
    print(f"{'(class)':12s}" + "".join(f"{worst[c]:>12s}" for c in cols))


if __name__ == "__main__":
    main()
