"""CLI commands of the soundscape side (registered on :data:`soundloom.cli.app.app`).

soundloom synth-ambient DIR                       (built-in ambient songs + one-shots, no download)
soundloom soundscape --bed POOL --bed-model RUN --events RUN[:label,...] --mood calm --minutes 10 --out calm.flac
soundloom soundscape ... --endless > live.wav     (a live WAV stream; --mood-stdin reads new moods, one a line)
soundloom eval-soundscape calm.flac --score calm.flac.score.json [--json]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import ParameterError
from .app import THREADS_HELP, app, set_threads

_LAYOUTS = "stereo | binaural | foa"


@app.command("synth-ambient")
def synth_ambient(
    out: Path = typer.Argument(..., help="Folder to write: OUT/songs (a bed pool's songs), OUT/oneshots (classes)."),
    songs: int = typer.Option(5, help="Ambient songs (kinds cycle: pad, drone, texture, water, pulse)."),
    song_seconds: float = typer.Option(90.0, help="Length of each song (s)."),
    per_class: int = typer.Option(20, help="One-shots per class (bird, chime, drop)."),
    seed: int = typer.Option(0, help="Seed of everything written."),
) -> None:
    """Write built-in ambient material (no download): songs for a bed, birds/chimes/drops for events."""
    from ..data.ambient import write_ambient

    t0 = time.time()
    paths = write_ambient(out, songs, song_seconds, per_class, seed)
    typer.echo(
        f"wrote {songs} songs to {paths['songs']} and {3 * per_class} one-shots to {paths['oneshots']} "
        f"in {time.time() - t0:.1f} s; next: soundloom chunk {paths['songs']} --out POOL"
    )


@app.command()
def soundscape(
    bed: Path = typer.Option(..., "--bed", help="Pool folder made by `soundloom chunk` (the bed's songs)."),
    bed_model: str = typer.Option("features", "--bed-model", help="Transition run folder, or 'features'."),
    events: list[str] = typer.Option(
        ..., "--events", help="RUN[:label,...] (a path item ending .wav/.flac/... is a seed sound to vary); repeat."
    ),
    mood: str = typer.Option("calm", help="calm | neutral | energetic | a number in [0, 1]."),
    minutes: Optional[float] = typer.Option(None, help="Length of the file (min)."),
    endless: bool = typer.Option(False, help="Write an unbounded 16-bit WAV stream to stdout until stopped."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file: .wav .flac .ogg .mp3 (+ .score.json)."),
    layout: str = typer.Option("stereo", help=_LAYOUTS + " (foa: AmbiX W,Y,Z,X; not mp3)."),
    sample_rate: int = typer.Option(48000, help="Output rate (Hz)."),
    seed: int = typer.Option(0, help="Seed of the schedule, the events and the bed's start."),
    steer: float = typer.Option(1.0, help="How strongly the mood steers the bed's chunk choice (0 = not at all)."),
    hrtf: str = typer.Option("auto", help="binaural: auto (installed OpenAL .mhr, else spherical head) | PATH.mhr."),
    mood_stdin: bool = typer.Option(False, help="--endless: read new moods from stdin, one a line."),
    threads: int = typer.Option(1, help=THREADS_HELP),
) -> None:
    """A soundscape: an endless mood-steered bed from the pool plus generated events placed in space."""
    if endless == (minutes is not None):
        raise ParameterError("soundscape: give --minutes M (with --out FILE) or --endless")
    if not endless and out is None:
        raise ParameterError("soundscape: --minutes needs --out FILE")
    set_threads(threads)
    from ..scapes.bed import Bed, bed_search
    from ..scapes.events import EventSpec, GeneratedEvents, unique_names
    from ..scapes.mood import Mood
    from ..scapes.soundscape import Soundscape

    the_mood = Mood.of(mood)
    specs = [EventSpec.parse(e) for e in events]
    names = unique_names([s.run for s in specs])
    sources = [GeneratedEvents.from_spec(s, sample_rate, name=n) for s, n in zip(specs, names)]
    the_bed = Bed.open(
        bed,
        bed_model,
        mood=the_mood,
        sample_rate=sample_rate,
        search=bed_search(seed),
        steer=steer,
    )
    try:
        with Soundscape(the_bed, sources, the_mood, layout, sample_rate, seed=seed, hrtf=hrtf) as scape:
            if endless:
                _stream(scape, mood_stdin)
                return
            from ..core.progress import rich_progress

            t0 = time.time()
            with rich_progress(transient=True) as progress:
                written = scape.render(minutes, out, progress=progress)
            score = json.loads(written["score"].read_text())
    finally:
        the_bed.close()
    dt = time.time() - t0
    rate = score["bed"]["seam_pass_rate"]
    typer.echo(
        f"{minutes:g} min {layout} ({score['renderer']}) in {dt:.1f} s ({minutes * 60 / dt:.1f}x real time): "
        f"{len(score['events'])} events, {len(score['bed']['joins'])} bed joins"
        + (f" ({100 * rate:.0f}% pass the seam gates)" if rate is not None else "")
        + f" -> {written['audio']}, {written['score']}"
    )


def _stream(scape, mood_stdin: bool) -> None:
    """Live 16-bit WAV on stdout until the pipe closes; moods from stdin lines when asked."""
    import numpy as np

    from ..streams.endless import wav_stream_header

    if mood_stdin:

        def read_moods() -> None:
            for line in sys.stdin:
                if line.strip():
                    try:
                        scape.set_mood(line.strip())
                    except ParameterError as exc:
                        print(f"error: {exc}", file=sys.stderr)

        threading.Thread(target=read_moods, name="scape-moods", daemon=True).start()
    out = sys.stdout.buffer
    try:
        out.write(wav_stream_header(scape.sample_rate, scape.channels))
        for block in scape.blocks(live=True):
            out.write((np.clip(block.T, -1.0, 1.0) * 32767).astype("<i2").tobytes())
            out.flush()
    except BrokenPipeError:
        pass


@app.command("eval-soundscape")
def eval_soundscape(
    file: Path = typer.Argument(..., help="A rendered soundscape (any format soundloom reads)."),
    score: Optional[Path] = typer.Option(None, "--score", help="Its score (default FILE.score.json when present)."),
    reference: int = typer.Option(300, help="Random in-song positions to judge the bed's seams against (0 = none)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Measure a soundscape: R128 short-term loudness and LRA, events and onsets, centroid, peaks,
    collisions, and the bed's seam pass rate beside random positions inside the pool's songs."""
    from ..scapes.evaluate import evaluate
    from ..scapes.soundscape import score_path_for

    if score is None and score_path_for(file).exists():
        score = score_path_for(file)
    result = evaluate(file, score, reference=reference)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for key, value in result.items():
        if isinstance(value, dict):
            typer.echo(f"{key}:")
            for k, v in value.items():
                typer.echo(f"  {k:24s} {v}")
        else:
            typer.echo(f"{key:26s} {value}")
