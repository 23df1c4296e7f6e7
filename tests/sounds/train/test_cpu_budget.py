"""train --cpu-minutes: a CPU-time budget that stops (and exports) a run, survives resume and counts a first stage."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from soundloom.sounds.training import TrainConfig, train
from soundloom.sounds.training.cpu_budget import CpuClock, process_cpu_seconds, recorded_cpu_seconds


def _cfg(store, **kw) -> TrainConfig:
    base = dict(
        features=str(store),
        model="cvae",
        epochs=10_000,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        checkpoint_every=3,
        sample_items=0,
        val_fraction=0.25,
    )
    return TrainConfig(**{**base, **kw})


def _training(run) -> dict:
    return json.loads((run / "model.json").read_text())["training"]


def test_a_tiny_cpu_budget_stops_and_exports_with_a_reason(tiny_store, tmp_path):
    run = train(_cfg(tiny_store, cpu_minutes=0.03), tmp_path / "run", progress_bar=False)
    rec = _training(run)
    assert (run / "model.safetensors").is_file()
    assert rec["stopped"].startswith("CPU budget spent") and rec["cpu_budget_s"] == 1.8
    assert 1.8 <= rec["cpu_s"] < 60 and rec["cpu_s_total"] == rec["cpu_s"] and rec["cpu_s_inherited"] == 0
    assert 0 < rec["steps"] and rec["epochs"] < 10_000


def test_without_a_budget_the_run_still_records_its_cpu_time(tiny_store, tmp_path):
    run = train(_cfg(tiny_store, epochs=1), tmp_path / "run", progress_bar=False)
    rec = _training(run)
    assert rec["stopped"] is None and rec["cpu_budget_s"] is None and rec["cpu_s"] > 0 and rec["steps"] > 0
    assert recorded_cpu_seconds(run) == rec["cpu_s_total"]
    assert recorded_cpu_seconds(tmp_path / "nowhere") == 0.0


def test_resume_counts_the_cpu_time_spent_before_the_kill(tiny_store, tmp_path):
    run = tmp_path / "run"
    train(_cfg(tiny_store, epochs=2, cpu_minutes=30.0), run, progress_bar=False)
    ckpt = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    before = next(v["cpu_s"] for k, v in ckpt["callbacks"].items() if "CpuClock" in k)
    assert before > 0
    for name in ("model.safetensors", "model.json"):  # as if killed after the last checkpoint
        (run / name).unlink()
    assert TrainConfig.for_resume(run).cpu_minutes == 30.0  # a resume that names no budget keeps the run's own
    saved = TrainConfig.for_resume(run, epochs=10_000, cpu_minutes=before / 60)
    assert saved.cpu_minutes == before / 60
    train(saved, run, resume=True, progress_bar=False)
    rec = _training(run)
    # the budget was already spent by the first process: the resumed one stops at once, counting both
    assert rec["stopped"].startswith("CPU budget spent") and rec["cpu_s"] >= before
    assert rec["steps"] <= ckpt["global_step"] + 1


def test_a_second_stage_counts_the_first_stages_cpu_time(tiny_store, tmp_path):
    first = train(_cfg(tiny_store, epochs=1), tmp_path / "cvae", progress_bar=False)
    spent = recorded_cpu_seconds(first)
    cfg = _cfg(tiny_store, model="vaegan", cpu_minutes=spent / 60, model_options={"init_from": str(first)})
    gan = train(cfg, tmp_path / "gan", progress_bar=False)
    rec = _training(gan)
    assert rec["cpu_s_inherited"] == round(spent, 2) and "by the first stage" in rec["stopped"]
    assert rec["steps"] == 0 and rec["cpu_s_total"] >= spent


def test_clock_state_survives_a_checkpoint_round_trip():
    clock = CpuClock(budget_s=None)
    sum(i * i for i in range(200_000))  # spend a little CPU
    state = clock.state_dict()
    restored = CpuClock(budget_s=None)
    restored.load_state_dict(state)
    assert state["cpu_s"] > 0 and restored.own_seconds() >= state["cpu_s"]


def test_live_children_count_like_data_loader_workers():
    burn = (
        "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
        "print('spent', flush=True)\nsys.stdin.read()"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "spent"  # alive, not yet reaped: getrusage cannot see it
        assert process_cpu_seconds(live_children=True) - process_cpu_seconds() >= 0.4
    finally:
        child.communicate("", timeout=30)


def test_cli_cpu_minutes_says_why_it_stopped(tiny_store, tmp_path):
    from tests.sounds.cli import run_cli

    common = ["--batch-size", "8", "--latent", "2", "--channels", "4,8", "--val-fraction", "0.25", "--quiet"]
    code, output = run_cli(
        "train", tiny_store, "--out", tmp_path / "run", "--epochs", "10000", "--cpu-minutes", "0.02", *common
    )
    assert code == 0, output
    assert "CPU budget spent" in output and "CPU-s" in output and _training(tmp_path / "run")["cpu_budget_s"] == 1.2
