"""Generation routes: runs under the root, sample / vary / interpolate, download a batch as a zip.

Sounds are written with their JSON sidecars to ``<root>/.soundloom-studio/generated/<batch>/`` by
:meth:`Generator.save`; the page plays them through ``/api/audio`` and draws them through ``/api/thumb``.
Generators are loaded once per run (safetensors + JSON only) and kept while the weights file is unchanged.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
import zipfile
from pathlib import Path

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..core.errors import ParameterError
from .jobs import STATE_DIR
from .state import NotFound, StudioState

#: Folders searched for runs below the root (depth).
RUN_DEPTH = 4
#: Generators kept loaded at once.
MAX_GENERATORS = 4
_LOAD_LOCK = threading.Lock()


class GenerateRequest(BaseModel):
    run: str = Field(..., max_length=1024, description="finished run folder relative to the root")
    label: str | None = Field(None, max_length=200, description="class label (cvae); random when left out")
    pitch: int | None = Field(None, ge=0, le=127, description="MIDI pitch (pitch-conditioned models)")
    temperature: float = Field(0.8, ge=0, le=4)
    count: int = Field(8, ge=1, le=64)
    seed: int = Field(0, ge=0, le=2**31)


class VariationRequest(BaseModel):
    run: str = Field(..., max_length=1024)
    path: str = Field(..., max_length=1024, description="audio file relative to the root")
    amount: float = Field(0.3, ge=0, le=4)
    count: int = Field(4, ge=1, le=32)
    seed: int = Field(0, ge=0, le=2**31)


class InterpolateRequest(BaseModel):
    run: str = Field(..., max_length=1024)
    a: str = Field(..., max_length=1024, description="first sound (audio file relative to the root)")
    b: str = Field(..., max_length=1024, description="second sound")
    steps: int = Field(8, ge=2, le=32)


def router(state: StudioState) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["generate"])

    @api.get("/runs")
    def runs() -> list[dict]:
        """Run folders under the root: finished ones (a model to generate with) and ones still training."""
        return find_runs(state)

    @api.post("/generate")
    async def generate(req: GenerateRequest) -> dict:
        """``count`` sounds from the run's prior (label or pitch, temperature, seed)."""
        gen = await run_in_threadpool(generator, state, req.run)

        def work():
            return gen.sample(req.count, label=req.label, temperature=req.temperature, seed=req.seed, pitch=req.pitch)

        return await run_in_threadpool(_save_batch, state, gen, work, "sample")

    @api.post("/variation")
    async def variation(req: VariationRequest) -> dict:
        """``count`` variations of one sound (its latent plus ``amount`` of noise)."""
        gen = await run_in_threadpool(generator, state, req.run)
        file = state.existing(req.path, "file")

        def work():
            from ..core.io import load_audio

            wav, rate = load_audio(file)
            label = _sidecar(file).get("label")
            return gen.variation(wav, rate, amount=req.amount, n=req.count, seed=req.seed, label=label)

        return await run_in_threadpool(_save_batch, state, gen, work, "variation")

    @api.post("/interpolate")
    async def interpolate(req: InterpolateRequest) -> dict:
        """``steps`` sounds between two sounds (their sidecar latents, else their encodings)."""
        gen = await run_in_threadpool(generator, state, req.run)
        fa, fb = state.existing(req.a, "file"), state.existing(req.b, "file")

        def work():
            (za, la), (zb, lb) = _latent(gen, fa), _latent(gen, fb)
            return gen.interpolate(za, zb, steps=req.steps, label=la, label_b=lb if lb != la else None)

        return await run_in_threadpool(_save_batch, state, gen, work, "interpolate")

    @api.get("/batches/{batch}.zip", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
    def download(batch: str) -> Response:
        """A generated batch: audio files with their JSON sidecars, as one zip."""
        if not batch.replace("-", "").isalnum() or len(batch) > 64:
            raise ParameterError(f"no batch {batch[:64]!r}")
        folder = state.root / STATE_DIR / "generated" / batch
        if not folder.is_dir():
            raise NotFound(f"no batch {batch!r}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(folder.iterdir()):
                if f.is_file() and not f.is_symlink():
                    zf.write(f, f"{batch}/{f.name}")
        headers = {"Content-Disposition": f'attachment; filename="soundloom-{batch}.zip"'}
        return Response(buf.getvalue(), media_type="application/zip", headers=headers)

    return api


def find_runs(state: StudioState) -> list[dict]:
    """``{"path", "finished", "labels", "kind"}`` per run folder within :data:`RUN_DEPTH` of the root."""
    out = []
    for folder, dirs, files in os.walk(state.root):
        depth = len(Path(folder).relative_to(state.root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < RUN_DEPTH)
        if "model.json" in files or ("config.yaml" in files and "metrics.csv" in files):
            run = {"path": state.rel(folder), "finished": "model.json" in files, "labels": [], "kind": None}
            if run["finished"]:
                try:
                    model = json.loads((Path(folder) / "model.json").read_text())["model"]
                    run["labels"], run["kind"] = list(model.get("labels") or []), model.get("kind")
                except (OSError, ValueError, KeyError, TypeError):
                    run["finished"] = False
            out.append(run)
            dirs[:] = []  # a run's own folders (samples, checkpoints) hold no runs
    return out


def generator(state: StudioState, run: str):
    """The Generator of a finished run (loaded once, again when its weights change)."""
    from ..sounds.generator import Generator
    from ..sounds.runfiles import MODEL_FILE

    folder = state.existing(run, "dir")
    weights = folder / MODEL_FILE
    if not weights.is_file():
        raise ParameterError(f"{run}: not a finished run (no {MODEL_FILE} yet)")
    key, mtime = str(folder), weights.stat().st_mtime_ns
    with _LOAD_LOCK:
        cached = state.generators.get(key)
        if cached is None or cached[0] != mtime:
            while len(state.generators) >= MAX_GENERATORS:
                state.generators.pop(next(iter(state.generators)))
            state.generators[key] = (mtime, Generator.from_run(folder))
        return state.generators[key][1]


def _sidecar(file: Path) -> dict:
    """The JSON sidecar beside a generated sound ({} when there is none or it is not ours)."""
    side = file.with_suffix(".json")
    try:
        record = json.loads(side.read_text())
        return record if isinstance(record, dict) and "latent" in record else {}
    except (OSError, ValueError):
        return {}


def _latent(gen, file: Path):
    """A sound's latent ``(latent_dim,)`` and label: its sidecar's, else its encoding (label inferred)."""
    import numpy as np

    record = _sidecar(file)
    if (
        record
        and len(record["latent"]) == gen.latent_dim
        and record.get("model", {}).get("sha256") == gen.info["sha256"]
    ):
        return np.asarray(record["latent"], dtype=np.float32), record.get("label")
    from ..core.io import load_audio

    wav, rate = load_audio(file)
    label = gen.infer_label(None, wav, rate)
    return gen.encode(wav, rate, label), label


def _save_batch(state: StudioState, gen, work, mode: str) -> dict:
    t0 = time.perf_counter()
    sounds = work()
    batch = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = state.root / STATE_DIR / "generated" / batch
    paths = gen.save(sounds, folder, prefix=mode)
    items = [
        {
            "path": state.rel(p),
            "name": p.name,
            "label": s.label,
            "seed": s.seed,
            "params": s.params,
            "seconds": round(len(s.audio) / s.sample_rate, 3),
        }
        for p, s in zip(paths, sounds)
    ]
    return {
        "batch": batch,
        "zip": f"/api/batches/{batch}.zip",
        "sounds": items,
        "seconds": round(time.perf_counter() - t0, 3),
    }
