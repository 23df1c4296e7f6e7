"""Training with DDP (``--devices 2``) on two CPU processes: the run stops together, reports once and exports once,
and the vqvae's EMA codebook follows the whole batch, the same in every process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from soundloom.sounds.models.vqvae import VectorQuantizer
from tests.sounds.models.synth_store import make_store

ROOT = Path(__file__).resolve().parents[3]


def _live(marker: str) -> list[int]:
    """Processes whose command line holds ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_two_processes_stop_together_on_the_cpu_budget_and_report_once(tmp_path):
    store, run = make_store(tmp_path), tmp_path / "ddp_run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "soundloom", "train", str(store), "--out", str(run), "--model", "vqvae", "--quiet"]
    cmd += ["--devices", "2", "--accelerator", "cpu", "--epochs", "500", "--cpu-minutes", "0.04", "--batch-size", "4"]
    cmd += ["--latent", "4", "--codebook-size", "8", "--vq-channels", "8,16"]
    # A process that stopped alone would leave the other waiting in an all-reduce: the timeout would catch it.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained vqvae") == 1, done.stdout
    training = json.loads((run / "model.json").read_text())["training"]
    assert training["stopped"].startswith("CPU budget spent") and training["epochs"] < 500
    assert (run / "model.safetensors").is_file() and not list(run.glob("**/.*.tmp"))
    assert _live(str(run)) == []


def _quantize_in_process(rank: int, port: int, z: torch.Tensor, restart_below: float, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(rank)  # different local draws: a restart must still give every process the same codes
    vq = VectorQuantizer(8, 3, restart_below=restart_below)
    vq.codebook.copy_(torch.linspace(-1, 1, 24).view(8, 3))
    vq.train()
    vq(z[rank * 2 : rank * 2 + 2])
    torch.save({k: v.clone() for k, v in vq.state_dict().items()}, f"{out}.{rank}")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_ema_codebook_follows_the_whole_batch_in_every_process(tmp_path):
    z = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0))
    one = VectorQuantizer(8, 3, restart_below=0.0)
    one.codebook.copy_(torch.linspace(-1, 1, 24).view(8, 3))
    one.train()
    one(z)
    for restart_below, name in ((0.0, "plain"), (0.5, "restarts")):
        out = str(tmp_path / name)
        mp.spawn(_quantize_in_process, args=(_free_port(), z, restart_below, out), nprocs=2, join=True)
        a, b = torch.load(f"{out}.0", weights_only=True), torch.load(f"{out}.1", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name
        if restart_below == 0.0:  # no restarts: the statistics of the whole batch, as one process sees them
            for key in ("ema_count", "ema_sum", "codebook"):
                assert torch.allclose(a[key], one.state_dict()[key], atol=1e-6), key
