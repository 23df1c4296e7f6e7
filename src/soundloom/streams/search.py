"""Choose the chunk sequence of a stream: greedy (the seed's) or beam search over summed join scores.

Constraints, checked on the top candidates the head index returns (widened when all fail):
* no chunk reused within ``reuse_window`` steps, and no join A -> B made twice within
  ``transition_memory`` steps (greedy and endless streams), so no run of chunks ever repeats;
* remix, not replay: a chunk never follows the chunk it followed in its song, unless
  ``max_natural_run`` > 0 allows runs of up to that many natural joins;
* at most ``max_song_run`` consecutive chunks from one song;
* optional seam filter: skip candidates whose predicted seam (level jump of the 50 ms either side
  after loudness matching, cosine of their spectra) would fail the gates, when any candidate passes;
* coverage: each earlier use of a candidate lowers its score (``coverage`` standard deviations of
  the step's candidate scores), so long streams spread over the pool;
* optional seam verification (``verifier``, see ``seams.SeamVerifier``): one of the best
  ``pick_among`` of the top ``verify_top`` candidates whose join, rendered for real, passes the seam
  and onset gates and is no more onset-like than random positions inside the songs goes first, chosen at
  random (randomness where it costs nothing); failing that, the passing join with the least onset anomaly.

Deterministic for a given ``seed`` (which also picks the start chunk when none is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ParameterError, PoolError
from .config import SearchConfig
from .index import PoolEmbeddings, make_index

#: Predicted-seam thresholds, stricter than the gates in eval.seams (level 4 dB, cosine 0.75): the
#: 128-band edge spectra of the catalog overestimate the cosine of the rendered join.
SEAM_LEVEL_DB = 3.0
SEAM_COSINE = 0.9


@dataclass
class StreamPlan:
    """The chosen chunks (positions in ``catalog.chunks()``), the score of the join into each
    (NaN for the first) and whether that join is the song's own (natural) continuation."""

    rows: np.ndarray
    scores: np.ndarray
    natural: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass
class _State:
    rows: list[int]
    total: float
    natural_run: int
    song_run: int
    scores: list[float]


class NextChunkChooser:
    """Scores and filters next-chunk candidates for one step; shared by greedy, beam and endless streams.

    Args:
        table: the pool's :class:`~soundloom.streams.catalog.ChunkTable`.
        emb: pool embeddings aligned with ``table``.
        cfg: search options.
        allowed: optional mask ``(n,)`` of chunks the stream may use.
    """

    def __init__(self, table, emb: PoolEmbeddings, cfg: SearchConfig, allowed: np.ndarray | None = None, verifier=None):
        self.cfg = cfg
        self.verifier = verifier
        self.table = table
        self.rows = np.flatnonzero(allowed) if allowed is not None else np.arange(len(table))
        if len(self.rows) < 2:
            raise PoolError("the pool has fewer than 2 usable chunks")
        # a pool smaller than twice the reuse window would run dry: shrink the window to fit
        self.reuse_window = min(cfg.reuse_window, len(self.rows) // 2)
        self.tails = emb.tails
        self.index = make_index(emb.heads[self.rows], cfg.index)
        self.succ = table.successor()
        self.song = table.song_id
        self.rel_tail_db = table.tail_rms_db - table.loudness_lufs
        self.rel_head_db = table.head_rms_db - table.loudness_lufs
        self.tail_spec, self.head_spec = table.tail_spec, table.head_spec
        self.uses = np.zeros(len(table), np.int64)
        self.made: dict[tuple[int, int], int] = {}  # join (a, b) -> step it was last made
        self.step = 0
        self.rng = np.random.default_rng(cfg.seed + 1)

    def commit(self, a: int, b: int) -> None:
        """Remember that the stream joined ``a`` -> ``b`` (greedy and endless streams)."""
        self.step += 1
        self.uses[b] += 1
        self.made[(int(a), int(b))] = self.step
        if len(self.made) > 2 * self.cfg.transition_memory:  # forget the oldest half
            cut = self.step - self.cfg.transition_memory
            self.made = {k: v for k, v in self.made.items() if v > cut}

    def _made_recently(self, a: int, cands: np.ndarray) -> np.ndarray:
        cut = self.step - self.cfg.transition_memory
        return np.array([self.made.get((a, int(c)), cut - 1) > cut for c in cands], dtype=bool)

    def candidates(self, state: _State, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Allowed next chunks after ``state`` with their join scores (best first)."""
        a = state.rows[-1]
        k = k or self.cfg.candidates
        recent = np.asarray(state.rows[-self.reuse_window :]) if self.reuse_window > 0 else np.zeros(0)
        relax = 0
        while True:
            scores, local = self.index.search(self.tails[a], k)
            cands = self.rows[local]
            ok = ~np.isin(cands, recent) & (cands != a)
            if relax < 3 and self.made:
                ok &= ~self._made_recently(a, cands)
            if relax < 2:
                ok &= ~((cands == self.succ[a]) & (state.natural_run >= self.cfg.max_natural_run))
            if relax < 1:
                ok &= ~((self.song[cands] == self.song[a]) & (state.song_run >= self.cfg.max_song_run))
            if ok.any():
                cands, scores = cands[ok], scores[ok]
                if self.cfg.seam_filter:
                    good = self.seam_ok(a, cands)
                    if good.any():
                        cands, scores = cands[good], scores[good]
                if self.cfg.coverage > 0 and self.uses[cands].any():
                    spread = float(np.std(scores)) if len(scores) > 1 else 1.0
                    adjusted = scores - self.cfg.coverage * max(spread, 1e-6) * self.uses[cands]
                    order = np.argsort(-adjusted, kind="stable")
                    cands, scores = cands[order], scores[order]  # reordered; the plan keeps true scores
                if self.verifier is not None:
                    cands, scores = self._verified_first(a, cands, scores)
                return cands, scores
            if k < len(self.rows):
                k = min(len(self.rows), 4 * k)
            elif relax < 3:
                relax += 1
            else:
                raise PoolError("no allowed next chunk: the pool is too small for the reuse window")

    def _verified_first(self, a: int, cands: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move one verified candidate to the front. Of the top ``verify_top``, the joins that pass the gates
        and are quiet (onset anomaly no higher than the median at random positions inside the songs, the
        verifier's ``onset_reference``): one of the best ``pick_among`` of those, chosen at random; when none is that
        quiet, the passing one with the least onset anomaly; when none passes, the one that misses the least
        (the seam gates first, then the onset it creates). A verifier with ``passes`` only: one of the best
        ``pick_among`` passing ones."""
        passing: list[tuple[float, int]] = []  # (onset anomaly of the join, position in cands)
        quiet: list[int] = []
        misses: list[tuple[float, int]] = []
        measure = getattr(self.verifier, "measure", None)
        reference = getattr(self.verifier, "onset_reference", None)
        quiet_at = reference() if measure is not None and reference is not None else None
        for i in range(min(self.cfg.verify_top, len(cands))):
            if measure is None:
                ok, miss, onset = self.verifier.passes(a, int(cands[i])), 0.0, 0.0
            else:
                m = measure(a, int(cands[i]))
                ok, onset = m["pass"], float(np.nan_to_num(m.get("onset_anomaly", np.inf), nan=np.inf))
                created = m.get("onset_anomaly", np.inf) - max(m["onset_a"], m["onset_b"])
                miss = (0.0 if m.get("pass_gates") else 1e6) + float(np.nan_to_num(created, nan=1e3, posinf=1e3))
            if ok:
                passing.append((onset, i))
                if quiet_at is None or onset <= quiet_at:
                    quiet.append(i)
                    if len(quiet) >= max(1, self.cfg.pick_among):
                        break
            else:
                misses.append((miss, i))
        if quiet:
            i = quiet[int(self.rng.integers(len(quiet)))]
        elif passing:
            i = min(passing)[1]
        elif misses:
            i = min(misses)[1]
        else:
            return cands, scores
        if i:
            order = np.r_[i, np.delete(np.arange(len(cands)), i)]
            cands, scores = cands[order], scores[order]
        return cands, scores

    def seam_ok(self, a: int, cands: np.ndarray) -> np.ndarray:
        """Predicted seam passes ``(len(cands),)``: matched-level jump and edge-spectrum cosine."""
        level = np.abs(self.rel_tail_db[a] - self.rel_head_db[cands])
        cos = self.head_spec[cands] @ self.tail_spec[a]
        return (level <= SEAM_LEVEL_DB) & (cos >= SEAM_COSINE)

    def advance(self, state: _State, row: int, score: float) -> _State:
        a = state.rows[-1]
        natural = int(self.succ[a] == row)
        return _State(
            state.rows + [int(row)],
            state.total + float(score),
            state.natural_run + 1 if natural else 0,
            state.song_run + 1 if self.song[row] == self.song[a] else 1,
            state.scores + [float(score)],
        )

    def start_state(self, rng: np.random.Generator) -> _State:
        if self.cfg.start is not None:
            pos = np.flatnonzero(self.table.id == self.cfg.start)
            if len(pos) == 0 or pos[0] not in set(self.rows.tolist()):
                raise ParameterError(f"start chunk {self.cfg.start} is not in the pool")
            first = int(pos[0])
        else:
            first = int(rng.choice(self.rows))
        return _State([first], 0.0, 0, 1, [float("nan")])


def _pick(cands: np.ndarray, scores: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return 0
    p = np.exp((scores - scores.max()) / temperature)
    return int(rng.choice(len(cands), p=p / p.sum()))


def iter_greedy(chooser: NextChunkChooser, seed: int = 0):
    """Endless greedy stream: yields ``(row, score, natural)``, the first with score NaN."""
    rng = np.random.default_rng(seed)
    state = chooser.start_state(rng)
    yield state.rows[0], float("nan"), False
    while True:
        cands, scores = chooser.candidates(state)
        i = _pick(cands, scores, chooser.cfg.temperature, rng)
        prev = state.rows[-1]
        chooser.commit(prev, int(cands[i]))
        state = chooser.advance(state, int(cands[i]), float(scores[i]))
        # keep memory bounded in endless mode: only the reuse window matters
        if len(state.rows) > 2 * chooser.reuse_window + 2:
            state.rows = state.rows[-chooser.reuse_window - 1 :]
            state.scores = state.scores[-1:]
        yield int(cands[i]), float(scores[i]), bool(chooser.succ[prev] == cands[i])


def build_stream(
    catalog, emb: PoolEmbeddings, cfg: SearchConfig, allowed: np.ndarray | None = None, verifier=None
) -> StreamPlan:
    """Plan a stream of ``cfg.minutes`` (or ``cfg.steps`` chunks) over the pool.

    ``verifier`` (a ``seams.SeamVerifier``) checks the top candidates' joins on real audio.
    """
    table = catalog.chunks()
    if len(emb) != len(table):
        raise PoolError(f"embeddings cover {len(emb)} chunks but the pool has {len(table)}; re-embed")
    songs = catalog.song_map()
    seconds = (table.end - table.start) / np.array([songs[int(s)].sample_rate for s in table.song_id])
    chooser = NextChunkChooser(table, emb, cfg, allowed, verifier)
    target_s = cfg.minutes * 60.0

    def done(n_rows: int, dur: float) -> bool:
        return n_rows >= cfg.steps if cfg.steps is not None else dur >= target_s

    if cfg.method == "greedy":
        rows, scores, natural, dur = [], [], [], 0.0
        for row, score, nat in iter_greedy(chooser, cfg.seed):
            rows.append(row), scores.append(score), natural.append(nat)
            dur += seconds[row]
            if done(len(rows), dur):
                break
    else:
        rows, scores = _beam(chooser, seconds, cfg, done)
        natural = [False] + [bool(chooser.succ[a] == b) for a, b in zip(rows[:-1], rows[1:])]
    return StreamPlan(
        np.asarray(rows, np.int64),
        np.asarray(scores, np.float64),
        np.asarray(natural, bool),
        {"method": cfg.method, "seed": cfg.seed, "model": emb.model, "pool_chunks": int(len(chooser.rows))},
    )


def repetition(rows: np.ndarray, pool_chunks: int, run: int = 3) -> dict:
    """How much a chunk sequence repeats itself: runs of ``run`` consecutive chunks seen before in the
    sequence, distinct chunks and coverage (distinct / ``pool_chunks``)."""
    rows = [int(r) for r in rows]
    seen: set[tuple[int, ...]] = set()
    repeated = 0
    for i in range(len(rows) - run + 1):
        key = tuple(rows[i : i + run])
        repeated += key in seen
        seen.add(key)
    distinct = len(set(rows))
    return {
        f"repeated_runs_{run}": repeated,
        "distinct_chunks": distinct,
        "pool_chunks": int(pool_chunks),
        "coverage": distinct / max(1, pool_chunks),
    }


def _beam(chooser: NextChunkChooser, seconds: np.ndarray, cfg: SearchConfig, done) -> tuple[list[int], list[float]]:
    """Beam search keeping ``beam_width`` partial streams by summed join score."""
    rng = np.random.default_rng(cfg.seed)
    beams = [chooser.start_state(rng)]
    dur = seconds[beams[0].rows[0]]
    while not done(len(beams[0].rows), dur):
        grown: list[_State] = []
        for st in beams:
            cands, scores = chooser.candidates(st)
            for c, s in zip(cands[: cfg.beam_width], scores[: cfg.beam_width]):
                grown.append(chooser.advance(st, int(c), float(s)))
        grown.sort(key=lambda s: -s.total)
        # keep distinct last chunks so the beam does not collapse onto one path
        seen, beams = set(), []
        for st in grown:
            key = (st.rows[-1], st.rows[-2])
            if key not in seen:
                seen.add(key)
                beams.append(st)
            if len(beams) == cfg.beam_width:
                break
        # beams may differ in length of chunks; use the best beam's duration
        dur = float(seconds[beams[0].rows].sum())
    best = beams[0]
    return best.rows, best.scores
