"""Long jobs (prepare, train, ...) in worker processes, with their state on disk.

Each job gets a folder ``<root>/.soundloom-studio/jobs/<id>/`` holding::

    events.jsonl   one JSON object a line: {"t", "event": "start" | "progress" | "done" | "error", ...}
    log.txt        the worker's stdout and stderr
    job.json       what was asked (kind, params) and the worker's pid and start time

and ``<root>/.soundloom-studio/jobs.json`` lists the jobs, so a reloaded page or a restarted server
shows them. A job's status comes from its events and its process: ``running``, ``done``, ``failed``
(the worker raised: the error line is shown), ``stopped`` (by the user) or ``crashed`` (the worker died
without a word: its exit status or the last line of its log is shown).

Workers are ``multiprocessing`` spawn processes that lead their own process group, so :meth:`JobManager.stop`
ends the worker and every child it started (prepare's pool, data loaders). The web process never
imports the training code: a job names its function by dotted path (:data:`JOB_KINDS`), imported in the
worker only.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
import uuid
from pathlib import Path

from ..core.atomic import write_json
from ..core.errors import ParameterError, SoundloomError

#: Job kind -> "module:function" run in the worker as ``function(params, report)``.
JOB_KINDS: dict[str, str] = {
    "prepare": "soundloom.studio.jobs:run_prepare",
    "train": "soundloom.studio.jobs:run_train",
}
#: Folder of the studio's own state under the root.
STATE_DIR = ".soundloom-studio"
#: Jobs kept in ``jobs.json`` (the oldest finished ones are forgotten beyond this).
MAX_JOBS = 200
FINAL = ("done", "failed", "stopped", "crashed")


# ------------------------------------------------------------------------------- worker side
class Reporter:
    """Appends events to a job's ``events.jsonl``; ``progress`` is a core ProgressCallback."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last = 0.0

    def event(self, event: str, **fields) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), "event": event, **fields}) + "\n")

    def progress(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last >= 0.5 or (total is not None and done >= total):  # at most 2 lines a second
            self.last = now
            self.event("progress", stage=stage, done=int(done), total=None if total is None else int(total))


def _worker(target: str, params: dict, job_dir: str) -> None:
    """Entry point of a job's process: own process group, output to log.txt, events to events.jsonl."""
    os.setpgrp()  # stop() signals the group: this worker and all its children
    folder = Path(job_dir)
    log = os.open(folder / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    report = Reporter(folder / "events.jsonl")
    report.event("start", pid=os.getpid())
    try:
        module, name = target.split(":")
        result = getattr(importlib.import_module(module), name)(params, report)
    except SoundloomError as exc:
        report.event("error", line=str(exc), kind=type(exc).__name__)
        raise SystemExit(2) from None
    except BaseException as exc:
        traceback.print_exc()
        line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        report.event("error", line=f"{type(exc).__name__}: {line}"[:500], kind=type(exc).__name__)
        raise SystemExit(1) from None
    report.event("done", result=result if isinstance(result, dict) else {})


def run_prepare(params: dict, report: Reporter) -> dict:
    """Job ``prepare``: params ``source``, ``out`` (absolute, confined by the route), optional ``seconds``."""
    from ..data.prepare import PrepareConfig, prepare

    cfg = PrepareConfig(seconds=float(params.get("seconds", 1.0)))
    result = prepare(
        params["source"], params["out"], cfg, workers=int(params.get("workers", 1)), progress=report.progress
    )
    return {"out": str(params["out"]), "items": int(getattr(result, "n_items", 0) or 0)}


def run_train(params: dict, report: Reporter) -> dict:
    """Job ``train``: params ``features``, ``out``, ``model``, ``minutes``, ``epochs``, ``resume`` and small
    model options (``latent_dim``, ``channels``, ``batch_size``)."""
    from ..sounds.training import TrainConfig, train

    options = {k: params[k] for k in TRAIN_OPTIONS if params.get(k) is not None}
    if params.get("minutes") is not None:
        options["max_minutes"] = float(params["minutes"])
    options["threads"] = int(params.get("threads") or 1)
    if params.get("resume"):
        keep = {k: v for k, v in options.items() if k in ("epochs", "max_minutes", "threads")}
        cfg = TrainConfig.for_resume(params["out"], **keep)
    else:
        cfg = TrainConfig(features=str(params["features"]), **options)
    report.event("progress", stage="train", done=0, total=cfg.epochs)
    train(cfg, params["out"], resume=bool(params.get("resume")), progress_bar=False, progress=report.progress)
    return {"run": str(params["out"])}


#: Options of a train job passed to TrainConfig as they are.
TRAIN_OPTIONS = (
    "model",
    "epochs",
    "batch_size",
    "latent_dim",
    "channels",
    "warmup_steps",
    "checkpoint_every",
    "sample_items",
    "griffin_lim_iters",
    "val_fraction",
    "seed",
)


# ------------------------------------------------------------------------------- server side
def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (``/proc/<pid>/stat`` field 22), or None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def read_events(path: Path) -> list[dict]:
    """Every complete line of an ``events.jsonl`` (a half-written last line is left for later)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def last_line(path: Path) -> str:
    """The last non-empty line of a text file ('' when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""


class JobManager:
    """Starts, lists and stops jobs under ``<root>/.soundloom-studio``; safe to call from several threads."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.state_dir = Path(root).resolve() / STATE_DIR
        self.jobs_dir = self.state_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.index = self.state_dir / "jobs.json"
        self.lock = threading.Lock()
        self.procs: dict[str, multiprocessing.process.BaseProcess] = {}
        self.ctx = multiprocessing.get_context("spawn")

    # -- the index ------------------------------------------------------------------------------
    def _load(self) -> list[dict]:
        try:
            jobs = json.loads(self.index.read_text())
            return jobs if isinstance(jobs, list) else []
        except (OSError, json.JSONDecodeError):
            return []

    def _save(self, jobs: list[dict]) -> None:
        running = [j for j in jobs if j["status"] not in FINAL]
        done = [j for j in jobs if j["status"] in FINAL][-max(0, MAX_JOBS - len(running)) :]
        keep = {j["id"] for j in running + done}
        write_json(self.index, [j for j in jobs if j["id"] in keep])

    # -- public --------------------------------------------------------------------------------
    def start(self, kind: str, params: dict, target: str | None = None, title: str = "") -> dict:
        """Start a job of ``kind`` (a key of :data:`JOB_KINDS`, or any ``target`` "module:function")."""
        if target is None:
            if kind not in JOB_KINDS:
                raise ParameterError(f"unknown job kind {kind!r}; have {sorted(JOB_KINDS)}")
            target = JOB_KINDS[kind]
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        folder = self.jobs_dir / job_id
        folder.mkdir(parents=True)
        proc = self.ctx.Process(target=_worker, args=(target, params, str(folder)), name=f"soundloom-job-{job_id}")
        proc.start()
        job = {
            "id": job_id,
            "kind": kind,
            "title": title or kind,
            "params": params,
            "status": "running",
            "pid": proc.pid,
            "pid_start": _start_time(proc.pid),
            "started": time.time(),
            "ended": None,
            "error": None,
            "progress": None,
            "result": None,
        }
        write_json(folder / "job.json", job)
        with self.lock:
            self.procs[job_id] = proc
            self._save(self._load() + [job])
        return job

    def list(self) -> list[dict]:
        """Every job, newest first, its status brought up to date."""
        with self.lock:
            before = self._load()
            text = json.dumps(before)
            jobs = [self._refresh(j) for j in before]
            if json.dumps(jobs) != text:  # written only when a status changed
                self._save(jobs)
        return sorted(jobs, key=lambda j: j["started"], reverse=True)

    def get(self, job_id: str) -> dict:
        """One job (ParameterError when there is no such job)."""
        for job in self.list():
            if job["id"] == job_id:
                return job
        raise ParameterError(f"no job {job_id!r}")

    def events(self, job_id: str) -> list[dict]:
        """The events a job wrote so far."""
        self.get(job_id)
        return read_events(self.jobs_dir / job_id / "events.jsonl")

    def stop(self, job_id: str, grace_s: float = 5.0) -> dict:
        """End a running job: SIGTERM to its process group, SIGKILL after ``grace_s``."""
        job = self.get(job_id)
        if job["status"] != "running":
            return job
        with self.lock:
            jobs = self._load()
            for j in jobs:
                if j["id"] == job_id:
                    j["stop_requested"] = True
            self._save(jobs)
        self._signal(job, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._alive(job) and time.monotonic() < deadline:
            proc = self.procs.get(job_id)
            if proc is not None:
                proc.join(timeout=0.1)
            else:
                time.sleep(0.1)  # not our child (a previous server started it): nothing to wait on but the pid
        if self._alive(job):
            self._signal(job, signal.SIGKILL)
        proc = self.procs.pop(job_id, None)
        if proc is not None:
            proc.join(timeout=grace_s)
        return self.get(job_id)

    def stop_all(self) -> None:
        """Stop every job this manager started (at server shutdown)."""
        for job_id in list(self.procs):
            self.stop(job_id, grace_s=2.0)

    # -- status --------------------------------------------------------------------------------
    def _alive(self, job: dict) -> bool:
        proc = self.procs.get(job["id"])
        if proc is not None:
            return proc.is_alive()  # also reaps it once it ended
        pid = job.get("pid")
        return bool(pid) and _start_time(pid) is not None and _start_time(pid) == job.get("pid_start")

    def _signal(self, job: dict, sig: int) -> None:
        if not self._alive(job):
            return
        try:
            os.killpg(job["pid"], sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(job["pid"], sig)

    def _refresh(self, job: dict) -> dict:
        if job["status"] in FINAL:
            return job
        folder = self.jobs_dir / job["id"]
        events = read_events(folder / "events.jsonl")
        progress = [e for e in events if e["event"] == "progress"]
        job["progress"] = progress[-1] if progress else None
        end = next((e for e in reversed(events) if e["event"] in ("done", "error")), None)
        alive = self._alive(job)
        if end is not None and end["event"] == "done":
            job.update(status="done", result=end.get("result"), ended=end["t"])
        elif job.get("stop_requested") and not alive:
            job.update(status="stopped", ended=time.time())
        elif end is not None and end["event"] == "error" and not alive:
            job.update(status="failed", error=end.get("line"), ended=end["t"])
        elif not alive:
            proc = self.procs.get(job["id"])
            code = proc.exitcode if proc is not None else None
            why = f"worker exited with status {code}" if code is not None and code >= 0 else ""
            if code is not None and code < 0:
                why = f"worker killed by signal {-code} ({signal.Signals(-code).name})"
            line = last_line(folder / "log.txt")
            job.update(
                status="crashed", error="; ".join(x for x in (why or "worker vanished", line) if x), ended=time.time()
            )
        return job
