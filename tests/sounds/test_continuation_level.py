"""A continuation follows its prompt's level: sounds added after the prompt are brought within the tolerance of
its active level by a smooth, bounded gain; silence gets no gain of its own; the prompt is kept bit for bit;
the sidecar re-renders the same."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds import Generator
from soundloom.sounds.levelfollow import MAX_GAIN_DB, RAMP_S, active_level_db, follow_level
from tests.sounds.models.test_prior import FREQS, N, steady

torch.set_num_threads(1)
RATE = 8000


def bursts(amplitudes: list[float], seconds: float = 0.5, on: float = 0.3, seed: int = 0) -> np.ndarray:
    """One tone burst per amplitude, ``on`` s of each ``seconds`` s slot (the rest silent), with 10 ms fades."""
    rng = np.random.default_rng(seed)
    slot, n_on, fade = int(seconds * RATE), int(on * RATE), int(0.01 * RATE)
    env = np.ones(n_on)
    env[:fade], env[-fade:] = np.linspace(0, 1, fade), np.linspace(1, 0, fade)
    out = np.zeros(slot * len(amplitudes), np.float32)
    for i, a in enumerate(amplitudes):
        t = np.arange(n_on) / RATE
        f = 300 + 200 * rng.random()
        out[i * slot : i * slot + n_on] = a * env * np.sin(2 * np.pi * f * t)
    return out


def level(wav: np.ndarray) -> float:
    return active_level_db(wav, RATE)


def test_a_louder_continuation_comes_within_the_tolerance_smoothly():
    prompt = bursts([0.1, 0.1])  # 1 s
    # Every added sound 12 dB louder, the first after a short pause (a sound the prompt's end cuts through
    # ramps from the prompt's 0 dB over its first RAMP_S).
    added = np.concatenate([np.zeros(RATE // 10, np.float32), bursts([0.1 * 10 ** (12 / 20)] * 4, seed=1)])
    out, found = follow_level(np.concatenate([prompt, added]), prompt, RATE, tolerance_db=3.0)
    assert np.array_equal(out[: len(prompt)], prompt)  # the prompt, bit for bit
    assert len(found) == 4 and not any(s.bounded for s in found)
    assert all(abs(s.gain_db + 9.0) < 0.05 for s in found)  # 12 dB over, 3 dB allowed
    for s in found:
        assert abs(level(out[s.start : s.end]) - (level(prompt) + 3.0)) < 0.3
    # The gain changes no faster than its full swing over one ramp (no clicks): compare the gain per sample.
    loud = np.abs(added) > 1e-3
    ratio_db = 20 * np.log10(np.abs(out[len(prompt) :][loud]) / np.abs(added[loud]))
    steps = np.abs(np.diff(ratio_db))[np.diff(np.flatnonzero(loud)) == 1]
    assert steps.max() <= 9.0 / (RAMP_S * RATE) * 1.01
    # Within the tolerance already: nothing changes.
    same, found = follow_level(np.concatenate([prompt, bursts([0.12, 0.08], seed=2)]), prompt, RATE, 3.0)
    assert np.array_equal(same[len(prompt) :], bursts([0.12, 0.08], seed=2)) and all(s.gain_db == 0 for s in found)


def test_a_silent_window_stays_silent_and_the_gain_is_bounded():
    prompt = bursts([0.1, 0.1])
    rng = np.random.default_rng(3)
    hush = (0.1 * 10 ** (-50 / 20) * rng.standard_normal(2 * RATE)).astype(np.float32)  # 50 dB below: silence
    wav = np.concatenate([prompt, hush])
    out, found = follow_level(wav, prompt, RATE, 3.0)
    assert found == [] and np.array_equal(out, wav)  # no sound: no gain at all
    # A near-silent window between two loud sounds keeps at most their (bounded, here negative) gain.
    loud = bursts([0.4], seconds=0.5, seed=4)
    wav = np.concatenate([prompt, loud, hush[:RATE], loud])
    out, found = follow_level(wav, prompt, RATE, 3.0)
    gap = slice(len(prompt) + len(loud), len(prompt) + len(loud) + RATE)
    assert len(found) == 2 and level(out[gap]) <= level(wav[gap]) + 1e-6
    # A faint sound 30 dB down is lifted by the bound only, and says so.
    faint = np.concatenate([np.zeros(RATE // 10, np.float32), bursts([0.1 * 10 ** (-30 / 20)], seed=5)])
    out, found = follow_level(np.concatenate([prompt, faint]), prompt, RATE, 3.0)
    assert len(found) == 1 and found[0].bounded and found[0].gain_db == MAX_GAIN_DB
    assert abs(level(out[len(prompt) :]) - level(faint) - MAX_GAIN_DB) < 0.3
    # A faint onset the output's end cuts off (40 ms) is not measured: it keeps the gain before it.
    onset = np.zeros(RATE // 2, np.float32)
    onset[-RATE // 25 :] = 0.003 * np.sin(np.arange(RATE // 25) * 0.3)
    wav = np.concatenate([prompt, loud, onset])
    out, found = follow_level(wav, prompt, RATE, 3.0)
    assert len(found) == 1 and found[0].end <= len(prompt) + len(loud)
    assert np.allclose(out[-RATE // 25 :], wav[-RATE // 25 :] * 10 ** (found[0].gain_db / 20), rtol=1e-5)


def test_the_prompt_s_own_sound_carried_on_keeps_its_decay():
    t = np.arange(2 * RATE) / RATE
    note = (0.5 * np.exp(-3 * t) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # 26 dB down by 2 s
    prompt = note[: 2 * RATE // 5]
    wav = np.concatenate([note, 0.5 * bursts([1.0], seed=6)])  # then a new sound, 6 dB louder than the attack
    out, found = follow_level(wav, prompt, RATE, 3.0)
    # the note is one sound until it falls 40 dB below the prompt's level, then comes the new one
    assert len(found) == 2 and found[0].carried and found[0].gain_db == 0.0 and found[0].end > len(note) * 0.6
    assert np.array_equal(out[: found[0].end - RATE // 20], wav[: found[0].end - RATE // 20])  # the decay, untouched
    assert not found[-1].carried and found[-1].gain_db < 0  # the new sound follows


# ---- through the Generator: a tiny vqvae and prior over steady tones (`prior_run`, tests/sounds/conftest.py) ----


def test_a_prior_continuation_follows_the_prompt_and_recalls_from_its_sidecar(prior_run, tmp_path):
    # The guards off: a followed and an unfollowed continuation then have the same codes (the guards read the
    # followed output, so they could draw the two again differently; tests/sounds/test_continuation_guard.py).
    unguarded = dict(pause_guard=None, window_guard=None)
    gen = Generator.from_run(prior_run, griffin_lim_iters=2, level="none", **unguarded)
    assert gen.follow_level == 3.0
    prompt = (0.05 * steady(FREQS["low"], 1)[: N // 2]).astype(np.float32)  # far quieter than the training tones
    prompt[-N // 8 :] = 0.0  # and ending in silence, so what the prior adds after it is its own and followed
    seconds = 3 * N / RATE
    (cont,) = gen.continue_(prompt, RATE, seconds, label="low", seed=1, temperature=1.0)
    fade = 2 * gen.spec.hop_length
    assert np.array_equal(cont.audio[: len(prompt) - fade], prompt[: len(prompt) - fade])
    assert cont.params["follow_level"] == 3.0 and any(not s["carried"] and s["gain_db"] for s in cont.followed)
    for s in cont.followed:  # each sound after the prompt within the tolerance unless the bound stopped it
        a, b = int(s["start_s"] * RATE), int(s["end_s"] * RATE)
        if not s["bounded"]:
            assert abs(level(cont.audio[a:b]) - level(prompt)) <= 3.0 + 0.5, s
    gen.save([cont], tmp_path / "out")
    record = json.loads((tmp_path / "out" / "continue_000.json").read_text())
    again = Generator.from_run(prior_run, griffin_lim_iters=2, level="none", follow_level=None).from_sidecar(record)
    assert np.array_equal(again.audio, cont.audio) and again.followed == cont.followed
    # Not followed: the sidecar says so (null), and it, like an older sidecar without the key, renders unfollowed.
    free = Generator.from_run(prior_run, griffin_lim_iters=2, level="none", follow_level=None, **unguarded)
    (raw,) = free.continue_(prompt, RATE, seconds, label="low", seed=1, temperature=1.0)
    assert raw.params["follow_level"] is None and raw.followed == [] and np.array_equal(raw.latent, cont.latent)
    del record["params"]["follow_level"]
    assert np.array_equal(gen.from_sidecar(record).audio, raw.audio)
    assert sf.read(tmp_path / "out" / "continue_000.wav")[0].shape == cont.audio.shape
    with pytest.raises(ParameterError, match="follow_level"):
        Generator.from_run(prior_run, follow_level=-1.0)
