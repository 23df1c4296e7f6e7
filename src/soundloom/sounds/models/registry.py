"""One registry of generative model kinds: a kind is added by one model file that calls :func:`register`.

A kind declares, once:

- ``name``: what ``soundloom train --model NAME`` and ``model.json``'s ``"kind"`` say;
- ``config``: its config class, with ``kind``, ``to_dict()`` and ``from_dict(d)`` (the JSON round trip);
- ``build``: the model from its config (the class itself, usually);
- ``new_config``: the config for a data set, ``new_config(rows, frames, labels, n_pitches, latent_dim,
  channels, **options)``; ``labels`` / ``n_pitches`` are empty / 0 unless ``conditional``;
- ``training``: dotted path ``"package.module:callable"`` of ``callable(model_config: dict, train_config)
  -> LightningModule``, imported only when training, so inference never loads Lightning;
- ``options``: its own ``soundloom train`` options (name, type, default, help);
- ``fit_prior``: dotted path of ``callable(model, dataset) -> {"prior.*": tensor}``, the sampling prior fitted
  at export and saved with the weights (a Gaussian of posterior means for the VAE family, positional code
  counts for a vqvae, nothing for a kind that samples on its own);
- ``inputs``: what training feeds the model, "features" (normalised store rows) or "waveform" (the store's
  audio files, loaded at the store's rate and length).

The model side of generation (what :class:`~soundloom.sounds.generator.Generator` calls; see :mod:`.protocol`):
every model has ``encode_latent``, ``decode_latent``, ``latent_size``, ``output`` ("features" | "waveform")
and the flags ``continuable`` / ``interpolable`` / ``variable_length``; a model with a discrete latent also
has ``draw_latents`` and ``vary_latent`` (else the Generator draws from the fitted Gaussian), and one that
continues by priming has ``continue_latent``. A config may name other runs it needs (``requires()``: name ->
``{"run", "sha256"}``); the Generator loads each and gives it to ``model.attach(name, model)``.

This module is a leaf: it imports no model, no torch and no Lightning.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.errors import ParameterError

OPTION_TYPES = (int, float, str, bool)
INPUTS = ("features", "waveform")


@dataclass(frozen=True)
class KindOption:
    """One extra ``soundloom train`` option of a kind, given as ``--name value`` (``--name`` / ``--no-name``
    for a bool). ``name`` uses underscores in Python and dashes on the command line."""

    name: str
    type: type
    default: Any
    help: str

    def parse(self, raw: Any) -> Any:
        """``raw`` (a command-line string or a Python value) as :attr:`type`; bad values raise ParameterError."""
        if self.type is bool and isinstance(raw, str):
            low = raw.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ParameterError(f"--{self.flag}: expected true or false, got {raw!r}")
            return low in ("true", "1", "yes")
        if isinstance(raw, bool) and self.type is not bool:
            raise ParameterError(f"--{self.flag}: expected {self.type.__name__}, got {raw!r}")
        try:
            return self.type(raw)
        except (TypeError, ValueError):
            raise ParameterError(f"--{self.flag}: expected {self.type.__name__}, got {raw!r}") from None

    @property
    def flag(self) -> str:
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class ModelKind:
    """Everything soundloom needs to build, save, load and train one kind of generative model."""

    name: str
    config: type
    build: Callable[[Any], Any]
    new_config: Callable[..., Any]
    training: str
    conditional: bool = False
    options: tuple[KindOption, ...] = ()
    help: str = ""
    fit_prior: str = "soundloom.sounds.training.export:fit_gaussian_prior"
    inputs: str = "features"

    def __post_init__(self) -> None:
        if ":" not in self.training:
            raise ValueError(f"kind {self.name!r}: training must be 'package.module:callable', got {self.training!r}")
        if ":" not in self.fit_prior:
            raise ValueError(f"kind {self.name!r}: fit_prior must be 'package.module:callable', got {self.fit_prior!r}")
        if self.inputs not in INPUTS:
            raise ValueError(f"kind {self.name!r}: inputs must be one of {INPUTS}, got {self.inputs!r}")
        for opt in self.options:
            if opt.type not in OPTION_TYPES:
                raise ValueError(f"kind {self.name!r}: option {opt.name!r} has type {opt.type}; use {OPTION_TYPES}")

    def config_from_dict(self, d: dict) -> Any:
        """The kind's config from its JSON dict (``model.json``'s ``"model"``)."""
        return self.config.from_dict(d)

    def parse_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every option of this kind: ``given`` values (strings or Python values) parsed, the rest defaults.

        Unknown names raise :class:`ParameterError` listing the kind's options.
        """
        known = {o.name: o for o in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            have = ", ".join(f"--{o.flag}" for o in self.options) or "none"
            flags = ", ".join("--" + u.replace("_", "-") for u in unknown)
            raise ParameterError(f"model {self.name!r} has no option {flags} (its options: {have})")
        return {name: (opt.parse(given[name]) if name in given else opt.default) for name, opt in known.items()}

    def training_hook(self) -> Callable[..., Any]:
        """The training callable (imports the training code, and so Lightning)."""
        return _resolve(self.training)

    def prior_hook(self) -> Callable[..., Any]:
        """The export-time prior fit (training side)."""
        return _resolve(self.fit_prior)


def _resolve(dotted: str) -> Callable[..., Any]:
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    """Add a kind (once per name; registering the same name again replaces it, so reloads work)."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests register toy kinds and take them away again)."""
    _KINDS.pop(name, None)


def kind_names() -> list[str]:
    """Names of the registered kinds, in registration order."""
    return list(_KINDS)


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``; an unknown name raises :class:`ParameterError` naming the known ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ParameterError(f"unknown model kind {name!r}; known: {', '.join(_KINDS) or 'none'}") from None


def default_kind(label_names: list[str]) -> tuple[str, str]:
    """The kind ``soundloom train`` uses when none is asked, for a store with ``label_names``, and why.

    Pitch-labelled data (notes) gets ``ddsp``: its f0 is the asked pitch, where a cvae given 15 CPU-minutes
    lands within 50 cents for 0.38 of its notes; everything else gets ``cvae``, the most recognised and
    closest to real at equal CPU budgets (README, "The model family at equal CPU budgets").
    """
    if "pitch" in label_names:
        return "ddsp", "the store has pitch labels: ddsp synthesises at the asked pitch"
    return "cvae", "no pitch labels: cvae"
