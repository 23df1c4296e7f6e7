"""soundloom.sounds.training: Lightning training of spectrogram VAEs into a run directory."""

from .run import TrainConfig, first_process, train

__all__ = ["TrainConfig", "first_process", "train"]
