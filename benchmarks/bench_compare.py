"""`soundloom compare` on every finished run in a folder: one table, the same reference and judge.

    python benchmarks/bench_compare.py /tmp/h10/runs --classifier /tmp/h10/clf
    python benchmarks/bench_compare.py RUNS_DIR --n-per-label 20 --json compare.json

A run is a sub-folder holding ``model.safetensors`` (sorted by name; ``--first NAME`` puts one
first: its held-out items are the reference every run is judged against). Prints the table, the
CPU seconds the comparison took, and optionally writes the full result as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from soundloom.sounds.evaluation.compare import compare_runs, table_lines


def find_runs(folder: Path, first: str | None) -> list[Path]:
    """Sub-folders of ``folder`` with a finished model, ``first`` (a folder name) at the front."""
    runs = sorted(p for p in folder.iterdir() if (p / "model.safetensors").is_file())
    if first:
        runs.sort(key=lambda p: p.name != first)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="folder of run directories")
    ap.add_argument("--classifier", type=Path, default=None, help="evaluation classifier directory")
    ap.add_argument("--first", default=None, help="run (folder name) whose held-out items are the reference")
    ap.add_argument("--n-per-label", type=int, default=None)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--griffin-lim-iters", type=int, default=32)
    ap.add_argument("--speed-items", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the full result here")
    args = ap.parse_args()

    torch.set_num_threads(1)  # generation speed is reported per core
    runs = find_runs(args.folder, args.first)
    if not runs:
        raise SystemExit(f"{args.folder}: no run directories (sub-folders with model.safetensors)")
    print(f"runs: {', '.join(p.name for p in runs)}")
    cpu, wall = time.process_time(), time.perf_counter()
    result = compare_runs(
        runs,
        args.classifier,
        n_per_label=args.n_per_label,
        temperature=args.temperature,
        griffin_lim_iters=args.griffin_lim_iters,
        speed_items=args.speed_items,
        seed=args.seed,
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for line in table_lines(result):
        print(line)
    print(f"compare took {cpu:.1f} CPU s ({wall:.1f} s wall) for {len(runs)} runs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
