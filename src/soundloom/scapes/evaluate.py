"""``eval-soundscape``: the measurements of :mod:`soundloom.scapes.measure` plus the bed's seams.

The bed's seam pass rate comes from the score (each join measured on the rendered bed, before
the events were mixed in: level jump, spectral cosine, click ratio, the gates of
:mod:`soundloom.streams.seams`); its reference is the same gates at random positions inside the
pool's songs (``seams.reference_positions``), read from the pool named in the score.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from .measure import measure_file


def evaluate(file: str | os.PathLike, score_path: str | os.PathLike | None = None, reference: int = 300) -> dict:
    """Measurements of a rendered soundscape (and its score): one JSON-ready dict."""
    m = measure_file(file, score_path)
    out: dict = {"file": str(file), **m.to_dict()}
    if score_path is None:
        return out
    score = json.loads(Path(score_path).read_text())
    requests = score.get("mood_requests") or score.get("mood_changes") or []
    if requests:
        first = requests[0]
        out["mood_energy"] = first.get("energy", first.get("mood", {}).get("energy"))
    bed = score.get("bed")
    if bed:
        out["bed_seams"] = bed_seams(bed, reference)
    return out


def bed_seams(bed: dict, reference: int = 300) -> dict:
    """Pass rate of the bed's joins (from the score) and of ``reference`` random in-song positions."""
    joins = bed.get("joins", [])
    res: dict = {"joins": len(joins)}
    if joins:
        res["pass_rate"] = round(float(np.mean([bool(j["pass"]) for j in joins])), 4)
        res["median_level_jump_db"] = round(float(np.median([j["level_jump_db"] for j in joins])), 3)
        res["median_spectral_cosine"] = round(float(np.median([j["spectral_cosine"] for j in joins])), 4)
        res["median_click_ratio"] = round(float(np.median([j["click_ratio"] for j in joins])), 3)
    pool = bed.get("pool")
    if reference > 0 and pool and (Path(pool) / "catalog.sqlite").exists():
        from ..streams.catalog import ChunkCatalog
        from ..streams.seams import reference_positions

        with ChunkCatalog(pool, create=False) as catalog:
            ids = [s.id for s in catalog.songs()]
            if not ids:
                raise DataError(pool, "the bed's pool has no songs to judge its seams against")
            ref = reference_positions(catalog, ids, reference, seed=0)
        res["random_in_song_pass_rate"] = round(ref["random_in_song"]["pass_all"], 4)
        res["natural_boundaries_pass_rate"] = round(ref["natural_boundaries"].get("pass_all", float("nan")), 4)
        res["reference_positions"] = ref["random_in_song"]["n"]
    return out_rounded(res)


def out_rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}
