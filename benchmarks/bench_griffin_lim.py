"""Griffin-Lim: soundloom's (torch, momentum, vocoder init) against librosa.griffinlim.

Both get the same magnitude spectrograms and 32 iterations; the script prints seconds of compute
per second of audio and the spectral convergence (SC) each reaches, with the ratios.

    python benchmarks/bench_griffin_lim.py                      # synthesised harmonic notes + noise
    python benchmarks/bench_griffin_lim.py --folder ../devdata/notes/audio --limit 32
    python benchmarks/bench_griffin_lim.py --folder ../devdata/notes/audio --limit 48 --sweep 4,8,16,32 \
        --mel-iters 0,8,16,32      # the generator's whole decode: mel -> magnitude (NNLS) -> Griffin-Lim

``--sweep`` times soundloom alone (CPU seconds per second of audio, one thread; median of ``--repeats`` rounds that
run every configuration in turn) for each iteration count and reports SC and the log-spectral distance (LSD, dB,
magnitudes floored at -100 dB) against the true magnitude; with ``--mel-iters`` the magnitude first goes through a
64-band mel power spectrogram and back (``mel_to_magnitude``), as generated mel features do, so both include what
the mel inversion loses.
``--ceiling 0,1,2`` also sweeps ``griffin_lim(..., ceiling_iters=k)`` (the last k of the iterations project onto
``|X| <= target`` instead of ``|X| = target``; same cost) and adds the median spectral floor of the
reconstructions (``spectral_floor_db``, dB re the loudest bin) beside the real clips' own:

    python benchmarks/bench_griffin_lim.py --folder ../devdata/notes/audio --limit 48 --sweep 8 --mel-iters 16 \
        --ceiling 0,1,2,4

``--mel-methods fista,fista-diag`` sweeps ``mel_to_magnitude``'s methods (one step size for every bin, or one per
bin); a method written ``fista+pinv`` starts from the pseudo-inverse instead of the default ``interp`` start. Each
configuration's rows are timed in the same rounds.
``--gl-chunks 0,65536,131072`` sweeps how many spectrum values (items x frames x bins) Griffin-Lim iterates on at
once on the CPU (0: the whole batch; the library's default is ``spectral._GL_CHUNK_BINS``); every chunking gives the
same audio, bit for bit, and the script says so:

    python benchmarks/bench_griffin_lim.py --folder /tmp/fam/data/oneshots --limit 20 --sweep 8 --mel-iters 16 \
        --gl-chunks 0,32768,65536,131072,262144 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from soundloom.core import fit_length, load_audio, spectral
from soundloom.core.spectral import (
    SpectrogramConfig,
    griffin_lim,
    magnitude,
    mel_spectrogram,
    mel_to_magnitude,
    spectral_convergence,
)


def synth_notes(n: int, sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic notes with random pitch, partial weights and decay, ``(n, samples)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    out = []
    for _ in range(n):
        f0 = 110 * 2 ** rng.uniform(0, 3)
        x = sum(
            rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6))
            for k in range(1, 9)
            if f0 * k < sr / 2
        )
        env = np.minimum(1, t / 0.01) * np.exp(-t * rng.uniform(1, 4)) * np.minimum(1, (seconds - t) / 0.05)
        out.append(0.3 * x * env)
    return np.asarray(out, dtype=np.float32)


def load_folder(folder: Path, limit: int, sr: int, seconds: float) -> np.ndarray:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
    paths = [
        paths[i] for i in np.linspace(0, len(paths) - 1, min(limit, len(paths))).astype(int)
    ]  # spread, not first N
    return np.stack(
        [fit_length(load_audio(p, sample_rate=sr)[0], int(sr * seconds), fade_samples=int(0.01 * sr)) for p in paths]
    )


def run(name: str, wavs: np.ndarray, cfg: SpectrogramConfig, n_iter: int, repeats: int) -> None:
    x = torch.from_numpy(wavs)
    mags = magnitude(x, cfg)
    seconds_audio = wavs.size / cfg.sample_rate
    length = wavs.shape[-1]

    def ours():
        return griffin_lim(mags, cfg, n_iter=n_iter, length=length)

    def theirs():
        return torch.from_numpy(
            librosa.griffinlim(
                mags.numpy(),
                n_iter=n_iter,
                hop_length=cfg.hop_length,
                win_length=cfg.win_length,
                n_fft=cfg.n_fft,
                window=cfg.window,
                length=length,
                momentum=0.99,
                random_state=0,
            )
        ).float()

    results = {}
    for label, fn in (("soundloom", ours), ("librosa", theirs)):
        fn()  # warm-up (FFT plans, caches)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            y = fn()
            times.append(time.perf_counter() - t0)
        sc = spectral_convergence(mags, y, cfg)
        results[label] = (min(times) / seconds_audio, float(sc.mean()), float(sc.max()))
    print(
        f"\n{name}: {wavs.shape[0]} clips x {wavs.shape[1] / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz, "
        f"n_fft={cfg.n_fft} hop={cfg.hop_length}, {n_iter} iterations, torch threads={torch.get_num_threads()}"
    )
    print(f"{'':10s} {'s per s audio':>14s} {'SC mean':>9s} {'SC max':>8s}")
    for label, (rt, sc_mean, sc_max) in results.items():
        print(f"{label:10s} {rt:14.5f} {sc_mean:9.4f} {sc_max:8.4f}")
    (ro, so, _), (rl, sl, _) = results["soundloom"], results["librosa"]
    print(
        f"speed ratio (librosa time / soundloom time): {rl / ro:.2f}x;  SC ratio (soundloom / librosa): {so / sl:.2f}"
    )


def log_spectral_distance(target_mag: torch.Tensor, wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """RMS difference of the dB magnitudes (floored at -100 dB) per item, dB: target ``(..., F, T)``."""
    est = magnitude(wav, cfg)
    frames = min(est.shape[-1], target_mag.shape[-1])
    a = 20 * torch.log10(target_mag[..., :frames].clamp_min(1e-5))
    b = 20 * torch.log10(est[..., :frames].clamp_min(1e-5))
    return (a - b).pow(2).mean((-2, -1)).sqrt()


def sweep(
    wavs: np.ndarray,
    cfg: SpectrogramConfig,
    gl_iters: list[int],
    mel_iters: list[int],
    n_mels: int,
    ceilings: list[int] | None = None,
    repeats: int = 5,
    mel_methods: list[str] | None = None,
    gl_chunks: list[int] | None = None,
) -> None:
    """SC, LSD and CPU time of the decode path for each (mel iterations, Griffin-Lim iterations, ceiling
    iterations); with ``ceilings``, also the median spectral floor of the output beside the clips' own."""
    x = torch.from_numpy(wavs)
    mags, length = magnitude(x, cfg), wavs.shape[-1]
    seconds_audio = wavs.size / cfg.sample_rate
    mel_cfg = SpectrogramConfig(**{**cfg.to_dict(), "kind": "mel", "n_mels": n_mels})
    mel_power = mel_spectrogram(x, mel_cfg)
    floor = None
    if ceilings:
        from soundloom.sounds.evaluation.fidelity import spectral_floor_db

        floor = spectral_floor_db
        print(f"the clips' own spectral floor: median {float(np.median(floor(wavs, cfg.sample_rate))):.1f} dB")
    print(
        f"{'mel method':>10s} {'mel iters':>9s} {'GL iters':>8s} {'ceiling':>7s} {'GL chunk':>8s} "
        f"{'ms CPU / s audio':>16s} {'x real time':>11s} {'SC mean':>8s} {'SC max':>7s} {'LSD dB':>7s}"
        + (f" {'floor dB':>8s}" if floor else "")
    )
    methods = mel_methods or ["fista"]
    default_chunk = spectral._GL_CHUNK_BINS
    configs = [
        (m, g, c, k, b)
        for k in methods
        for m in mel_iters or [-1]
        for g in gl_iters
        for c in ceilings or [0]
        for b in gl_chunks or [default_chunk]
        if c <= g
    ]
    configs = list(dict.fromkeys((m, g, c, k if m >= 0 else "-", b) for m, g, c, k, b in configs))

    def decode(mi: int, gi: int, ci: int, method: str, chunk: int) -> torch.Tensor:
        name, _, init = method.partition("+")  # "fista+pinv": the method from the pseudo-inverse's start
        mag = mags if mi < 0 else mel_to_magnitude(mel_power, mel_cfg, iters=mi, method=name, init=init or "interp")
        spectral._GL_CHUNK_BINS = chunk if chunk > 0 else 1 << 62  # 0: the whole batch at once
        try:
            return griffin_lim(mag, cfg, n_iter=gi, length=length, ceiling_iters=ci)
        finally:
            spectral._GL_CHUNK_BINS = default_chunk

    # Timed in rounds, each round every configuration once (in turn), so load from other processes falls on all of
    # them alike; the median over rounds is reported.
    outputs = {c: decode(*c) for c in configs}  # also the warm-up
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    for _ in range(repeats):
        for c in configs:
            t0 = time.process_time()
            decode(*c)
            times[c].append(time.process_time() - t0)
    for (mi, gi, ci, method, chunk), y in outputs.items():
        cpu = statistics.median(times[(mi, gi, ci, method, chunk)])
        sc = spectral_convergence(mags, y, cfg)
        lsd = log_spectral_distance(mags, y, cfg)
        label = "-" if mi < 0 else str(mi)
        tail = f" {float(np.median(floor(y.numpy(), cfg.sample_rate))):8.1f}" if floor else ""
        print(
            f"{method:>10s} {label:>9s} {gi:8d} {ci:7d} {chunk:8d} {1000 * cpu / seconds_audio:16.2f} "
            f"{seconds_audio / cpu:11.1f} {float(sc.mean()):8.4f} {float(sc.max()):7.4f} {float(lsd.mean()):7.2f}"
            + tail
        )
    if gl_chunks and len(gl_chunks) > 1:
        first = {c[:4]: y for c, y in reversed(list(outputs.items()))}
        same = all(torch.equal(y, first[c[:4]]) for c, y in outputs.items())
        print(f"every chunking gives the same audio bit for bit: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="audio folder (default: synthesised notes)")
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--n-fft", type=int, default=512)
    ap.add_argument("--iters", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sweep", help="comma-separated Griffin-Lim iteration counts: time and SC of soundloom's alone")
    ap.add_argument("--mel-iters", help="with --sweep: comma-separated mel inversion iterations (through --n-mels)")
    ap.add_argument("--n-mels", type=int, default=64)
    ap.add_argument("--ceiling", help="with --sweep: comma-separated ceiling_iters (of the GL iterations) to sweep")
    ap.add_argument("--mel-methods", help="with --mel-iters: comma-separated mel_to_magnitude methods to sweep")
    ap.add_argument("--hop", type=int, default=None, help="hop in samples (default: n_fft / 4)")
    ap.add_argument(
        "--gl-chunks", help="with --sweep: comma-separated Griffin-Lim chunk sizes (spectrum values; 0: all)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (librosa's FFT is single-threaded; 1 compares like with like)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = SpectrogramConfig(sample_rate=args.sample_rate, n_fft=args.n_fft, hop_length=args.hop or args.n_fft // 4)
    if args.sweep:
        wavs = (
            load_folder(args.folder, args.limit, args.sample_rate, args.seconds)
            if args.folder
            else synth_notes(args.limit, args.sample_rate, args.seconds)
        )
        mel = [int(v) for v in args.mel_iters.split(",")] if args.mel_iters else []
        ceilings = [int(v) for v in args.ceiling.split(",")] if args.ceiling else None
        methods = args.mel_methods.split(",") if args.mel_methods else None
        chunks = [int(v) for v in args.gl_chunks.split(",")] if args.gl_chunks else None
        gl = [int(v) for v in args.sweep.split(",")]
        sweep(wavs, cfg, gl, mel, args.n_mels, ceilings, args.repeats, methods, chunks)
        return
    if args.folder:
        run(
            str(args.folder),
            load_folder(args.folder, args.limit, args.sample_rate, args.seconds),
            cfg,
            args.iters,
            args.repeats,
        )
    else:
        run(
            "synthesised harmonic notes",
            synth_notes(args.limit, args.sample_rate, args.seconds),
            cfg,
            args.iters,
            args.repeats,
        )
        rng = np.random.default_rng(1)
        t = np.arange(int(args.sample_rate * args.seconds)) / args.sample_rate
        noise = (0.3 * rng.standard_normal((args.limit, t.size)) * np.exp(-8 * t)).astype(np.float32)
        run("noise bursts", noise, cfg, args.iters, args.repeats)


if __name__ == "__main__":
    main()
