"""Files and folders written atomically get the modes an ordinary open/mkdir gives under the
umask (tempfile's private 0600/0700 used to leak into stores, runs and audio)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from soundloom.core.atomic import write_json
from soundloom.core.io import write_audio
from soundloom.core.weights import save_safetensors
from soundloom.data.prepare import PrepareConfig, prepare
from soundloom.data.stats import Normalizer
from soundloom.data.store import write_store

from .conftest import tone, write


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_and_store_folders_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        json_file = write_json(tmp_path / "run" / "config.json", {"a": 1})
        audio = write_audio(tmp_path / "out" / "x.wav", tone(8000, 0.1, 300.0), 8000)
        weights = save_safetensors(tmp_path / "run" / "model.safetensors", {"w": torch.zeros(3)}, kind="test")
        feats = np.zeros((2, 3, 4), np.float32)
        items = [{"id": str(i), "path": f"{i}.wav", "labels": {}} for i in range(2)]
        config = {"sample_rate": 8000, "n_samples": 800, "spectrogram": {}}
        store = write_store(tmp_path / "store", feats, items, config, Normalizer(mode="range"))
        src = tmp_path / "data"
        for label in ("a", "b"):
            for i in range(2):
                write(src / label / f"{label}{i}.wav", tone(8000, 0.3, 200.0 + 50 * i), 8000)
        prepared = prepare(src, tmp_path / "prepared", PrepareConfig(sample_rate=8000, seconds=0.3), workers=1)
    finally:
        os.umask(old)
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    for f in (json_file, audio, weights, store / "features.npy", store / "config.json"):
        assert _mode(f) == file_mode, (f, oct(_mode(f)))
    for f in prepared.store.iterdir():
        assert _mode(f) == file_mode, (f, oct(_mode(f)))
    assert _mode(store) == dir_mode and _mode(prepared.store) == dir_mode
    assert json.loads(json_file.read_text()) == {"a": 1}
