"""Joins that do not sound like events: the search prefers quiet verified joins; the seam verifier
keeps each chunk's own onset figures and calibrates "quiet" on the pool's own chunk boundaries."""

import copy

import numpy as np
import pytest

from soundloom.streams.catalog import ChunkCatalog
from soundloom.streams.config import RenderConfig, SearchConfig
from soundloom.streams.index import load_pool_embeddings
from soundloom.streams.seams import REFERENCE_PER_SONG, SeamVerifier
from soundloom.streams.search import NextChunkChooser


class FakeVerifier:
    """Every join passes the gates; its onset anomaly is ``onsets[b]``; the pool's own median is ``ref``."""

    def __init__(self, onsets: dict[int, float], ref: float | None, passing: set[int] | None = None):
        self.onsets, self.ref, self.passing, self.measured = onsets, ref, passing, []

    def onset_reference(self) -> float | None:
        return self.ref

    def measure(self, a: int, b: int) -> dict:
        self.measured.append(b)
        ok = self.passing is None or b in self.passing
        return {"pass": ok, "pass_gates": ok, "onset_anomaly": self.onsets.get(b, 9.0), "onset_a": 0.0, "onset_b": 0.0}


@pytest.fixture(scope="module")
def chooser_parts(pool, features_run):
    with ChunkCatalog(pool, create=False) as c:
        return c.chunks(), load_pool_embeddings(c, features_run)


def _first_choice(chooser_parts, verifier, **cfg) -> tuple[int, np.ndarray]:
    table, emb = chooser_parts
    cfg = SearchConfig(steps=10, seam_filter=False, coverage=0.0, **cfg)
    plain = NextChunkChooser(table, emb, cfg)
    state = plain.start_state(np.random.default_rng(0))
    order, _ = plain.candidates(state)
    chooser = NextChunkChooser(table, emb, cfg, verifier=verifier)
    cands, _ = chooser.candidates(state)
    return int(cands[0]), order


def test_search_takes_a_quiet_join_over_better_scored_loud_ones(chooser_parts):
    _, order = _first_choice(chooser_parts, FakeVerifier({}, None))
    quiet = int(order[5])  # only the 6th best candidate's join is no louder than the songs' own positions
    onsets = {int(c): 6.0 for c in order[:8]} | {quiet: 2.0}
    for seed in range(4):
        got, _ = _first_choice(chooser_parts, FakeVerifier(onsets, ref=3.0), seed=seed)
        assert got == quiet


def test_search_without_a_quiet_join_takes_the_least_onset_one(chooser_parts):
    _, order = _first_choice(chooser_parts, FakeVerifier({}, None))
    onsets = {int(c): 8.0 - 0.1 * i for i, c in enumerate(order[:8])} | {int(order[3]): 4.5}
    got, _ = _first_choice(chooser_parts, FakeVerifier(onsets, ref=3.0), verify_top=8)
    assert got == int(order[3])
    # a failing join is never taken over a passing one, however quiet
    passing = {int(c) for c in order[:8]} - {int(order[3])}
    got, _ = _first_choice(chooser_parts, FakeVerifier(onsets, ref=3.0, passing=passing), verify_top=8)
    assert got != int(order[3]) and got == int(order[7])  # order[7] has the least anomaly left (7.3)


def test_search_stops_verifying_once_enough_quiet_joins_pass(chooser_parts):
    _, order = _first_choice(chooser_parts, FakeVerifier({}, None))
    v = FakeVerifier({int(c): 1.0 for c in order}, ref=3.0)
    got, _ = _first_choice(chooser_parts, v, pick_among=3, verify_top=8)
    assert len(v.measured) == 3 and got in set(order[:3].tolist())


def test_without_a_reference_any_passing_join_is_quiet(chooser_parts):
    """Before the verifier knows the pool's own figures (or with ``passes`` only), the choice is random
    among the best ``pick_among`` passing joins, as before."""
    _, order = _first_choice(chooser_parts, FakeVerifier({}, None))
    got = {_first_choice(chooser_parts, FakeVerifier({}, None), seed=s)[0] for s in range(12)}
    assert got <= set(order[:3].tolist()) and len(got) > 1


def test_seam_verifier_keeps_own_onsets_and_b_audio(pool, monkeypatch):
    with ChunkCatalog(pool, create=False) as c:
        table = c.chunks()
        v = SeamVerifier(c, RenderConfig())
        assert v.onset_reference() is None  # no song met yet
        reads = []
        real = v._read
        monkeypatch.setattr(v, "_read", lambda row, *a: reads.append(row) or real(row, *a))
        a, bs = 0, [int(r) for r in np.flatnonzero(table.song_id != table.song_id[0])[:6]]
        first = [v.measure(a, b) for b in bs]
        n_reads = len(reads)
        again = [v.measure(a, b) for b in bs]
        assert len(reads) == n_reads  # nothing read again
        assert first == again
        assert [m["onset_b"] for m in first] == [v._own[(b, "b")] for b in bs]
        met = {int(table.song_id[r]) for r in [a, *bs]}
        assert set(v._song_ref) == met and all(len(x) == REFERENCE_PER_SONG for x in v._song_ref.values())
        assert v.onset_reference() == pytest.approx(float(np.median(np.concatenate(list(v._song_ref.values())))))
        other = copy.copy(v)  # one per listener thread: the pool's measurements shared, its own path
        assert other._own is v._own and other._song_ref is v._song_ref and other.table is v.table
        assert other._met == set() and other.onset_reference() is None and other._b is not v._b
        other_reads = []
        monkeypatch.setattr(other, "_read", lambda row, *a: other_reads.append(row) or real(row, *a))
        for r in [a, *bs]:
            other._meet_song(r)
        assert other_reads == []  # the songs' random positions were measured once, by v
        assert other.onset_reference() == v.onset_reference()


def test_quiet_reference_is_random_positions_not_the_beat_grid(tmp_path):
    """Songs whose beats fall on the chunk grid (as a fixed grid does on much game music): their own onset
    anomaly at chunk boundaries is high, and the reference a quiet join is held to is the far lower one at
    random positions inside them."""
    import soundfile as sf

    from soundloom.streams.chunking import ChunkConfig

    from .conftest import RATE, click_track

    for i, bpm in enumerate((120, 60)):
        sf.write(tmp_path / f"clicks{i}.wav", click_track(8.0, bpm)[0], RATE)
    with ChunkCatalog(tmp_path / "pool") as c:
        c.add_songs([tmp_path / "clicks0.wav", tmp_path / "clicks1.wav"], ChunkConfig(method="fixed", seconds=1.0))
        table = c.chunks()
        v = SeamVerifier(c, RenderConfig())
        rows = np.flatnonzero(table.song_id == table.song_id[-1])
        for b in rows[2:6]:
            v.measure(1, int(b))
        on_grid = np.median(list(v._own.values()))
        assert v.onset_reference() is not None and v.onset_reference() < on_grid - 3.0
