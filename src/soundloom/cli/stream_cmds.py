"""CLI commands of the stream side (registered on :data:`soundloom.cli.app.app`).

soundloom chunk SONGS --out POOL [--method fixed|silence|beats]
soundloom train-transitions POOL --model contrastive --out RUN
soundloom stream POOL --model RUN --minutes 10 --out stream.mp3   (or --endless > live.wav)
soundloom eval-transitions POOL --model features --model RUN --json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import ParameterError
from ..streams.config import RenderConfig, SearchConfig
from .app import THREADS_HELP, app, set_threads

#: Option defaults come from the configs, so ``stream`` and ``serve`` cannot drift apart.
_SEARCH = SearchConfig()
_RENDER = RenderConfig()


@app.command()
def chunk(
    songs: Path = typer.Argument(..., help="Folder of songs (any format, recursive) or one file."),
    out: Path = typer.Option(..., "--out", help="Pool folder (created; re-running adds only new songs)."),
    method: str = typer.Option("fixed", help="fixed | silence | beats."),
    seconds: float = typer.Option(3.0, help="Chunk length for --method fixed (s)."),
    silence_db: float = typer.Option(-40.0, help="Silence threshold (dBFS RMS over 10 ms)."),
    min_silence_ms: float = typer.Option(300.0, help="Shortest silence that cuts (ms)."),
    keep_silence_ms: float = typer.Option(100.0, help="Silence kept each side of a cut (ms)."),
    beats: int = typer.Option(8, help="Beats per chunk (or bars, with --beats-per-bar)."),
    beats_per_bar: int = typer.Option(0, help="If > 0, --beats counts bars of this many beats."),
    min_chunk_s: float = typer.Option(0.5, help="Shorter chunks merge into a neighbour (s)."),
    lead_ms: float = typer.Option(0.0, help="--method beats: cut this long before each beat (ms)."),
    sample_rate: int = typer.Option(22050, help="Pool analysis and stream rate (Hz); fixed by the first run."),
) -> None:
    """Cut songs into chunks and catalogue them (offsets only; audio stays in the source files).

    Songs that cannot be used (unreadable, empty, too short, silent, non-finite, broken links, ...)
    are skipped with a reason, listed here and in POOL/skipped.json; the good ones are kept.
    """
    from ..core.progress import rich_progress
    from ..streams.catalog import ChunkCatalog, scan_songs
    from ..streams.chunking import ChunkConfig

    cfg = ChunkConfig(
        method=method,
        seconds=seconds,
        silence_db=silence_db,
        min_silence_ms=min_silence_ms,
        keep_silence_ms=keep_silence_ms,
        beats=beats,
        beats_per_bar=beats_per_bar,
        min_chunk_s=min_chunk_s,
        lead_ms=lead_ms,
    )
    found = scan_songs(songs)
    skipped: list[tuple[str, str]] = []
    t0 = time.time()
    with ChunkCatalog(out) as catalog:
        gone = catalog.remove_missing()
        for s in found.skipped:
            catalog.record_skip(s["path"], s["reason"], on_skip=lambda p, r: skipped.append((p, r)))
        with rich_progress(transient=True) as progress:
            added = catalog.add_songs(
                found.paths,
                cfg,
                sample_rate=sample_rate,
                progress=progress,
                on_skip=lambda p, r: skipped.append((p, r)),
            )
        s = catalog.summary()
    dt = time.time() - t0
    new_min = sum(x.duration_s for x in added) / 60
    for path, reason in sorted(skipped):
        typer.echo(f"skipped {path}: {reason}")
    for path in gone:
        typer.echo(f"removed {path}: its file is gone")
    typer.echo(
        f"added {len(added)} songs ({new_min:.1f} min), {len(skipped)} skipped in {dt:.1f} s; pool {out}: "
        f"{s['songs']} songs, {s['chunks']} chunks, {s['minutes']:.1f} min"
        + (f" (skipped songs listed in {out / 'skipped.json'})" if skipped else "")
    )


@app.command("train-transitions")
def train_transitions_cmd(
    pool: Path = typer.Argument(..., help="Pool folder made by `soundloom chunk`."),
    model: str = typer.Option("contrastive", help="contrastive | fusion | features | cnn-lstm."),
    out: Path = typer.Option(..., "--out", help="Run folder (config.json, model.safetensors, metrics.json)."),
    steps: int = typer.Option(3000, help="Training steps (contrastive / fusion)."),
    max_minutes: float = typer.Option(15.0, help="Wall-clock training budget (min)."),
    cpu_minutes: Optional[float] = typer.Option(
        None, help="CPU-time training budget (min, this process and its children): fair on a shared machine."
    ),
    lr: float = typer.Option(1e-3, help="Peak learning rate (contrastive)."),
    seed: int = typer.Option(0, help="Seed of the song split and of training."),
    width: Optional[int] = typer.Option(None, help="Encoder width (contrastive) - smaller trains faster."),
    side_s: Optional[float] = typer.Option(None, help="cnn-lstm: seconds of A's end and B's start (seed-like: 1.0)."),
    holdout_package: Optional[str] = typer.Option(
        None, help="Test on this package's songs (index.csv beside the songs), train on the others."
    ),
    fallback: bool = typer.Option(
        True,
        help="Fall back to `features` when the model does not beat it on val songs (a fusion on a pool with "
        "fewer than 3 val songs: cross-fitted over every non-test song).",
    ),
    contrastive_from: Optional[Path] = typer.Option(
        None, help="fusion: take the contrastive part of this run (not retrained); fit the rest on this pool."
    ),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Train a transition model on the pool's training songs (split by song, or leave one package out)."""
    set_threads(threads)
    from ..core.progress import rich_progress
    from ..streams.transitions import model_kwargs
    from ..streams.transitions.training import train_transitions

    kwargs = model_kwargs(model, width=width, side_s=side_s)
    with rich_progress(transient=True) as progress:
        cfg = train_transitions(
            pool,
            model,
            out,
            seed=seed,
            steps=steps,
            max_minutes=max_minutes,
            lr=lr,
            model_kwargs=kwargs,
            progress=progress,
            holdout_package=holdout_package,
            fallback=fallback,
            cpu_minutes=cpu_minutes,
            contrastive_from=contrastive_from,
        )
    m = cfg["metrics"]
    extra = f", fusion weight {m['fusion_weight']}" if "fusion_weight" in m else ""
    if "fusion_weights" in m:
        extra = ", fusion weights " + ", ".join(f"{k} {v:.3g}" for k, v in m["fusion_weights"].items())
    held = f" (test: package {cfg['holdout_package']})" if cfg.get("holdout_package") else ""
    steps_cpu = f" ({m['steps']} steps, {m['cpu_seconds']:.0f} CPU-s)" if "cpu_seconds" in m and "steps" in m else ""
    typer.echo(
        f"trained {model} in {m['train_seconds']:.0f} s{steps_cpu}{extra}; split {len(cfg['split']['train'])}/"
        f"{len(cfg['split']['val'])}/{len(cfg['split']['test'])} songs{held}; run {out}"
    )
    if "val_mrr" in m:
        verdict = (
            "it does not beat features there: the run falls back to `features` (config.json: fallback)"
            if cfg.get("fallback")
            else "it beats features there"
        )
        typer.echo(f"{_validated_on(m)}: MRR {m['val_mrr']:.3f} vs features {m['val_mrr_features']:.3f}: {verdict}")


def _first_choice_table(report: dict) -> None:
    """The seams of each model's first choices, a random choice's, and each model paired with ``features``."""
    from rich.console import Console
    from rich.table import Table

    rows = [(r["model"], Path(r["run"]).name, r["first_choice"]) for r in report["models"] if "first_choice" in r]
    if not rows:
        return
    rows.append(("random choice", "-", report.get("first_choice_random", {})))
    t = Table(title="first choices of each test chunk, joined as the stream joins them")
    for col in ("model", "run", "joins", "seams pass", "seam dist dB (95%)", "onset", "smoother than features"):
        t.add_column(col)
    for model, run, fc in rows:
        vs = fc.get("vs_features")
        smoother = f"{vs['smoother']:.2f} of {vs['differ']}" if vs and vs["differ"] else "-"
        t.add_row(
            model,
            run,
            str(fc.get("n", "-")),
            f"{fc['pass_all']:.2f}" if "pass_all" in fc else "-",
            _with_interval(fc, "median_seam_distance_db", "seam_distance_db_95"),
            f"{fc['median_onset_anomaly']:.2f}" if "median_onset_anomaly" in fc else "-",
            smoother,
        )
    Console(width=220).print(t)


def _with_interval(d: dict, key: str, interval: str) -> str:
    """``d[key]`` with its interval ``d[interval]`` as "m (lo-hi)", or "-"."""
    if key not in d:
        return "-"
    lo, hi = d.get(interval, (float("nan"), float("nan")))
    return f"{d[key]:.2f} ({lo:.2f}-{hi:.2f})"


def _validated_on(m: dict) -> str:
    """Where a run's fallback decision was made: its validation songs, or cross-fitted folds and their margins."""
    v = m.get("validation", {})
    if not v.get("cross_fitted"):
        n = v.get("songs", "?")
        return f"validated on {n} song{'' if n == 1 else 's'} ({v.get('anchors', '?')} anchors)"
    margins = ", ".join(f"{f['mrr'] - f['mrr_features']:+.3f}" for f in v["per_fold"])
    return (
        f"validated cross-fitted on {v['songs']} songs in {v['folds']} folds ({v['anchors']} anchors, each scored by "
        f"an ensemble member that never heard its song; margin per fold {margins})"
    )


@app.command()
def stream(
    pool: Path = typer.Argument(..., help="Pool folder."),
    model: str = typer.Option(..., "--model", help="Run folder of an embedding model, or 'features'."),
    minutes: float = typer.Option(_SEARCH.minutes, help="Target length (min)."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output file: .mp3 .ogg .flac .wav (+ .cue.json, .timeline.png)."
    ),
    endless: bool = typer.Option(False, help="Write an unbounded 16-bit WAV stream to stdout until stopped."),
    method: str = typer.Option(_SEARCH.method, help="greedy | beam."),
    beam_width: int = typer.Option(_SEARCH.beam_width, help="Beam width."),
    candidates: int = typer.Option(_SEARCH.candidates, help="Candidates fetched from the head index per step."),
    reuse_window: int = typer.Option(_SEARCH.reuse_window, help="No chunk reused within this many steps."),
    max_natural_run: int = typer.Option(
        _SEARCH.max_natural_run, help="Allow runs of up to N original (in-song) joins; 0 = remix only."
    ),
    max_song_run: int = typer.Option(_SEARCH.max_song_run, help="At most this many consecutive chunks from one song."),
    start: Optional[int] = typer.Option(None, help="Start chunk id (default: chosen by --seed)."),
    seed: int = typer.Option(_SEARCH.seed, help="Seed (start chunk, sampling)."),
    temperature: float = typer.Option(_SEARCH.temperature, help="0 = best candidate; > 0 samples among candidates."),
    index: str = typer.Option(_SEARCH.index, help="auto (exact below 50k chunks, FAISS above) | exact | faiss."),
    seam_filter: bool = typer.Option(_SEARCH.seam_filter, help="Skip candidates whose predicted seam fails the gates."),
    verify_seams: bool = typer.Option(
        True, help="Render the top candidates' joins and prefer one passing the seam gates."
    ),
    verify_top: int = typer.Option(_SEARCH.verify_top, help="Candidates verified per step."),
    crossfade_ms: float = typer.Option(_RENDER.crossfade_ms, help="Equal-power crossfade length (ms)."),
    align_ms: float = typer.Option(_RENDER.align_ms, help="Cross-correlation alignment range (+- ms)."),
    target_lufs: float = typer.Option(
        _RENDER.target_lufs, help=f"Stream loudness (LUFS), true peak kept under {_RENDER.true_peak_db:g} dBTP."
    ),
    plot: bool = typer.Option(True, help="Write the timeline PNG."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Assemble a seamless stream (a remix, not a replay) from the pool's chunks."""
    set_threads(threads)
    from ..core.progress import rich_progress
    from ..streams.catalog import ChunkCatalog
    from ..streams.index import load_pool_embeddings
    from ..streams.render import render_stream, write_stream
    from ..streams.seams import SeamVerifier
    from ..streams.search import build_stream

    scfg = SearchConfig(
        method=method,
        minutes=minutes,
        beam_width=beam_width,
        candidates=candidates,
        reuse_window=reuse_window,
        max_natural_run=max_natural_run,
        max_song_run=max_song_run,
        start=start,
        seed=seed,
        index=index,
        seam_filter=seam_filter,
        temperature=temperature,
        verify_top=verify_top,
    )
    rcfg = RenderConfig(crossfade_ms=crossfade_ms, align_ms=align_ms, target_lufs=target_lufs)
    if not endless and out is None:
        raise ParameterError("stream: give --out FILE or --endless")
    with ChunkCatalog(pool, create=False) as catalog:
        if endless:  # stdout carries the audio: no progress bars there
            emb = load_pool_embeddings(catalog, model)
        else:
            with rich_progress(transient=True) as progress:
                emb = load_pool_embeddings(catalog, model, progress)
        if endless:
            from ..streams.endless import write_endless

            write_endless(sys.stdout.buffer, catalog, emb, scfg, rcfg, verify=verify_seams)
            return
        t0 = time.time()
        plan = build_stream(catalog, emb, scfg, verifier=SeamVerifier(catalog, rcfg) if verify_seams else None)
        t1 = time.time()
        wav, cue = render_stream(catalog, plan, rcfg)
        t2 = time.time()
        cue["plan"].update({"model_run": str(model), "pool": str(pool)})
        written = write_stream(out, wav, cue, plot=plot)
        t3 = time.time()
    n_songs = len({s["song"] for s in cue["segments"]})
    typer.echo(
        f"{cue['duration_s'] / 60:.2f} min, {len(cue['segments'])} segments from {n_songs} songs, "
        f"{int(plan.natural.sum())} natural joins; search {t1 - t0:.2f} s, render {t2 - t1:.1f} s, "
        f"write {t3 - t2:.1f} s -> {', '.join(str(p) for p in written.values())}"
    )
    sm, joins = cue["summary"], cue["summary"]["joins"]
    if joins.get("n"):
        typer.echo(
            f"joins: {joins['n']} judged, {joins['pass_all']:.2f} pass the seam gates, clicks "
            f"{joins['click_rate']:.1%}, onset anomaly median {joins['median_onset_anomaly']:.2f}; "
            f"{sm['repeated_runs_3']} repeated runs of 3 chunks; {sm['distinct_chunks']} distinct chunks of "
            f"{sm['pool_chunks']} ({sm['coverage']:.1%} of the pool)"
        )


@app.command("eval-transitions")
def eval_transitions_cmd(
    pool: Path = typer.Argument(..., help="Pool folder."),
    model: list[str] = typer.Option(..., "--model", help="Run folder or 'features'; repeat to compare."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    anchors: Optional[int] = typer.Option(None, help="Rank at most this many test chunks (all by default)."),
    stream_minutes: float = typer.Option(
        10.0, help="Render a stream of test songs per model and judge its seams (0 = skip)."
    ),
    seed: int = typer.Option(0, help="Seed of candidate sampling (the split comes from the runs)."),
    holdout_package: Optional[str] = typer.Option(
        None, help="Test on this package's songs (default: the runs' own --holdout-package, if any)."
    ),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON report here."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Compare transition models on test songs: AUC per negative kind, top-1 / MRR among 100, stream seams."""
    set_threads(threads)
    from ..core.progress import rich_progress
    from ..streams.transitions.evaluation import evaluate_runs

    with rich_progress(transient=True) as progress:
        report = evaluate_runs(
            pool,
            list(model),
            seed=seed,
            max_anchors=anchors,
            stream_minutes=stream_minutes,
            progress=progress,
            holdout_package=holdout_package,
        )
    if out is not None:
        from ..core.atomic import write_json

        write_json(out, report)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    held = f" of package {report['holdout_package']}" if report.get("holdout_package") else ""
    t = Table(title=f"{report['test_songs']} test songs{held}, {report['test_chunks']} chunks")
    cols = ["model", "run", "AUC other", "AUC same", "AUC hard", "top-1", "MRR"]
    cols += ["seams pass", "random pass", "clicks", "random clicks", "onset", "random onset"]
    cols += ["seam dist dB (95%)", "random dist", "rep. 3-runs"]
    for col in cols:
        t.add_column(col)
    for r in report["models"]:
        seams = r.get("seams", {})
        st, rnd = seams.get("stream", {}), seams.get("random_in_song", {})
        fig = lambda d, k, f: format(d[k], f) if k in d else "-"  # noqa: E731
        t.add_row(
            r["model"],
            Path(r["run"]).name,
            f"{r['auc_other_song']:.3f}",
            f"{r['auc_same_song']:.3f}",
            f"{r['auc_hard']:.3f}",
            f"{r['top1']:.3f}",
            f"{r['mrr']:.3f}",
            fig(st, "pass_all", ".2f"),
            fig(rnd, "pass_all", ".2f"),
            fig(st, "click_rate", ".1%"),
            fig(rnd, "click_rate", ".1%"),
            fig(st, "median_onset_anomaly", ".2f"),
            fig(rnd, "median_onset_anomaly", ".2f"),
            _with_interval(st, "median_seam_distance_db", "seam_distance_db_95"),
            fig(rnd, "median_seam_distance_db", ".2f"),
            fig(seams.get("repetition", {}), "repeated_runs_3", "d"),
        )
    Console(width=220).print(t)
    _first_choice_table(report)
    typer.echo(
        "seam dist: median change of the sound across a join (dB RMS over 64 mel bands, 0.25 s each side; "
        "95% bootstrap interval); random: the same at random positions inside the test songs. First choices: "
        "each test chunk joined to the test chunk the model scores best (not its own successor); smoother: share "
        "of the chunks where the two models choose differently whose join has the smaller seam distance"
    )
    if any(r.get("fallback") for r in report["models"]):
        typer.echo("runs marked fallback did not beat `features` on their validation songs and use it instead")
