"""CUDA checks for a machine with an NVIDIA GPU (CI has none); ``benchmarks/check_cuda.sh`` runs them after the
config matrix trained on the GPU.

    python benchmarks/check_cuda.py --out /tmp/cuda-check [--train-epochs 30]

1. **The spectral core on the GPU against the CPU**, on the same batch of harmonic notes with noise (16 kHz, the
   demo's mel 64 / n_fft 512 / hop 128): STFT and its inverse, log-mel features, the mel inversion (NNLS) and
   Griffin-Lim with the vocoder phase. Prints the largest difference, relative to the CPU result's largest value,
   and the spectral convergence each device's Griffin-Lim reaches. A GPU path that computed something else fails.
2. **Training a one-shot cvae on the GPU and on the CPU**, the demo's data and recipe (``soundloom synth-data``,
   ``prepare``, ``train --model cvae --batch-size 32 --class-weighting``) for the same ``--train-epochs``: whole
   processes (start-up, data loading and export included), wall seconds and steps per second; the GPU run is
   loaded back on the CPU and generates (what a user who trains on a GPU box and renders elsewhere gets).

Exits non-zero when a check fails; writes ``cuda_check.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from soundloom.core.spectral import (
    SpectrogramConfig,
    features,
    griffin_lim,
    istft,
    mel_to_magnitude,
    spectral_convergence,
    stft,
)


def notes(n: int, rate: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """``(n, samples)`` decaying harmonic notes over a little noise, one f0 each (110-880 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    out = []
    for f0 in np.geomspace(110.0, 880.0, n):
        wav = sum(
            np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 9) if k * f0 < rate / 2
        )
        out.append(0.3 * wav * np.exp(-3 * t) + 1e-3 * rng.standard_normal(len(t)))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest ``|a - b|`` over the largest ``|a|``."""
    a, b = a.detach().cpu().float(), b.detach().cpu().float()
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def spectral_checks() -> dict:
    """Each spectral op on both devices; raises AssertionError when the GPU's result is not the CPU's."""
    lin = SpectrogramConfig(kind="magnitude", sample_rate=16000, n_fft=512, hop_length=128)
    mel = SpectrogramConfig(kind="mel", sample_rate=16000, n_fft=512, hop_length=128, n_mels=64)
    wav = notes(16, 16000, 1.0)
    out: dict = {}
    res = {}
    for dev in ("cpu", "cuda"):
        x = wav.to(dev)
        spec = stft(x, lin)
        mag = spec.abs()
        res[dev] = {
            "stft": spec.abs(),
            "istft": istft(spec, lin, length=x.shape[-1]),
            "mel": features(x, mel),
            "mel_to_magnitude": mel_to_magnitude(torch.pow(10.0, features(x, mel) / 10.0), mel),
            "griffin_lim": griffin_lim(mag, lin, n_iter=32, length=x.shape[-1]),
        }
        if dev == "cuda":
            torch.cuda.synchronize()
        out[f"griffin_lim_sc_{dev}"] = float(spectral_convergence(mag, res[dev]["griffin_lim"], lin).mean())
    for name in res["cpu"]:
        out[f"{name}_gap"] = relative_gap(res["cpu"][name], res["cuda"][name])
    # float32 on two devices: summation order differs; Griffin-Lim's 32 nonlinear iterations amplify that, so it is
    # judged by the convergence it reaches, not sample by sample.
    for name in ("stft", "istft", "mel", "mel_to_magnitude"):
        assert out[f"{name}_gap"] < 1e-3, f"{name}: GPU differs from CPU by {out[f'{name}_gap']:.2e}"
    assert abs(out["griffin_lim_sc_cuda"] - out["griffin_lim_sc_cpu"]) < 0.02, "Griffin-Lim converges differently"
    return out


def cli(*args: str, env: dict | None = None) -> float:
    """Run ``soundloom ARGS`` as a whole process; wall seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "soundloom", *args], check=True, env=env)
    return time.perf_counter() - t0


def training_checks(out: Path, epochs: int) -> dict:
    """The demo's one-shot cvae for ``epochs`` epochs on the GPU and on the CPU (all cores); whole processes."""
    data, feats = out / "data", out / "features"
    if not feats.exists():
        cli("synth-data", str(data), "--n-per-class", "40", "--songs", "1", "--song-seconds", "10")
        cli(
            "prepare",
            str(data / "oneshots"),
            "--out",
            str(feats),
            "--sample-rate",
            "16000",
            "--seconds",
            "1.016",
            "--kind",
            "mel",
            "--n-fft",
            "512",
            "--hop",
            "128",
            "--n-mels",
            "64",
        )
    result = {}
    for acc, threads in (("gpu", "1"), ("cpu", str(os.cpu_count() or 1))):
        run = out / f"cvae_{acc}"
        wall = cli(
            "train",
            str(feats),
            "--model",
            "cvae",
            "--out",
            str(run),
            "--quiet",
            "--epochs",
            str(epochs),
            "--batch-size",
            "32",
            "--class-weighting",
            "--accelerator",
            acc,
            "--threads",
            threads,
        )
        info = json.loads((run / "model.json").read_text())
        steps = int(info["training"]["steps"])
        result[acc] = {
            "wall_s": round(wall, 1),
            "steps": steps,
            "steps_per_s": round(steps / wall, 2),
            "threads": int(threads),
        }
    gen_dir = out / "generated_from_gpu_run"
    cli("generate", str(out / "cvae_gpu"), "--n", "4", "--label", "bell", "--out", str(gen_dir), "--seed", "1")
    wavs = sorted(gen_dir.glob("*.wav"))
    assert len(wavs) == 4, f"expected 4 generated sounds, found {len(wavs)}"
    result["generated_on_cpu_from_gpu_run"] = len(wavs)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train-epochs", type=int, default=30)
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: nothing to check")
    a.out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    report["spectral"] = spectral_checks()
    print(json.dumps(report["spectral"], indent=1), flush=True)
    report["training"] = training_checks(a.out, a.train_epochs)
    print(json.dumps(report["training"], indent=1), flush=True)
    (a.out / "cuda_check.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
