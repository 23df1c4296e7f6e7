"""The ddsp kind: its synthesiser against plain sums of sines, and pitched samples that follow the asked pitch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundloom.core.io import write_audio
from soundloom.core.spectral import SpectrogramConfig, features
from soundloom.data.stats import Normalizer
from soundloom.data.store import write_store
from soundloom.sounds import Generator
from soundloom.sounds.evaluation.pitch import pitch_accuracy
from soundloom.sounds.models import DDSP, DDSPConfig
from soundloom.sounds.training import TrainConfig, train

torch.set_num_threads(1)

RATE = 8000
N = 2000  # 0.25 s


def direct_sum(amps: torch.Tensor, f0_hz: torch.Tensor, hop: int, rate: int) -> torch.Tensor:
    """The reference synthesiser: every harmonic below Nyquist, one sine per sample, amplitudes linear between
    frames; ``amps (B, K, M)``, ``f0_hz (B, 1)`` -> ``(B, (M - 1) * hop)``, in float64."""
    b, k, m = amps.shape
    n = torch.arange((m - 1) * hop)
    frame, frac = n // hop, (n % hop).double() / hop
    a = amps.double()[..., frame] * (1 - frac) + amps.double()[..., frame + 1] * frac
    ranks = torch.arange(1, k + 1, dtype=torch.float64).view(1, k, 1)
    f = f0_hz.double().view(b, 1, 1)
    audible = (ranks * f < rate / 2).double()
    return (audible * a * torch.sin(2 * math.pi * ranks * f * n.double() / rate)).sum(1)


@pytest.mark.parametrize(("f0", "hop"), [(220.0, 32), (97.3, 64), (1234.5, 16)], ids=["a3", "low", "high"])
def test_harmonic_synthesis_equals_a_sum_of_sines(f0, hop):
    cfg = DDSPConfig(n_samples=2048, sample_rate=RATE, hop=hop, n_harmonics=24, hidden=4, n_mels=16)
    model = DDSP(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    amps = torch.rand(2, cfg.n_harmonics, cfg.control_frames, generator=gen)
    f0_hz = torch.tensor([[f0], [f0 * 1.5]])
    ref = direct_sum(amps, f0_hz, hop, RATE)
    # Harmonics above Nyquist are zero in real controls; the synthesiser may then skip them.
    ranks = torch.arange(1, cfg.n_harmonics + 1).view(1, -1, 1)
    amps = amps * (ranks * f0_hz[:, :, None] < RATE / 2)
    clip_path = model.harmonic(amps, f0_hz)
    frame_path = model.harmonic(amps, f0_hz.expand(2, cfg.control_frames).contiguous())
    assert torch.allclose(clip_path.double(), ref, atol=1e-3 * ref.abs().max())
    assert torch.allclose(frame_path.double(), ref, atol=1e-3 * ref.abs().max())


def test_filtered_noise_is_an_inverse_stft_of_shaped_noise():
    cfg = DDSPConfig(n_samples=2048, sample_rate=RATE, hop=32, noise_bands=6, hidden=4, n_mels=16)
    model = DDSP(cfg).eval()
    bands = torch.rand(2, cfg.noise_bands, cfg.control_frames, generator=torch.Generator().manual_seed(1))
    mags = torch.nn.functional.interpolate(bands.transpose(1, 2), size=33, mode="linear", align_corners=True)
    spec = mags.transpose(1, 2) * model.noise_phase
    ref = torch.istft(spec, 64, 32, window=torch.hann_window(64), center=True, length=(cfg.control_frames - 1) * 32)
    assert torch.allclose(model.filtered_noise(bands), ref, atol=1e-6)


def test_controls_give_nothing_at_or_above_nyquist_and_decode_is_fixed_at_inference():
    cfg = DDSPConfig(n_samples=2048, sample_rate=RATE, hop=32, n_harmonics=16, hidden=8, n_mels=16, n_pitches=128)
    model = DDSP(cfg).eval()
    z = torch.randn(3, cfg.latent_dim)
    pitches = torch.tensor([45, 69, 93])  # 110, 440 and 1760 Hz: 16, 9 and 2 harmonics below 4 kHz
    with torch.no_grad():
        ctl = model.controls(z, None, pitches)
        audible = (ctl["harmonics"] > 0).all(dim=2).sum(dim=1)
        assert audible.tolist() == [16, 9, 2]
        assert torch.allclose(ctl["f0_hz"].view(-1), torch.tensor([110.0, 440.0, 1760.0]))
        assert torch.equal(model.decode(z, None, pitches), model.decode(z, None, pitches))
    with pytest.raises(Exception, match="needs a MIDI pitch"):
        model.decode(z)


def _note(midi: int, brightness: float, take: int) -> np.ndarray:
    """A decaying harmonic note ``(N,)``: 12 partials rolling off by ``brightness`` per harmonic, a little noise."""
    t = np.arange(N) / RATE
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    partials = [brightness**k * np.sin(2 * np.pi * (k + 1) * f0 * t) for k in range(12) if (k + 1) * f0 < RATE / 2]
    rng = np.random.default_rng(midi * 10 + take)
    wav = np.sum(partials, axis=0) * np.exp(-3.0 * t) * np.minimum(1.0, t / 0.01) + 0.003 * rng.standard_normal(N)
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def _note_store(root) -> str:
    cfg = SpectrogramConfig(sample_rate=RATE, n_fft=256, hop_length=64, kind="mel", n_mels=32)
    wavs, items = [], []
    for family, brightness in (("flute", 0.3), ("brass", 0.7)):
        for inst in range(2):
            for midi in range(50, 75, 3):
                wav = _note(midi, brightness, inst)
                path = write_audio(root / "audio" / f"{family}_{inst}_{midi}.wav", wav, RATE)
                wavs.append(wav)
                labels = {"label": family, "instrument": f"{family}_{inst}", "pitch": str(midi)}
                items.append({"id": path.stem, "path": str(path), "labels": labels})
    feats = features(torch.from_numpy(np.stack(wavs)), cfg).numpy()
    meta = {"sample_rate": RATE, "n_samples": N, "spectrogram": cfg.to_dict()}
    return str(write_store(root / "store", feats, items, meta, Normalizer.fit(feats)))


def test_pitched_samples_follow_the_asked_pitch(tmp_path):
    store = _note_store(tmp_path)
    cfg = TrainConfig(
        features=store,
        model="ddsp",
        epochs=2,
        batch_size=8,
        latent_dim=4,
        warmup_steps=2,
        sample_items=0,
        val_fraction=0.25,
        model_options={"hop": 64, "n_harmonics": 16, "noise_bands": 8, "hidden": 16},
    )
    run = train(cfg, tmp_path / "run", progress_bar=False)
    gen = Generator.from_run(run)
    asked = [50, 55, 60, 66, 71, 74]  # 147 to 587 Hz, including pitches never trained (55, 60, 66, 71)
    clips = [gen.sample(1, label="brass", pitch=p, seed=p)[0].audio for p in asked]
    result = pitch_accuracy(clips, gen.sample_rate, asked)
    assert result["accuracy"] == 1.0, [c["error_cents"] for c in result["per_clip"]]
