"""Benchmark: training throughput and peak memory of the default VAE vs the seed's layer widths,
and generation speed (decoder + Griffin-Lim) against real time.

    python benchmarks/bench_vae.py                  # both models at the seed's 256x64 input, batch 64
    python benchmarks/bench_vae.py --threads 2 --steps 5 --run runs/digits

Each model trains in its own subprocess so that its peak resident memory (ru_maxrss) is its own;
throughput is examples per CPU-second (process time, all threads counted). The seed is
re-implemented faithfully: 256x64 input, five 3x3 conv layers of 512, 256, 128, 64, 32 filters
(strides 2, 2, 2, 2, (2, 1)), each with ReLU and batch norm, latent 128, a mirrored
transposed-conv decoder, loss 1e6 * MSE + KL, Adam 5e-4.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch import nn

ROWS, FRAMES, BATCH = 256, 64, 64


class SeedVAE(nn.Module):
    """The seed's Keras VAE in torch (same layers, widths, strides and latent size)."""

    def __init__(self, filters=(512, 256, 128, 64, 32), strides=(2, 2, 2, 2, (2, 1)), latent: int = 128) -> None:
        super().__init__()
        enc, c_in = [], 1
        for f, s in zip(filters, strides):
            enc += [nn.Conv2d(c_in, f, 3, stride=s, padding=1), nn.ReLU(), nn.BatchNorm2d(f)]
            c_in = f
        self.encoder = nn.Sequential(*enc)
        self.bottom = (filters[-1], ROWS // 32, FRAMES // 16)
        flat = filters[-1] * self.bottom[1] * self.bottom[2]
        self.mu, self.logvar = nn.Linear(flat, latent), nn.Linear(flat, latent)
        self.dense = nn.Linear(latent, flat)
        dec, c_in = [], filters[-1]
        for i in reversed(range(1, len(filters))):
            s = strides[i] if isinstance(strides[i], tuple) else (strides[i], strides[i])
            dec += [
                nn.ConvTranspose2d(c_in, filters[i], 3, stride=s, padding=1, output_padding=(s[0] - 1, s[1] - 1)),
                nn.ReLU(),
                nn.BatchNorm2d(filters[i]),
            ]
            c_in = filters[i]
        dec += [nn.ConvTranspose2d(c_in, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor):
        h = self.encoder(x.unsqueeze(1)).flatten(1)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        y = self.decoder(self.dense(z).view(-1, *self.bottom)).squeeze(1)
        return y, mu, logvar


def worker(which: str, steps: int, threads: int) -> dict:
    """Train ``steps`` batches (after one warm-up) and report throughput and peak memory."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.rand(BATCH, ROWS, FRAMES)
    if which == "seed":
        model = SeedVAE()
        opt = torch.optim.Adam(model.parameters(), lr=5e-4)

        def loss_fn():
            y, mu, logvar = model(x)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
            return 1e6 * (y - x).pow(2).mean() + kl
    else:
        from soundloom.sounds.losses import elbo_terms
        from soundloom.sounds.models import ModelConfig, build_model

        model = build_model(ModelConfig(kind="vae", rows=ROWS, frames=FRAMES))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        xx = x * 2 - 1

        def loss_fn():
            y, mu, logvar = model(xx)
            return elbo_terms(y, xx, mu, logvar, 0.1).loss

    def step():
        opt.zero_grad()
        loss_fn().backward()
        opt.step()

    step()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        step()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "model": which,
        "params": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "examples_per_cpu_s": steps * BATCH / cpu,
        "examples_per_wall_s": steps * BATCH / wall,
        "cpu_s_per_example": cpu / (steps * BATCH),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def generation(run: str | None, threads: int, items: int = 8) -> dict:
    """Seconds of audio made per wall second and per CPU-second, as ``Generator.sample`` renders."""
    torch.set_num_threads(threads)
    if run:
        from soundloom.sounds import Generator

        gen = Generator.from_run(run, griffin_lim_iters=32)
        gen.sample(1, seed=0)
        t, c = time.perf_counter(), time.process_time()
        sounds = gen.sample(items, seed=1)
        took, cpu = time.perf_counter() - t, time.process_time() - c
        secs = sum(len(s.audio) / s.sample_rate for s in sounds)
        return {
            "source": run,
            "audio_s": secs,
            "wall_s": took,
            "cpu_s": cpu,
            "real_time_factor": secs / took,
            "real_time_factor_cpu": secs / cpu,
        }
    # No run: an untrained default model at the digits front end (timing does not depend on weights).

    from soundloom.core.spectral import SpectrogramConfig
    from soundloom.data.stats import Normalizer
    from soundloom.sounds.decode import features_to_audio
    from soundloom.sounds.models import ModelConfig, build_model

    spec = SpectrogramConfig(sample_rate=8000, n_fft=256, hop_length=64, kind="mel", n_mels=64)
    model = build_model(ModelConfig(kind="vae", rows=64, frames=128)).eval()
    norm = Normalizer(mode="range", min_db=-100, max_db=0)
    n_samples = 8128
    with torch.no_grad():
        features_to_audio(model.decode(torch.randn(1, 64)), norm, spec, n_samples, 32)
        t, c = time.perf_counter(), time.process_time()
        feats = torch.cat([model.decode(torch.randn(1, 64)) for _ in range(items)])
        features_to_audio(feats, norm, spec, n_samples, 32)
        took, cpu = time.perf_counter() - t, time.process_time() - c
    secs = items * n_samples / 8000
    return {
        "source": "untrained default model, mel 64x128 at 8 kHz",
        "audio_s": secs,
        "wall_s": took,
        "cpu_s": cpu,
        "real_time_factor": secs / took,
        "real_time_factor_cpu": secs / cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per model (after one warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every measurement")
    ap.add_argument("--run", default=None, help="trained run to time generation with (default: untrained model)")
    ap.add_argument("--gen-items", type=int, default=8, help="sounds generated for the timing")
    ap.add_argument("--worker", choices=("seed", "default"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.threads)))
        return
    results = {}
    for which in ("default", "seed"):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", which, "--steps", str(args.steps), "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[which]
        print(
            f"{which:8s} params {r['params']:>9,d}  {r['examples_per_cpu_s']:8.1f} examples/CPU-s  "
            f"{r['cpu_s_per_example'] * 1000:8.1f} CPU-ms/example  peak RSS {r['peak_rss_mb']:7.0f} MB"
        )
    ratio = results["default"]["examples_per_cpu_s"] / results["seed"]["examples_per_cpu_s"]
    print(
        f"training throughput: default / seed = {ratio:.1f}x (target >= 20x); "
        f"default peak memory {results['default']['peak_rss_mb']:.0f} MB (target < 2048 MB) "
        f"at batch {BATCH}, input {ROWS}x{FRAMES}, {args.threads} thread(s)"
    )
    g = generation(args.run, args.threads, args.gen_items)
    print(
        f"generation: {g['audio_s']:.2f} s of audio in {g['wall_s']:.3f} s wall = "
        f"{g['real_time_factor']:.0f}x real time, "
        f"{g['cpu_s']:.3f} CPU-s = {g['real_time_factor_cpu']:.0f}x per CPU-second (target >= 50x)"
    )
    print(
        f"  ({args.gen_items} sounds: each decoded alone, mel inversion + 32 Griffin-Lim iterations batched, "
        f"{args.threads} thread(s); {g['source']})"
    )


if __name__ == "__main__":
    main()
