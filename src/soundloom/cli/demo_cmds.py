"""``soundloom demo``: the main job on built-in data, end to end, ending in one self-contained ``report.html``.

soundloom demo [--out demo] [--train-minutes 3] [--quick]

Sounds: synth one-shots -> scan -> feature store -> class-conditional VAE -> generate (conditioned,
interpolation, variation, continuation) -> classifier -> eval -> plots. Streams: synth songs -> chunk on
beats -> fusion transition model (contrastive + features + partials; on these few songs cross-fitted, so its
fallback to features is decided on every non-test song) -> 3-minute stream -> eval against the features
baseline (ranking; seams of its stream and of its first choices) -> a loop of the stream for game engines.
Ambient songs -> a pool -> a calm soundscape with the sound model's bells and plucks as events. Each step runs
``soundloom`` commands as child processes (which die with the demo) with their output (and any library noise)
sent to ``OUT/logs/<step>.log``; the terminal shows one progress bar per step, and a failed step's log tail.

After the data step the sounds lane (prepare, train, generate, eval) and the streams lane (chunk,
transitions, stream, loop, the classifier, the ambient pool) run side by side, one core each; the
soundscape, which needs both, comes last.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from ..core.errors import ParameterError, SoundloomError
from .app import app

#: Lines of a failed step's log shown on the terminal.
LOG_TAIL_LINES = 25


@dataclass
class Step:
    """One demo step: ``soundloom`` command lines run in order, or a Python action."""

    name: str
    title: str
    commands: list[list] = field(default_factory=list)  # arguments: str, or a _Glob resolved when run
    expected_s: float = 10.0  # for the progress bar only
    stdout_to: Path | None = None  # the commands' stdout (e.g. a --json report) goes here, not to the log
    action: Callable[[], None] | None = None
    required: bool = True  # a failed optional step is noted, and the demo goes on
    lane: str = "main"  # steps of one lane run in order; lanes run side by side
    needs: tuple[str, ...] = ()  # steps (of any lane) that must have finished first


def demo_steps(out: Path, train_minutes: float, quick: bool) -> list[Step]:
    """The demo's steps for the folder ``out`` (``quick``: tiny budgets, for tests)."""
    d = {k: str(out / k) for k in ("data", "features", "runs", "sounds", "plots", "pool", "stream", "eval", "loop")}
    oneshots, songs = f"{d['data']}/oneshots", f"{d['data']}/songs"
    run, clf, trans = f"{d['runs']}/oneshots", f"{d['runs']}/oneshots/classifier", f"{d['runs']}/transitions"
    q = quick
    n_per_class, n_songs, song_s = ("8", "4", "24") if q else ("40", "8", "90")
    train_opts = (
        ["--epochs", "1", "--max-minutes", "0.2", "--channels", "4,8,16,32,64", "--latent", "16"]
        if q
        # a CPU budget trains the same on a busy machine; the wall-clock bound keeps the demo's length bounded;
        # batch 32: 360 one-shots are 5 steps an epoch at 64, and at 3 CPU-min 32 is recognised more; class
        # weighting gives the still-blurred sweeps and bells more of the budget; the long-term spectrum term keeps
        # the plucks' bright attack, whose loss left their floor 9-17 dB too clean on a weaker training (README)
        else ["--epochs", "100000", "--cpu-minutes", f"{train_minutes:g}", "--max-minutes", f"{2 * train_minutes:g}"]
        + ["--batch-size", "32", "--class-weighting", "--spectrum-weight", "1"]
    )
    stream_min, eval_stream_min = ("0.4", "0.3") if q else ("3", "2")
    steps = [
        Step(
            "data",
            "built-in data: labelled one-shots (9 classes) and synthetic songs",
            [["synth-data", d["data"], "--n-per-class", n_per_class, "--songs", n_songs, "--song-seconds", song_s]],
            5 if q else 25,
        ),
        Step("scan", "pre-flight scan of the one-shots", [["scan", oneshots]], 5, lane="sounds"),
        Step(
            "prepare",
            "feature store: log-mel spectrograms, 128 frames, dataset statistics",
            [
                ["prepare", oneshots, "--out", d["features"], "--sample-rate", "16000", "--seconds", "1.016"]
                + ["--kind", "mel", "--n-fft", "512", "--hop", "128", "--n-mels", "64"]
            ],
            5 if q else 20,
            lane="sounds",
        ),
        Step(
            "train",
            f"train a class-conditional VAE ({'tiny' if q else f'{train_minutes:g} CPU-min'})",
            [["train", d["features"], "--model", "cvae", "--out", run, "--quiet"] + train_opts],
            30 if q else train_minutes * 60 + 30,
            lane="sounds",
        ),
        Step(
            "generate",
            "generate: 3 bells, kick -> snare interpolation, pluck variations, a vowel continuation",
            [
                ["generate", run, "--n", "3", "--label", "bell", "--out", f"{d['sounds']}/bell", "--seed", "1"],
                ["generate", run, "--interpolate", f"{oneshots}/kick/kick_0000.wav", f"{oneshots}/snare/snare_0000.wav"]
                + ["--steps", "5", "--out", f"{d['sounds']}/kick-to-snare"],
                ["generate", run, "--variation", f"{oneshots}/pluck/pluck_0000.wav", "--n", "3"]
                + ["--out", f"{d['sounds']}/pluck-variations", "--format", "ogg"],
                ["generate", run, "--continue", f"{oneshots}/vowel/vowel_0000.wav", "--prompt-seconds", "0.4"]
                + ["--seconds", "1.0", "--out", f"{d['sounds']}/vowel-continued"]
                + (["--n", "1"] if q else []),
            ],
            15 if q else 40,
            lane="sounds",
        ),
        Step(
            "classifier",
            "a classifier trained on the real one-shots (the judge of generated sounds)",
            [
                ["train-classifier", d["features"], "--out", clf]
                + (["--epochs", "2", "--max-minutes", "0.3"] if q else ["--max-minutes", "1"])
            ],
            15 if q else 70,
            lane="streams",
            needs=("prepare",),
        ),
        Step(
            "eval",
            "evaluate: recognition accuracy, diversity and FD next to real held-out clips",
            [
                ["eval", run, "--temperatures", "1.0" if q else "0.8,1.0", "--json"]
                # 16 a class, not the 4 held out: each class's floor and recognition then rest on 16 sounds
                + ["--n-per-label", "3" if q else "16"]
            ],
            15 if q else 60,
            stdout_to=out / "eval" / "sounds.json",
            lane="sounds",
            needs=("classifier",),
        ),
        Step(
            "plot",
            "plots: generated sounds and one real one-shot per class",
            [
                [
                    "plot",
                    _glob(out / "sounds", ("bell/*.wav", "kick-to-snare/*.wav")),
                    "--out",
                    f"{d['plots']}/generated.png",
                ],
                ["plot", _glob(Path(oneshots), ("*/*_0000.wav",)), "--out", f"{d['plots']}/oneshots.png"],
            ],
            10,
            action=lambda: _copy_eval_plots(Path(run) / "eval", out / "plots"),
            lane="sounds",
        ),
        Step(
            "chunk",
            "chunk the songs on beats (8 beats a chunk, cut 100 ms before the beat) into a pool",
            # cut before the hit, not on it: a join then crossfades the previous beat's decay, as inside a song
            [["chunk", songs, "--out", d["pool"], "--method", "beats", "--beats", "8", "--lead-ms", "100"]],
            10 if q else 40,
            lane="streams",
        ),
        Step(
            "transitions",
            f"train the fusion transition model ({'tiny' if q else '2 CPU-min'}, cross-fitted over 3 folds of the "
            "songs; falls back to features if it loses on them)",
            [
                ["train-transitions", d["pool"], "--model", "fusion", "--out", trans]
                + (
                    ["--steps", "20", "--max-minutes", "0.3", "--width", "8"]
                    if q
                    else ["--cpu-minutes", "2", "--max-minutes", "4", "--steps", "3000", "--threads", "1"]
                )
            ],
            20 if q else 150,
            lane="streams",
        ),
        Step(
            "stream",
            f"render a {stream_min}-minute stream from the pool",
            [["stream", d["pool"], "--model", trans, "--minutes", stream_min, "--out", f"{d['stream']}/stream.mp3"]],
            15 if q else 60,
            lane="streams",
        ),
        Step(
            "eval-transitions",
            "compare the learned transition model with the features baseline on test songs (ranking, seams)",
            [
                ["eval-transitions", d["pool"], "--model", "features", "--model", trans]
                + ["--stream-minutes", eval_stream_min, "--out", f"{d['eval']}/transitions.json"]
                + (["--anchors", "20"] if q else [])
            ],
            20 if q else 90,
            lane="streams",
        ),
        Step(
            "loop",
            "a seamless loop of the stream for game engines (WAV smpl, OGG loop tags, JSON)",
            [
                [
                    "loop",
                    f"{d['stream']}/stream.mp3",
                    "--seconds",
                    "4" if q else "8",
                    "--out",
                    f"{d['loop']}/stream-loop",
                ]
            ],
            10 if q else 30,
            lane="streams",
        ),
    ]
    ambient = str(out / "data" / "ambient")
    steps += [
        Step(
            "ambient",
            "built-in ambient songs chunked into a pool (the soundscape's bed)",
            [
                ["synth-ambient", ambient, "--songs", "3" if q else "5", "--song-seconds", "30" if q else "90"]
                + ["--per-class", "2"],
                ["chunk", f"{ambient}/songs", "--out", str(out / "pool-ambient"), "--seconds", "2"],
            ],
            10 if q else 20,
            lane="streams",
        ),
        Step(
            "soundscape",
            "a calm soundscape: a bed of built-in ambient songs, bells and plucks from the sound model as events",
            [
                ["soundscape", "--bed", str(out / "pool-ambient"), "--bed-model", "features"]
                + ["--events", f"{run}:bell,pluck", "--mood", "calm", "--minutes", "0.2" if q else "2"]
                + ["--out", str(out / "soundscape" / "soundscape.mp3")],
            ],
            20 if q else 70,
        ),
    ]
    return steps


@dataclass(frozen=True)
class _Glob:
    """Files matched when the step runs (they do not exist yet when the steps are planned)."""

    root: Path
    patterns: tuple[str, ...]

    def resolve(self) -> list[str]:
        return [str(p) for pat in self.patterns for p in sorted(self.root.glob(pat))]


def _glob(root: Path, patterns: tuple[str, ...]) -> _Glob:
    return _Glob(root, patterns)


def _copy_eval_plots(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.glob("*.png")):
        shutil.copyfile(p, dst / f"eval-{p.name}")


def _expand(cmd: list) -> list[str]:
    """A command line with its globs resolved."""
    out: list[str] = []
    for part in cmd:
        out.extend(part.resolve() if isinstance(part, _Glob) else [part])
    return out


def _tail(path: Path, n: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def numba_cache(lane: str) -> str:
    """A numba cache folder of the lane's own.

    librosa compiles its numba functions with ``cache=True``; two processes compiling the same
    function into one cache folder at once can read each other's half-written files and crash
    (SIGSEGV, seen in ``librosa.util.peak_pick`` on a fresh install), and the lanes run side by side.
    """
    base = os.environ.get("NUMBA_CACHE_DIR") or str(Path.home() / ".cache" / "soundloom" / "numba")
    return str(Path(base) / f"demo-{lane}")


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def lane_threads(lane: str, cores: int | None = None) -> dict[str, str]:
    """Thread-pool sizes for a step's processes: a lane step gets half the cores (two lanes run side by side),
    a "main" step all of them; variables the user set are kept.

    OpenMP and OpenBLAS workers spin while they wait for a descheduled sibling, so pools sized for the whole
    machine, two of them at once, burn CPU for nothing: on 2 cores the quick demo took 316 CPU-s with
    default pools and 190 with one thread a process (its eval 55 -> 21, chunk 62 -> 13 CPU-s).
    """
    if lane == "main":
        return {}
    n = str(max(1, (cores or os.cpu_count() or 1) // 2))
    return {var: n for var in THREAD_VARS if var not in os.environ}


def run_step(step: Step, logs: Path, abort: threading.Event | None = None) -> tuple[str, str, float]:
    """Run one step's commands with their output in ``logs/<name>.log``; returns (status, note, CPU s).

    Each command runs as its own ``soundloom`` process (dying with the demo): a crash in a library
    fails that step with its status instead of taking the demo down, and no step inherits another's
    threads or state. The CPU time is the commands' own (their workers included), so it stays right
    while another lane runs beside them. ``abort`` set: the running command is killed.
    """
    import functools
    import subprocess

    from ..data.workers import die_with_parent

    log = logs / f"{step.name}.log"
    cpu = 0.0
    for cmd in step.commands:
        if abort is not None and abort.is_set():
            return "stopped", "another step failed", cpu
        argv = _expand(cmd)
        with open(log, "a") as f:
            f.write(f"$ soundloom {' '.join(argv)}\n")
        if step.stdout_to is not None:
            step.stdout_to.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as err, open(step.stdout_to or os.devnull, "wb") as captured:
            proc = subprocess.Popen(
                [sys.executable, "-m", "soundloom", *argv],
                stdin=subprocess.DEVNULL,
                stdout=captured if step.stdout_to is not None else err,
                stderr=err,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
                env=os.environ | lane_threads(step.lane) | {"NUMBA_CACHE_DIR": numba_cache(step.lane)},
            )
            code, used = _wait(proc, abort)
        cpu += used
        if code != 0:
            if abort is not None and abort.is_set():
                return "stopped", "another step failed", cpu
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return "failed", f"`soundloom {argv[0]}` {how}; see {log}", cpu
    if step.action is not None:
        step.action()
    return "ok", "", cpu


def _wait(proc, abort: threading.Event | None) -> tuple[int, float]:
    """Reap ``proc`` (killing it once ``abort`` is set); returns (status as Popen gives it, its CPU s)."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if abort is not None and abort.is_set():
            proc.kill()
        time.sleep(0.1)


def sections(steps: list[Step]) -> list[list[Step]]:
    """Consecutive steps grouped to run together: a "main" step runs alone; a run of lane steps runs
    its lanes side by side (each lane in order, waiting for its ``needs``)."""
    out: list[list[Step]] = []
    for step in steps:
        if step.lane != "main" and out and out[-1][0].lane != "main":
            out[-1].append(step)
        else:
            out.append([step])
    return out


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Folder for everything the demo makes (and report.html)."),
    train_minutes: float = typer.Option(
        3.0, help="Training budget of the sound model (CPU minutes; wall clock at most twice that)."
    ),
    quick: bool = typer.Option(False, "--quick", help="Tiny budgets (a smoke test, about a minute)."),
) -> None:
    """The main job on built-in data, end to end: one-shots -> model -> sounds; songs -> stream -> loop; report.html."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..studio.report import build_report

    if train_minutes <= 0:
        raise ParameterError(f"--train-minutes must be > 0, got {train_minutes:g}")
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    steps = demo_steps(out, train_minutes, quick)
    terminal = os.fdopen(os.dup(1), "w")  # the bars stay on the terminal while the steps' output goes to logs
    console = Console(file=terminal)
    record: dict = {"quick": quick, "train_minutes": train_minutes, "steps": []}
    t_all = time.time()
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    rows: dict[str, dict] = {}
    try:
        with Progress(*columns, console=console) as bars:
            tasks = {
                step.name: bars.add_task(f"{i + 1:2d}/{len(steps)} {step.title}", total=step.expected_s, start=False)
                for i, step in enumerate(steps)
            }
            for section in sections(steps):
                _run_section(section, logs, bars, tasks, rows)
                failed = [s for s in section if rows[s.name]["status"] == "failed" and s.required]
                if failed:
                    bars.stop()
                    console.print(_tail(logs / f"{failed[0].name}.log"), markup=False, highlight=False)
                    record["steps"] = [rows[s.name] for s in steps if s.name in rows]
                    record["total_seconds"] = time.time() - t_all
                    _write_manifest(out, record)
                    note = rows[failed[0].name]["note"]
                    raise SoundloomError(
                        logs / f"{failed[0].name}.log", f"demo step '{failed[0].name}' failed ({note})"
                    )
        record["steps"] = [rows[s.name] for s in steps]
        record["total_seconds"] = time.time() - t_all
        _write_manifest(out, record)
        page = build_report(out)
        # one unwrapped line, so the path can be copied (Rich would fold it at the terminal's width)
        console.print(f"done in {record['total_seconds']:.0f} s: open {page}", soft_wrap=True)
    finally:
        terminal.flush()
        terminal.close()


def _run_section(section: list[Step], logs: Path, bars, tasks: dict, rows: dict) -> None:
    """Run a section's lanes side by side (a thread per lane, each waiting on its child processes) and
    fill ``rows`` with each step's record. A failed required step stops the other lanes."""
    done = {s.name: threading.Event() for s in section}
    abort = threading.Event()
    lanes: dict[str, list[Step]] = {}
    for step in section:
        lanes.setdefault(step.lane, []).append(step)

    def lane(steps: list[Step]) -> None:
        for step in steps:
            for need in step.needs:
                if need in done:
                    while not (done[need].wait(0.2) or abort.is_set()):
                        pass
            if abort.is_set():
                rows[step.name] = _row(step, "stopped", "another step failed", 0.0, 0.0)
            else:
                rows[step.name] = _run_with_bar(step, logs, bars, tasks[step.name], abort)
                if rows[step.name]["status"] == "failed" and step.required:
                    abort.set()
            done[step.name].set()

    threads = [threading.Thread(target=lane, args=(steps,), name=f"demo-{name}") for name, steps in lanes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _row(step: Step, status: str, note: str, seconds: float, cpu: float) -> dict:
    return {"name": step.name, "title": step.title, "status": status, "seconds": seconds, "cpu_seconds": cpu} | {
        "note": note
    }


def _run_with_bar(step: Step, logs: Path, bars, task, abort: threading.Event) -> dict:
    """Run a step while a ticker thread moves its bar with the elapsed time against the expected time."""
    stop = threading.Event()
    t0 = time.time()
    bars.start_task(task)

    def tick() -> None:
        while not stop.wait(0.25):
            bars.update(task, completed=min(0.99 * step.expected_s, time.time() - t0))

    ticker = threading.Thread(target=tick, name=f"demo-bar-{step.name}", daemon=True)
    ticker.start()
    try:
        status, note, cpu = run_step(step, logs, abort)
    finally:
        stop.set()
        ticker.join()
    desc = next(t.description for t in bars.tasks if t.id == task)
    bars.update(task, completed=step.expected_s, description=f"{desc} [{status}]")
    return _row(step, status, note, time.time() - t0, cpu)


def _write_manifest(out: Path, record: dict) -> None:
    from ..core.atomic import write_json

    write_json(out / "demo.json", record)


__all__ = ["demo", "demo_steps", "sections", "Step"]
