"""soundloom.sounds.models: generative model kinds (a registry), the classifier, safetensors save/load.

Weights are stored only as safetensors with a JSON config beside them (never pickle). A model
kind registers itself in its own file (see :mod:`.registry`); importing a kind's file below is
what makes it known.
"""

from __future__ import annotations

from ...core.errors import ModelFileError
from ...core.weights import load_safetensors, load_state, save_safetensors
from . import protocol
from .classifier import ClassifierConfig, SpectrogramClassifier
from .cvae import CVAE  # registers "cvae"
from .ddsp import DDSP, DDSPConfig  # registers "ddsp"
from .prior import PriorConfig, PriorModel  # registers "prior" (after vqvae)
from .registry import KindOption, ModelKind, default_kind, get_kind, kind_names, register
from .vae import VAE, ModelConfig  # registers "vae"
from .vaegan import build_vaegan  # registers "vaegan"
from .vqvae import VQVAE, VQConfig  # registers "vqvae"
from .wave_vae import WaveConfig, WaveVAE  # registers "wave-vae"


def build_model(cfg):
    """A fresh model of the kind ``cfg.kind`` from its config (any registered kind)."""
    return get_kind(cfg.kind).build(cfg)


def config_from_dict(d: dict):
    """A model config from its JSON dict, by its ``"kind"`` (configs without one are "vae")."""
    return get_kind(d.get("kind", "vae")).config_from_dict(d)


__all__ = [
    "default_kind",
    "VAE",
    "CVAE",
    "VQVAE",
    "VQConfig",
    "PriorModel",
    "PriorConfig",
    "WaveVAE",
    "WaveConfig",
    "DDSP",
    "DDSPConfig",
    "build_vaegan",
    "protocol",
    "ModelConfig",
    "ClassifierConfig",
    "SpectrogramClassifier",
    "ModelFileError",
    "build_model",
    "config_from_dict",
    "KindOption",
    "ModelKind",
    "get_kind",
    "kind_names",
    "register",
    "save_safetensors",
    "load_safetensors",
    "load_state",
]
