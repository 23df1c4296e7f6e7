"""Headroom: the joins a stream picks from, in a model's order and in the seam distance's own (the oracle)."""

import numpy as np

from soundloom.streams.catalog import ChunkCatalog
from soundloom.streams.transitions.evaluation import choice_headroom, first_picks


def test_first_picks_take_passing_candidates_in_score_order():
    scores = np.array([[3.0, 2.0, 1.0, -np.inf], [0.0, 1.0, 2.0, 3.0]])
    passing = np.array([[True, False, True, True], [True, True, True, True]])
    dist = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    # row 0: column 1 fails and column 3 is no candidate; row 1: best two by score
    assert first_picks(scores, passing, dist, pick=2).tolist() == [1.0, 3.0, 8.0, 7.0]


def test_no_order_beats_the_oracle_and_candidates_stay_within_each_models_top(pool, features_run):
    with ChunkCatalog(pool, create=False) as c:
        songs = [s.id for s in c.songs()]
        got = choice_headroom(c, ["features", str(features_run)], songs, anchors=6, top=4, pick=1, seed=1)
    assert got["anchors"] == 6 and got["pick"] == 1 and 0 < got["passing_per_anchor"] <= 8
    for m in got["models"].values():  # the oracle orders a model's own candidates by the figure judged
        assert m["oracle"] <= m["first"] + 1e-9
    assert got["oracle"] <= got["random"] + 1e-9
