"""The soundscape's bed: an endless stream from a chunk pool, steered by a live mood.

The stream engine chooses each next chunk by its join score (:class:`NextChunkChooser`, the
search of ``soundloom stream --endless``); the bed re-ranks those candidates with a **mood
preference** per chunk and then verifies seams itself, best first:

    combined = z(join score among the candidates) + steer x preference(chunk, mood)
    preference = -( |loudness - target| / 6 LU + |log2 onset density ratio| + |log2 centroid ratio|
                    + 0.25 |tempo - target| / 30 BPM )

Loudness is relative to the pool's median chunk (calm prefers chunks 4 LU under it, energetic 4 LU
over), targets come from :meth:`Mood.bed_weights`. Chunk features (loudness and centroid from the
catalog, onset density computed here, the song's tempo) are cached in ``POOL/scape_features.json``,
keyed by the pool's fingerprint.

Rendering is the stream engine's own (:func:`streams.render.iter_render`: aligned equal-power
crossfades, chunk loudness matching), resampled to the scape rate (soxr, streaming) and
centred in stereo. The bed's level follows the mood's ``bed_loudness_lufs`` through a gain ramp of
at most :data:`GAIN_SLEW_DB_PER_S` applied as the mixer pulls each small block, so a mood change
reaches the bed's level within a fraction of a second; chunk choices made after a change start
playing one to two chunk lengths later (the renderer holds one chunk for its crossfade).

Every join is measured on the rendered bed (the three seam gates of :mod:`streams.seams`) and
listed with its time in :meth:`Bed.score`, so ``eval-soundscape`` can report the bed's seam pass
rate beside random in-song positions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import write_json
from ..core.errors import ParameterError, PoolError
from ..core.levels import db_to_gain
from ..streams.catalog import load_song
from ..streams.config import RenderConfig, SearchConfig
from ..streams.joins import chunk_gain_db, join_audio, read_within_song, reference_lufs
from ..streams.render import iter_render, segment
from ..streams.seams import SeamVerifier, seam_metrics
from ..streams.search import NextChunkChooser
from .mood import NAMED_MOODS, Mood

FEATURES_FILE = "scape_features.json"
FEATURES_VERSION = 2
#: The bed's level moves towards the mood's at most this fast (dB per second): no pumping, no lag.
GAIN_SLEW_DB_PER_S = 20.0
#: Samples per block handed to the mixer (the gain ramp's resolution).
BED_BLOCK = 1024
#: Seam figures are measured on this much of the rendered bed each side of a join (s).
_SEAM_SIDE_S = 0.1
#: Stereo with both channels equal measures 10 log10(2) = 3.01 LU louder than the mono stream.
_STEREO_LU = 3.0103
_NEUTRAL_LUFS = Mood.of(NAMED_MOODS["neutral"]).bed_loudness_lufs
VERIFY_MODES = ("gates", "full", "off")
#: The bed checks up to this many times the stream's ``verify_top`` candidates for a passing join.
VERIFY_DEPTH = 4
#: Onset threshold on librosa's onset strength (dB of mean positive mel flux) for chunk onset density.
ONSET_DELTA = 1.0
#: Weight of the tempo term: beat trackers guess a tempo even for a drone, so it counts for less.
TEMPO_WEIGHT = 0.25


@dataclass
class ChunkFeatures:
    """Per-chunk features ``(n,)`` aligned with ``catalog.chunks()`` rows."""

    loudness_lufs: np.ndarray
    onsets_per_min: np.ndarray
    centroid_hz: np.ndarray
    tempo_bpm: np.ndarray  # the song's tempo, NaN when unknown


def chunk_features(catalog) -> ChunkFeatures:
    """Chunk features, read from ``POOL/scape_features.json`` or computed (onsets per song) and cached there."""
    import json

    table, songs = catalog.chunks(), catalog.song_map()
    path = Path(catalog.pool) / FEATURES_FILE
    fingerprint = catalog.fingerprint()
    try:
        cached = json.loads(path.read_text())
        if cached.get("version") == FEATURES_VERSION and cached.get("fingerprint") == fingerprint:
            if cached["chunk_id"] == table.id.tolist():
                return ChunkFeatures(
                    *(np.asarray(cached[k], dtype=np.float64) for k in ChunkFeatures.__dataclass_fields__)
                )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    onsets = _onset_density(table, songs, catalog.sample_rate)
    tempo = np.array([np.nan if songs[int(s)].tempo_bpm is None else songs[int(s)].tempo_bpm for s in table.song_id])
    feats = ChunkFeatures(
        table.loudness_lufs.astype(np.float64), onsets, table.centroid_hz.astype(np.float64), tempo.astype(np.float64)
    )
    record = {"version": FEATURES_VERSION, "fingerprint": fingerprint, "chunk_id": table.id.tolist()}
    for k, v in feats.__dict__.items():
        record[k] = [None if not np.isfinite(x) else round(float(x), 4) for x in v]
    try:
        write_json(path, record, indent=None)
    except OSError:
        pass  # a read-only pool: features are recomputed next time
    return ChunkFeatures(*(np.asarray([np.nan if x is None else x for x in record[k]]) for k in feats.__dict__))


def _onset_density(table, songs: dict, rate: int) -> np.ndarray:
    """Onsets per minute of each chunk (librosa onsets over each whole song, counted per chunk)."""
    import librosa

    out = np.zeros(len(table))
    for s in dict.fromkeys(table.song_id.tolist()):
        song = songs[int(s)]
        wav = load_song(song, rate)
        # An absolute threshold on librosa's onset strength (mean positive log-mel flux, dB): peak picking on
        # the normalised envelope would find as many "onsets" in a still drone as in rain.
        env = librosa.onset.onset_strength(y=wav, sr=rate, hop_length=512)
        wait = max(1, int(np.ceil(0.1 * rate / 512)))  # at most one onset per 100 ms
        onsets = librosa.onset.onset_detect(
            onset_envelope=env, sr=rate, hop_length=512, units="samples", normalize=False, delta=ONSET_DELTA, wait=wait
        )
        rows = np.flatnonzero(table.song_id == s)
        scale = rate / song.sample_rate  # chunk offsets are at the song's own rate
        starts, ends = table.start[rows] * scale, table.end[rows] * scale
        counts = np.searchsorted(onsets, ends) - np.searchsorted(onsets, starts)
        out[rows] = counts / np.maximum((ends - starts) / rate / 60.0, 1e-6)
    return out


def mood_preference(features: ChunkFeatures, mood: Mood, ref_lufs: float) -> np.ndarray:
    """How well each chunk suits ``mood``: ``(n,)``, 0 = a perfect match, more negative = worse."""
    w = mood.bed_weights()
    loud = np.abs((features.loudness_lufs - ref_lufs) - (w["loudness_lufs"] - _NEUTRAL_LUFS)) / 6.0
    onsets = np.abs(np.log2((features.onsets_per_min + 5.0) / (w["onsets_per_min"] + 5.0)))
    centroid = np.abs(np.log2(np.maximum(features.centroid_hz, 20.0) / w["centroid_hz"]))
    tempo = np.nan_to_num(np.abs(features.tempo_bpm - w["tempo_bpm"]) / 30.0, nan=0.0)
    return -(np.nan_to_num(loud) + onsets + centroid + TEMPO_WEIGHT * tempo)


def bed_search(seed: int = 0, **options) -> SearchConfig:
    """The bed's search options: the stream's, with more candidates for the mood to choose among and a
    shorter reuse window (40 chunks), so a mood can keep the bed in the part of the pool that suits it."""
    return SearchConfig(**{"seed": seed, "candidates": 128, "reuse_window": 40, **options})


def _gates(wav: np.ndarray, at: int, rate: int) -> dict[str, np.ndarray]:
    """The seam gates (level jump, spectral cosine, click ratio) at sample ``at`` of ``wav``; no onset anomaly."""
    return seam_metrics(wav, np.array([at]), rate, onsets=False)


class GateVerifier:
    """Checks a candidate join as the renderer makes it (the same reads and :func:`join_audio` call as
    ``streams.render.iter_render``) against the three seam gates only: :class:`SeamVerifier` without its
    onset anomaly, the dear part. ``test_gate_verifier_agrees_with_the_rendered_bed`` guards the mirror."""

    def __init__(self, catalog, cfg: RenderConfig):
        self.table, self.songs, self.rate, self.cfg = catalog.chunks(), catalog.song_map(), catalog.sample_rate, cfg
        self.half = int(cfg.crossfade_ms * self.rate / 2000)
        self.lag = int(cfg.align_ms * self.rate / 1000)
        self.slide = int(getattr(cfg, "slide_ms", 0.0) * self.rate / 1000)
        self.side = int(_SEAM_SIDE_S * self.rate)
        self.ref = reference_lufs(self.table.loudness_lufs)
        self._a: tuple[int, np.ndarray, int] | None = None

    def _read(self, row: int, at: int, before: int, after: int) -> tuple[np.ndarray, int]:
        song = self.songs[int(self.table.song_id[row])]
        gain = db_to_gain(chunk_gain_db(float(self.table.loudness_lufs[row]), self.ref, self.cfg))
        wav, pre, _ = read_within_song(song, at, at, before, after, self.rate)
        return wav * gain, pre

    def passes(self, a: int, b: int) -> bool:
        """True when the rendered join of chunk rows ``a`` -> ``b`` passes the three seam gates."""
        h, lag, slide = self.half, self.lag, self.slide
        if self._a is None or self._a[0] != a:  # the renderer holds A's chunk plus 2h + slide of its song
            self._a = (a, *self._read(a, int(self.table.end[a]), self.side + 2 * h + slide + 2048, 2 * h + slide))
        _, a_wav, a_end = self._a
        b_wav, b_start = self._read(b, int(self.table.start[b]), 2 * h + lag + slide, self.side + 2 * h + slide)
        joined, cut, _, _ = join_audio(a_wav, a_end, b_wav, b_start, h, lag, slide, self.rate)
        m = _gates(joined, cut, self.rate)
        return bool(len(m["positions"]) and m["pass"][0])


class Bed:
    """An endless, mood-steered stereo bed ``(2, n)`` at ``sample_rate`` from a pool and its embeddings.

    Args:
        catalog: an open :class:`~soundloom.streams.catalog.ChunkCatalog`.
        emb: its :class:`~soundloom.streams.index.PoolEmbeddings` (``load_pool_embeddings``).
        mood: the starting mood.
        sample_rate: the scape's rate (Hz).
        search, render: the stream engine's options (``search.seed`` picks the start chunk).
        steer: weight of the mood preference against the join score (0 = the plain stream).
        verify: check the top candidates' joins on real audio before committing: ``gates`` (the three
            seam gates on the rendered join, a few ms each), ``full`` (the stream engine's
            :class:`SeamVerifier`, adding its onset gate: about ten times dearer), or ``off``.
    """

    def __init__(
        self,
        catalog,
        emb,
        mood: Mood | str | float = "calm",
        sample_rate: int = 48000,
        search: SearchConfig | None = None,
        render: RenderConfig | None = None,
        steer: float = 1.0,
        verify: str = "gates",
        pool: str | None = None,
        model: str | None = None,
    ):
        self.catalog, self.emb = catalog, emb
        self.table, self.songs = catalog.chunks(), catalog.song_map()
        if len(emb) != len(self.table):
            raise PoolError(f"embeddings cover {len(emb)} chunks but the pool has {len(self.table)}; re-embed")
        self.search = search or bed_search()
        self.rcfg = render or RenderConfig()
        self.sample_rate, self.pool_rate = sample_rate, catalog.sample_rate
        if verify not in VERIFY_MODES:
            raise ParameterError(f"bed verify must be one of {VERIFY_MODES}, got {verify!r}")
        self.steer, self.verify = steer, verify
        self.pool, self.model = pool or str(catalog.pool), model or emb.model
        self.features = chunk_features(catalog)
        self.ref_lufs = reference_lufs(self.table.loudness_lufs)
        self._lock = threading.Lock()
        self._mood = Mood.of(mood)
        self._pref = mood_preference(self.features, self._mood, self.ref_lufs)
        self._gain_db = self._target_gain_db(self._mood)
        self._emitted = 0  # samples handed out at the scape rate
        self.joins: list[dict] = []
        self.mood_changes: list[dict] = [{"requested_at_s": 0.0, "energy": self._mood.energy}]

    @classmethod
    def open(cls, pool: str | Path, model: str, **kwargs) -> Bed:
        """A bed over pool folder ``pool`` with transition run (or model name) ``model``; close with :meth:`close`."""
        from ..streams.catalog import ChunkCatalog
        from ..streams.index import load_pool_embeddings

        catalog = ChunkCatalog(pool, create=False)
        try:
            emb = load_pool_embeddings(catalog, model)
            return cls(catalog, emb, pool=str(pool), model=str(model), **kwargs)
        except BaseException:
            catalog.close()
            raise

    def close(self) -> None:
        self.catalog.close()

    @property
    def mood(self) -> Mood:
        return self._mood

    def set_mood(self, mood: Mood | str | float) -> None:
        """Change the mood now (any thread): the level starts moving at once, the next chunk choice follows it."""
        mood = Mood.of(mood)
        pref = mood_preference(self.features, mood, self.ref_lufs)
        with self._lock:
            self._mood, self._pref = mood, pref
            self.mood_changes.append({"requested_at_s": self._emitted / self.sample_rate, "energy": mood.energy})

    def _target_gain_db(self, mood: Mood) -> float:
        # chunks are matched to the pool's median chunk loudness (ref), then the bed is set to the mood's level
        return mood.bed_loudness_lufs - self.ref_lufs - _STEREO_LU

    # -- choosing ------------------------------------------------------------------------------
    def _segments(self):
        """Endless :class:`~soundloom.streams.render.Segment` s, each join re-ranked by the mood, then verified."""
        cfg = self.search
        chooser = NextChunkChooser(self.table, self.emb, cfg, verifier=None)
        verifier = {"gates": GateVerifier, "full": SeamVerifier, "off": lambda *_: None}[self.verify](
            self.catalog, self.rcfg
        )
        rng = np.random.default_rng(cfg.seed)
        state = chooser.start_state(rng)
        if self.steer > 0:  # the first chunk suits the mood too
            rows = chooser.rows
            state.rows[-1] = int(rows[int(np.argmax(self._pref[rows] + 1e-6 * rng.random(len(rows))))])
        self._pending_choice = {"row": state.rows[-1], "energy": self._mood.energy, "verified": None}
        yield segment(self.table, self.songs, state.rows[-1], float("nan"), False, self.ref_lufs, self.rcfg)
        while True:
            cands, scores = chooser.candidates(state)
            with self._lock:
                pref, energy = self._pref, self._mood.energy
            order = np.argsort(-self._combined(scores, pref[cands]), kind="stable")
            cands, scores = cands[order], scores[order]
            pick, verified = 0, None
            if verifier is not None:
                verified = False
                # the mood narrows the choice: look further down the re-ranked list than the stream does
                for i in range(min(VERIFY_DEPTH * cfg.verify_top, len(cands))):
                    if verifier.passes(state.rows[-1], int(cands[i])):
                        pick, verified = i, True
                        break
            prev = state.rows[-1]
            row, score = int(cands[pick]), float(scores[pick])
            state = chooser.advance(state, row, score)
            if len(state.rows) > 2 * chooser.reuse_window + 2:  # bounded memory: only the reuse window matters
                state.rows = state.rows[-chooser.reuse_window - 1 :]
                state.scores = state.scores[-1:]
            self._pending_choice = {"row": row, "energy": energy, "verified": verified}
            natural = bool(chooser.succ[prev] == row)
            yield segment(self.table, self.songs, row, score, natural, self.ref_lufs, self.rcfg)

    def _combined(self, scores: np.ndarray, pref: np.ndarray) -> np.ndarray:
        z = (scores - scores.max()) / (scores.std() + 1e-9)
        return z + self.steer * pref

    # -- rendering -----------------------------------------------------------------------------
    def blocks(self) -> Iterator[np.ndarray]:
        """Endless stereo blocks ``(2, <= BED_BLOCK)`` float32 at :attr:`sample_rate`."""
        import soxr

        resampler = (
            soxr.ResampleStream(self.pool_rate, self.sample_rate, 1, dtype="float32")
            if self.pool_rate != self.sample_rate
            else None
        )
        side = int(_SEAM_SIDE_S * self.pool_rate)
        prev_tail = np.zeros(0, np.float32)
        pool_pos = 0  # samples rendered at the pool rate
        choices: list[dict] = []
        segments = self._segments()

        def tracked():
            for seg in segments:
                choices.append(self._pending_choice)
                yield seg

        for block, cue in iter_render(tracked(), self.pool_rate, self.rcfg):
            block = np.asarray(block, dtype=np.float32)
            choice = choices.pop(0) if choices else {}
            if pool_pos > 0 and len(prev_tail) >= side and len(block) >= side:
                m = _gates(np.concatenate([prev_tail, block[:side]]), side, self.pool_rate)
                if len(m["positions"]):
                    self.joins.append(self._join_record(pool_pos, cue, choice, m))
            pool_pos += len(block)
            prev_tail = block[-side:] if len(block) >= side else np.concatenate([prev_tail, block])[-side:]
            audio = resampler.resample_chunk(block) if resampler is not None else block
            for start in range(0, len(audio), BED_BLOCK):
                yield self._stereo(audio[start : start + BED_BLOCK])

    def _join_record(self, pool_pos: int, cue: dict, choice: dict, m: dict) -> dict:
        return {
            "time_s": round(pool_pos / self.pool_rate, 4),
            "song": cue["song"],
            "chunk_id": cue["chunk_id"],
            "score": None if not np.isfinite(cue["score"]) else round(float(cue["score"]), 4),
            "natural": bool(cue["natural"]),
            "energy": choice.get("energy"),
            "verified": choice.get("verified"),
            "level_jump_db": round(float(m["level_jump_db"][0]), 3),
            "spectral_cosine": round(float(m["spectral_cosine"][0]), 4),
            "click_ratio": round(float(m["click_ratio"][0]), 3),
            "pass": bool(m["pass"][0]),
        }

    def _stereo(self, mono: np.ndarray) -> np.ndarray:
        """Centred stereo with the gain ramped (at most GAIN_SLEW_DB_PER_S) towards the mood's level."""
        n = len(mono)
        with self._lock:
            target, mood = self._target_gain_db(self._mood), self._mood
        step = GAIN_SLEW_DB_PER_S * n / self.sample_rate
        start = self._gain_db
        end = start + min(step, max(-step, target - start))
        self._gain_db = end
        last = self.mood_changes[-1]
        if "level_reached_at_s" not in last and abs(end - target) < 0.5 and last["energy"] == mood.energy:
            last["level_reached_at_s"] = round((self._emitted + n) / self.sample_rate, 4)
        self._emitted += n
        if start != end:
            gain = np.power(np.float32(10.0), np.linspace(start, end, n, dtype=np.float32) / np.float32(20.0))
        else:
            gain = np.float32(db_to_gain(start))
        out = (mono * gain).astype(np.float32)
        return np.stack([out, out])

    def score(self) -> dict:
        """The bed's part of the soundscape score: pool, model, joins measured on the render, mood changes."""
        joins = list(self.joins)
        return {
            "pool": self.pool,
            "model": self.model,
            "steer": self.steer,
            "pool_rate": self.pool_rate,
            "joins": joins,
            "seam_pass_rate": float(np.mean([j["pass"] for j in joins])) if joins else None,
            "mood_changes": list(self.mood_changes),
        }
