"""Jobs in worker processes: an error line, a crash, a stop that ends the worker's children, state on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soundloom.studio.jobs import JobManager, _start_time

HERE = "tests.studio.test_studio_jobs"


# ---- job targets (run in the spawned worker) -------------------------------------------------
def hold_with_child(params: dict, report) -> dict:
    """Start a child process, say its pid, then wait until stopped."""
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    Path(params["pid_file"]).write_text(str(child.pid))
    report.progress("hold", 1, 2)
    signal.pause()
    return {}


def die_hard(params: dict, report) -> dict:
    """A worker killed from outside (as the OOM killer would)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def exit_quietly(params: dict, report) -> dict:
    """A worker that leaves without an event, after a line on stderr."""
    print("segfault-like: the native decoder gave up", file=sys.stderr, flush=True)
    os._exit(3)


def finish(params: dict, report) -> dict:
    report.progress("count", 3, 3)
    return {"answer": params["x"] * 2}


# ---- helpers ---------------------------------------------------------------------------------
def wait_status(jobs: JobManager, job_id: str, timeout_s: float = 60.0) -> dict:
    """Poll (bounded) until the job is no longer running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job["status"] != "running":
            return job
        proc = jobs.procs.get(job_id)
        if proc is not None:
            proc.join(timeout=0.2)  # wakes as soon as the worker ends
    raise AssertionError(f"job {job_id} still running after {timeout_s} s")


def gone(pid: int, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _start_time(pid) is None:
            return True
        os.sched_yield()
    return False


# ---- tests -----------------------------------------------------------------------------------
def test_done_job_keeps_its_result_and_progress(tmp_path):
    jobs = JobManager(tmp_path)
    job = jobs.start("test", {"x": 21}, target=f"{HERE}:finish")
    done = wait_status(jobs, job["id"])
    assert done["status"] == "done" and done["result"] == {"answer": 42}
    assert done["progress"]["stage"] == "count" and done["progress"]["done"] == 3
    assert [e["event"] for e in jobs.events(job["id"])] == ["start", "progress", "done"]


def test_a_failed_job_shows_its_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    jobs = JobManager(tmp_path)
    job = jobs.start("prepare", {"source": str(tmp_path / "empty"), "out": str(tmp_path / "feat")})
    failed = wait_status(jobs, job["id"])
    assert failed["status"] == "failed"
    assert "empty" in failed["error"] and failed["error"].count("\n") == 0  # one line naming the folder


@pytest.mark.parametrize(
    "target, expected",
    [("die_hard", "killed by signal 9 (SIGKILL)"), ("exit_quietly", "exited with status 3; segfault-like")],
)
def test_a_crashed_job_says_how_it_ended(tmp_path, target, expected):
    jobs = JobManager(tmp_path)
    job = jobs.start("test", {}, target=f"{HERE}:{target}")
    crashed = wait_status(jobs, job["id"])
    assert crashed["status"] == "crashed" and expected in crashed["error"]


def test_stop_ends_worker_and_children_and_state_survives_a_restart(tmp_path):
    jobs = JobManager(tmp_path)
    pid_file = tmp_path / "child.pid"
    job = jobs.start("test", {"pid_file": str(pid_file)}, target=f"{HERE}:hold_with_child")
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the worker never started its child"
        jobs.procs[job["id"]].join(timeout=0.2)
    child = int(pid_file.read_text())
    # a restarted server (a new manager on the same root) sees the running job and can stop it
    restarted = JobManager(tmp_path)
    assert restarted.get(job["id"])["status"] == "running"
    stopped = restarted.stop(job["id"])
    jobs.procs[job["id"]].join(timeout=10)  # reap our child
    assert gone(job["pid"]) and gone(child), "stop left a process behind"
    assert stopped["status"] == "stopped"
    assert JobManager(tmp_path).get(job["id"])["status"] == "stopped"
    assert (tmp_path / ".soundloom-studio" / "jobs.json").is_file()
