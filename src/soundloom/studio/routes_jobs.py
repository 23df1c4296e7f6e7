"""Job routes: start prepare and train jobs, list them, follow one live (server-sent events), stop, resume."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..core.errors import ParameterError
from .state import StudioState

#: Seconds between two looks at a job's files while an event stream is open.
POLL_S = 0.5
#: Longest an event stream stays open (s); the page reconnects (EventSource does so by itself).
SSE_MAX_S = 600.0


class PrepareRequest(BaseModel):
    source: str = Field(..., max_length=1024, description="data set folder relative to the root")
    out: str = Field(..., max_length=1024, description="feature store folder to write, relative to the root")
    seconds: float = Field(1.0, gt=0, le=30, description="clip length (s)")


class TrainRequest(BaseModel):
    features: str = Field(..., max_length=1024, description="feature store folder relative to the root")
    out: str = Field(..., max_length=1024, description="run folder to write, relative to the root")
    model: str = Field("cvae", max_length=32, description="model kind (vae, cvae, ...)")
    minutes: float | None = Field(None, gt=0, le=24 * 60, description="time budget (min)")
    epochs: int = Field(100, ge=1, le=100000)
    batch_size: int | None = Field(None, ge=1, le=4096)
    latent_dim: int | None = Field(None, ge=1, le=1024)
    channels: list[int] | None = Field(None, min_length=1, max_length=8)
    warmup_steps: int | None = Field(None, ge=0, le=10**6)
    checkpoint_every: int | None = Field(None, ge=1, le=10**6)
    sample_items: int | None = Field(None, ge=0, le=16)
    griffin_lim_iters: int | None = Field(None, ge=1, le=256)
    val_fraction: float | None = Field(None, ge=0, lt=1)
    seed: int | None = Field(None, ge=0, le=2**31)


class ResumeRequest(BaseModel):
    run: str = Field(..., max_length=1024, description="run folder relative to the root")
    minutes: float | None = Field(None, gt=0, le=24 * 60)
    epochs: int | None = Field(None, ge=1, le=100000)


def router(state: StudioState) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["jobs"])

    @api.get("/jobs")
    def list_jobs() -> list[dict]:
        """Every job, newest first: kind, status (running, done, failed, stopped, crashed), error line, progress."""
        return [_public(state, j) for j in state.jobs.list()]

    @api.get("/jobs/{job_id}")
    def get_job(job_id: str) -> dict:
        """One job, with its run's metrics when it trains."""
        return snapshot(state, state.jobs.get(_job_id(job_id)))

    @api.post("/jobs/prepare")
    def start_prepare(req: PrepareRequest) -> dict:
        """Turn a data set folder into a feature store, in a worker process."""
        source, out = state.existing(req.source, "dir"), state.path(req.out)
        params = {"source": str(source), "out": str(out), "seconds": req.seconds}
        return _public(state, state.jobs.start("prepare", params, title=f"prepare {req.source} -> {req.out}"))

    @api.post("/jobs/train")
    def start_train(req: TrainRequest) -> dict:
        """Start a training run in a worker process; follow it at ``/api/jobs/{id}/events``."""
        features, out = state.existing(req.features, "dir"), state.path(req.out)
        if not (features / "config.json").is_file():
            raise ParameterError(f"{req.features}: not a feature store (no config.json); prepare one first")
        if (out / "metrics.csv").exists():
            raise ParameterError(f"{req.out}: already holds a run; resume it or choose another folder")
        _no_running_job_on(state, out)
        params = req.model_dump(exclude_none=True)
        params.update(features=str(features), out=str(out))
        return _public(state, state.jobs.start("train", params, title=f"train {req.model} -> {req.out}"))

    @api.post("/jobs/resume")
    def resume_train(req: ResumeRequest) -> dict:
        """Resume a stopped run from its last checkpoint (budgets may change, nothing else)."""
        run = state.existing(req.run, "dir")
        if not (run / "checkpoints" / "last.ckpt").is_file():
            raise ParameterError(f"{req.run}: no checkpoint to resume from")
        _no_running_job_on(state, run)
        params = {"out": str(run), "resume": True, "minutes": req.minutes, "epochs": req.epochs}
        return _public(state, state.jobs.start("train", params, title=f"resume {req.run}"))

    @api.post("/jobs/{job_id}/stop")
    def stop_job(job_id: str) -> dict:
        """Stop a running job (its worker and every process it started)."""
        return _public(state, state.jobs.stop(_job_id(job_id)))

    @api.get("/jobs/{job_id}/events", response_class=StreamingResponse)
    async def job_events(job_id: str, request: Request, once: bool = Query(False, description="one event, then end")):
        """Server-sent events: ``event: job`` with the job's snapshot (status, progress, loss rows, ETA,
        sample audio) each time it changes; the stream ends after the job ends."""
        state.jobs.get(_job_id(job_id))

        async def stream():
            last, t0 = None, time.monotonic()
            while time.monotonic() - t0 < SSE_MAX_S:
                job = await asyncio.to_thread(state.jobs.get, job_id)
                snap = await asyncio.to_thread(snapshot, state, job)
                text = json.dumps(snap)
                if text != last:
                    last = text
                    yield f"event: job\ndata: {text}\n\n"
                if once or job["status"] != "running" or await request.is_disconnected():
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return api


def _job_id(job_id: str) -> str:
    if not job_id.replace("-", "").isalnum() or len(job_id) > 64:
        raise ParameterError(f"no job {job_id[:64]!r}")
    return job_id


def _no_running_job_on(state: StudioState, out: Path) -> None:
    for job in state.jobs.list():
        if job["status"] == "running" and job["params"].get("out") == str(out):
            raise ParameterError(f"{state.rel(out)}: a job is already writing there ({job['id']})")


def _public(state: StudioState, job: dict) -> dict:
    """A job as the page sees it: paths relative to the root, no pid bookkeeping."""
    params = {k: (state.rel(v) if k in ("source", "out", "features") else v) for k, v in job["params"].items()}
    keep = ("id", "kind", "title", "status", "started", "ended", "error", "progress", "result")
    out = {k: job.get(k) for k in keep}
    out["params"] = params
    if out["error"]:  # the page names paths relative to the root
        out["error"] = out["error"].replace(f"{state.root}/", "").replace(str(state.root), ".")
    if isinstance(out["result"], dict):
        out["result"] = {k: (state.rel(v) if k in ("run", "out") else v) for k, v in out["result"].items()}
    return out


def snapshot(state: StudioState, job: dict) -> dict:
    """The job, plus for a train job: ``metrics`` (rows of ``metrics.csv``), ``eta_s`` and ``samples``."""
    out = _public(state, job)
    if job["kind"] != "train":
        return out
    run = Path(job["params"]["out"])
    rows = read_metrics(run / "metrics.csv")
    out["metrics"] = rows
    out["samples"] = sample_files(state, run)
    out["eta_s"] = eta_s(job, rows, run)
    return out


def read_metrics(path: Path) -> list[dict]:
    """Rows of a run's ``metrics.csv`` with numbers as floats (blank cells left out); [] when absent."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    out = []
    for row in rows:
        clean = {}
        for k, v in row.items():
            try:
                clean[k] = float(v)
            except (TypeError, ValueError):
                continue
        out.append(clean)
    return out


def sample_files(state: StudioState, run: Path, last_epochs: int = 1) -> list[dict]:
    """Audio the run wrote in its latest ``samples/epoch_NNN/`` folder(s): ``{"epoch", "name", "path"}``."""
    folders = sorted((run / "samples").glob("epoch_*"))[-last_epochs:]
    out = []
    for folder in folders:
        for wav in sorted(folder.glob("*.wav")):
            rel = state.rel(wav)
            if rel is not None:
                out.append({"epoch": folder.name.removeprefix("epoch_"), "name": wav.name, "path": rel})
    return out


def eta_s(job: dict, rows: list[dict], run: Path) -> float | None:
    """Seconds left: the time budget's rest, or epochs left x seconds per epoch, whichever comes first."""
    if job["status"] != "running":
        return None
    params = job["params"]
    elapsed = time.time() - job["started"]
    guesses = []
    if params.get("minutes"):
        guesses.append(max(0.0, params["minutes"] * 60 - elapsed))
    epochs = params.get("epochs")
    if rows and epochs and rows[-1].get("elapsed_s"):
        done = int(rows[-1].get("epoch", 0)) + 1
        per_epoch = rows[-1]["elapsed_s"] / done
        guesses.append(max(0.0, (epochs - done) * per_epoch))
    return round(min(guesses), 1) if guesses else None
