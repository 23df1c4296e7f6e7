"""The window guard: a prior's continuation whose adjacent training-length windows (from the output's start, a last
window cut by the output's end counted when it holds half a window; or whole ones half a window apart) still jump
after following is drawn again, seeded, within the pause guard's budget, recorded in the sidecar; the prompt is kept
and a sound re-renders bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds import Generator
from soundloom.sounds.levelfollow import JUMP_FLOOR_DB, window_jump_db
from tests.cli import run_cli
from tests.sounds.models.test_prior import FREQS, N, steady

torch.set_num_threads(1)
RATE = 8000


def tone(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


def test_window_jump_reads_the_grid_the_last_part_half_a_window_on_and_leaves_the_prompt_out():
    w = RATE
    # Four windows from the start: 0 dB, 0 dB, -8 dB, then a last window that holds only 0.6 of one.
    wav = np.concatenate([tone(1, 0.1), tone(1, 0.1), tone(1, 0.1 * 10 ** (-8 / 20)), tone(0.6, 0.1)])
    assert window_jump_db(wav, w) == pytest.approx(8.0, abs=0.01)
    # The last part holds 0.6 of a window: counted (a sound that ends long before the output does is read).
    quiet_end = np.concatenate([tone(1, 0.1), tone(0.2, 0.1), np.zeros(int(0.4 * RATE), np.float32)])
    assert window_jump_db(quiet_end, w) == pytest.approx(-10 * np.log10(0.2 / 0.6), abs=0.01)
    # Under half a window: not counted (too short to be anyone's window).
    assert window_jump_db(np.concatenate([tone(1, 0.1), np.zeros(int(0.4 * RATE), np.float32)]), w) == 0.0
    # Pairs inside the prompt are the prompt's own: with a 2-s prompt only the jump after it counts.
    assert window_jump_db(wav, w, prompt_samples=2 * w) == pytest.approx(8.0, abs=0.01)
    assert window_jump_db(wav[: 3 * w], w, prompt_samples=3 * w) == 0.0
    # A window of zeros is floored below the peak, not an infinite jump.
    silent = np.concatenate([tone(1, 0.1), np.zeros(w, np.float32)])
    assert window_jump_db(silent, w) == pytest.approx(JUMP_FLOOR_DB - 10 * np.log10(2), abs=0.01)
    # Half a second of sound in each second, placed so that the grid reads them alike but a reader whose windows
    # overlap by half finds one with none: only the half-window reading sees the pause.
    hush = np.zeros(w // 2, np.float32)
    paced = np.concatenate([tone(0.5, 0.1), hush, hush, tone(0.5, 0.1), tone(0.5, 0.1), hush])
    assert window_jump_db(paced, w) == pytest.approx(0.0, abs=0.01)
    assert window_jump_db(paced, w, half_hop=True) == pytest.approx(JUMP_FLOOR_DB - 10 * np.log10(4), abs=0.01)


# ---- through the Generator: a tiny vqvae and prior over steady tones (`prior_run`, tests/sounds/conftest.py) ----


def test_the_window_guard_redraws_records_and_renders_again(prior_run, tmp_path):
    prompt = steady(FREQS["low"], 1)[: N // 2].astype(np.float32)
    prompt[-N // 8 :] = 0.0  # ending in silence: what the prior adds after it is its own
    seconds = 4 * N / RATE
    kw = dict(label="low", temperature=1.0)

    def make(**options) -> Generator:
        return Generator.from_run(prior_run, griffin_lim_iters=2, level="none", pause_guard=None, **options)

    off = make(window_guard=None)
    assert make().window_guard == 5.0  # on by default, at the window following's own bound
    (free,) = off.continue_(prompt, RATE, seconds, seed=3, **kw)
    assert "window_guard_db" not in free.params and "pause_redraws" not in free.params
    # A guard no draw can fail: the first draw is kept, the same codes as without the guard.
    (first,) = make(window_guard=500.0).continue_(prompt, RATE, seconds, seed=3, **kw)
    assert np.array_equal(first.latent, free.latent) and np.array_equal(first.audio, free.audio)
    assert first.params["pause_redraws"] == 0 and first.params["window_left"] is False
    # A guard no draw can pass: every redraw made, the least jumping one kept, and the sidecar says so.
    strict = make(window_guard=1e-3, pause_redraws=3)
    (kept,) = strict.continue_(prompt, RATE, seconds, seed=3, **kw)
    assert kept.params["pause_redraws"] == 3 and kept.params["window_left"] is True
    assert kept.params["window_guard_db"] == 1e-3 and "pause_left" not in kept.params
    fade = 2 * strict.spec.hop_length
    assert np.array_equal(kept.audio[: len(prompt) - fade], prompt[: len(prompt) - fade])  # the prompt, kept
    (same,) = strict.continue_(prompt, RATE, seconds, seed=3, **kw)
    assert np.array_equal(same.latent, kept.latent) and np.array_equal(same.audio, kept.audio)  # seeded
    strict.save([kept], tmp_path / "out")
    record = json.loads((tmp_path / "out" / "continue_000.json").read_text())
    assert record["params"]["window_guard_db"] == 1e-3 and record["params"]["window_left"] is True
    assert np.array_equal(off.from_sidecar(record).audio, kept.audio)  # the codes are kept: nothing drawn again
    # A guard in between: what is kept is within it, or it is marked as left after every try.
    mid = make(window_guard=3.0, pause_redraws=2)
    for seed in range(4):
        (c,) = mid.continue_(prompt, RATE, seconds, seed=seed, **kw)
        jump = window_jump_db(c.audio, N, len(prompt), half_hop=True)
        assert c.params["window_left"] == (jump > 3.0)
    # A prompt that ends inside a sound (a note cut mid-decay): its decay falls from window to window, never redrawn.
    (note,) = strict.continue_(steady(FREQS["low"], 1)[: N // 2], RATE, seconds, seed=3, **kw)
    assert note.params["pause_redraws"] == 0 and note.params["window_left"] is False
    with pytest.raises(ParameterError, match="window_guard"):
        make(window_guard=0.0)


def test_both_guards_share_one_budget(prior_run):
    prompt = steady(FREQS["low"], 1)[: N // 2].astype(np.float32)
    prompt[-N // 8 :] = 0.0
    both = Generator.from_run(
        prior_run, griffin_lim_iters=2, level="none", pause_guard=1e-3, window_guard=1e-3, pause_redraws=2
    )
    (c,) = both.continue_(prompt, RATE, 4 * N / RATE, label="low", seed=5, temperature=1.0)
    assert c.params["pause_redraws"] == 2 and c.params["pause_left"] is True and c.params["window_left"] is True


def test_cli_guard_flags(prior_run, tmp_path):
    """`--window-guard DB` is recorded; `--no-window-guard` and `--free-level` (levels as drawn) turn it off, while
    `--free-level` leaves the pause guard on."""
    prompt = steady(FREQS["low"], 1)[: N // 2].astype(np.float32)
    prompt[-N // 8 :] = 0.0
    sf.write(tmp_path / "prompt.wav", prompt, RATE, subtype="FLOAT")
    base = ["generate", prior_run, "--continue", tmp_path / "prompt.wav", "--label", "low", "--seconds", 4 * N / RATE]
    base += ["--griffin-lim-iters", "2", "--seed", "3"]
    for flags, window, pause in (
        (["--window-guard", "4"], 4.0, 10.0),
        (["--no-window-guard"], None, 10.0),
        (["--free-level"], None, 10.0),
        (["--free-level", "--no-pause-guard"], None, None),
    ):
        out = tmp_path / "-".join(f.strip("-") for f in flags)
        code, output = run_cli(*base, *flags, "--out", out)
        assert code == 0, output
        params = json.loads((out / "continue_000.json").read_text())["params"]
        assert params.get("window_guard_db") == window and params.get("pause_guard_db") == pause, flags
        assert params.get("follow_level") == (None if "--free-level" in flags else 3.0)
