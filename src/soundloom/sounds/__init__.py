"""soundloom.sounds: the Generator API over a trained run."""

from .generator import Generator, Sound

__all__ = ["Generator", "Sound"]
