"""Transition scorers (how well does chunk B follow chunk A?), their registry, training and evaluation.

Importing this package registers the built-in scorers (one import line each below); a new scorer
is its own module, which calls :func:`register`, plus its line here.
"""

from . import cnnlstm, contrastive, features, fusion, partials  # noqa: F401  (each registers its scorer)
from .registry import (
    TrainContext,
    build_scorer,
    get_kind,
    load_scorer,
    model_kwargs,
    model_names,
    register,
    scorer_from_config,
    unregister,
)

__all__ = [
    "TrainContext",
    "build_scorer",
    "get_kind",
    "load_scorer",
    "model_kwargs",
    "model_names",
    "register",
    "scorer_from_config",
    "unregister",
]
