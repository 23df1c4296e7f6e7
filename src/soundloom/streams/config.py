"""Stream options with their defaults, declared once: the search and the renderer read them, and
the CLI commands (``stream``, ``serve``) and the studio derive their option defaults from them.

Imports nothing heavy, so the CLI can read the defaults without loading numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ParameterError


@dataclass
class RenderConfig:
    """Rendering options (ms, dB, LUFS).

    Attributes:
        crossfade_ms: equal-power crossfade centred on each cut.
        align_ms: B is shifted by up to +- this much to line its waveform up with A's.
        slide_ms: each cut may move by up to +- this much (A's end and B's start together) to the
            point where the two songs have the least onset strength.
        match_loudness: bring each chunk to the pool's median chunk loudness.
        max_gain_db: the most that loudness matching may change a chunk.
        target_lufs: loudness of the finished stream.
        true_peak_db: true-peak ceiling (dBTP) of the finished stream.
    """

    crossfade_ms: float = 120.0
    align_ms: float = 5.0
    slide_ms: float = 30.0
    match_loudness: bool = True
    max_gain_db: float = 12.0
    target_lufs: float = -14.0
    true_peak_db: float = -1.0


@dataclass
class SearchConfig:
    """Search options; see :mod:`soundloom.streams.search`. ``minutes`` or ``steps`` bound the length.

    Attributes (the non-repetition ones):
        reuse_window: no chunk reused within this many steps (at most half the pool).
        transition_memory: no join A -> B made twice within this many steps, so no run of two (or
            more) chunks ever repeats while remembered.
        coverage: each earlier use of a candidate lowers its score by this many standard deviations
            of the step's candidate scores, so an endless stream keeps finding unused material.
        pick_among: with seam verification, choose at random (seeded) among the best this many
            candidates whose joins pass the gates, rather than always the best.
    """

    method: str = "greedy"
    minutes: float = 10.0
    steps: int | None = None
    beam_width: int = 8
    candidates: int = 64
    reuse_window: int = 400
    transition_memory: int = 100_000
    coverage: float = 0.5
    pick_among: int = 3
    max_natural_run: int = 0
    max_song_run: int = 8
    start: int | None = None
    seed: int = 0
    index: str = "auto"
    seam_filter: bool = True
    verify_top: int = 8
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in ("greedy", "beam"):
            raise ParameterError(f"search method must be 'greedy' or 'beam', got {self.method!r}")
