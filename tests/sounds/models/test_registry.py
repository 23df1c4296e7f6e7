"""A model kind defined here, outside soundloom, goes through build, save/load, training, generation and the CLI."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

from soundloom.core.errors import ParameterError
from soundloom.sounds import Generator
from soundloom.sounds.models import (
    KindOption,
    ModelKind,
    build_model,
    config_from_dict,
    get_kind,
    kind_names,
    load_safetensors,
    load_state,
    register,
    save_safetensors,
)
from soundloom.sounds.models.registry import unregister
from soundloom.sounds.training import TrainConfig, train
from tests.sounds.cli import run_cli


@dataclass
class ToyConfig:
    kind: str = "toy"
    rows: int = 8
    frames: int = 8
    latent_dim: int = 2
    hidden: int = 4
    labels: list[str] = field(default_factory=list)
    n_pitches: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ToyConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class ToyVAE(nn.Module):
    """A linear-encoder, one-hidden-layer-decoder VAE on ``(B, rows, frames)``."""

    label_conditioned = False
    pitch_conditioned = False

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc = nn.Linear(cfg.rows * cfg.frames, 2 * cfg.latent_dim)
        self.dec = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, cfg.rows * cfg.frames)
        )

    def encode(self, x, labels=None, pitches=None):
        mu, logvar = self.enc(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30, 20)

    def decode(self, z, labels=None, pitches=None):
        return self.dec(z).view(-1, self.cfg.rows, self.cfg.frames)

    def forward(self, x, labels=None, pitches=None, sample=True):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode(z), mu, logvar


def _new_toy_config(rows, frames, labels, n_pitches, latent_dim, channels, hidden):
    return ToyConfig(rows=rows, frames=frames, latent_dim=latent_dim, hidden=hidden)


TOY = ModelKind(
    name="toy",
    config=ToyConfig,
    build=ToyVAE,
    new_config=_new_toy_config,
    training="soundloom.sounds.training.module:vae_module",
    options=(KindOption("hidden", int, 4, "Hidden units of the decoder."),),
    help="A toy kind from the tests.",
)


@pytest.fixture
def toy_kind():
    register(TOY)
    yield TOY
    unregister("toy")


def test_builtin_kinds_are_registered():
    assert {"vae", "cvae"} <= set(kind_names())
    assert get_kind("cvae").conditional and not get_kind("vae").conditional
    with pytest.raises(ParameterError, match="unknown model kind 'nope'; known: vae, cvae"):
        get_kind("nope")


def test_toy_kind_builds_saves_and_loads(toy_kind, tmp_path):
    cfg = ToyConfig(rows=6, frames=5, latent_dim=3, hidden=7)
    model = build_model(cfg)
    assert isinstance(model, ToyVAE)
    path = save_safetensors(tmp_path / "toy.safetensors", model.state_dict(), kind=cfg.kind)
    again = build_model(config_from_dict(json.loads(json.dumps(cfg.to_dict()))))
    load_state(again, load_safetensors(path, kind="toy"), path)
    z = torch.randn(2, 3)
    assert torch.equal(model.decode(z), again.decode(z))
    assert toy_kind.parse_options({"hidden": "9"}) == {"hidden": 9}
    with pytest.raises(ParameterError, match="--hidden: expected int"):
        toy_kind.parse_options({"hidden": "many"})
    with pytest.raises(ParameterError, match="no option --width"):
        toy_kind.parse_options({"width": "3"})


def test_toy_kind_trains_and_generates(toy_kind, tiny_store, tmp_path):
    cfg = TrainConfig(
        features=str(tiny_store),
        model="toy",
        epochs=1,
        batch_size=8,
        latent_dim=2,
        sample_items=1,
        griffin_lim_iters=2,
        model_options={"hidden": 5},
    )
    run = train(cfg, tmp_path / "run", progress_bar=False)
    info = json.loads((run / "model.json").read_text())
    assert info["model"]["kind"] == "toy" and info["model"]["hidden"] == 5
    gen = Generator.from_run(run, griffin_lim_iters=2)
    assert isinstance(gen.model, ToyVAE) and gen.labels == []
    a, b = gen.sample(2, seed=3), gen.sample(2, seed=3)
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b))
    assert np.array_equal(gen.from_sidecar(a[1].sidecar(gen.model_record())).audio, a[1].audio)


def test_cli_train_reads_the_registry(toy_kind, tiny_store, tmp_path):
    common = ["--out", tmp_path / "run", "--epochs", "1", "--batch-size", "8", "--latent", "2", "--quiet"]
    code, output = run_cli("train", tiny_store, "--model", "nope", *common)
    assert code == 2 and "unknown model kind 'nope'" in output
    code, output = run_cli("train", tiny_store, "--model", "toy", "--width", "3", *common)
    assert code == 2 and "no option --width" in output and "--hidden" in output
    # A kind option written before FEATURES must not take its place.
    code, output = run_cli("train", "--hidden", "6", tiny_store, "--model", "toy", *common)
    assert code == 0, output
    assert json.loads((tmp_path / "run" / "model.json").read_text())["model"]["hidden"] == 6
    code, output = run_cli("models")
    assert code == 0 and "toy: A toy kind" in output and "--hidden INT" in output and "cvae:" in output


def test_default_kind_is_ddsp_for_pitch_labelled_stores_and_cvae_otherwise(tiny_store, monkeypatch):
    from soundloom.sounds.models import default_kind

    assert default_kind(["instrument_family_str", "pitch"])[0] == "ddsp"
    assert default_kind(["label", "speaker"])[0] == "cvae" and default_kind([])[0] == "cvae"
    seen = []
    monkeypatch.setattr("soundloom.sounds.training.train", lambda c, *a, **k: seen.append(c))
    code, output = run_cli("train", tiny_store, "--out", tiny_store.parent / "auto-run", "--quiet")
    assert code == 0 and seen[-1].model == "cvae" and "trained cvae (no pitch labels" in output, output
