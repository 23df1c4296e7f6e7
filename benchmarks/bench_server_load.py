"""Load on the stream server: paced, greedy and stalled listeners at once, on loopback only.

    python benchmarks/bench_server_load.py                      # 60 s, 20 paced, 5 greedy, 20 stalled
    python benchmarks/bench_server_load.py --seconds 20 --paced 5 --greedy 2 --stalled 5
    python benchmarks/bench_server_load.py --cpu-only                 # in-process CPU figures, no server

Starts ``soundloom serve`` (a subprocess, so its RSS is its own) on 127.0.0.1 over a small synthetic
pool, then runs the listeners for ``--seconds``:

- paced: read at real time (the rate of a player); each one's received audio rate must be >= 1.0x,
- greedy: read as fast as they can (the server paces them to ``--pace`` x real time),
- stalled: read 10 KB, then stop reading (the server drops them after ``--idle-timeout-s``),

while the page (``GET /``) is timed every ``--page-interval-s`` by a separate process (must stay < 200 ms;
the timer shares no interpreter, and so no GIL, with the 45 client threads), and the server's RSS is
sampled at start (after one warm-up stream), its peak, and after every client left (must be back
within 10 % of start). Every loop is bounded in count and time; the server is stopped at the end.

It also prints the server's own CPU figures from ``GET /info`` (thread CPU time of the renderers, so
they do not depend on how loaded the machine is): audio seconds rendered per CPU second, start-up CPU
ms per listener, seam verdicts computed vs reused; and the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loopback import free_port, make_pool, stop_server

RATE = 22050
BYTES_PER_S = 2 * RATE


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request(port: int, path: str, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    return s


def listener(port: int, kind: str, seed: int, stop_at: float, out: dict) -> None:
    """One client; ``out`` gets bytes received and seconds it listened (audio rate = bytes / 2 / RATE / s)."""
    got, t0 = 0, time.monotonic()
    try:
        s = request(port, f"/stream.wav?seed={seed}")
        s.settimeout(5.0)
        head = s.recv(65536)
        out["status"] = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "?"
        body_start = head.find(b"\r\n\r\n")
        got = len(head) - body_start - 4 - 44 if body_start >= 0 else 0
        t0 = time.monotonic()
        if kind == "stalled":
            while got < 10_000 and time.monotonic() < stop_at:
                got += len(s.recv(4096))
            # stop reading; keep the connection open until the end of the run
            while time.monotonic() < stop_at:
                time.sleep(0.5)
        else:
            while time.monotonic() < stop_at:
                data = s.recv(65536)
                if not data:
                    break
                got += len(data)
                if kind == "paced":  # a player: never ahead of real time (after a 2 s buffer)
                    ahead = got / BYTES_PER_S - (time.monotonic() - t0) - 2.0
                    if ahead > 0:
                        time.sleep(min(ahead, stop_at - time.monotonic()) if stop_at > time.monotonic() else 0)
        s.close()
    except OSError as exc:
        out["error"] = str(exc)
    out["bytes"], out["seconds"] = max(got, 0), time.monotonic() - t0


def page_ms(port: int) -> float:
    t0 = time.monotonic()
    s = request(port, "/", timeout=5.0)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert b"soundloom" in data
    return 1000 * (time.monotonic() - t0)


def page_timer(port: int, start_at: float, stop_at: float, interval_s: float, out) -> None:
    """In its own process: time ``GET /`` every ``interval_s`` from ``start_at`` to ``stop_at`` (monotonic clock,
    shared by processes on Linux); sends ``[(seconds into the load, ms), ...]`` (inf: failed) to ``out``."""
    got = []
    t_next = start_at
    while t_next < stop_at:
        time.sleep(max(0.0, t_next - time.monotonic()))
        at = time.monotonic() - start_at
        try:
            got.append((at, page_ms(port)))
        except (OSError, AssertionError):
            got.append((at, float("inf")))
        t_next += interval_s
    out.send(got)
    out.close()


def info(port: int) -> dict:
    """The server's ``GET /info`` (JSON)."""
    s = request(port, "/info", timeout=10.0)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds the process ``pid`` has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_figures(pool: Path, n: int = 20, seconds: int = 30) -> None:
    """Thread-CPU figures of rendering ``n`` live streams of ``seconds`` each (independent of machine load):
    the old way (each listener its own catalog, search and seam verifier: ``write_endless``) against the
    server's shared state, with cold, known and warmed-up seam verdicts."""
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.config import RenderConfig, SearchConfig
    from soundloom.streams.endless import write_endless
    from soundloom.streams.index import load_pool_embeddings
    from soundloom.studio.app import ServeLimits, SharedPool

    class Sink:  # keeps nothing; hangs up after the header and `secs` of audio
        def __init__(self, secs: int):
            self.n, self.limit = 0, 44 + secs * BYTES_PER_S

        def write(self, b: bytes) -> int:
            self.n += len(b)
            if self.n > self.limit:
                raise BrokenPipeError
            return len(b)

        def flush(self) -> None:
            pass

    def cpu(fn) -> float:
        t = time.thread_time()
        fn()
        return time.thread_time() - t

    with ChunkCatalog(pool, create=False) as cat:
        emb = load_pool_embeddings(cat, "features")

    def old(secs: int) -> None:
        for seed in range(n):
            with ChunkCatalog(pool, create=False) as cat:
                write_endless(Sink(secs), cat, emb, SearchConfig(seed=seed), RenderConfig())

    def shared_pool() -> SharedPool:
        with ChunkCatalog(pool, create=False) as cat:
            return SharedPool(cat, emb, SearchConfig(), RenderConfig(), ServeLimits())

    def new(sh: SharedPool, secs: int) -> None:
        for seed in range(n):
            try:
                sh.write_stream(Sink(secs), SearchConfig(seed=seed))
            except BrokenPipeError:
                pass

    audio = n * seconds
    print(f"{n} listeners x {seconds} s, thread CPU time")
    print(f"before, per-listener write_endless: {audio / cpu(lambda: old(seconds)):.1f} audio s per CPU s")
    print(f"before, CPU to a listener's first audio block: {1000 * cpu(lambda: old(0)) / n:.1f} ms")
    sh = shared_pool()
    print(f"after, cold verdicts: {audio / cpu(lambda: new(sh, seconds)):.1f} audio s per CPU s")
    print(f"after, verdicts known: {audio / cpu(lambda: new(sh, seconds)):.1f} audio s per CPU s")
    sh = shared_pool()
    print(f"after, warm-up at start: {cpu(sh.warm_verdicts):.2f} s CPU for {sh.verdicts.computed} verdicts")
    print(f"after warm-up, new listeners: {audio / cpu(lambda: new(sh, seconds)):.1f} audio s per CPU s")
    print(f"after, CPU to a listener's first audio block: {1000 * cpu(lambda: new(sh, 0)) / n:.1f} ms")
    forks = cpu(lambda: [sh.chooser(SearchConfig(seed=s)) for s in range(200)])
    print(f"after, a listener's own search (fork): {1000 * forks / 200:.2f} ms CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--paced", type=int, default=20)
    ap.add_argument("--greedy", type=int, default=5)
    ap.add_argument("--stalled", type=int, default=20)
    ap.add_argument("--idle-timeout-s", type=float, default=10.0)
    ap.add_argument("--pace", type=float, default=2.0)
    ap.add_argument("--page-interval-s", type=float, default=0.5, help="time GET / this often")
    ap.add_argument("--cpu-only", action="store_true", help="print in-process CPU figures and stop")
    args = ap.parse_args()
    if args.cpu_only:
        with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
            cpu_figures(make_pool(Path(tmp)))
        return

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench_server_"))
    pool = make_pool(tmp)
    port = free_port()
    n = args.paced + args.greedy + args.stalled
    cmd = [sys.executable, "-c", "from soundloom.cli import main; main()", "serve", str(pool)]
    cmd += ["--port", str(port), "--max-listeners", str(n + 2), "--idle-timeout-s", str(args.idle_timeout_s)]
    cmd += ["--pace", str(args.pace)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # readiness: bounded polling of the port
            try:
                page_ms(port)
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"server did not start: {server.stderr.read() if server.poll() else ''}") from None
                time.sleep(0.2)
        warm_by = time.monotonic() + 120  # the server checks likely joins at start (bounded wait)
        while not info(port)["render"]["seam_verdicts_warm"] and time.monotonic() < warm_by:
            time.sleep(0.5)
        warm_s = 120 - (warm_by - time.monotonic())
        warm: dict = {}
        listener(port, "greedy", 0, time.monotonic() + 3, warm)  # imports and first render, not load
        time.sleep(1.0)
        rss_start = rss_mb(server.pid)
        cpu_start = server_cpu_s(server.pid)

        # The page timer starts first (its own process: spawn), then the clients connect together at start_at.
        start_at = time.monotonic() + 3.0
        stop_at = start_at + args.seconds
        recv, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
        timer = multiprocessing.get_context("spawn").Process(
            target=page_timer, args=(port, start_at - 1.0, stop_at, args.page_interval_s, send), daemon=True
        )
        timer.start()
        send.close()
        time.sleep(max(0.0, start_at - time.monotonic()))
        kinds = ["paced"] * args.paced + ["greedy"] * args.greedy + ["stalled"] * args.stalled
        results = [dict(kind=k) for k in kinds]
        threads = [
            threading.Thread(target=listener, args=(port, k, i, stop_at, r), daemon=True)
            for i, (k, r) in enumerate(zip(kinds, results))
        ]
        for t in threads:
            t.start()
        rss_peak = rss_start
        while time.monotonic() < stop_at:  # twice a second: the RSS
            rss_peak = max(rss_peak, rss_mb(server.pid))
            time.sleep(min(0.5, max(0.0, stop_at - time.monotonic())))
        timed = recv.recv() if recv.poll(30) else []
        timer.join(timeout=10)
        page_at = [at - 1.0 for at, _ in timed]  # seconds after the clients connected (negative: before)
        pages = [ms for _, ms in timed]
        for t in threads:
            t.join(timeout=15)
        cpu_load = server_cpu_s(server.pid) - cpu_start
        # after every client left: wait (bounded) for the server to release the streams
        settle = time.monotonic() + 30
        rss_end = rss_mb(server.pid)
        while time.monotonic() < settle and abs(rss_end - rss_start) > 0.1 * rss_start:
            time.sleep(1.0)
            rss_end = rss_mb(server.pid)
        stats = info(port)["render"]
    finally:
        err = stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(r: dict) -> float:
        return r.get("bytes", 0) / BYTES_PER_S / max(r.get("seconds", 1e-9), 1e-9)

    paced = [rate(r) for r in results if r["kind"] == "paced"]
    greedy = [rate(r) for r in results if r["kind"] == "greedy"]
    stalled_kb = [r.get("bytes", 0) / 1000 for r in results if r["kind"] == "stalled"]
    errors = [r.get("error") for r in results if r.get("error")]
    finite_pages = sorted(p for p in pages if p != float("inf"))
    ok = {
        "paced >= 1.0x": min(paced, default=1.0) >= 1.0,
        "page < 200 ms": bool(pages) and max(pages) < 200,
        "RSS back within 10%": abs(rss_end - rss_start) <= 0.1 * rss_start,
    }
    print(
        f"{args.seconds:g} s, {args.paced} paced + {args.greedy} greedy + {args.stalled} stalled listeners, "
        f"pace {args.pace:g}x, idle timeout {args.idle_timeout_s:g} s, {os.cpu_count()} CPUs"
    )
    print(f"server ready and seam verdicts warm after {warm_s:.1f} s (wall)")
    print(f"{'measure':34s} {'min':>9s} {'median':>9s} {'max':>9s}")
    rows = [
        ("paced audio rate (x real time)", paced),
        ("greedy audio rate (x real time)", greedy),
        ("stalled KB received", stalled_kb),
        ("page response (ms)", finite_pages or [float("nan")]),
    ]
    for name, vals in rows:
        if not vals:  # no listener of that kind in this run
            continue
        print(f"{name:34s} {min(vals):9.2f} {statistics.median(vals):9.2f} {max(vals):9.2f}")
    print(
        f"page requests: {len(pages)} (every {args.page_interval_s:g} s from 1 s before the clients connect, "
        f"timed in a separate process), failed: {sum(p == float('inf') for p in pages)}"
    )
    slowest = sorted(zip(pages, page_at), reverse=True)[:3]
    print("slowest pages (ms at s into the load): " + ", ".join(f"{p:.0f} at {t:.1f}" for p, t in slowest))
    first = [p for p, t in zip(pages, page_at) if -1.0 <= t <= 5.0]
    if first:
        print(f"page while the clients connect (first 5 s): max {max(first):.0f} ms over {len(first)} requests")
    print(f"server RSS (MB): start {rss_start:.1f}, peak {rss_peak:.1f}, after clients left {rss_end:.1f}")
    audio = sum(r.get("bytes", 0) for r in results) / BYTES_PER_S
    print(
        f"server CPU during the load: {cpu_load:.1f} s for {audio:.0f} s of audio delivered "
        f"({audio / max(cpu_load, 1e-9):.1f} audio s per server CPU s, all threads incl. HTTP)"
    )
    print(
        f"renderers (thread CPU, /info): {stats['audio_s_per_cpu_s']} audio s per CPU s over "
        f"{stats['finished_listeners']} listeners; start-up CPU per listener: setup "
        f"{stats['setup_cpu_ms_median']:.2f} ms, to first audio block {stats['first_block_cpu_ms_median']:.1f} ms "
        f"(medians); seam verdicts computed {stats['seam_verdicts_computed']}, reused {stats['seam_verdicts_reused']}"
    )
    load_after = os.getloadavg()
    print(f"machine load average (1/5/15 min): before {load_before}, after {tuple(round(x, 2) for x in load_after)}")
    print(f"client errors: {len(errors)}{' ' + repr(errors[:3]) if errors else ''}")
    print(f"server stderr lines: {len(err.splitlines())}; tracebacks: {err.count('Traceback')}")
    for line in sorted(set(err.splitlines()))[:5]:
        print(f"  | {line[:150]}")
    for k, v in ok.items():
        print(f"{'PASS' if v else 'FAIL'}  {k}")


if __name__ == "__main__":
    main()
