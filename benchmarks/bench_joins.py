"""Joins of a long stream against random positions inside the same songs, and how much it repeats.

    python benchmarks/bench_joins.py POOL --run RUN [--package warzone2100 --package drascula] [--minutes 60]

Restricts the stream to the songs of the given packages (``index.csv`` beside the songs; all songs
when none is given), renders ``--minutes`` of it with seam verification, and prints:

* the joins' seam figures (pass rate of the three gates, click rate, median onset anomaly) next to
  the same figures at random positions inside the same songs (seams.reference_positions);
* repetition: runs of 3 consecutive chunks seen before in the stream, distinct chunks, coverage of
  the pool (distinct / chunks of those songs);
* timings: search (with verification) and rendering.

``--json PATH`` writes the figures too. Timings depend on machine load.

``--headroom N`` measures instead, on N seeded chunks of those songs, how much smoother any scorer could make
the joins the search picks from (``choice_headroom`` in ``streams.transitions.evaluation``): each model's
(``features``, ``--run`` and each ``--also``) best ``SearchConfig.candidates`` chunks, joined as the stream joins
them; of those that pass the verifier, the first ``pick_among`` in the model's order, in the seam distance's own
order among the same candidates (the oracle) and in a random order (a fusion run's contrastive part alone is
the run ``RUN/contrastive``):

    python benchmarks/bench_joins.py POOL --run RUN --also RUN/contrastive --package warzone2100 --headroom 80
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pool", type=Path)
    ap.add_argument("--run", default="features", help="transition run folder, or 'features'")
    ap.add_argument("--package", action="append", default=[], help="package name (prefix); repeat")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", type=int, default=2000, help="random in-song positions")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--headroom", type=int, default=0, help="measure the choice headroom on this many chunks instead")
    ap.add_argument("--also", action="append", default=[], help="with --headroom: another run to order by; repeat")
    args = ap.parse_args()

    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.config import RenderConfig, SearchConfig
    from soundloom.streams.index import load_pool_embeddings
    from soundloom.streams.pairs import song_packages
    from soundloom.streams.render import render_stream
    from soundloom.streams.seams import SeamVerifier, reference_positions
    from soundloom.streams.search import build_stream

    with ChunkCatalog(args.pool, create=False) as c:
        songs = c.songs()
        if args.package:
            packages = song_packages(songs)
            ids = [s.id for s in songs if any(packages.get(s.id, "").startswith(p) for p in args.package)]
        else:
            ids = [s.id for s in songs]
        if args.headroom:
            return headroom(c, args, ids)
        table = c.chunks()
        allowed = np.isin(table.song_id, ids)
        minutes_pool = sum(s.duration_s for s in songs if s.id in set(ids)) / 60
        emb = load_pool_embeddings(c, args.run)
        rcfg = RenderConfig()
        t0 = time.perf_counter()
        plan = build_stream(
            c, emb, SearchConfig(minutes=args.minutes, seed=args.seed), allowed=allowed, verifier=SeamVerifier(c, rcfg)
        )
        t1 = time.perf_counter()
        wav, cue = render_stream(c, plan, rcfg)
        t2 = time.perf_counter()
        ref = reference_positions(c, ids, n=args.reference, seed=args.seed)
    s, r = cue["summary"], ref["random_in_song"]
    j = s["joins"]
    out = {
        "pool": str(args.pool),
        "run": args.run,
        "packages": args.package,
        "songs": len(ids),
        "pool_minutes": minutes_pool,
        "stream_minutes": len(wav) / cue["sample_rate"] / 60,
        "joins": j,
        "random_in_song": r,
        "repetition": {k: v for k, v in s.items() if k != "joins"},
        "search_s": t1 - t0,
        "render_s": t2 - t1,
    }
    print(
        f"{out['stream_minutes']:.1f} min stream over {len(ids)} songs ({minutes_pool:.0f} min, {int(allowed.sum())} "
        f"chunks) with {args.run}: search {t1 - t0:.1f} s, render {t2 - t1:.1f} s"
    )
    print(f"{'':18}{'pass':>8}{'clicks':>9}{'onset':>8}")
    for name, d in (("joins", j), ("random in-song", r)):
        print(f"{name:18}{d['pass_all']:8.3f}{d['click_rate']:9.2%}{d['median_onset_anomaly']:8.2f}   n={d['n']}")
    rep = out["repetition"]
    print(
        f"repeated runs of 3 chunks: {rep['repeated_runs_3']}; distinct chunks {rep['distinct_chunks']} of "
        f"{rep['pool_chunks']} (coverage {rep['coverage']:.1%})"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


def headroom(catalog, args: argparse.Namespace, ids: list[int]) -> None:
    """Print (and with ``--json`` write) the choice headroom of ``features`` and ``--run`` on the songs ``ids``."""
    from soundloom.streams.config import SearchConfig
    from soundloom.streams.transitions.evaluation import choice_headroom

    runs = list(dict.fromkeys(["features", args.run, *args.also]))
    t0 = time.perf_counter()
    got = choice_headroom(catalog, runs, ids, anchors=args.headroom, top=SearchConfig().candidates, seed=args.seed)
    print(
        f"{got['anchors']} chunks of {len(ids)} songs, each model's best {SearchConfig().candidates} candidates, "
        f"{got['passing_per_anchor']:.1f} passing per chunk (union), first {got['pick']} passing judged "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'seam distance dB':32}{'first picks':>12}{'oracle':>9}")
    for run, m in got["models"].items():
        print(f"{'/'.join(Path(run).parts[-2:])[-31:]:32}{m['first']:12.2f}{m['oracle']:9.2f}")
    print(f"{'random order (union)':32}{got['random']:12.2f}{got['oracle']:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"pool": str(args.pool), "packages": args.package, **got}, indent=1))


if __name__ == "__main__":
    main()
