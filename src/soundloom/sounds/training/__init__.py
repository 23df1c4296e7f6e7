"""soundloom.sounds.training: Lightning training of spectrogram VAEs into a run directory."""

from .run import TrainConfig, train

__all__ = ["TrainConfig", "train"]
