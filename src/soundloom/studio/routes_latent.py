"""Latent map: the training set's latents projected to 2-D by PCA, coloured by label on the page.

The run's ``model.json`` names its feature store; its items are encoded (posterior means, the same
function the exported prior was fitted with) and projected on their two main axes. UMAP is left out:
its dependency (numba, llvmlite) outweighs a map.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from ..core.errors import DataError
from .routes_generate import generator
from .state import StudioState

#: Items mapped at most (an even spread over the store).
MAX_POINTS = 2000


def router(state: StudioState) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["latent map"])

    @api.get("/latents")
    async def latents(
        run: str = Query(..., max_length=1024, description="finished run folder relative to the root"),
        limit: int = Query(600, ge=2, le=MAX_POINTS, description="points at most"),
    ) -> dict:
        """``{"points": [{"x", "y", "label", "path"}], "explained": [var1, var2]}``; ``path`` (relative to the
        root) is null when the item's file lies outside the root."""
        return await run_in_threadpool(latent_map, state, run, limit)

    return api


def latent_map(state: StudioState, run: str, limit: int) -> dict:
    import torch

    from ..data.store import FeatureStore
    from ..sounds.models.protocol import encode_latent

    gen = generator(state, run)
    key = (gen.info["sha256"], limit)
    if key in state.latents:
        return state.latents[key]
    store_path = gen.info.get("store")
    if not store_path:
        raise DataError(f"{run}: the run names no feature store")
    store = FeatureStore.open(store_path)
    rows = np.unique(np.linspace(0, len(store) - 1, min(limit, len(store))).round().astype(int))
    label_key = gen.info.get("label_key")
    labels = [str(store.items[i]["labels"].get(label_key, "")) if label_key else "" for i in rows]
    x = torch.from_numpy(store.normalized(rows))
    model = gen.model
    lab = pit = None
    if model.label_conditioned:
        lab = torch.tensor([gen.labels.index(v) if v in gen.labels else 0 for v in labels])
    if model.pitch_conditioned:
        pit = torch.tensor([int(store.items[i]["labels"].get("pitch", 60)) for i in rows])
    with torch.no_grad():
        z = np.concatenate(
            [encode_latent(model, x[i : i + 128], *_cut(lab, pit, i)).numpy() for i in range(0, len(x), 128)]
        )
    xy, explained = pca_2d(z)
    points = [
        {"x": float(a), "y": float(b), "label": lab_, "path": state.rel(store.items[i]["path"])}
        for (a, b), lab_, i in zip(xy, labels, rows)
    ]
    out = {"points": points, "explained": explained, "labels": sorted(set(labels))}
    state.latents[key] = out
    return out


def _cut(lab, pit, i: int):
    return (None if lab is None else lab[i : i + 128], None if pit is None else pit[i : i + 128])


def pca_2d(z: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Points ``(N, D)`` on their two main axes ``(N, 2)`` (scaled to [-1, 1]) and each axis's share of variance."""
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    xy = centred @ axes.T
    if xy.shape[1] < 2:  # a one-dimensional latent: the second axis is flat
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    scale = np.abs(xy).max(axis=0)
    xy = xy / np.where(scale > 0, scale, 1.0)
    var = s**2
    share = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
    return xy, [round(v, 4) for v in share + [0.0] * (2 - len(share))]
