"""Benchmark the model family: each member trained on one store with the same CPU-time budget
(``train --cpu-minutes``), then generation speed per CPU core (in-process, phase reconstruction or vocoding
included) and, with ``--judge``, the independent judge's table (``soundloom compare``'s :func:`compare_runs`).

    soundloom synth-data /tmp/fam/data --n-per-class 40 --songs 0
    soundloom prepare /tmp/fam/data/oneshots --out /tmp/fam/features --sample-rate 16000 --seconds 1.016 \\
        --kind mel --n-fft 512 --hop 128 --n-mels 64
    python benchmarks/bench_family.py /tmp/fam/features --out /tmp/fam/runs --cpu-minutes 3 --judge
    python benchmarks/bench_family.py /tmp/fam/features --out /tmp/fam/runs --speed-only   # reuse the runs

Budgets: CPU minutes, which a busy machine does not shrink. A member with two stages gives its first stage
half and the second the rest (the second stage's budget counts the first's recorded CPU time: vqvae then
prior; cvae then vaegan), so every member costs the same training CPU. Training runs one process with
``--threads`` torch threads. Speed: ``Generator.sample(n)`` timed with ``time.process_time`` (one thread),
the least of ``--repeats`` calls after a warm-up call; reported as seconds of audio per CPU second (1.0 =
real time on one core), with the Griffin-Lim iterations the generator uses by default (``--griffin-lim-iters``
to set them).

``--decode-against OTHER/src/soundloom/core/spectral.py`` times the decode path of another checkout in the same
process instead: ``Generator.sample(n)`` alternated call by call with that file's ``griffin_lim`` and
``features_to_magnitude`` and with this one's (least / median / most CPU of ``--repeats`` calls each), and says
whether both gave the same audio bit for bit:

    python benchmarks/bench_family.py /tmp/fam/features --out /tmp/fam/runs --members vqvae+prior --repeats 20 \
        --decode-against /tmp/base/src/soundloom/core/spectral.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from soundloom.sounds import Generator
from soundloom.sounds.training import TrainConfig, train

# member -> stages: (run name, kind, share of the budget, options; "{name}" is a run path of this member)
MEMBERS = {
    "cvae": [("cvae", "cvae", 1.0, {})],
    "vqvae+prior": [
        ("vqvae", "vqvae", 0.5, {"codebook_size": 256}),
        ("prior", "prior", 0.5, {"vqvae": "{vqvae}"}),
    ],
    "vaegan": [("cvae_half", "cvae", 0.5, {}), ("vaegan", "vaegan", 0.5, {"init_from": "{cvae_half}"})],
    "wave-vae": [("wave", "wave-vae", 1.0, {})],
    "ddsp": [("ddsp", "ddsp", 1.0, {})],
}


def train_member(features: str, out: Path, member: str, minutes: float, threads: int, seed: int) -> Path:
    """Train every stage of a member within ``minutes`` CPU minutes in all; returns the run that generates."""
    run = None
    for name, kind, share, options in MEMBERS[member]:
        run = out / name
        if (run / "model.safetensors").exists():
            continue
        paths = {n: str(out / n) for n, *_ in MEMBERS[member]}
        opts = {k: v.format(**paths) if isinstance(v, str) else v for k, v in options.items()}
        cfg = TrainConfig(
            features=features,
            model=kind,
            epochs=10_000,
            cpu_minutes=minutes if name == MEMBERS[member][-1][0] else minutes * share,
            threads=threads,
            seed=seed,
            sample_items=0,
            model_options=opts,
            latent_dim=64,
        )
        start = time.monotonic()
        train(cfg, run, progress_bar=False)
        rec = json.loads((run / "model.json").read_text())["training"]
        print(
            f"  trained {name} ({kind}) in {time.monotonic() - start:.0f} s: {rec['cpu_s_total']:.0f} CPU-s "
            f"(every stage), {rec['steps']} steps"
        )
    return run


def speed(
    run: Path,
    n: int,
    seconds: float | None,
    griffin_lim_iters: int | None = None,
    repeats: int = 3,
    pitch: int | None = None,
) -> dict:
    """Seconds of audio per CPU second of ``Generator.sample(n)`` (with Griffin-Lim where the kind needs it);
    ``pitch`` for a pitch-conditioned run (None: the generator's default, MIDI 60)."""
    gen = Generator.from_run(run, griffin_lim_iters=griffin_lim_iters)
    label = gen.labels[0] if gen.labels and gen.model.label_conditioned else None
    gen.sample(1, label=label, seed=0, seconds=seconds, pitch=pitch)
    cpu = float("inf")
    for _ in range(repeats):  # the least CPU of a few calls: a busy machine only ever adds to it
        start = time.process_time()
        sounds = gen.sample(n, label=label, seed=1, seconds=seconds, pitch=pitch)
        cpu = min(cpu, time.process_time() - start)
    audio = sum(len(s.audio) / s.sample_rate for s in sounds)
    return {
        "kind": gen.model.cfg.kind,
        "griffin_lim_iters": None if gen.model.output == "waveform" else gen.griffin_lim_iters,
        "audio_s": audio,
        "cpu_s": cpu,
        "x_realtime_per_core": audio / cpu,
    }


def decode_against(run: Path, n: int, other: Path, calls: int) -> dict:
    """``Generator.sample(n)`` with the decode functions of the spectral module at ``other`` and with this checkout's,
    alternated call by call: CPU seconds of each call, and whether the audio was the same bit for bit."""
    import importlib.util

    import numpy as np

    from soundloom.core import spectral
    from soundloom.sounds import decode

    spec = importlib.util.spec_from_file_location("soundloom.core._other_spectral", other)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    gen = Generator.from_run(run)
    label = gen.labels[0] if gen.labels and gen.model.label_conditioned else None
    times: dict[str, list[float]] = {"other": [], "this": []}
    audio: dict[str, np.ndarray] = {}
    try:
        for i in range(calls + 1):  # the first round warms both up, untimed
            for name in ("other", "this") if i % 2 else ("this", "other"):
                module = old if name == "other" else spectral
                decode.griffin_lim, decode.features_to_magnitude = module.griffin_lim, module.features_to_magnitude
                start = time.process_time()
                sounds = gen.sample(n, label=label, seed=1)
                if i:
                    times[name].append(time.process_time() - start)
                audio[name] = np.stack([s.audio for s in sounds])
    finally:
        decode.griffin_lim, decode.features_to_magnitude = spectral.griffin_lim, spectral.features_to_magnitude
    seconds = sum(len(s.audio) / s.sample_rate for s in sounds)
    return {"audio_s": seconds, "cpu_s": times, "same_audio": bool(np.array_equal(audio["other"], audio["this"]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("features")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cpu-minutes", type=float, default=3.0, help="Training CPU budget per member (all stages).")
    p.add_argument("--griffin-lim-iters", type=int, default=None, help="Default: the generator's (8 for mel).")
    p.add_argument("--members", default=",".join(MEMBERS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=20, help="Sounds per speed measurement.")
    p.add_argument("--repeats", type=int, default=3, help="Speed: the least CPU time of this many calls.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pitch", type=int, default=None, help="MIDI pitch asked of pitch-conditioned runs (default 60).")
    p.add_argument("--speed-only", action="store_true", help="Only time generation of existing runs.")
    p.add_argument("--judge", action="store_true", help="Also run the independent judge (compare_runs).")
    p.add_argument("--json", action="store_true")
    p.add_argument("--decode-against", type=Path, help="Another checkout's core/spectral.py: time both decode paths.")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    members = args.members.split(",")
    if args.decode_against:
        for m in members:
            r = decode_against(args.out / MEMBERS[m][-1][0], args.n, args.decode_against, args.repeats)
            print(f"{m}: same audio bit for bit: {r['same_audio']}")
            for name, cpu in r["cpu_s"].items():
                least, median, most = min(cpu), statistics.median(cpu), max(cpu)
                print(
                    f"  {name:5s} CPU s least {least:.3f} ({r['audio_s'] / least:.1f}x)  median {median:.3f} "
                    f"({r['audio_s'] / median:.1f}x)  most {most:.3f} ({r['audio_s'] / most:.1f}x)"
                )
        return
    runs = {}
    for m in members:
        if args.speed_only:
            runs[m] = args.out / MEMBERS[m][-1][0]
        else:
            print(f"{m}: {args.cpu_minutes} CPU-min")
            runs[m] = train_member(args.features, args.out, m, args.cpu_minutes, args.threads, args.seed)
    rows = {m: speed(r, args.n, None, args.griffin_lim_iters, args.repeats, args.pitch) for m, r in runs.items()}
    if "vqvae+prior" in runs:
        rows["prior 4x length"] = speed(
            runs["vqvae+prior"],
            max(2, args.n // 4),
            4 * Generator.from_run(runs["vqvae+prior"]).seconds,
            args.griffin_lim_iters,
            args.repeats,
        )
    print(f"{'member':18s} {'kind':9s} {'GL':>3s} {'audio s':>8s} {'CPU s':>7s} {'x real time / core':>19s}")
    for m, r in rows.items():
        gl = "-" if r["griffin_lim_iters"] is None else str(r["griffin_lim_iters"])
        print(f"{m:18s} {r['kind']:9s} {gl:>3s} {r['audio_s']:8.2f} {r['cpu_s']:7.2f} {r['x_realtime_per_core']:19.1f}")
    result = {"speed": rows}
    if args.judge:
        from soundloom.sounds.evaluation.compare import compare_runs, table_lines

        judged = compare_runs([str(runs[m]) for m in members], speed_items=args.n, seed=args.seed)
        print("\n".join(table_lines(judged)))
        result["judge"] = judged
    if args.json:
        print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
