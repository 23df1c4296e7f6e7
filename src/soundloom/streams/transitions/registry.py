"""One registry of transition scorers: a model name -> its class, its training hook and its CLI options.

Each scorer registers itself once, in its own module::

    register(ContrastiveScorer, train=_train, cli_options={"width": "width"})

and the package ``soundloom.streams.transitions`` imports the built-in scorer modules, so importing
it (or anything in it) fills the registry. Everything that turns a name into a model reads it:
:func:`build_scorer`, :func:`load_scorer`, training (``train_transitions``), the pool index and
the CLI. The config round trip is the class's own: ``scorer.config()`` (JSON) and
``cls.from_config(cfg)``.

This module is a leaf: it imports no scorer (nor torch), so nothing here can form an import circle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.errors import ModelFileError, ParameterError
from ...core.progress import ProgressCallback, null_progress

if TYPE_CHECKING:
    from .base import TransitionScorer


@dataclass
class TrainContext:
    """What a training hook gets besides the scorer: the pool, its song split and the budget.

    Attributes:
        catalog: the open ``ChunkCatalog``.
        audio: ``SongAudio`` of the pool (mono songs at ``catalog.sample_rate``).
        split: song ids ``{"train": [...], "val": [...], "test": [...]}``.
        seed, steps, max_minutes, lr: the run's options (steps and lr only where the model has them).
        progress: the progress callback.
        cpu_minutes: process CPU budget (min), or None for none.
        contrastive_from: a run whose contrastive part a fusion takes as it is (no contrastive training).
    """

    catalog: Any
    audio: Any
    split: dict
    seed: int = 0
    steps: int = 3000
    max_minutes: float = 15.0
    lr: float = 1e-3
    progress: ProgressCallback = null_progress
    cpu_minutes: float | None = None
    contrastive_from: str | None = None


#: A training hook fits the scorer in place and returns metrics (JSON).
TrainHook = Callable[["TransitionScorer", TrainContext], dict]


@dataclass(frozen=True)
class ScorerKind:
    """A registered transition model.

    Attributes:
        name: the model name (``cls.name``), as given to ``--model`` and saved in ``config.json``.
        cls: the scorer class; ``cls.from_config(cfg)`` builds it, ``scorer.config()`` saves it.
        train: the training hook (``features`` fits pool statistics only).
        cli_options: CLI option name -> dotted key in the model's config (``{"width": "contrastive.width"}``).
        by_name: usable untrained by its name alone (``--model features``).
    """

    name: str
    cls: type
    train: TrainHook
    cli_options: dict[str, str] = field(default_factory=dict)
    by_name: bool = False


_KINDS: dict[str, ScorerKind] = {}


def register(
    cls: type, train: TrainHook, cli_options: dict[str, str] | None = None, by_name: bool = False
) -> ScorerKind:
    """Register ``cls`` under ``cls.name``; a second registration of the same name must be the same class."""
    kind = ScorerKind(cls.name, cls, train, dict(cli_options or {}), by_name)
    old = _KINDS.get(kind.name)
    if old is not None and old.cls is not cls:
        raise ValueError(f"transition model {kind.name!r} is already registered by {old.cls.__qualname__}")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Forget a registered model (tests that register a toy scorer clean up with this)."""
    _KINDS.pop(name, None)


def model_names() -> tuple[str, ...]:
    """Registered model names, in registration order."""
    return tuple(_KINDS)


def get_kind(name: str) -> ScorerKind:
    """The registered model ``name``; an unknown name raises :class:`ParameterError` naming the known ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ParameterError(f"unknown transition model {name!r}; use one of {', '.join(_KINDS)}") from None


def build_scorer(name: str, sample_rate: int = 22050, **kwargs: Any) -> TransitionScorer:
    """A fresh (untrained) scorer of model ``name`` at ``sample_rate`` Hz with config overrides ``kwargs``."""
    return get_kind(name).cls.from_config({"sample_rate": sample_rate, **kwargs})


def scorer_from_config(name: str, cfg: dict) -> TransitionScorer:
    """Rebuild a scorer from its saved ``config()``."""
    return get_kind(name).cls.from_config(cfg)


def named_model(run: str | Path) -> str | None:
    """The model name when ``run`` names a model usable untrained (and is not a folder), else None."""
    kind = _KINDS.get(str(run))
    return kind.name if kind is not None and kind.by_name and not Path(run).exists() else None


def model_kwargs(name: str, **options: Any) -> dict:
    """Model config overrides from CLI options (None = not given) through the model's ``cli_options``.

    Raises:
        ParameterError: an option given that model ``name`` does not understand.
    """
    kind = get_kind(name)
    out: dict = {}
    for opt, value in options.items():
        if value is None:
            continue
        if opt not in kind.cli_options:
            known = ", ".join("--" + o.replace("_", "-") for o in kind.cli_options) or "none"
            raise ParameterError(f"--{opt.replace('_', '-')} does not apply to model {name!r} (its options: {known})")
        *parents, leaf = kind.cli_options[opt].split(".")
        d = out
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value
    return out


def load_scorer(run: str | Path, sample_rate: int = 22050) -> TransitionScorer:
    """Load a trained run folder, or build a model usable untrained by its name (``features``).

    A run whose ``config.json`` records a ``fallback`` (training found the learned model no better
    than ``features`` on the pool's validation songs) loads the fallback saved in its sub-folder.

    Raises:
        ModelFileError: no run at ``run``; weights missing, foreign or not fitting the config.
    """
    from ...core.weights import load_safetensors, load_state

    name = named_model(run)
    if name is not None:
        return build_scorer(name, sample_rate=sample_rate).eval()
    run = Path(run)
    cfg_path = run / "config.json"
    if not cfg_path.exists():
        raise ModelFileError(run, "not a transition run (no config.json); train one with train-transitions")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("fallback"):  # training found the learned model no better than this one on validation songs
        return load_scorer(run / cfg["fallback"], sample_rate=sample_rate)
    if cfg.get("model") not in _KINDS:
        raise ModelFileError(cfg_path, f"unknown transition model {cfg.get('model')!r}; known: {', '.join(_KINDS)}")
    model = scorer_from_config(cfg["model"], cfg["config"])
    weights = run / "model.safetensors"
    load_state(model, load_safetensors(weights, kind=f"transition-{cfg['model']}"), weights)
    return model.eval()
