"""The demo's transition model against ``features`` on several synthetic data sets (the demo's streams lane).

    python benchmarks/bench_transitions_demo.py OUT [--seeds 0 1 2 3] [--cpu-minutes 2] [--stream-minutes 2] \\
        [--stream-seeds 8] [--headroom]

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

Two measurement aids (a table each), for the question "are the learned model's stream seams better than
``features'``?", which one stream of a few dozen joins cannot answer:

* ``--stream-seeds N``: N streams per model and data set (stream seeds 0..N-1: start chunk and the search's
  random picks; the same test songs and references), each judged as ``eval-transitions`` judges its one; the
  paired difference of the two models' median seam distance per stream seed, its mean with a 95% bootstrap
  interval, and in how many streams the learned model's is the lower (pass rate and onset anomaly per model).
* ``--headroom``: how much lower any scorer could bring the seam distance of the joins the search makes, on
  the test songs (``choice_headroom`` in ``streams.transitions.evaluation``): every pair of test chunks is
  joined as the stream joins it (``SeamVerifier``), and for each chunk the candidates that pass the verifier
  (the three gates and the onset gate) are taken in a scorer's order, the first ``pick_among`` of them (the
  ones a stream picks from at random). The median seam distance of those joins in ``features``' order, the
  learned model's, and an oracle's that orders by the rendered seam distance itself (the best any scorer can
  do there), next to a random order (a scorer that knows nothing). It leaves out the stream's variety rules
  (reuse window, coverage, song runs), which narrow the choice further for every scorer alike.

Stream seed 0 is the stream of the seams table.
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


def stream_seeds(out: Path, seed: int, runs: list[str], stream_minutes: float, n: int) -> dict[str, list[dict]]:
    """Stream figures per model of ``n`` seeded streams over the data set's test songs (cached in OUT)."""
    path = out / f"streams{seed}_{n}x{stream_minutes:g}.json"
    if path.exists():
        return json.loads(path.read_text())
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.transitions.evaluation import stream_seam_report

    test = json.loads((out / f"run{seed}" / "config.json").read_text())["split"]["test"]
    got: dict[str, list[dict]] = {}
    with ChunkCatalog(out / f"pool{seed}", create=False) as catalog:
        refs: dict = {}
        for run in runs:
            got[run] = [
                stream_seam_report(catalog, run, test, minutes=stream_minutes, seed=s, references=refs)["stream"]
                for s in range(n)
            ]
    path.write_text(json.dumps(got))
    return got


def headroom(out: Path, seed: int, runs: list[str]) -> dict:
    """:func:`~soundloom.streams.transitions.evaluation.choice_headroom` on the data set's test songs, every test
    chunk an anchor and every other one a candidate (cached in OUT)."""
    path = out / f"headroom{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.transitions.evaluation import choice_headroom

    test = json.loads((out / f"run{seed}" / "config.json").read_text())["split"]["test"]
    with ChunkCatalog(out / f"pool{seed}", create=False) as catalog:
        got = choice_headroom(catalog, runs, test, seed=seed)
    path.write_text(json.dumps(got))
    return got


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


STREAMS_HEAD = (
    "| seed | streams x minutes | features: median seam distance dB per stream (mean) / pass / onset "
    "| fusion: the same | fusion - features per stream: mean dB (95%) | fusion lower in |"
)


def _streams_row(seed: int, got: dict[str, list[dict]], minutes: float) -> str:
    import numpy as np

    base, learned = got.values()
    d = lambda rs: np.array([r["median_seam_distance_db"] for r in rs])  # noqa: E731
    diff = d(learned) - d(base)
    boot = np.random.default_rng(0).choice(diff, size=(2000, len(diff))).mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])

    def cell(rs: list[dict]) -> str:
        joins = sum(r["n"] for r in rs)
        passed = sum(r["pass_all"] * r["n"] for r in rs) / max(1, joins)
        onset = float(np.median([r["median_onset_anomaly"] for r in rs]))
        return f"{d(rs).mean():.2f} ({joins} joins) / {passed:.3f} / {onset:.2f}"

    return (
        f"| {seed} | {len(diff)} x {minutes:g} | {cell(base)} | {cell(learned)} | {diff.mean():+.2f} ({lo:+.2f} to "
        f"{hi:+.2f}) | {int((diff < 0).sum())} of {len(diff)} |"
    )


HEADROOM_HEAD = (
    "| seed | passing candidates per chunk | first picks' seam distance dB: random order | features | fusion "
    "| oracle (ordered by the seam distance itself) | features - oracle |"
)


def _headroom_row(seed: int, h: dict) -> str:
    base, learned = (m["first"] for m in h["models"].values())
    return (
        f"| {seed} | {h['passing_per_anchor']:.1f} | {h['random']:.2f} | {base:.2f} | {learned:.2f} "
        f"| {h['oracle']:.2f} | {base - h['oracle']:.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--cpu-minutes", type=float, default=2.0)
    ap.add_argument("--stream-minutes", type=float, default=2.0)
    ap.add_argument("--stream-seeds", type=int, default=1, help="streams per model and data set (table 3 when > 1)")
    ap.add_argument("--headroom", action="store_true", help="table 4: first picks in each order and the oracle's")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {s: run_seed(args.out, s, args.cpu_minutes, args.stream_minutes) for s in args.seeds}
    print(tables(results))
    runs = lambda s: ["features", str(args.out / f"run{s}")]  # noqa: E731
    if args.stream_seeds > 1:
        print("\n" + STREAMS_HEAD + "\n|---|---|---|---|---|---|")
        for s in args.seeds:
            got = stream_seeds(args.out, s, runs(s), args.stream_minutes, args.stream_seeds)
            print(_streams_row(s, got, args.stream_minutes))
    if args.headroom:
        print("\n" + HEADROOM_HEAD + "\n|---|---|---|---|---|---|---|")
        for s in args.seeds:
            print(_headroom_row(s, headroom(args.out, s, runs(s))))


if __name__ == "__main__":
    main()
