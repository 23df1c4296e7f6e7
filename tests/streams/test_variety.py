"""Endless streams keep finding new material: no repeated runs of chunks, the pool covered."""

import numpy as np

from soundloom.streams.catalog import ChunkTable
from soundloom.streams.config import SearchConfig
from soundloom.streams.index import PoolEmbeddings
from soundloom.streams.search import NextChunkChooser, iter_greedy, repetition


def synthetic_pool(n: int, per_song: int = 20, dim: int = 16, seed: int = 0):
    """A table of ``n`` chunks and embeddings in which a few heads score high after every tail (hubs)."""
    rng = np.random.default_rng(seed)
    spec = np.abs(rng.standard_normal((n, 128))).astype(np.float32)
    spec /= np.linalg.norm(spec, axis=1, keepdims=True)
    level = np.full(n, -20.0, np.float32)
    table = ChunkTable(
        np.arange(n),
        np.arange(n) // per_song,
        np.arange(n) % per_song,
        np.zeros(n, np.int64),
        np.full(n, 66150),
        level,
        level,
        np.zeros(n, np.float32),
        level,
        level,
        spec,
        spec.copy(),
    )
    tails = rng.standard_normal((n, dim)).astype(np.float32)
    heads = rng.standard_normal((n, dim)).astype(np.float32)
    heads[:30] += 3 * tails.mean(0)  # hubs: greedy search returns to them again and again
    return table, PoolEmbeddings(tails, heads, "synthetic")


def greedy_rows(table, emb, cfg: SearchConfig, steps: int) -> np.ndarray:
    it = iter_greedy(NextChunkChooser(table, emb, cfg), cfg.seed)
    return np.array([next(it)[0] for _ in range(steps)])


def test_long_greedy_stream_repeats_no_run_of_three():
    table, emb = synthetic_pool(300)
    cfg = SearchConfig(seam_filter=False)
    rows = greedy_rows(table, emb, cfg, 2000)  # almost 7 passes over the pool
    rep = repetition(rows, len(table))
    assert rep["repeated_runs_3"] == 0
    assert rep["coverage"] > 0.9
    # the same search without the memory of joins and the coverage term falls into a cycle
    old = greedy_rows(table, emb, SearchConfig(seam_filter=False, transition_memory=0, coverage=0.0), 2000)
    assert repetition(old, len(table))["repeated_runs_3"] > 100


def test_repetition_counts_repeated_runs():
    rep = repetition(np.array([1, 2, 3, 4, 1, 2, 3, 9, 2, 3, 4]), 20)
    assert rep["repeated_runs_3"] == 2 and rep["distinct_chunks"] == 5 and rep["coverage"] == 0.25


def test_coverage_spreads_over_the_pool():
    table, emb = synthetic_pool(400)
    with_cov = repetition(greedy_rows(table, emb, SearchConfig(seam_filter=False, reuse_window=50), 600), 400)
    without = repetition(
        greedy_rows(table, emb, SearchConfig(seam_filter=False, reuse_window=50, coverage=0.0), 600), 400
    )
    assert with_cov["distinct_chunks"] > without["distinct_chunks"]
