"""Tiny synthetic feature stores for the model, train, generate and eval tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from soundloom.core.io import write_audio
from soundloom.core.spectral import SpectrogramConfig, features
from soundloom.data.stats import Normalizer
from soundloom.data.store import write_store

SAMPLE_RATE = 8000
N_SAMPLES = 2048  # 65 frames at hop 32
FREQS = {"a": 440.0, "b": 880.0, "c": 1760.0}


def tone(freq: float, speaker: int, take: int) -> np.ndarray:
    """A decaying tone ``(N_SAMPLES,)`` whose timbre depends on the speaker and take."""
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    f = freq * (1 + 0.03 * speaker + 0.01 * take)
    wav = np.sin(2 * np.pi * f * t) + 0.3 * (speaker % 2) * np.sin(4 * np.pi * f * t)
    return (0.5 * wav * np.exp(-t * (3 + take))).astype(np.float32)


def make_store(root: Path, speakers: int = 4, takes: int = 3, kind: str = "db") -> Path:
    """Write audio files and a store of labels a/b/c by ``speakers`` speakers; returns the store path."""
    cfg = SpectrogramConfig(sample_rate=SAMPLE_RATE, n_fft=128, hop_length=32, kind=kind, n_mels=32)
    wavs, items = [], []
    for label, freq in FREQS.items():
        for s in range(speakers):
            for k in range(takes):
                wav = tone(freq, s, k)
                path = write_audio(root / "audio" / f"{label}_s{s}_{k}.wav", wav, SAMPLE_RATE)
                wavs.append(wav)
                items.append(
                    {
                        "id": path.stem,
                        "path": str(path),
                        "labels": {"label": label, "speaker": f"s-{s}", "take": str(k)},
                    }
                )
    feats = features(torch.from_numpy(np.stack(wavs)), cfg).numpy()
    return write_store(
        root / "store",
        feats,
        items,
        {"sample_rate": SAMPLE_RATE, "n_samples": N_SAMPLES, "spectrogram": cfg.to_dict()},
        Normalizer.fit(feats),
    )
