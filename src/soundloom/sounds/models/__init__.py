"""soundloom.sounds.models: spectrogram VAE / CVAE, classifier, and safetensors save/load.

Weights are stored only as safetensors with a JSON config beside them (never pickle).
"""

from __future__ import annotations

from ...core.errors import ModelFileError
from ...core.weights import load_safetensors, load_state, save_safetensors
from .classifier import ClassifierConfig, SpectrogramClassifier
from .cvae import CVAE
from .vae import VAE, ModelConfig


def build_model(cfg: ModelConfig) -> VAE:
    """A fresh :class:`VAE` or :class:`CVAE` from its config."""
    return CVAE(cfg) if cfg.kind == "cvae" else VAE(cfg)


__all__ = [
    "VAE",
    "CVAE",
    "ModelConfig",
    "ClassifierConfig",
    "SpectrogramClassifier",
    "ModelFileError",
    "build_model",
    "save_safetensors",
    "load_safetensors",
    "load_state",
]
