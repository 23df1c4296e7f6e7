"""The prior over a vqvae's codes: longer than its training length without level jumps, continuation by
priming that keeps the prompt within the vqvae's reconstruction error, and the run reference it keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError, ParameterError
from soundloom.core.io import write_audio
from soundloom.core.spectral import SpectrogramConfig, features
from soundloom.data.stats import Normalizer
from soundloom.data.store import write_store
from soundloom.sounds import Generator
from soundloom.sounds.training import TrainConfig, train

RATE, N = 8000, 2048
FREQS = {"low": 330.0, "high": 990.0}


def steady(freq: float, take: int) -> np.ndarray:
    """A steady tone ``(N,)`` (no decay: its level should hold however long the prior runs)."""
    t = np.arange(N) / RATE
    return (0.4 * np.sin(2 * np.pi * freq * (1 + 0.01 * take) * t + take)).astype(np.float32)


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    return make_prior_runs(tmp_path_factory.mktemp("prior"))


def make_prior_runs(root, takes: int = 24, vq_epochs: int = 10, prior_epochs: int = 8, prior_size: tuple = (32, 2)):
    """A store of steady tones (two labels, ``takes`` each), a tiny vqvae on it and a tiny prior over its codes
    (``prior_size``: width and layers)."""
    spec = SpectrogramConfig(sample_rate=RATE, n_fft=128, hop_length=32, kind="db")
    wavs, items = [], []
    for label, freq in FREQS.items():
        for take in range(takes):  # many items, few epochs: each epoch end redraws the loss plot
            wav = steady(freq, take)
            path = write_audio(root / "audio" / f"{label}_{take}.wav", wav, RATE)
            wavs.append(wav)
            items.append({"id": path.stem, "path": str(path), "labels": {"label": label}})
    feats = features(torch.from_numpy(np.stack(wavs)), spec).numpy()
    store = write_store(
        root / "store",
        feats,
        items,
        {"sample_rate": RATE, "n_samples": N, "spectrogram": spec.to_dict()},
        Normalizer.fit(feats),
    )
    common = dict(features=str(store), batch_size=4, sample_items=0, val_fraction=0.0, lr=3e-3)
    vq = train(
        TrainConfig(
            model="vqvae",
            epochs=vq_epochs,
            latent_dim=8,
            model_options={"codebook_size": 16, "vq_channels": "16,32"},
            **common,
        ),
        root / "vq",
        progress_bar=False,
    )
    prior = train(
        TrainConfig(
            model="prior",
            epochs=prior_epochs,
            model_options={"vqvae": str(vq), "width": prior_size[0], "layers": prior_size[1], "heads": 2},
            **common,
        ),
        root / "prior",
        progress_bar=False,
    )
    return vq, prior


def _window_levels_db(wav: np.ndarray, window: int) -> np.ndarray:
    chunks = wav[: len(wav) // window * window].reshape(-1, window)
    return 20 * np.log10(np.sqrt((chunks**2).mean(axis=1)) + 1e-9)


def test_prior_run_names_its_vqvae(prior_run):
    vq, prior = prior_run
    info = json.loads((prior / "model.json").read_text())
    assert info["model"]["vqvae"]["run"] == str(vq.resolve()) and len(info["model"]["vqvae"]["sha256"]) == 64
    gen = Generator.from_run(prior, griffin_lim_iters=4)
    assert gen.model.vqvae.cfg.codebook_size == 16


def test_the_attached_vqvae_moves_with_the_prior(prior_run):
    """``.to`` and the like (Lightning's move to a GPU, and back to the CPU before export) carry the vqvae along,
    though it is not a submodule: a dtype change stands in for a device here."""
    model = Generator.from_run(prior_run[1], griffin_lim_iters=4).model.double()
    assert {p.dtype for p in model.vqvae.parameters()} == {torch.float64}
    model.float()
    assert {p.dtype for p in model.vqvae.parameters()} == {torch.float32}


def test_a_joined_prior_saved_before_the_resumed_vector_loads_and_samples_as_before(prior_run, tmp_path):
    from soundloom.sounds.models import build_model, config_from_dict, load_safetensors, load_state, save_safetensors

    cfg = config_from_dict({**Generator.from_run(prior_run[1]).model.cfg.to_dict(), "joined": 0.25})
    state = {k: v for k, v in build_model(cfg).state_dict().items() if k != "resumed"}
    path = save_safetensors(tmp_path / "old.safetensors", state, kind="prior")
    model = build_model(cfg)
    load_state(model, load_safetensors(path, kind="prior"), path)
    assert torch.equal(model.resumed, torch.zeros_like(model.resumed))
    codes = torch.randint(0, cfg.codebook_size, (2, 5), generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(2, dtype=torch.long) if cfg.labels else None
    with torch.no_grad():
        marked = model.logits(codes, labels, None, resumed=torch.tensor([True, True]))
        assert torch.equal(marked, model.logits(codes, labels, None))


def test_sliding_generation_is_longer_than_training_without_level_jumps(prior_run):
    gen = Generator.from_run(prior_run[1], griffin_lim_iters=8, level="none")
    seconds = 4 * N / RATE
    # Greedy (top_k=1) isolates the sliding window from sampling: a model this small, sampled with top_k=4,
    # jumps by up to 15 dB between windows by choosing other codes, not by losing its context.
    sounds = gen.sample(2, label="low", seconds=seconds, seed=5, top_k=1) + gen.sample(
        2, label="high", seconds=seconds, seed=5, top_k=1
    )
    for s in sounds:
        assert len(s.audio) == round(seconds * RATE)
        levels = _window_levels_db(s.audio, N)  # one training length per window
        assert len(levels) == 4
        assert np.abs(np.diff(levels)).max() <= 6.0, levels
    # The longer sound re-renders from its sidecar.
    again = gen.from_sidecar(sounds[0].sidecar(gen.model_record()))
    assert np.array_equal(again.audio, sounds[0].audio)
    with pytest.raises(ParameterError, match="vqvae alone makes sounds of its training length"):
        Generator.from_run(prior_run[0]).sample(1, seconds=seconds)


def test_continuation_primes_with_the_prompt_codes(prior_run):
    gen = Generator.from_run(prior_run[1], griffin_lim_iters=8, level="none")
    prompt = steady(FREQS["high"], 3)
    seconds = 4 * N / RATE
    (cont,) = gen.continue_(prompt, RATE, seconds, label="high", seed=1, top_k=4, temperature=1.0)
    assert len(cont.audio) == round(seconds * RATE)
    keep = cont.params["prompt_codes"]
    codes = gen.encode(prompt, RATE, "high")
    assert keep > 0 and np.array_equal(cont.latent[:keep], codes[:keep])
    # The decoded prompt frames stay within the vqvae's own reconstruction error of the prompt.
    pf = cont.params["prompt_frames"]
    target = gen.model_input(prompt, RATE)
    own = gen.decode_features(codes, "high")[:, :pf]
    continued = gen.decode_features(cont.latent, "high")[:, :pf]
    recon_err = float((own - target[:, :pf]).pow(2).mean())
    cont_err = float((continued - target[:, :pf]).pow(2).mean())
    assert cont_err <= 1.5 * recon_err + 1e-4, (cont_err, recon_err)
    # No level assertion across the continuation's windows here: a tiny vqvae reconstructs the high tone
    # ~14 dB low, so the join to the real prompt measures its training, not the sliding (tested above).


def test_a_changed_vqvae_is_refused(prior_run, tmp_path):
    import shutil

    vq, prior = prior_run
    copy_vq, copy_prior = tmp_path / "vq", tmp_path / "prior"
    shutil.copytree(vq, copy_vq)
    shutil.copytree(prior, copy_prior)
    info = json.loads((copy_prior / "model.json").read_text())
    info["model"]["vqvae"]["run"] = str(copy_vq)
    (copy_prior / "model.json").write_text(json.dumps(info))
    Generator.from_run(copy_prior)  # the same weights elsewhere load
    with open(copy_vq / "model.safetensors", "ab") as f:
        f.write(b" ")
    with pytest.raises(ModelFileError, match="sha256 differs"):
        Generator.from_run(copy_prior)


def test_cli_generates_longer_sounds_from_a_prior(prior_run, tmp_path):
    from soundloom.core.io import load_audio
    from tests.sounds.cli import run_cli

    code, output = run_cli(
        "generate",
        prior_run[1],
        "--out",
        tmp_path / "out",
        "--n",
        "1",
        "--label",
        "low",
        "--seconds",
        "0.768",
        "--top-k",
        "4",
        "--griffin-lim-iters",
        "2",
    )
    assert code == 0, output
    wav, rate = load_audio(tmp_path / "out" / "sample_000.wav")
    assert rate == RATE and len(wav) == round(0.768 * RATE)
    code, output = run_cli(
        "generate",
        prior_run[0],
        "--out",
        tmp_path / "vq",
        "--interpolate",
        tmp_path / "out" / "sample_000.json",
        tmp_path / "out" / "sample_000.json",
    )
    assert code != 0 and "a vqvae model cannot interpolate" in output


def test_cached_sampling_draws_the_same_codes_as_uncached(prior_run):
    model = Generator.from_run(prior_run[1]).model
    frames = model.cfg.code_frames
    labels = torch.tensor([0, 1, 0])
    for total, prefix in ((frames, torch.zeros(3, 0)), (3 * frames, torch.ones(3, 2))):  # one window; sliding
        runs = [
            model.sample_codes(
                prefix, total, labels, None, 1.3, [torch.Generator().manual_seed(s) for s in (1, 2, 3)], 0, cached
            )
            for cached in (True, False)
        ]
        assert runs[0].shape == (3, total) and torch.equal(runs[0], runs[1])
    # and the cache is what it says: the logits of one more code equal a whole forward's last row
    codes = torch.randint(0, model.cfg.codebook_size, (2, frames - 2))
    cache: list = []
    model.logits(codes[:, :-1], labels[:2], None, cache)
    step = model.next_logits(codes[:, -1], cache)
    assert torch.allclose(step, model.logits(codes, labels[:2], None)[:, -1], atol=1e-5)


def test_continuation_keeps_the_prompt_audio_and_its_codes_past_several_windows(prior_run):
    gen = Generator.from_run(prior_run[1], griffin_lim_iters=4, level="none")
    prompt = steady(FREQS["low"], 5)[: N // 2]
    seconds = 3 * N / RATE
    a, b = gen.continue_(prompt, RATE, seconds, n=2, label="low", seed=3, temperature=1.0)
    fade = 2 * gen.spec.hop_length
    for s in (a, b):
        assert len(s.audio) == round(seconds * RATE)
        assert np.array_equal(s.audio[: len(prompt) - fade], prompt[: len(prompt) - fade])  # the prompt itself
        keep = s.params["prompt_codes"]
        assert np.array_equal(s.latent[:keep], gen.encode(prompt, RATE, "low")[:keep])
    # Past the prompt the window slides (several context restarts), and each seed draws its own codes.
    assert len(gen.model.slide_points(a.params["prompt_codes"], len(a.latent))) >= 2
    assert not np.array_equal(a.latent, b.latent)
