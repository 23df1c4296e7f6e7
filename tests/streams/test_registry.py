"""The scorer registry: a scorer defined here (outside soundloom) trains, saves, loads and searches
through the same public functions as the built-in ones."""

from __future__ import annotations

import json

import grimp
import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError, ParameterError
from soundloom.streams.transitions import (
    TrainContext,
    build_scorer,
    get_kind,
    load_scorer,
    model_kwargs,
    model_names,
    register,
    unregister,
)
from soundloom.streams.transitions.base import TransitionScorer


class LevelScorer(TransitionScorer):
    """Toy model: a join scores -(level(A's tail) - level(B's head))^2 in units of ``spread_db``."""

    name = "toy-level"

    def __init__(self, sample_rate: int = 22050, window_s: float = 0.1, spread_db: float = 6.0):
        n = int(window_s * sample_rate)
        super().__init__(sample_rate, n, n)
        self.window_s = window_s
        self.register_buffer("spread_db", torch.tensor(float(spread_db)))

    def config(self) -> dict:
        return {"sample_rate": self.sample_rate, "window_s": self.window_s}

    def _level(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * torch.log10(x.pow(2).mean(1) + 1e-10) / self.spread_db

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        t = self._level(self.fit_tails(tails))
        return torch.stack([2 * t, -t * t, torch.ones_like(t)], 1)

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        h = self._level(self.fit_heads(heads))
        return torch.stack([h, torch.ones_like(h), -h * h], 1)


def train_level(scorer: LevelScorer, ctx: TrainContext) -> dict:
    """'Training': the spread of chunk levels over the training songs."""
    levels = [10 * np.log10(np.mean(ctx.audio[s] ** 2) + 1e-10) for s in ctx.split["train"]]
    scorer.spread_db.fill_(max(1.0, float(np.std(levels))))
    return {"spread_db": float(scorer.spread_db), "songs": len(levels)}


@pytest.fixture
def toy():
    kind = register(LevelScorer, train=train_level, cli_options={"window": "window_s"})
    yield kind
    unregister(LevelScorer.name)


def test_built_in_scorers_are_registered():
    assert {"features", "contrastive", "fusion", "cnn-lstm"} <= set(model_names())
    assert get_kind("features").by_name and not get_kind("contrastive").by_name
    with pytest.raises(ParameterError, match="unknown transition model 'transformer'"):
        get_kind("transformer")


def test_cli_options_map_into_nested_configs():
    assert model_kwargs("fusion", width=16, side_s=None) == {"contrastive": {"width": 16}}
    assert model_kwargs("contrastive", width=16) == {"width": 16}
    assert model_kwargs("cnn-lstm", side_s=0.5, width=None) == {"side_s": 0.5}
    with pytest.raises(ParameterError, match="--width does not apply to model 'cnn-lstm'.*--side-s"):
        model_kwargs("cnn-lstm", width=16)


def test_registering_another_class_under_a_taken_name_fails(toy):
    class Other(LevelScorer):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register(Other, train=train_level)
    assert register(LevelScorer, train=train_level).cls is LevelScorer  # the same class again is fine


def test_a_scorer_defined_outside_trains_loads_and_searches(toy, pool, tmp_path):
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.index import load_pool_embeddings
    from soundloom.streams.search import SearchConfig, build_stream
    from soundloom.streams.transitions.training import train_transitions

    assert model_kwargs("toy-level", window=0.05) == {"window_s": 0.05}
    run = tmp_path / "toy"
    # fallback off: the toy loses to `features` on the validation song, and this test is about the registry
    cfg = train_transitions(pool, "toy-level", run, model_kwargs={"window_s": 0.05}, fallback=False)
    assert cfg["model"] == "toy-level" and cfg["config"]["window_s"] == 0.05
    assert cfg["metrics"]["songs"] == len(cfg["split"]["train"]) and "train_seconds" in cfg["metrics"]
    spread = cfg["metrics"]["spread_db"]

    back = load_scorer(run)
    assert type(back) is LevelScorer and back.tail_samples == int(0.05 * 22050)
    assert float(back.spread_db) == pytest.approx(spread)  # the fitted buffer came back from safetensors
    loud, quiet = 0.5 * torch.ones(1, 2000), 0.01 * torch.ones(1, 2000)
    assert float(back.score_pairs(loud, loud)) > float(back.score_pairs(loud, quiet))

    with ChunkCatalog(pool, create=False) as catalog:
        emb = load_pool_embeddings(catalog, run)
        assert emb.model == "toy-level" and emb.tails.shape == (len(catalog.chunks()), 3)
        plan = build_stream(catalog, emb, SearchConfig(minutes=0.1, seed=0))
    assert len(plan.rows) >= 2


def test_unknown_model_in_a_run_is_a_model_file_error(tmp_path):
    build_scorer("features").save(tmp_path / "r")
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    (tmp_path / "r" / "config.json").write_text(json.dumps({**cfg, "model": "gone"}))
    with pytest.raises(ModelFileError, match="config.json: unknown transition model 'gone'"):
        load_scorer(tmp_path / "r")
    with pytest.raises(ModelFileError, match="not a transition run"):
        load_scorer(tmp_path / "missing")


def test_base_and_registry_import_no_scorer():
    graph = grimp.build_graph("soundloom")
    pkg = "soundloom.streams.transitions"
    scorers = {f"{pkg}.{m}" for m in ("features", "contrastive", "fusion", "cnnlstm", "training")}
    for leaf in (f"{pkg}.base", f"{pkg}.registry"):
        assert not graph.find_modules_directly_imported_by(leaf) & scorers
