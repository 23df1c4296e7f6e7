"""Floor measures the post-filter's calibration does not use: a run's sounds with its post-filter refitted and
calibrated (as export does) and refitted at strength 1, each class against all its recordings.

    python benchmarks/bench_floor_variants.py RUN DATA_DIR [--n 24] [--seed 1000] [--temperature 0.8]

``DATA_DIR`` is the class-folder layout the run's store was prepared from (one folder a class, the recordings at the
store's rate). Per class and variant, generated minus recorded, dB: the clip-average floor at three STFT sizes and
quantiles (the evaluation's: the quietest tenth at ~32 ms; the quietest 5 % at ~64 ms; the quietest quarter at
~16 ms) and inside the sounding frames (``core.floor.frame_floor_db``). The calibration matches the mean of the ~32 ms
quietest 5/10/20 % and the in-frame floor; the 64-ms and 16-ms columns are measures it never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from soundloom.core.floor import frame_floor_db, spectral_floor_db
from soundloom.core.io import load_audio
from soundloom.sounds.generator import Generator

sys.path.insert(0, str(Path(__file__).parent))
from bench_prior import refit_copy  # noqa: E402

MEASURES = (("q0.10 at 32 ms (eval)", 0.032, 0.10), ("q0.05 at 64 ms", 0.064, 0.05), ("q0.25 at 16 ms", 0.016, 0.25))


def floors(clips: list[np.ndarray], rate: int) -> dict[str, float]:
    """Median over clips of each clip-average measure (``core.floor.spectral_floor_db`` at its window and quantile)
    and of the in-frame floor."""
    out = {name: float(np.median(spectral_floor_db(clips, rate, q, window_s))) for name, window_s, q in MEASURES}
    out["in frames"] = float(np.median(frame_floor_db(clips, rate)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=0.8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "calibrated": refit_copy(args.run, Path(tmp) / "cal", 10, "fit"),
            "strength 1": refit_copy(args.run, Path(tmp) / "fitted", 10, "fit", calibrate=False),
        }
        gens = {name: Generator.from_run(run, level="raw") for name, run in variants.items()}
        rate = next(iter(gens.values())).spec.sample_rate
        result = {}
        for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
            real = floors([load_audio(str(f), rate)[0] for f in sorted(folder.glob("*.wav"))], rate)
            row = {}
            for name, gen in gens.items():
                sounds = gen.sample(args.n, label=folder.name, temperature=args.temperature, seed=args.seed)
                made = floors([np.asarray(s.audio).ravel() for s in sounds], rate)
                row[name] = {k: round(made[k] - real[k], 1) for k in real}
            result[folder.name] = row
            print(json.dumps({"class": folder.name, **row}), flush=True)
        for name in variants:
            worst = {k: max(abs(result[c][name][k]) for c in result) for k in next(iter(result.values()))[name]}
            print(json.dumps({"variant": name, "largest gap either way": worst}), flush=True)


if __name__ == "__main__":
    main()
