"""Evaluate transition models on test songs (split by song): AUC per negative kind, top-1 and MRR.

* ROC AUC of true next pairs against other-song, same-song and hard (reversed, shifted) negatives.
* Ranking: for each test chunk A with a successor, the true next chunk among 100 candidates (up to
  49 other chunks of A's song, the rest from other test songs); top-1 accuracy and MRR.
* Seams of a rendered stream over the test songs (see :mod:`soundloom.streams.seams`: the three
  gates, click rate, onset anomaly, seam distance), with the same figures at random positions inside
  the same songs and at natural chunk boundaries, and how much the stream repeats itself.
* First choices: each test chunk joined, as the stream joins, to the chunk the model scores best among
  the test chunks (never itself or its own successor), and judged by the same seam figures; next to a
  random choice, and paired with ``features``' choice for the same chunk (:func:`first_choice_seams`).
  A stream of a small pool has a few dozen joins, all shaped by the search's gates and variety rules;
  this judges what the model itself prefers, on every test chunk, and can tell two models apart when
  both streams pass every gate.
* Headroom (:func:`choice_headroom`, for benchmarks): the joins a stream picks from, in each model's order and
  in the seam distance's own order, so that how much smoother any scorer could make them is measured.

    soundloom eval-transitions POOL --model features --model runs/tr-contrastive --json
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ...core.errors import PoolError
from ...core.progress import ProgressCallback, null_progress
from ..catalog import ChunkCatalog, ChunkTable
from ..index import embed_chunks
from ..pairs import KINDS, SongAudio, chunk_windows, make_pairs, open_split, pair_windows
from .base import TransitionScorer, run_info
from .registry import load_scorer


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def ranking_candidates(
    table: ChunkTable, seed: int = 0, n: int = 100, same: int = 50, max_anchors: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Anchors ``(m,)`` and candidates ``(m, n)`` (positions in ``table``); column 0 is the true next chunk.

    Up to ``same - 1`` other chunks of the anchor's song (never the anchor itself), the rest from
    other songs.
    """
    rng = np.random.default_rng(seed)
    succ = table.successor()
    anchors = np.flatnonzero(succ >= 0)
    if max_anchors is not None and len(anchors) > max_anchors:
        anchors = np.sort(rng.choice(anchors, size=max_anchors, replace=False))
    cands = np.zeros((len(anchors), n), dtype=np.int64)
    for r, a in enumerate(anchors):
        j = succ[a]
        same_rows = np.flatnonzero(
            (table.song_id == table.song_id[a]) & (np.arange(len(table)) != a) & (np.arange(len(table)) != j)
        )
        other_rows = np.flatnonzero(table.song_id != table.song_id[a])
        k_same = min(same - 1, len(same_rows))
        k_other = min(n - 1 - k_same, len(other_rows))
        picks = [rng.choice(same_rows, k_same, replace=False), rng.choice(other_rows, k_other, replace=False)]
        row = np.concatenate([[j], *picks])
        if len(row) < n:  # tiny pools: pad with repeats of other chunks (scored the same, counted once)
            row = np.concatenate([row, rng.choice(row[1:] if len(row) > 1 else row, n - len(row))])
        cands[r] = row
    return anchors, cands


def rank_from_scores(scores: np.ndarray) -> dict:
    """Top-1 accuracy and MRR from candidate scores ``(m, n)`` whose column 0 is the true one."""
    if len(scores) == 0:
        return {"top1": float("nan"), "mrr": float("nan"), "anchors": 0}
    rank = 1 + (scores[:, 1:] > scores[:, :1]).sum(1) + 0.5 * (scores[:, 1:] == scores[:, :1]).sum(1)
    return {"top1": float(np.mean(rank == 1)), "mrr": float(np.mean(1.0 / rank)), "anchors": int(len(scores))}


def rank_metrics(score_matrix: np.ndarray, table: ChunkTable, seed: int = 0, max_anchors: int | None = None) -> dict:
    """Top-1 / MRR among 100 candidates from a full tail x head score matrix ``(n, n)`` over ``table``."""
    anchors, cands = ranking_candidates(table, seed, max_anchors=max_anchors)
    return rank_from_scores(score_matrix[anchors[:, None], cands])


def pair_scores(scorer: TransitionScorer, tails: np.ndarray, heads: np.ndarray, batch: int = 256) -> np.ndarray:
    """Scores ``(n,)`` of windows ``tails (n, W)``, ``heads (n, W)`` pairwise."""
    out = []
    with torch.no_grad():
        for i in range(0, len(tails), batch):
            out.append(
                scorer.score_pairs(
                    torch.from_numpy(tails[i : i + batch]), torch.from_numpy(heads[i : i + batch])
                ).numpy()
            )
    return np.concatenate(out) if out else np.zeros(0, np.float32)


#: Test chunks whose first choice is joined and judged (a seeded sample when there are more).
FIRST_CHOICE_ANCHORS = 400


def without_own_and_successor(scores: np.ndarray, own: np.ndarray, succ: np.ndarray) -> np.ndarray:
    """A float64 copy of ``scores (m, n)`` with each row's own column ``own[i]`` and its successor's ``succ[i]``
    (-1: none) at ``-inf``: the joins a stream never makes (a chunk to itself, a song played on as written)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    rows = np.arange(len(s))
    s[rows, own] = -np.inf
    has = succ >= 0
    s[rows[has], succ[has]] = -np.inf
    return s


def first_choices(scores: np.ndarray, own: np.ndarray, succ: np.ndarray) -> np.ndarray:
    """Each row's best-scored column ``(m,)`` of ``scores (m, n)``, never its own column ``own[i]`` nor its
    successor's ``succ[i]`` (-1: none)."""
    return without_own_and_successor(scores, own, succ).argmax(1)


def choice_seams(catalog, a_rows: np.ndarray, b_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Seam figures ``(n,)`` of the joins ``a_rows[i] -> b_rows[i]`` (rows of the pool's chunk table), rendered
    as the stream renders them (:class:`~soundloom.streams.seams.SeamVerifier`, default render options):
    ``pass`` (the three gates), ``verified`` (the search's verifier: the gates and the onset gate),
    ``seam_distance_db``, ``onset_anomaly``; NaN where a song is too short."""
    from ..config import RenderConfig
    from ..seams import SeamVerifier

    verifier = SeamVerifier(catalog, RenderConfig(), distance=True)
    got = [verifier.measure(int(a), int(b)) for a, b in zip(a_rows, b_rows)]
    nan = float("nan")
    return {
        "pass": np.array([g.get("pass_gates", nan) for g in got], dtype=np.float64),
        "verified": np.array([g["pass"] for g in got], dtype=np.float64),
        "seam_distance_db": np.array([g.get("seam_distance_db", nan) for g in got], dtype=np.float64),
        "onset_anomaly": np.array([g.get("onset_anomaly", nan) for g in got], dtype=np.float64),
    }


def _choice_summary(m: dict[str, np.ndarray], choices: np.ndarray) -> dict:
    from ..seams import median_interval

    med, lo, hi = median_interval(m["seam_distance_db"])
    return {
        "n": int(np.isfinite(m["pass"]).sum()),
        "pass_all": float(np.nanmean(m["pass"])) if np.isfinite(m["pass"]).any() else float("nan"),
        "median_seam_distance_db": med,
        "seam_distance_db_95": [lo, hi],
        "median_onset_anomaly": float(np.nanmedian(m["onset_anomaly"]))
        if np.isfinite(m["onset_anomaly"]).any()
        else float("nan"),
        "choices": [int(c) for c in choices],
        "seam_distance_each_db": [float(v) for v in m["seam_distance_db"]],
    }


def first_choice_anchors(table: ChunkTable, test_ids: list[int], seed: int = 0) -> np.ndarray:
    """Rows of the pool's chunk table whose first choice is judged: the test songs' chunks (a seeded sample
    of :data:`FIRST_CHOICE_ANCHORS` when there are more)."""
    rows = np.flatnonzero(np.isin(table.song_id, test_ids))
    if len(rows) > FIRST_CHOICE_ANCHORS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, FIRST_CHOICE_ANCHORS, replace=False))
    return rows


def first_choice_seams(catalog, tails: np.ndarray, heads: np.ndarray, test_ids: list[int], seed: int = 0) -> dict:
    """Seam figures of each judged test chunk's join to the test chunk the model scores best (not itself,
    not its successor): embeddings ``tails``, ``heads`` ``(n, D)`` of the test chunks in table order."""
    table = catalog.chunks()
    rows = np.flatnonzero(np.isin(table.song_id, test_ids))
    sub = table.subset(rows)
    where = {int(r): i for i, r in enumerate(rows)}
    anchors = first_choice_anchors(table, test_ids, seed)
    idx = np.array([where[int(a)] for a in anchors], dtype=np.int64)
    best = first_choices(tails[idx] @ heads.T, idx, sub.successor()[idx])
    return _choice_summary(choice_seams(catalog, anchors, rows[best]), rows[best])


def random_choice_seams(catalog, test_ids: list[int], seed: int = 0) -> dict:
    """:func:`first_choice_seams` with a random choice (seeded) instead of a model's."""
    table = catalog.chunks()
    rows = np.flatnonzero(np.isin(table.song_id, test_ids))
    anchors = first_choice_anchors(table, test_ids, seed)
    rng = np.random.default_rng(seed + 1)
    succ = table.successor()
    picks = []
    for a in anchors:
        allowed = rows[(rows != a) & (rows != succ[a])]
        picks.append(int(rng.choice(allowed)) if len(allowed) else int(a))
    picks = np.array(picks, dtype=np.int64)
    return _choice_summary(choice_seams(catalog, anchors, picks), picks)


def paired_with(mine: dict, base: dict) -> dict:
    """How often this model's first choice joins more smoothly (smaller seam distance) than ``base``'s for
    the same test chunk, among the chunks where the two choose differently; ties count half."""
    a = np.array(mine["seam_distance_each_db"])
    b = np.array(base["seam_distance_each_db"])
    differ = (np.array(mine["choices"]) != np.array(base["choices"])) & np.isfinite(a) & np.isfinite(b)
    if not differ.any():
        return {"differ": 0, "smoother": float("nan"), "median_difference_db": float("nan")}
    d = a[differ] - b[differ]
    return {
        "differ": int(differ.sum()),
        "smoother": float(np.mean(d < 0) + 0.5 * np.mean(d == 0)),
        "median_difference_db": float(np.median(d)),
    }


def evaluate_scorer(
    scorer: TransitionScorer,
    catalog: ChunkCatalog,
    test_ids: list[int],
    seed: int = 0,
    max_anchors: int | None = None,
    first_choice: bool = False,
) -> dict:
    """AUC per negative kind and ranking metrics of one scorer on the songs ``test_ids``; with
    ``first_choice`` (embedding scorers), the seams of its first choices (:func:`first_choice_seams`)."""
    table_all, songs = catalog.chunks(), catalog.song_map()
    audio = SongAudio(songs, catalog.sample_rate)
    t0 = time.time()
    pairs = make_pairs(table_all, songs, test_ids, catalog.sample_rate, seed=seed)
    tails, heads = pair_windows(audio, pairs, scorer.edge_samples, scorer.edge_samples)
    if max_anchors is not None and scorer.embeds is False:
        keep = np.random.default_rng(seed).random(len(pairs)) < min(1.0, 5 * max_anchors / max(1, len(pairs)))
        pairs, tails, heads = pairs.select(keep), tails[keep], heads[keep]
    s = pair_scores(scorer, tails, heads)
    pos = s[pairs.kind == 0]
    out: dict = {"model": scorer.name}
    for k, kind in enumerate(KINDS[1:], start=1):
        out[f"auc_{kind}"] = roc_auc(pos, s[pairs.kind == k])
    out["auc_hard"] = roc_auc(pos, s[(pairs.kind == 3) | (pairs.kind == 4)])
    sub = table_all.subset(np.flatnonzero(np.isin(table_all.song_id, test_ids)))
    anchors, cands = ranking_candidates(sub, seed, max_anchors=max_anchors)
    if scorer.embeds:
        te, he = embed_chunks(scorer, audio, sub)
        scores = np.einsum("md,mnd->mn", te[anchors], he[cands])
    else:
        t_w, h_w = chunk_windows(audio, sub, np.arange(len(sub)), scorer.edge_samples)
        flat_a = np.repeat(anchors, cands.shape[1])
        scores = pair_scores(scorer, t_w[flat_a], h_w[cands.ravel()]).reshape(cands.shape)
    out.update(rank_from_scores(scores))
    if first_choice and scorer.embeds:
        out["first_choice"] = first_choice_seams(catalog, te, he, test_ids, seed)
    out["eval_seconds"] = time.time() - t0
    return out


def evaluate_runs(
    pool: str | Path,
    runs: list[str],
    seed: int = 0,
    max_anchors: int | None = None,
    stream_minutes: float = 0.0,
    progress: ProgressCallback = null_progress,
    holdout_package: str | None = None,
) -> dict:
    """Evaluate each run (or "features") on the pool's test songs; optionally render and judge a stream per run.

    The split comes from the first trained run's config (``split_seed``, ``holdout_package``), else
    from ``seed``; ``holdout_package`` tests on that package's songs (leave one package out).
    """
    rows = []
    with ChunkCatalog(pool, create=False) as catalog:
        split_seed = next(
            (run_info(r).get("split_seed") for r in runs if run_info(r).get("split_seed") is not None), seed
        )
        holdout = holdout_package or next(
            (run_info(r)["holdout_package"] for r in runs if run_info(r).get("holdout_package")), None
        )
        split = open_split(catalog, seed=split_seed, holdout=holdout)
        test_ids = split["test"]
        if not test_ids:
            raise PoolError(pool, "no test songs (need at least 3 songs)")
        references: dict = {}
        for i, run in enumerate(runs):
            progress("evaluating", i, len(runs))
            scorer = load_scorer(run, sample_rate=catalog.sample_rate)
            row = {
                "run": str(run),
                **evaluate_scorer(scorer, catalog, test_ids, seed=seed, max_anchors=max_anchors, first_choice=True),
            }
            if run_info(run).get("fallback"):
                row["fallback"] = run_info(run)["fallback"]
            if stream_minutes > 0 and scorer.embeds:
                row["seams"] = stream_seam_report(
                    catalog, run, test_ids, minutes=stream_minutes, seed=seed, references=references
                )
            rows.append(row)
        progress("evaluating", len(runs), len(runs))
        _pair_first_choices(rows)
        return {
            "pool": str(pool),
            "split_seed": split_seed,
            "holdout_package": split.get("package"),
            "test_songs": len(test_ids),
            "test_chunks": int(np.isin(catalog.chunks().song_id, test_ids).sum()),
            "models": rows,
            "first_choice_random": random_choice_seams(catalog, test_ids, seed),
        }


def _pair_first_choices(rows: list[dict]) -> None:
    """Add to each row with first choices their comparison with ``features``' (the run named so, else the first
    row whose model is features), paired by test chunk."""
    named = [r for r in rows if r["run"] == "features" and "first_choice" in r]
    base = (named or [r for r in rows if r["model"] == "features" and "first_choice" in r] or [None])[0]
    if base is None:
        return
    for r in rows:
        if "first_choice" in r and r is not base:
            r["first_choice"]["vs_features"] = paired_with(r["first_choice"], base["first_choice"])


def first_picks(scores: np.ndarray, passing: np.ndarray, dist: np.ndarray, pick: int) -> np.ndarray:
    """Seam distances of the first ``pick`` passing candidates of each row, in the order of ``scores`` ``(m, n)``
    (higher first; ``-inf``: not a candidate); ``passing``, ``dist`` ``(m, n)``. Concatenated over rows."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = []
    for i in range(len(scores)):
        take = [j for j in order[i] if np.isfinite(scores[i, j]) and passing[i, j]][:pick]
        out.append(dist[i, take])
    return np.concatenate(out) if out else np.zeros(0)


def choice_headroom(
    catalog,
    runs: list[str],
    song_ids: list[int],
    anchors: int | None = None,
    top: int | None = None,
    pick: int | None = None,
    seed: int = 0,
) -> dict:
    """How much smoother the joins a stream picks could be, with any scorer, on the songs ``song_ids``.

    For each anchor chunk (a seeded sample of ``anchors`` of the songs' chunks; all by default), each model's
    ``top`` best-scored chunks of the songs (all by default; the search's index returns
    ``SearchConfig.candidates``), never the anchor itself nor its successor, are joined as the stream joins them
    (:class:`~soundloom.streams.seams.SeamVerifier`). Of those that pass the verifier (three gates and the onset
    gate), the first ``pick`` (default ``SearchConfig.pick_among``, the ones a stream picks from at random) are
    judged in the model's order (``first``) and in the seam distance's own order within the same candidates
    (``oracle``: the best any scorer can do there), and in a random order within the union of the models'
    candidates (``random``). Leaves out the stream's variety rules, which narrow every scorer's choice alike.

    Returns median seam distances (dB): ``{"models": {run: {"first", "oracle"}}, "random", "oracle"}`` (the last
    within the union), ``anchors`` and ``passing_per_anchor`` (mean passing candidates in the union).
    """
    from ..config import SearchConfig

    pick = pick or SearchConfig().pick_among
    table = catalog.chunks()
    rows = np.flatnonzero(np.isin(table.song_id, song_ids))
    sub = table.subset(rows)
    rng = np.random.default_rng(seed)
    mine = np.arange(len(rows)) if anchors is None or anchors >= len(rows) else rng.choice(len(rows), anchors, False)
    mine = np.sort(mine)
    audio = SongAudio(catalog.song_map(), catalog.sample_rate)
    succ = sub.successor()
    scores = {}
    for run in runs:
        t, h = embed_chunks(load_scorer(run, sample_rate=catalog.sample_rate), audio, sub)
        s = without_own_and_successor(t[mine] @ h.T, mine, succ[mine])
        if top is not None and top < len(rows):  # only the index's best ``top`` are candidates
            cut = -np.sort(-s, axis=1)[:, top - 1 : top]
            s = np.where(s >= cut, s, -np.inf)
        scores[run] = s
    union = np.logical_or.reduce([np.isfinite(s) for s in scores.values()])
    ii, jj = np.nonzero(union)
    seams = choice_seams(catalog, rows[mine[ii]], rows[jj])
    dist = np.full(union.shape, np.nan)
    passing = np.zeros(union.shape, dtype=bool)
    dist[ii, jj] = seams["seam_distance_db"]
    passing[ii, jj] = (seams["verified"] == 1.0) & np.isfinite(seams["seam_distance_db"])
    smooth = -np.nan_to_num(dist, nan=np.inf)

    def med(v: np.ndarray) -> float:
        return float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")

    return {
        "models": {
            run: {
                "first": med(first_picks(s, passing, dist, pick)),
                "oracle": med(first_picks(np.where(np.isfinite(s), smooth, -np.inf), passing, dist, pick)),
            }
            for run, s in scores.items()
        },
        "random": med(first_picks(np.where(union, rng.random(union.shape), -np.inf), passing, dist, pick)),
        "oracle": med(first_picks(np.where(union, smooth, -np.inf), passing, dist, pick)),
        "anchors": int(len(mine)),
        "passing_per_anchor": float((passing & union).sum(1).mean()) if len(mine) else 0.0,
        "pick": int(pick),
    }


def stream_seam_report(
    catalog,
    run: str | Path,
    song_ids: list[int],
    minutes: float = 10.0,
    seed: int = 0,
    verify: bool = True,
    render_kwargs: dict | None = None,
    references: dict | None = None,
    **search_kwargs,
) -> dict:
    """Render a stream from the chunks of ``song_ids`` with ``run`` and judge its joins against references.

    ``references``: a dict shared by the calls of one evaluation, so that the references (seeded, the same
    for every model) are measured once."""
    from ..config import RenderConfig, SearchConfig
    from ..index import load_pool_embeddings
    from ..render import render_stream
    from ..seams import SeamVerifier, reference_positions, seam_metrics, summarise
    from ..search import build_stream

    table = catalog.chunks()
    allowed = np.isin(table.song_id, song_ids)
    emb = load_pool_embeddings(catalog, run)
    cfg = SearchConfig(minutes=minutes, seed=seed, **search_kwargs)
    rcfg = RenderConfig(**(render_kwargs or {}))
    plan = build_stream(catalog, emb, cfg, allowed=allowed, verifier=SeamVerifier(catalog, rcfg) if verify else None)
    wav, cue = render_stream(catalog, plan, rcfg)
    rate = cue["sample_rate"]
    joins = np.array([int(round(s["output_start_s"] * rate)) for s in cue["segments"][1:]])
    stream = summarise(seam_metrics(wav, joins, rate, distance=True))
    references = {} if references is None else references
    key = (tuple(song_ids), max(1000, len(joins)), seed)
    if key not in references:
        references[key] = reference_positions(catalog, song_ids, n=key[1], seed=seed)
    ref = references[key]
    natural_joins = sum(1 for s in cue["segments"][1:] if s.get("natural"))
    return {
        "stream": stream,
        "repetition": {k: v for k, v in cue["summary"].items() if k != "joins"},
        **ref,
        "joins": len(joins),
        "natural_joins": natural_joins,
        "minutes": len(wav) / rate / 60.0,
        "crossfade_ms": rcfg.crossfade_ms,
        "verified": verify,
    }
