"""How far a class's median spectral floor moves with the sounds it is taken over: real recordings against real ones.

    python benchmarks/bench_floor_spread.py DATA_DIR [--n 16] [--draws 2000] [--rate 16000]

``DATA_DIR``: one folder a class of recordings (the built-in one-shots' layout). Per class: the recordings' floors
(``core.floor.spectral_floor_db``, the evaluation's quietest tenth at ~32 ms; their median and 10th / 90th
percentiles), and, over ``--draws`` random picks of ``--n`` of them (without replacement, seeded), how far the pick's
median lies from the median of all: the median, 95th percentile and largest of that gap, dB. A model judged by the
median floor of ``--n`` sounds a class cannot be told apart from its recordings by less than that. (With ``--n`` near
the number of recordings the picks overlap the whole and the gap reads small: a finite-population effect.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from soundloom.core.floor import spectral_floor_db
from soundloom.core.io import load_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=16000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        clips = [load_audio(str(f), args.rate)[0] for f in sorted(folder.glob("*.wav"))]
        floors = spectral_floor_db(clips, args.rate)
        if len(floors) <= args.n:
            print(json.dumps({"class": folder.name, "skipped": f"{len(floors)} recordings, not more than --n"}))
            continue
        whole = float(np.median(floors))
        gaps = np.abs([np.median(rng.choice(floors, args.n, replace=False)) - whole for _ in range(args.draws)])
        row = {
            "class": folder.name,
            "recordings": len(floors),
            "floor_db": {
                "median": round(whole, 1),
                "p10": round(float(np.percentile(floors, 10)), 1),
                "p90": round(float(np.percentile(floors, 90)), 1),
            },
            f"gap_of_{args.n}_db": {
                "median": round(float(np.median(gaps)), 1),
                "p95": round(float(np.percentile(gaps, 95)), 1),
                "max": round(float(gaps.max()), 1),
            },
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
