"""Config matrix at tiny capacity: build, forward, shapes, safetensors round trip; loss invariants."""

from __future__ import annotations

import pytest
import torch

from soundloom.sounds.losses import beta_at, elbo_terms, kl_divergence, mr_stft_distance, reconstruction_loss
from soundloom.sounds.models import (
    ClassifierConfig,
    ModelConfig,
    ModelFileError,
    SpectrogramClassifier,
    build_model,
    load_safetensors,
    load_state,
    save_safetensors,
)

CONFIGS = {
    "vae-db": dict(kind="vae", rows=65, frames=65, channels=(4, 8), latent_dim=3, res_from=8),
    "vae-mel-3stage": dict(kind="vae", rows=32, frames=40, channels=(4, 8, 8), latent_dim=5, res_from=100),
    "cvae-label": dict(kind="cvae", rows=33, frames=17, channels=(4, 8), latent_dim=4, labels=["a", "b", "c"]),
    "cvae-label-pitch": dict(
        kind="cvae", rows=64, frames=32, channels=(4,), latent_dim=2, labels=["x", "y"], n_pitches=128
    ),
    "vae-legacy-head": dict(kind="vae", rows=16, frames=16, channels=(4, 8), latent_dim=2, head="conv3x3"),
    "cvae-pitch-only": dict(kind="cvae", rows=20, frames=24, channels=(4, 4), latent_dim=2, n_pitches=128),
}


def _conditions(cfg: ModelConfig, batch: int):
    labels = torch.arange(batch) % len(cfg.labels) if cfg.labels else None
    pitches = torch.full((batch,), 60) if cfg.n_pitches else None
    return labels, pitches


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_matrix(name, tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(**CONFIGS[name])
    model = build_model(cfg)
    x = torch.rand(3, cfg.rows, cfg.frames) * 2 - 1
    labels, pitches = _conditions(cfg, 3)
    x_hat, mu, logvar = model(x, labels, pitches)
    assert x_hat.shape == x.shape
    assert mu.shape == logvar.shape == (3, cfg.latent_dim)
    assert model.decode(mu, labels, pitches).shape == x.shape
    path = save_safetensors(tmp_path / "m.safetensors", model.state_dict(), kind=cfg.kind)
    again = build_model(ModelConfig.from_dict(cfg.to_dict()))
    load_state(again, load_safetensors(path, kind=cfg.kind), path)
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(x, labels, pitches, sample=False)[0], again(x, labels, pitches, sample=False)[0])


def test_configs_without_head_load_as_legacy():
    d = ModelConfig(rows=16, frames=16, channels=(4,)).to_dict()
    assert d["head"] == "direct"
    del d["head"]
    assert ModelConfig.from_dict(d).head == "conv3x3"


def test_wrong_input_shape_names_expected_shape():
    model = build_model(ModelConfig(rows=16, frames=16, channels=(4,), latent_dim=2))
    with pytest.raises(ValueError, match=r"\(B, 16, 16\)"):
        model.encode(torch.zeros(2, 16, 15))


def test_cvae_needs_its_label():
    model = build_model(ModelConfig(kind="cvae", rows=16, frames=16, channels=(4,), latent_dim=2, labels=["a"]))
    with pytest.raises(ValueError, match="needs a label"):
        model(torch.zeros(1, 16, 16))


def test_classifier_shapes_and_roundtrip(tmp_path):
    cfg = ClassifierConfig(rows=33, frames=20, labels=["a", "b"], channels=(4, 8), feature_dim=6)
    clf = SpectrogramClassifier(cfg).eval()
    x = torch.randn(5, 33, 20)
    assert clf(x).shape == (5, 2) and clf.features(x).shape == (5, 6)
    path = save_safetensors(tmp_path / "c.safetensors", clf.state_dict(), kind="classifier")
    again = SpectrogramClassifier(ClassifierConfig.from_dict(cfg.to_dict())).eval()
    load_state(again, load_safetensors(path, kind="classifier"), path)
    assert torch.equal(clf(x), again(x))


def test_malformed_and_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(ModelFileError, match="not a valid safetensors"):
        load_safetensors(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a soundloom model"):
        load_safetensors(foreign)
    ours = save_safetensors(tmp_path / "ours.safetensors", {"w": torch.zeros(2)}, kind="vae")
    with pytest.raises(ModelFileError, match="expected 'cvae'"):
        load_safetensors(ours, kind="cvae")
    model = build_model(ModelConfig(rows=16, frames=16, channels=(4,), latent_dim=2))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_state(model, {"w": torch.zeros(2)}, ours)
    with pytest.raises(ModelFileError, match="no such"):
        load_safetensors(tmp_path / "missing.safetensors")


def test_loss_invariants():
    torch.manual_seed(0)
    x = torch.randn(4, 10, 12)
    assert torch.equal(reconstruction_loss(x, x), torch.zeros(4))
    mu, logvar = torch.zeros(4, 6), torch.zeros(4, 6)
    assert torch.allclose(kl_divergence(mu, logvar), torch.zeros(4))
    assert (kl_divergence(torch.randn(4, 6), torch.randn(4, 6)) > 0).all()
    # KL of N(m, 1) against N(0, 1) is m^2 / 2 per dimension.
    assert torch.allclose(kl_divergence(torch.full((1, 3), 2.0), torch.zeros(1, 3)), torch.tensor([6.0]))
    terms = elbo_terms(x + 0.1, x, mu + 1.0, logvar, beta=0.5)
    assert torch.isclose(terms.loss, terms.recon + 0.5 * terms.kl)
    assert torch.isclose(terms.elbo, -(terms.recon + terms.kl))
    assert beta_at(0, 1.0, 100) == 0.0 and beta_at(50, 1.0, 100) == 0.5 and beta_at(500, 1.0, 100) == 1.0
    wav = torch.randn(2, 4000)
    assert torch.allclose(mr_stft_distance(wav, wav, 8000), torch.zeros(2), atol=1e-6)
    assert (mr_stft_distance(wav, 0.5 * wav, 8000) > 0.1).all()


@pytest.mark.parametrize("strides", [(4, 4, 4), (2, 4, 8)])
def test_wave_vae_inference_path_equals_the_training_path(strides):
    from soundloom.sounds.models.wave_vae import WaveConfig, WaveVAE

    torch.manual_seed(0)
    cfg = WaveConfig(n_samples=1000, sample_rate=8000, channels=(6, 8, 12), strides=strides, latent_dim=5)
    cfg.labels = ["a", "b"]
    model = WaveVAE(cfg)
    z, labels = torch.randn(3, 5), torch.tensor([0, 1, 1])
    slow = model.decode(z, labels)  # grad enabled: the transposed convs as trained
    with torch.no_grad():
        model.eval()
        fast = model.decode(z, labels)
    assert fast.shape == slow.shape == (3, 1000)
    assert torch.allclose(fast, slow.detach(), atol=1e-5) and not torch.equal(fast, torch.zeros_like(fast))
