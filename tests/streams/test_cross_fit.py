"""Small pools: a fusion's fallback decision made over every non-test song, cross-fitted."""

import numpy as np
import pytest

from soundloom.streams.transitions import load_scorer
from soundloom.streams.transitions.contrastive import ContrastiveEnsemble
from soundloom.streams.transitions.features import FeatureScorer
from soundloom.streams.transitions.fusion import FusionScorer
from soundloom.streams.transitions.training import (
    CROSS_FIT_BELOW_VAL_SONGS,
    choose_weights,
    cross_fitted,
    song_folds,
    train_transitions,
)

TINY_C = {"width": 8, "dim": 4, "frames": 8}


def test_song_folds_partition_every_song_once():
    folds = song_folds([5, 1, 9, 3, 7, 2, 8], 3, seed=0)
    assert sorted(s for f in folds for s in f) == [1, 2, 3, 5, 7, 8, 9]
    assert sorted(len(f) for f in folds) == [2, 2, 3]
    assert folds == song_folds([1, 2, 3, 5, 7, 8, 9], 3, seed=0)  # the order given does not matter


def test_only_few_validation_songs_cross_fit():
    assert cross_fitted({"train": [1, 2, 3, 4, 5], "val": [6]})
    assert not cross_fitted({"train": list(range(10)), "val": list(range(10, 10 + CROSS_FIT_BELOW_VAL_SONGS))})
    assert not cross_fitted({"train": [], "val": [1]})


def test_choose_weights_never_ranks_worse_than_one_part():
    """The options include each part alone, so the chosen weights rank at least as well as the best one."""
    rng = np.random.default_rng(0)
    good = rng.normal(size=(30, 100))
    good[:, 0] += 2.0
    raw = {"contrastive": rng.normal(size=(30, 100)), "features": good}
    w, found = choose_weights(raw)
    assert max(found) >= found[2] and min(w.values()) >= 0.0


def test_small_pool_fusion_validates_out_of_fold_on_every_non_test_song(pool, tmp_path):
    """Four songs (1 val): three members, each trained without one non-test song; every non-test anchor is in
    one fold; the decision follows the cross-fitted MRRs and the run loads as that decision says."""
    run = tmp_path / "run"
    cfg = train_transitions(pool, "fusion", run, steps=3, max_minutes=1.0, model_kwargs={"contrastive": TINY_C})
    m, split = cfg["metrics"], cfg["split"]
    v = m["validation"]
    assert v["cross_fitted"] and v["songs"] == len(split["train"]) + len(split["val"]) == 3 and v["folds"] == 3
    assert sorted(s for f in v["per_fold"] for s in f["songs"]) == sorted(split["train"] + split["val"])
    assert sum(f["anchors"] for f in v["per_fold"]) == v["anchors"] > 0
    assert len(m["members"]) == 3 and m["steps"] == sum(r["steps"] for r in m["members"])
    fell_back = m["val_mrr"] <= m["val_mrr_features"]
    assert (cfg.get("fallback") == "features") == fell_back
    assert isinstance(load_scorer(run / "contrastive"), ContrastiveEnsemble)
    loaded = load_scorer(run)
    assert isinstance(loaded, FeatureScorer if fell_back else FusionScorer)
    if not fell_back:
        assert isinstance(loaded.contrastive, ContrastiveEnsemble) and len(loaded.contrastive.members) == 3


@pytest.mark.parametrize("model", ["contrastive-ensemble"])
def test_ensemble_is_not_trained_alone(pool, tmp_path, model):
    from soundloom.core.errors import ParameterError

    with pytest.raises(ParameterError, match="made by `--model fusion`"):
        train_transitions(pool, model, tmp_path / "e", model_kwargs={"members": [TINY_C]})
