"""eval-transitions' first choices: each test chunk joined to the chunk a model scores best, judged by seams."""

import numpy as np

from soundloom.streams.transitions.evaluation import evaluate_runs, first_choices, paired_with


def test_first_choice_is_never_the_chunk_itself_nor_its_successor():
    scores = np.array([[9.0, 8.0, 1.0, 0.0], [0.0, 9.0, 8.0, 7.0]])
    assert first_choices(scores, own=np.array([0, 1]), succ=np.array([1, 2])).tolist() == [2, 3]
    assert first_choices(scores, own=np.array([0, 1]), succ=np.array([-1, -1])).tolist() == [1, 2]


def test_paired_counts_only_chunks_where_the_choices_differ():
    mine = {"choices": [1, 2, 3, 4], "seam_distance_each_db": [5.0, 1.0, 2.0, float("nan")]}
    base = {"choices": [1, 5, 6, 7], "seam_distance_each_db": [5.0, 3.0, 1.0, 1.0]}
    got = paired_with(mine, base)
    assert got["differ"] == 2 and got["smoother"] == 0.5 and got["median_difference_db"] == -0.5


def test_eval_reports_first_choices_next_to_a_random_choice(pool, features_run):
    report = evaluate_runs(pool, ["features", str(features_run)], stream_minutes=0.0)
    base, other = report["models"]
    for fc in (base["first_choice"], other["first_choice"], report["first_choice_random"]):
        assert fc["n"] == report["test_chunks"] and 0.0 <= fc["pass_all"] <= 1.0
        lo, hi = fc["seam_distance_db_95"]
        assert lo <= fc["median_seam_distance_db"] <= hi
    assert "vs_features" not in base["first_choice"] and other["first_choice"]["vs_features"]["differ"] >= 0
