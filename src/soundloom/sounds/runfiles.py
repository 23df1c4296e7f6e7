"""The files of an exported generation run: what training writes and inference reads.

Kept apart from training so that loading a run (the :class:`~soundloom.sounds.generator.Generator`)
never imports Lightning.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..core.errors import ModelFileError

MODEL_FILE = "model.safetensors"  # weights + fitted latent prior
CONFIG_FILE = "model.json"  # model config, run config, format version
STATS_FILE = "stats.json"  # the feature store's normalisation statistics
RUN_FORMAT_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_run_info(run_dir: str | os.PathLike) -> dict:
    """A finished run's ``model.json`` (raises :class:`ModelFileError` naming the file when it is missing or bad)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(path, "missing: is this a finished run directory (soundloom train ... --out RUN)?")
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"malformed run config ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != "soundloom" or "model" not in info:
        raise ModelFileError(path, "not a soundloom model config")
    return info


def run_reference(run_dir: str | os.PathLike) -> dict:
    """``{"run": absolute path, "sha256": of its weights}``: how one run names another it depends on."""
    run_dir = Path(run_dir).resolve()
    weights = run_dir / MODEL_FILE
    if not weights.is_file():
        raise ModelFileError(weights, "missing: is this a finished run directory?")
    return {"run": str(run_dir), "sha256": file_sha256(weights)}
