"""Kills of `soundloom train` at random moments, then `--resume`: the run ends complete, nothing duplicated or left."""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time

from soundloom.core.weights import load_safetensors
from tests.killing import processes_with_marker, temp_leftovers

TRAIN = [sys.executable, "-m", "soundloom", "train"]
OPTIONS = ["--model", "cvae", "--epochs", "4", "--batch-size", "8", "--latent", "3", "--channels", "4,8"]
OPTIONS += ["--checkpoint-every", "2", "--val-fraction", "0.25", "--quiet", "--threads", "1"]


def wait_for_checkpoint(proc: subprocess.Popen, folder, timeout: float) -> None:
    """Return when ``proc`` exits; raise ``TimeoutExpired`` (so the caller kills it) once ``folder`` holds a
    checkpoint, or after ``timeout`` s. A run timed against another one's wall time may finish first on a
    loaded machine (CI saw all three timed kills miss), so this kill is tied to the run's own progress."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline or (folder.is_dir() and any(folder.glob("*.ckpt"))):
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)


def test_killed_training_resumes_to_a_complete_run(tiny_store, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(TRAIN + [str(tiny_store), "--out", str(ref)] + OPTIONS, capture_output=True, text=True)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr

    rng = random.Random(3)
    marker = f"train-kill-{rng.random()}"
    env = {**__import__("os").environ, "SOUNDLOOM_KILLTEST": marker}
    killed = []
    for _ in range(3):
        resume = ["--resume"] if (run / "config.yaml").exists() else []
        proc = subprocess.Popen(
            TRAIN + [str(tiny_store), "--out", str(run)] + OPTIONS + resume,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if not killed:  # the first kill lands mid-run whatever the load: just after the first checkpoint
                wait_for_checkpoint(proc, run / "checkpoints", timeout=max(60.0, 3 * took))
            else:  # the others at random moments, scaled by the uninterrupted run's wall time
                proc.wait(timeout=rng.uniform(0.3 * took, 0.9 * took))
            killed.append(False)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.append(True)
        deadline = time.monotonic() + 5
        while processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with_marker(marker) == []
    assert any(killed)
    resume = ["--resume"] if (run / "config.yaml").exists() else []
    final = subprocess.run(
        TRAIN + [str(tiny_store), "--out", str(run)] + OPTIONS + resume, env=env, capture_output=True, text=True
    )
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr

    # complete: the exported files load, and carry what the uninterrupted run's carry
    assert set(load_safetensors(run / "model.safetensors")) == set(load_safetensors(ref / "model.safetensors"))
    assert (
        json.loads((run / "model.json").read_text())["model"] == json.loads((ref / "model.json").read_text())["model"]
    )
    assert (run / "stats.json").read_text() == (ref / "stats.json").read_text()
    # nothing duplicated: one metrics row per epoch, the same epochs as the uninterrupted run
    epochs = [r["epoch"] for r in csv.DictReader(open(run / "metrics.csv"))]
    assert epochs == [r["epoch"] for r in csv.DictReader(open(ref / "metrics.csv"))]
    assert temp_leftovers(run) == []
