"""The demo's transition model against ``features`` on several synthetic data sets (the demo's streams lane).

    python benchmarks/bench_transitions_demo.py OUT [--seeds 0 1 2 3] [--cpu-minutes 2] [--stream-minutes 2]

Per seed, the same commands as ``soundloom demo`` (each a ``soundloom`` child process, kept when its output
is already there, so an interrupted run resumes):

    soundloom synth-data OUT/dS --n-per-class 40 --songs 8 --song-seconds 90 --seed S
    soundloom chunk OUT/dS/songs --out OUT/poolS --method beats --beats 8 --lead-ms 100
    soundloom train-transitions OUT/poolS --model fusion --out OUT/runS --cpu-minutes 2 --max-minutes 4 \\
        --steps 3000 --threads 1
    soundloom eval-transitions OUT/poolS --model features --model OUT/runS --stream-minutes 2 --out OUT/evalS.json

and prints two markdown tables, weakest data set first (by how much larger the learned model's streams'
median seam distance is than ``features'``): ranking with the fallback decision (cross-fitted MRR, margin per
fold), and seams (stream joins, first choices, paired first choices, random in-song positions, natural chunk
boundaries, a random choice). Training is a CPU budget, so figures hold on a loaded machine, except that the
wall-clock bound (twice the budget) may stop training early there (each row gives steps and CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _soundloom(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "soundloom", *args], check=True, stdout=subprocess.DEVNULL)


def run_seed(out: Path, seed: int, cpu_minutes: float, stream_minutes: float) -> tuple[dict, dict]:
    """Build, train and evaluate one data set (skipping what is there); returns (run config, eval report)."""
    data, pool, run, report = out / f"d{seed}", out / f"pool{seed}", out / f"run{seed}", out / f"eval{seed}.json"
    if not (data / "songs").is_dir():  # seed 0 is synth-data's default: the demo's own data
        _soundloom(
            "synth-data", str(data), "--n-per-class", "40", "--songs", "8", "--song-seconds", "90", "--seed", str(seed)
        )
    if not (pool / "catalog.sqlite").exists():
        _soundloom(
            "chunk", str(data / "songs"), "--out", str(pool), "--method", "beats", "--beats", "8", "--lead-ms", "100"
        )
    if not (run / "config.json").exists():
        _soundloom(
            "train-transitions", str(pool), "--model", "fusion", "--out", str(run), "--cpu-minutes", f"{cpu_minutes:g}",
            "--max-minutes", f"{2 * cpu_minutes:g}", "--steps", "3000", "--threads", "1",
        )  # fmt: skip
    if not report.exists():
        _soundloom(
            "eval-transitions", str(pool), "--model", "features", "--model", str(run),
            "--stream-minutes", f"{stream_minutes:g}", "--out", str(report),
        )  # fmt: skip
    return json.loads((run / "config.json").read_text()), json.loads(report.read_text())


def _distance(d: dict) -> str:
    lo, hi = d["seam_distance_db_95"]
    return f"{d['median_seam_distance_db']:.2f} ({lo:.2f}-{hi:.2f})"


RANK_HEAD = (
    "| seed | model (steps, CPU-s) | fallback decision: cross-fitted MRR vs features (anchors; margin per fold) "
    "| top-1 | MRR | AUC same song |"
)
SEAM_HEAD = (
    "| seed | model | stream: pass / seam distance dB (95%) / onset | first choices: pass / distance / onset "
    "| first choices smoother than features' | random in-song: pass / distance / onset | natural boundaries "
    "| random choice: pass / distance |"
)


def _rank_rows(seed: int, cfg: dict, rep: dict) -> list[str]:
    m, v = cfg["metrics"], cfg["metrics"].get("validation", {})
    base, learned = rep["models"]
    margins = ", ".join(f"{f['mrr'] - f['mrr_features']:+.3f}" for f in v.get("per_fold", []))
    verdict = "falls back" if cfg.get("fallback") else "kept"
    decision = (
        f"{m['val_mrr']:.3f} vs {m['val_mrr_features']:.3f} ({v.get('anchors', '?')} anchors; {margins}): {verdict}"
    )
    rank = lambda r: f"{r['top1']:.3f} | {r['mrr']:.3f} | {r['auc_same_song']:.3f}"  # noqa: E731
    return [
        f"| {seed} | features | | {rank(base)} |",
        f"| {seed} | fusion ({m['steps']}, {m['cpu_seconds']:.0f}) | {decision} | {rank(learned)} |",
    ]


def _seam_row(seed: int, r: dict, rnd: dict) -> str:
    st, ri, nat = (r["seams"][k] for k in ("stream", "random_in_song", "natural_boundaries"))
    fc, vs = r["first_choice"], r["first_choice"].get("vs_features")
    cells = [
        str(seed),
        "features" if r["run"] == "features" else "fusion",
        f"{st['pass_all']:.2f} / {_distance(st)} / {st['median_onset_anomaly']:.2f}",
        f"{fc['pass_all']:.2f} / {_distance(fc)} / {fc['median_onset_anomaly']:.2f}",
        f"{vs['smoother']:.2f} of {vs['differ']}" if vs else "",
        f"{ri['pass_all']:.2f} / {ri['median_seam_distance_db']:.2f} / {ri['median_onset_anomaly']:.2f}",
        f"{nat['median_seam_distance_db']:.2f}",
        f"{rnd['pass_all']:.2f} / {rnd['median_seam_distance_db']:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def tables(results: dict[int, tuple[dict, dict]]) -> str:
    """The two markdown tables, weakest data set first."""

    def gap(seed: int) -> float:
        base, learned = (r["seams"]["stream"]["median_seam_distance_db"] for r in results[seed][1]["models"])
        return learned - base

    order = sorted(results, key=gap, reverse=True)
    lines = [RANK_HEAD, "|---|---|---|---|---|---|"]
    for s in order:
        lines += _rank_rows(s, *results[s])
    lines += ["", SEAM_HEAD, "|---|---|---|---|---|---|---|---|"]
    for s in order:
        rep = results[s][1]
        lines += [_seam_row(s, r, rep["first_choice_random"]) for r in rep["models"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--cpu-minutes", type=float, default=2.0)
    ap.add_argument("--stream-minutes", type=float, default=2.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {s: run_seed(args.out, s, args.cpu_minutes, args.stream_minutes) for s in args.seeds}
    print(tables(results))


if __name__ == "__main__":
    main()
