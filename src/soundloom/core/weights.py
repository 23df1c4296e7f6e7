"""Model weights on disk: safetensors with soundloom metadata, never pickle.

Both engines store their models here (generative models, transition scorers); a file that is not
a soundloom safetensors file, or that does not fit the model, raises :class:`ModelFileError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_path
from .errors import ModelFileError

FORMAT = "soundloom"


def save_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], kind: str) -> Path:
    """Write ``tensors`` atomically with metadata ``{"format": "soundloom", "kind": kind}``."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"format": FORMAT, "kind": kind},
        )
    return Path(path)


def load_safetensors(path: str | os.PathLike, kind: str | None = None) -> dict[str, torch.Tensor]:
    """Read a soundloom safetensors file; malformed or foreign files raise :class:`ModelFileError`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise ModelFileError(path, f"not a valid safetensors file ({str(exc).splitlines()[0][:120]})") from exc
    if meta.get("format") != FORMAT:
        raise ModelFileError(path, "a safetensors file, but not a soundloom model (no soundloom metadata)")
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(path, f"holds a {meta.get('kind')!r} model, expected {kind!r}")
    return tensors


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Load ``tensors`` into ``model`` strictly; mismatches raise :class:`ModelFileError`. A model with an
    ``upgrade_state(tensors)`` method first completes the tensors of files saved by older versions."""
    if hasattr(model, "upgrade_state"):
        tensors = model.upgrade_state(tensors)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    bad = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or extra or bad:
        raise ModelFileError(
            path,
            f"weights do not fit the config (missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {bad[:3]})",
        )
    model.load_state_dict(tensors)
