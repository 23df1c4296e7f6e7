"""CLI commands that hand soundloom's output to other programs (registered on :data:`soundloom.cli.app.app`).

soundloom loop INPUT --seconds 8 --out theme [--target console|handheld|streaming] [--intro 2]
soundloom loop POOL --model RUN --seconds 30 --out theme        (renders a stream first, then loops it)
soundloom export RUN --format onnx|torchscript --out DIR
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import ParameterError
from .app import THREADS_HELP, app, set_threads

#: Seconds of stream rendered beyond the loop so the loop search has room to place both ends.
POOL_EXTRA_S = 8.0


def _pool_audio(pool: Path, model: str, seconds: float, seed: int):
    """A stream of ``seconds`` rendered from a pool with a transition model: ``(samples,)`` and its rate (Hz)."""
    from ..streams.catalog import ChunkCatalog
    from ..streams.config import RenderConfig, SearchConfig
    from ..streams.index import load_pool_embeddings
    from ..streams.render import render_stream
    from ..streams.seams import SeamVerifier
    from ..streams.search import build_stream

    rcfg = RenderConfig()
    with ChunkCatalog(pool, create=False) as catalog:
        emb = load_pool_embeddings(catalog, model)
        plan = build_stream(
            catalog, emb, SearchConfig(minutes=seconds / 60.0, seed=seed), verifier=SeamVerifier(catalog, rcfg)
        )
        wav, cue = render_stream(catalog, plan, rcfg)
    return wav, int(cue["sample_rate"])


@app.command()
def loop(
    source: Path = typer.Argument(..., help="A song or generated sound (audio file), or a pool folder (with --model)."),
    seconds: float = typer.Option(..., "--seconds", help="Loop length (s); the loop points move to fit the music."),
    out: Path = typer.Option(..., "--out", help="Output stem: writes STEM.wav (smpl), STEM.ogg, STEM.loop.json."),
    target: str = typer.Option("streaming", help="Loudness: console (-24 LUFS) | handheld (-18) | streaming (-14)."),
    intro: float = typer.Option(0.0, "--intro", help="Seconds of the source kept before the loop start (played once)."),
    crossfade_ms: float = typer.Option(250.0, help="Crossfade of a built loop when no butt join passes (ms)."),
    seed: int = typer.Option(0, help="Seed (loop search ties; the stream of a pool)."),
    model: Optional[str] = typer.Option(None, "--model", help="Pool input: transition run folder, or 'features'."),
    formats: str = typer.Option("wav,ogg,json", help="Comma-separated: wav, ogg, json."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Write a seamless loop for game engines: WAV with a smpl chunk, OGG with LOOPSTART/LOOPLENGTH, JSON.

    True peak stays at or under -1 dBTP for every target.
    """
    from ..streams.loops import export_loop

    if seconds <= 0:
        raise ParameterError(f"--seconds must be > 0, got {seconds}")
    if source.is_dir():
        if model is None:
            raise ParameterError(f"{source}: a pool needs --model RUN (or --model features) to render a stream")
        set_threads(threads)
        audio, rate = _pool_audio(source, model, intro + seconds + POOL_EXTRA_S, seed)
    else:
        from ..core.io import read_audio

        data, rate = read_audio(source)
        audio = data.T  # (samples, channels), as the loop engine takes it
    found, paths = export_loop(
        out,
        audio,
        rate,
        seconds,
        target=target,
        intro_s=intro,
        formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
        crossfade_ms=crossfade_ms,
        seed=seed,
    )
    join = f"crossfade {found.crossfade / rate * 1000:.0f} ms" if found.crossfade else "butt join"
    verdict = "passes" if found.passed else "FAILS"
    typer.echo(
        f"loop {found.start / rate:.3f}-{found.end / rate:.3f} s of {source.name} ({found.seconds:.3f} s, "
        f"{found.method}, {join}); seam {verdict} the gates (level jump {found.level_jump_db:.2f} dB, "
        f"cosine {found.spectral_cosine:.3f}, click {found.click_ratio:.2f}); {target} -> "
        + ", ".join(str(p) for p in paths.values())
    )


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="Trained run folder (soundloom train ... --out RUN)."),
    format: str = typer.Option("onnx", "--format", help="onnx | torchscript."),
    out: Path = typer.Option(..., "--out", help="Folder: decoder.onnx / decoder.pt, export.json, an example."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """Export the run's decoder (z[, label][, pitch] -> normalised features and dB) for use outside Python."""
    set_threads(threads)
    from ..sounds.export import export_run

    paths = export_run(run, out, fmt=format)
    typer.echo(f"exported the decoder of {run} as {format} -> " + ", ".join(str(p) for p in paths.values()))
