"""Seam gates: is a join in a stream any worse than a position inside a song?

Per position ``p`` (samples) of a mono signal:
* level jump (dB): |RMS of the 50 ms before p - RMS of the 50 ms after p|; gate <= 4 dB.
* spectral cosine: cosine of the Hann-windowed magnitude spectra of those two windows; gate >= 0.75.
* click ratio: the largest sample-to-sample step in the 2 ms block centred on p, over the median of
  the same "largest step" of every 2 ms block within +-50 ms; gate <= 3 (comparing a maximum to
  maxima keeps noise-like music from counting as clicks).

The stream report compares the joins of a rendered stream with random positions inside the same
songs and with natural chunk boundaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEVEL_GATE_DB = 4.0
COSINE_GATE = 0.75
CLICK_GATE = 3.0


def seam_metrics(
    wav: np.ndarray, positions: np.ndarray, sample_rate: int, window_ms: float = 50.0, block_ms: float = 2.0
) -> dict[str, np.ndarray]:
    """Level jump (dB), spectral cosine and click ratio at each position: arrays ``(n,)``.

    Positions closer than ``window_ms`` to either end are dropped (``positions`` in the result says
    which were kept).
    """
    wav = np.asarray(wav, dtype=np.float64)
    w = int(window_ms * sample_rate / 1000)
    b = max(2, int(block_ms * sample_rate / 1000))
    pos = np.asarray(positions, dtype=np.int64)
    pos = pos[(pos >= w + b) & (pos <= len(wav) - w - b)]
    idx = np.arange(w)
    before = wav[pos[:, None] - w + idx[None, :]]
    after = wav[pos[:, None] + idx[None, :]]
    rms = lambda x: 10 * np.log10(np.mean(x**2, axis=1) + 1e-10)  # noqa: E731
    level = np.abs(rms(before) - rms(after))
    han = np.hanning(w)
    sb = np.abs(np.fft.rfft(before * han, axis=1))
    sa = np.abs(np.fft.rfft(after * han, axis=1))
    cos = (sb * sa).sum(1) / (np.linalg.norm(sb, axis=1) * np.linalg.norm(sa, axis=1) + 1e-12)
    n_blocks = (2 * w) // b
    start = pos - (n_blocks // 2) * b - b // 2
    steps = np.abs(np.diff(wav[start[:, None] + np.arange(n_blocks * b + 1)[None, :]], axis=1))
    block_max = steps[:, : n_blocks * b].reshape(len(pos), n_blocks, b).max(axis=2)
    centre = block_max[:, n_blocks // 2]
    click = centre / (np.median(block_max, axis=1) + 1e-9)
    passed = (level <= LEVEL_GATE_DB) & (cos >= COSINE_GATE) & (click <= CLICK_GATE)
    return {"positions": pos, "level_jump_db": level, "spectral_cosine": cos, "click_ratio": click, "pass": passed}


def summarise(m: dict[str, np.ndarray]) -> dict:
    """Pass rates per gate and overall, and medians, of :func:`seam_metrics` output."""
    n = len(m["positions"])
    if n == 0:
        return {"n": 0}
    return {
        "n": int(n),
        "pass_all": float(np.mean(m["pass"])),
        "pass_level": float(np.mean(m["level_jump_db"] <= LEVEL_GATE_DB)),
        "pass_cosine": float(np.mean(m["spectral_cosine"] >= COSINE_GATE)),
        "pass_click": float(np.mean(m["click_ratio"] <= CLICK_GATE)),
        "median_level_jump_db": float(np.median(m["level_jump_db"])),
        "median_spectral_cosine": float(np.median(m["spectral_cosine"])),
        "median_click_ratio": float(np.median(m["click_ratio"])),
    }


def reference_positions(catalog, song_ids: list[int], n: int, seed: int = 0) -> dict[str, dict]:
    """Seam figures at ``n`` random positions inside the songs and at their natural chunk boundaries."""
    from .pairs import SongAudio, pool_offsets

    rng = np.random.default_rng(seed)
    songs = catalog.song_map()
    rate = catalog.sample_rate
    audio = SongAudio(songs, rate)
    table = catalog.chunks()
    starts, _ = pool_offsets(table, songs, rate)
    succ = table.successor()
    lengths = np.array([int(songs[s].duration_s * rate) for s in song_ids], dtype=np.float64)
    per_song = rng.multinomial(n, lengths / lengths.sum())
    rand, nat = [], []
    for s, k in zip(song_ids, per_song):
        wav = audio[s]
        margin = int(0.2 * rate)
        rand.append(seam_metrics(wav, rng.integers(margin, len(wav) - margin, size=k), rate))
        rows = np.flatnonzero((table.song_id == s) & (succ >= 0))
        nat.append(seam_metrics(wav, starts[succ[rows]], rate))
    cat = lambda ms: {key: np.concatenate([m[key] for m in ms]) for key in ms[0]}  # noqa: E731
    return {"random_in_song": summarise(cat(rand)), "natural_boundaries": summarise(cat(nat))}


def stream_seam_report(
    catalog,
    run: str | Path,
    song_ids: list[int],
    minutes: float = 10.0,
    seed: int = 0,
    verify: bool = True,
    render_kwargs: dict | None = None,
    **search_kwargs,
) -> dict:
    """Render a stream from the chunks of ``song_ids`` with ``run`` and judge its joins against references."""
    from .index import load_pool_embeddings
    from .render import RenderConfig, SeamVerifier, render_stream
    from .search import SearchConfig, build_stream

    table = catalog.chunks()
    allowed = np.isin(table.song_id, song_ids)
    emb = load_pool_embeddings(catalog, run)
    cfg = SearchConfig(minutes=minutes, seed=seed, **search_kwargs)
    rcfg = RenderConfig(**(render_kwargs or {}))
    plan = build_stream(catalog, emb, cfg, allowed=allowed, verifier=SeamVerifier(catalog, rcfg) if verify else None)
    wav, cue = render_stream(catalog, plan, rcfg)
    rate = cue["sample_rate"]
    joins = np.array([int(round(s["output_start_s"] * rate)) for s in cue["segments"][1:]])
    stream = summarise(seam_metrics(wav, joins, rate))
    ref = reference_positions(catalog, song_ids, n=max(1000, len(joins)), seed=seed)
    natural_joins = sum(1 for s in cue["segments"][1:] if s.get("natural"))
    return {
        "stream": stream,
        **ref,
        "joins": len(joins),
        "natural_joins": natural_joins,
        "minutes": len(wav) / rate / 60.0,
        "crossfade_ms": rcfg.crossfade_ms,
        "verified": verify,
    }
