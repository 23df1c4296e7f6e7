"""CLI commands of the data side (registered on :data:`soundloom.cli.app.app`).

soundloom scan DATA [--layout auto] [--json] [--min-seconds 0.05]
soundloom prepare DATA --out FEATURES [--sample-rate HZ] [--seconds 1] [--kind db] ...
soundloom synth-data OUT [--n-per-class 20] [--songs 4] [--song-seconds 180] [--seed 0]
soundloom plot FILES... --out grid.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .app import app

LAYOUT_HELP = "fsdd | classes | nsynth | maestro | songs | plain | auto (detect)"


@app.command()
def scan(
    data: Path = typer.Argument(..., help="Data set folder."),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (no table, no progress)."),
    min_seconds: float = typer.Option(0.05, help="Files shorter than this are reported as too short."),
    silence_db: float = typer.Option(-80.0, help="Files peaking at or below this dBFS are reported as silent."),
    workers: Optional[int] = typer.Option(None, help="Decoding processes (default: all cores)."),
) -> None:
    """Pre-flight report: files per label, durations, sample rates, and every bad file with its reason."""
    from ..core.progress import rich_progress
    from ..data.scan import scan as run_scan

    if as_json:
        report = run_scan(data, layout, min_seconds, silence_db, workers)
    else:
        with rich_progress(transient=True) as progress:
            report = run_scan(data, layout, min_seconds, silence_db, workers, progress=progress)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1))
    else:
        _print_scan(report)


def _print_scan(report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{report.root}[/]  layout [cyan]{report.layout}[/]  "
        f"{report.n_ok}/{report.n_files} usable  ({report.seconds:.1f} s)"
    )
    d = report.duration_s
    if d:
        console.print(
            f"duration s: min {d['min']:.3f}  median {d['median']:.3f}  mean {d['mean']:.3f}  "
            f"max {d['max']:.3f}  total {d['total'] / 60:.1f} min"
        )
    console.print(
        "sample rates: "
        + ", ".join(f"{k} Hz x{v}" for k, v in report.sample_rates.items())
        + "   channels: "
        + ", ".join(f"{k} x{v}" for k, v in report.channels.items())
    )
    for name, counts in report.labels.items():
        table = Table(title=f"label {name!r}: {report.label_distinct[name]} values", title_justify="left", min_width=44)
        table.add_column(name)
        table.add_column("files", justify="right")
        for value, n in counts.items():
            table.add_row(str(value), str(n))
        if report.label_distinct[name] > len(counts):
            table.add_row("...", f"+{report.label_distinct[name] - len(counts)} values")
        console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if report.bad:
        table = Table(title=f"{len(report.bad)} bad files", title_justify="left")
        table.add_column("kind", style="red")
        table.add_column("file")
        table.add_column("reason")
        for b in report.bad:
            rel = b["path"][len(report.root) :].lstrip("/") if b["path"].startswith(report.root) else b["path"]
            table.add_row(b["kind"], rel, b["reason"])
        console.print(table)
    else:
        console.print("[green]no bad files[/]")


@app.command()
def prepare(
    data: Path = typer.Argument(..., help="Data set folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Feature store folder to write."),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    sample_rate: Optional[int] = typer.Option(
        None, help="Target sample rate, Hz (default: the data's own, most common rate)."
    ),
    seconds: float = typer.Option(1.0, help="Clip length: pad or trim every file to this, seconds."),
    kind: str = typer.Option("db", help="db (log magnitude, n_fft//2+1 rows) | mel (log mel, n_mels rows)."),
    n_fft: int = typer.Option(512, help="FFT size, samples."),
    win_length: Optional[int] = typer.Option(None, help="Window size, samples (default n_fft)."),
    hop: Optional[int] = typer.Option(None, help="Hop, samples (default from --overlap)."),
    overlap: float = typer.Option(0.75, help="Window overlap fraction when --hop is not given."),
    window: str = typer.Option("hann", help="hann | blackman | hamming."),
    n_mels: int = typer.Option(80, help="Mel bands (kind mel)."),
    norm: str = typer.Option(
        "meanstd", help="meanstd (per-bin, clipped at --clip-sigma) | range (--min-db..--max-db)."
    ),
    clip_sigma: float = typer.Option(3.0, help="meanstd: clip at this many standard deviations."),
    min_db: float = typer.Option(-100.0, help="range: dB mapped to -1 (below -100 it also lowers the -100 dB floor)."),
    max_db: Optional[float] = typer.Option(
        None, help="range: dB mapped to +1 (default: the data's maximum, rounded up to 10 dB)."
    ),
    fade_ms: float = typer.Option(5.0, help="Fade where a long file is cut, ms."),
    min_seconds: float = typer.Option(0.05, help="Skip files shorter than this, seconds."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (default: all cores)."),
    batch_size: int = typer.Option(32, help="Files per worker task."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (no progress)."),
) -> None:
    """Data set -> feature store (features.npy, index.json, stats.json, config.json, skipped.json).

    Re-running reuses finished work: a killed run resumes, an unchanged data set is not redone.
    """
    from ..core.progress import rich_progress
    from ..data.prepare import PrepareConfig
    from ..data.prepare import prepare as run_prepare

    cfg = PrepareConfig(
        sample_rate=sample_rate,
        seconds=seconds,
        kind=kind,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop,
        overlap=overlap,
        window=window,
        n_mels=n_mels,
        floor_db=min(min_db, -100.0),
        normalization=norm,
        clip_sigma=clip_sigma,
        min_db=min_db,
        max_db=max_db,
        fade_ms=fade_ms,
        min_seconds=min_seconds,
    )
    if as_json:
        result = run_prepare(data, out, cfg, layout, workers, batch_size)
    else:
        with rich_progress(transient=True) as progress:
            result = run_prepare(data, out, cfg, layout, workers, batch_size, progress=progress)
    summary = {
        "store": str(result.store),
        "layout": result.layout,
        "items": result.n_items,
        "computed": result.n_computed,
        "reused": result.n_reused,
        "skipped": len(result.skipped),
        "shape": list(result.shape),
        "seconds": round(result.seconds, 3),
    }
    if as_json:
        typer.echo(json.dumps({**summary, "skipped_files": result.skipped}, indent=1))
        return
    typer.echo(
        f"{result.store}: {result.n_items} items ({result.layout}), features {tuple(result.shape)}, "
        f"{result.n_computed} computed, {result.n_reused} reused, {len(result.skipped)} skipped, "
        f"{result.seconds:.1f} s"
    )
    for s in result.skipped[:20]:
        typer.echo(f"  skipped {s['path']}: {s['reason']}")
    if len(result.skipped) > 20:
        typer.echo(f"  ... {len(result.skipped) - 20} more in {result.store / 'skipped.json'}")


@app.command("synth-data")
def synth_data(
    out: Path = typer.Argument(..., help="Folder to write oneshots/ and songs/ into."),
    n_per_class: int = typer.Option(20, help="One-shots per class (9 classes)."),
    songs: int = typer.Option(4, help="Synthetic songs to write (0 for none)."),
    song_seconds: float = typer.Option(180.0, help="Length of each song, seconds."),
    sample_rate: int = typer.Option(16000, help="One-shot sample rate, Hz (songs are 22050 Hz)."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same files."),
) -> None:
    """Write built-in synthetic data: OUT/oneshots/<class>/*.wav and OUT/songs/*.wav (no downloads)."""
    from ..data.synth import write_oneshots, write_songs

    shots = write_oneshots(out / "oneshots", n_per_class=n_per_class, sample_rate=sample_rate, seed=seed)
    typer.echo(f"{len(shots)} one-shots in {out / 'oneshots'}")
    if songs > 0:
        paths = write_songs(out / "songs", n_songs=songs, seconds=song_seconds, seed=seed)
        typer.echo(f"{len(paths)} songs of {song_seconds:g} s in {out / 'songs'}")


@app.command()
def plot(
    files: list[Path] = typer.Argument(..., help="Audio files, one row each."),
    out: Path = typer.Option(Path("grid.png"), "--out", "-o", help="Image to write."),
    seconds: Optional[float] = typer.Option(None, help="Plot only the first SECONDS of each file."),
    n_fft: int = typer.Option(1024, help="FFT size of the spectrograms."),
) -> None:
    """Waveform and spectrogram grid, one row per file."""
    from ..core.plots import plot_files

    path = plot_files(files, out, seconds=seconds, n_fft=n_fft)
    typer.echo(str(path))
