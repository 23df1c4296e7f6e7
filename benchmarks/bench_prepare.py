"""prepare (files per second) against the seed pipeline, on the same folder of short clips.

Two measurements, both printed:

- whole process (what a user waits for): the seed's way as its own ``python -c`` process
  (imports included) against the real console script ``soundloom prepare DIR --out ...``, run
  alternately ``--whole-repeats`` times each; the medians count.
- in process: both engines called in this one, already-imported process (start-up excluded),
  ``--repeats`` times each; the best runs count.

The seed's way, single process, per file: ``librosa.load(path, sr=22050)``, ``librosa.stft``
(n_fft 512, hop 256), ``librosa.amplitude_to_db(np.abs(S))``, min-max normalised with the file's
own min and max, ``np.save`` of one .npy. Ours: ``soundloom.data.prepare.prepare`` with its
defaults (the data's own rate, 1 s clips, dB STFT n_fft 512 hop 128, per-bin mean/std) and ``--workers``
worker processes, timed end to end (discovery, pool start, feature store written), into a
fresh output each time so nothing is reused.

Files are read once before timing so both start from a warm page cache; librosa is warmed up
on one file (its lazy imports are not charged to the seed). Each side runs ``--repeats`` times,
alternating, and the best run of each counts (other processes on a shared machine only ever
slow a run down).

    python benchmarks/bench_prepare.py /work/devdata/digits                # 2650 FSDD clips
    python benchmarks/bench_prepare.py /work/devdata/digits --limit 500
    python benchmarks/bench_prepare.py                                      # synthesised clips
    python benchmarks/bench_prepare.py /work/devdata/digits --seed-like     # + like-for-like frames
    python benchmarks/bench_prepare.py /work/devdata/digits --target 5000   # digits + 2350 linked again

``--target N`` fills a temp folder with symbolic links to the data set's files until it holds N
(an FSDD name ``7_jackson_3.wav`` repeats as ``7_jackson-r1_3.wav``; other layouts keep their
folders and get a ``-r1`` suffix), so 2650 digits become 5000 clips.

Our default features keep the data's rate and a fixed 1 s (8 kHz digits, hop 128: 63 frames x
257 bins, 65 kB); the seed resamples to 22.05 kHz and keeps each clip's own length (hop 256:
about 40 frames for a 0.46 s digit).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: The seed's way as a script of its own: imports, listing, and the per-file loop.
SEED_SCRIPT = """
import os, sys
import numpy as np
import librosa
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith('.wav'))
for i, path in enumerate(paths):
    y, _ = librosa.load(path, sr=22050)
    spec = librosa.stft(y, n_fft=512, hop_length=256)
    db = librosa.amplitude_to_db(np.abs(spec))
    db = (db - db.min()) / (db.max() - db.min() + 1e-9)
    np.save(os.path.join(out, f'{i:06d}.npy'), db)
print(len(paths))
"""


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def seed_way(paths: list[Path], out: Path) -> float:
    """The seed pipeline over ``paths``; returns wall seconds."""
    import librosa

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        y, _ = librosa.load(path, sr=22050)
        spec = librosa.stft(y, n_fft=512, hop_length=256)
        db = librosa.amplitude_to_db(np.abs(spec))
        db = (db - db.min()) / (db.max() - db.min() + 1e-9)
        np.save(out / f"{i:06d}.npy", db)
    return time.perf_counter() - t0


def our_way(dataset, out: Path, workers: int, config=None) -> tuple[float, int]:
    """soundloom prepare (defaults unless ``config``); returns (wall seconds, store rows)."""
    from soundloom.data.prepare import prepare

    t0 = time.perf_counter()
    result = prepare(dataset, out, config, workers=workers)
    return time.perf_counter() - t0, result.n_items


def linked_copies(folder: Path, dest: Path, target: int) -> Path:
    """A folder of symbolic links to the files of ``folder``, repeated until it holds ``target``."""
    files = sorted(p for p in folder.rglob("*.wav") if p.is_file())
    fsdd = re.compile(r"^([^_]+)_(.+)_(\d+)$")
    made = 0
    for rep in range(target // max(1, len(files)) + 1):
        for f in files:
            if made == target:
                return dest
            rel = f.relative_to(folder)
            stem = rel.stem
            if rep:
                m = fsdd.match(stem)
                stem = f"{m[1]}_{m[2]}-r{rep}_{m[3]}" if m else f"{stem}-r{rep}"
            link = dest / rel.parent / f"{stem}{rel.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(f.resolve())
            made += 1
    return dest


def timed_process(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; returns (wall seconds, CPU seconds of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole_process(folder: Path, tmp: Path, n: int, workers: int, repeats: int) -> None:
    """Seed script vs the ``soundloom prepare`` console script, alternated; prints the medians."""
    console = Path(sys.executable).with_name("soundloom")
    ours_cmd = [str(console), "prepare", str(folder), "--workers", str(workers), "--out"]
    seed_s, ours_s, seed_cpu, ours_cpu = [], [], [], []
    for r in range(repeats):
        wall, cpu = timed_process([sys.executable, "-c", SEED_SCRIPT, str(folder), str(tmp / f"wseed{r}")])
        seed_s.append(wall)
        seed_cpu.append(cpu)
        shutil.rmtree(tmp / f"wseed{r}")
        wall, cpu = timed_process([*ours_cmd, str(tmp / f"wours{r}")])
        ours_s.append(wall)
        ours_cpu.append(cpu)
        shutil.rmtree(tmp / f"wours{r}")
    seed_med, ours_med = statistics.median(seed_s), statistics.median(ours_s)
    print("whole process (start-up included; medians of alternated runs):")
    print(
        "  seed (python -c: import librosa + loop): "
        + ", ".join(f"{s:.2f}" for s in seed_s)
        + f" s -> median {seed_med:.2f} s ({n / seed_med:.0f} files/s), cpu {statistics.median(seed_cpu):.2f} s"
    )
    print(
        f"  soundloom prepare --workers {workers} (console script): "
        + ", ".join(f"{s:.2f}" for s in ours_s)
        + f" s -> median {ours_med:.2f} s ({n / ours_med:.0f} files/s), cpu {statistics.median(ours_cpu):.2f} s"
    )
    print(f"  whole-process ratio: {seed_med / ours_med:.2f}x (median wall clock)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="data set folder (default: synthesised one-shots)")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files (in data-set order)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n-per-class", type=int, default=100, help="synthesised clips per class (9 classes)")
    ap.add_argument("--target", type=int, default=None, help="repeat the files as symbolic links up to N files")
    ap.add_argument("--whole-repeats", type=int, default=5, help="runs of each whole process (0: skip)")
    ap.add_argument(
        "--seed-like",
        action="store_true",
        help="also time prepare at the seed's frame rate (22050 Hz, hop 256, 0.5 s clips): "
        "about the seed's output per file, so the engines compare like for like",
    )
    args = ap.parse_args()

    import librosa

    from soundloom.data.layouts import discover

    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        folder = args.folder
        if folder is None:
            from soundloom.data.synth import write_oneshots

            folder = tmp / "clips"
            write_oneshots(folder, n_per_class=args.n_per_class, seconds=0.5)
        if args.target:
            folder = linked_copies(folder, tmp / "linked", args.target)
        dataset = discover(folder, with_info=False)
        if args.limit:
            dataset.items = dataset.items[: args.limit]
        paths = [it.path for it in dataset.items]
        for p in paths:  # warm the page cache for both sides
            p.read_bytes()
        librosa.load(paths[0], sr=22050)
        print(
            f"{len(paths)} files from {folder} ({dataset.layout}); cpu cores visible: {os.cpu_count()}, "
            f"workers: {args.workers}, load average: {os.getloadavg()[0]:.2f}"
        )
        if args.whole_repeats and not args.limit:
            whole_process(folder, tmp, len(paths), args.workers, args.whole_repeats)
        print("in process (start-up excluded: both engines already imported; best runs):")
        seed_s, ours_s, seed_cpu, ours_cpu = [], [], [], []
        for r in range(args.repeats):
            c0 = cpu_seconds()
            seed_s.append(seed_way(paths, tmp / f"seed{r}"))
            seed_cpu.append(cpu_seconds() - c0)
            shutil.rmtree(tmp / f"seed{r}")
            c0 = cpu_seconds()
            secs, rows = our_way(dataset, tmp / f"ours{r}", args.workers)
            ours_cpu.append(cpu_seconds() - c0)  # workers are joined when prepare returns
            ours_s.append(secs)
            shutil.rmtree(tmp / f"ours{r}")
        n = len(paths)
        seed_rate, our_rate = n / min(seed_s), n / min(ours_s)
        print(
            "seed (librosa, 1 process): "
            + ", ".join(f"{n / s:.0f}" for s in seed_s)
            + f" files/s -> best {seed_rate:.0f}"
        )
        print(
            f"soundloom prepare ({args.workers} workers): "
            + ", ".join(f"{n / s:.0f}" for s in ours_s)
            + f" files/s -> best {our_rate:.0f} ({rows} rows stored)"
        )
        print(f"in-process ratio: {our_rate / seed_rate:.2f}x (wall clock, best runs, start-up excluded)")
        # On a shared machine wall clock depends on the neighbours; CPU time per file does not.
        seed_ms, ours_ms = 1e3 * min(seed_cpu) / n, 1e3 * min(ours_cpu) / n
        print(
            f"cpu per file: seed {seed_ms:.2f} ms, ours {ours_ms:.2f} ms (all processes) -> "
            f"{seed_ms / ours_ms:.2f}x less cpu; on {args.workers} idle cores that projects to "
            f"{args.workers * seed_ms / ours_ms:.1f}x"
        )
        if args.seed_like:
            from soundloom.data.prepare import PrepareConfig

            like = PrepareConfig(sample_rate=22050, hop_length=256, seconds=0.5)
            like_s, like_cpu = [], []
            for r in range(args.repeats):
                c0 = cpu_seconds()
                like_s.append(our_way(dataset, tmp / f"like{r}", args.workers, like)[0])
                like_cpu.append(cpu_seconds() - c0)
                shutil.rmtree(tmp / f"like{r}")
            like_ms = 1e3 * min(like_cpu) / n
            print(
                f"soundloom prepare, seed's frame rate ({like.spectrogram().n_frames(like.n_samples)} frames): "
                + ", ".join(f"{n / s:.0f}" for s in like_s)
                + f" files/s -> best {n / min(like_s):.0f}, "
                f"ratio {n / min(like_s) / seed_rate:.2f}x; cpu per file {like_ms:.2f} ms "
                f"(projects to {args.workers * seed_ms / like_ms:.1f}x on {args.workers} idle cores)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
