"""A continuation holds its windows' level: window following moves each sound's gain so that adjacent windows stay
within the bound (as far as the sounds allow, silence never lifted), and the pause guard draws a continuation
again when a window after the prompt is far below the prompt's, seeded and recorded, so a sound re-renders bit
for bit and an older sidecar renders as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds import Generator
from soundloom.sounds.generator import redraw_seed
from soundloom.sounds.levelfollow import WINDOW_SOUND_DB, active_level_db, follow_level, quietest_window_db
from tests.sounds.models.test_prior import FREQS, N, steady

torch.set_num_threads(1)
RATE = 8000


def burst(seconds: float, amplitude: float, seed: int) -> np.ndarray:
    """A noisy tone of ``seconds`` with 10 ms fades."""
    rng = np.random.default_rng(seed)
    n, fade = int(seconds * RATE), int(0.01 * RATE)
    env = np.ones(n)
    env[:fade], env[-fade:] = np.linspace(0, 1, fade), np.linspace(1, 0, fade)
    t = np.arange(n) / RATE
    tone = np.sin(2 * np.pi * (300 + 200 * rng.random()) * t) + 0.3 * rng.standard_normal(n)
    return (amplitude * env * tone).astype(np.float32)


def windows(sounds: list[tuple[float, float]], seed: int) -> np.ndarray:
    """One second per ``(seconds, amplitude)``: a burst at its start, then silence."""
    out = np.zeros(len(sounds) * RATE, np.float32)
    for i, (sec, amp) in enumerate(sounds):
        b = burst(sec, amp, seed + i)
        out[i * RATE : i * RATE + len(b)] = b
    return out


def jumps(wav: np.ndarray, window: int, offset: int = 0) -> np.ndarray:
    """|dB| between the RMS levels of consecutive whole windows of ``window`` samples from ``offset``."""
    x = wav[offset:]
    n = len(x) // window
    levels = 10 * np.log10(np.mean(np.square(x[: n * window].reshape(n, window), dtype=np.float64), axis=1))
    return np.abs(np.diff(levels))


def test_window_following_holds_adjacent_windows_and_keeps_the_rest():
    prompt = windows([(0.4, 0.1)], seed=0)
    # Each added second holds one sound at the prompt's level, some short, some long: 7 dB from a 0.15-s sound
    # to a 0.8-s one, with no sound more than the tolerance off the prompt's level.
    added = windows([(0.8, 0.1), (0.15, 0.1), (0.8, 0.11), (0.3, 0.09)], seed=1)
    wav = np.concatenate([prompt, added])
    assert jumps(wav, RATE).max() > 7.0
    plain, plain_found = follow_level(wav, prompt, RATE, 3.0)
    held, found = follow_level(wav, prompt, RATE, 3.0, window=RATE, window_db=5.0)
    assert np.array_equal(held[: len(prompt)], prompt)  # the prompt, bit for bit
    assert jumps(held, RATE).max() <= 5.0 + 0.3  # the windows a reader takes from the start
    # A quarter of a second on the windows pull against each other (least squares over all offsets): within 6.
    assert jumps(held, RATE, RATE // 4).max() <= 6.0
    assert any(abs(s.window_gain_db) > 1.0 for s in found)
    reference = active_level_db(prompt, RATE)
    for s in found:  # no sound pushed further than the window bound allows from the prompt's level
        assert abs(active_level_db(held[s.start : s.end], RATE) - reference) <= WINDOW_SOUND_DB + 0.3
    # Without window following: what sound following alone gives, bit for bit; window gains all zero.
    again, again_found = follow_level(wav, prompt, RATE, 3.0, window=RATE, window_db=None)
    assert np.array_equal(again, plain) and again_found == plain_found
    assert all(s.window_gain_db == 0.0 for s in plain_found)


def test_window_following_never_lifts_silence():
    prompt = windows([(0.4, 0.1)], seed=0)
    rng = np.random.default_rng(3)
    hush = (1e-5 * rng.standard_normal(RATE)).astype(np.float32)  # 60 dB down: no sound
    added = np.concatenate([windows([(0.5, 0.1)], seed=4), hush, windows([(0.5, 0.1)], seed=5)])
    wav = np.concatenate([prompt, added])
    held, found = follow_level(wav, prompt, RATE, 3.0, window=RATE, window_db=5.0)
    gap = slice(2 * RATE + RATE // 4, 3 * RATE - RATE // 4)  # the middle of the silent second, away from ramps
    most = max(abs(s.gain_db) for s in found)
    assert most <= WINDOW_SOUND_DB + 3.0
    ratio = np.abs(held[gap]) / np.maximum(np.abs(wav[gap]), 1e-20)
    assert ratio.max() <= 10 ** (most / 20) * 1.001  # the gap gets at most its neighbours' gain, never its own
    assert quietest_window_db(held, len(prompt), RATE, RATE) < -40  # a window of silence stays one


def test_redraw_seeds_start_with_the_seed_and_differ():
    assert redraw_seed(7, 0) == 7
    seeds = {redraw_seed(s, a) for s in range(20) for a in range(1, 5)}
    assert len(seeds) == 80 and not seeds & set(range(1000))


# ---- through the Generator: a tiny vqvae and prior over steady tones (`prior_run`, tests/sounds/conftest.py) ----


def test_the_pause_guard_redraws_records_and_renders_again(prior_run, tmp_path):
    prompt = steady(FREQS["low"], 1)[: N // 2].astype(np.float32)
    prompt[-N // 8 :] = 0.0  # ending in silence: what the prior adds after it is its own
    seconds = 4 * N / RATE
    kw = dict(label="low", seed=3, temperature=1.0)
    # The pause guard alone (the window guard: tests/sounds/test_continuation_guard.py).
    off = Generator.from_run(prior_run, griffin_lim_iters=2, level="none", pause_guard=None, window_guard=None)
    (free,) = off.continue_(prompt, RATE, seconds, **kw)
    assert "pause_guard_db" not in free.params
    # A guard no draw can fail: the first draw is kept, the same codes as without the guard.
    lax = Generator.from_run(prior_run, griffin_lim_iters=2, level="none", pause_guard=200.0, window_guard=None)
    (first,) = lax.continue_(prompt, RATE, seconds, **kw)
    assert np.array_equal(first.latent, free.latent) and first.params["pause_redraws"] == 0
    # A guard no draw can pass: every redraw is made, the least quiet kept, and the sidecar says so.
    strict = Generator.from_run(
        prior_run, griffin_lim_iters=2, level="none", pause_guard=1e-3, pause_redraws=3, window_guard=None
    )
    (kept,) = strict.continue_(prompt, RATE, seconds, **kw)
    assert kept.params["pause_redraws"] == 3 and kept.params["pause_left"] is True
    (same,) = strict.continue_(prompt, RATE, seconds, **kw)
    assert np.array_equal(same.latent, kept.latent) and np.array_equal(same.audio, kept.audio)  # seeded
    strict.save([kept], tmp_path / "out")
    record = json.loads((tmp_path / "out" / "continue_000.json").read_text())
    assert record["params"]["follow_window_db"] == strict.follow_window
    again = off.from_sidecar(record)  # whatever the loading Generator's options: the sidecar's
    assert np.array_equal(again.audio, kept.audio)
    # A sidecar from before window following (no such keys) renders without it, as it was made.
    for key in ("follow_window_db", "follow_window_samples", "pause_guard_db", "pause_redraws", "pause_left"):
        record["params"].pop(key)
    old = Generator.from_run(prior_run, griffin_lim_iters=2, level="none", follow_window=None)
    (made,) = old.continue_(prompt, RATE, seconds, **kw)
    record["latent"] = [float(v) for v in made.latent]
    assert np.array_equal(strict.from_sidecar(record).audio, made.audio)
    # A prompt that ends inside a sound (a note cut mid-decay): the quiet after it is its decay, never redrawn.
    (note,) = strict.continue_(steady(FREQS["low"], 1)[: N // 2], RATE, seconds, **kw)
    assert note.params["pause_redraws"] == 0 and note.params["pause_left"] is False
    with pytest.raises(ParameterError, match="follow_window"):
        Generator.from_run(prior_run, follow_window=0.0)
    with pytest.raises(ParameterError, match="pause_guard"):
        Generator.from_run(prior_run, pause_guard=-1.0)
