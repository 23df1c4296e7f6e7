"""Load test of the studio's live stream: N concurrent listeners for S seconds, and the page's latency.

    python benchmarks/bench_studio_stream.py                       # 20 listeners, 60 s, synthetic pool
    python benchmarks/bench_studio_stream.py --listeners 20 --seconds 20
    python benchmarks/bench_studio_stream.py --route own       # a renderer per listener (studio.app)
    python benchmarks/bench_studio_stream.py --pool /work/pools/wesnoth --model features

The default route is the shared stream (``/api/streams/<name>/live.wav``, rendered once for all);
``--route own`` loads :mod:`soundloom.studio.app`'s per-listener streams instead.

Loopback only: the studio runs as a subprocess (``soundloom studio``) bound to 127.0.0.1 on a free port
with the pool mounted as stream ``bench``; the listeners and a page prober run here, in one asyncio loop,
so they never compete with the server for its GIL. Every listener reads ``/streams/bench/stream.wav``
for ``--seconds`` and hangs up; the prober GETs ``/`` and ``/api/jobs`` every 0.25 s meanwhile. The run
stops by itself (``--seconds`` plus a bounded start-up wait) and ends the server it started.

Prints per-listener real-time factor (audio seconds received / wall seconds, after the first
``--burst-s``, the server's initial burst), the least audio any listener had in hand ahead of real
time (a player fed at this rate never starves while it is > 0) and the page latency (p50 / p95 / max,
ms), then PASS or FAIL against the issue's bar: every listener receives audio at least at real-time
rate (never behind), the page p95 under 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from loopback import free_port

HOST = "127.0.0.1"  # never anything else: this generates load


def synthetic_pool(folder: Path, songs: int) -> Path:
    """A pool of ``songs`` synthetic 30 s songs chunked every 2 s."""
    from soundloom.data.synth import write_songs
    from soundloom.streams.catalog import ChunkCatalog, find_songs
    from soundloom.streams.chunking import ChunkConfig

    write_songs(folder / "songs", n_songs=songs, seconds=30.0, seed=7)
    with ChunkCatalog(folder / "pool") as catalog:
        catalog.add_songs(find_songs(folder / "songs"), ChunkConfig(method="fixed", seconds=2.0))
    return folder / "pool"


async def listen(client: httpx.AsyncClient, url: str, seconds: float, rate: int, burst_s: float) -> dict:
    """Read the stream for ``seconds``; audio seconds received in all and after the burst window."""
    got = 0
    t0 = time.monotonic()
    at_burst = None
    lead = float("inf")
    async with client.stream("GET", url) as resp:
        if resp.status_code != 200:
            return {"status": resp.status_code, "rtf": 0.0, "audio_s": 0.0, "lead_s": -1.0}
        async for chunk in resp.aiter_bytes():
            now = time.monotonic()
            if now - t0 > 1.0:  # audio in hand before this chunk minus time elapsed: < 0 means a player starved
                lead = min(lead, max(0, got - 44) / 2 / rate - (now - t0))
            got += len(chunk)
            if at_burst is None and now - t0 >= burst_s:
                at_burst = (now, got)
            if now - t0 >= seconds:
                break
    wall = time.monotonic() - t0
    audio_s = max(0, got - 44) / 2 / rate
    if at_burst is not None and wall > at_burst[0] - t0 + 1:
        rtf = (got - at_burst[1]) / 2 / rate / (wall - (at_burst[0] - t0))  # the steady rate, burst excluded
    else:
        rtf = audio_s / wall
    return {"status": 200, "rtf": rtf, "audio_s": audio_s, "wall_s": wall, "lead_s": lead}


async def probe(client: httpx.AsyncClient, base: str, stop: asyncio.Event) -> list[float]:
    """Latency (ms) of the page and the job list, every 0.25 s until ``stop``."""
    out = []
    while not stop.is_set():
        for path in ("/", "/api/jobs"):
            t = time.perf_counter()
            resp = await client.get(base + path)
            resp.raise_for_status()
            out.append(1000 * (time.perf_counter() - t))
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except asyncio.TimeoutError:
            pass
    return out


def stream_url(base: str, route: str, i: int) -> str:
    """``live``: the shared stream (rendered once); ``own``: a renderer per listener (``?seed=i``)."""
    if route == "live":
        return f"{base}/api/streams/bench/live.wav"
    return f"{base}/streams/bench/stream.wav?seed={i}"


async def run(base: str, listeners: int, seconds: float, burst_s: float, route: str) -> tuple[list[dict], list[float]]:
    limits = httpx.Limits(max_connections=listeners + 8)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        rate = (await client.get(f"{base}/streams/bench/info")).json()["sample_rate"]
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(client, base, stop))
        results = await asyncio.gather(
            *(listen(client, stream_url(base, route, i), seconds, rate, burst_s) for i in range(listeners))
        )
        stop.set()
        return results, await prober


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listeners", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--pool", type=Path, default=None, help="a pool folder (default: a synthetic one)")
    ap.add_argument("--model", default="features", help="transition model of the pool: a run folder or 'features'")
    ap.add_argument(
        "--route", choices=("live", "own"), default="live", help="shared stream, or one renderer per listener"
    )
    ap.add_argument("--songs", type=int, default=6, help="songs of the synthetic pool")
    ap.add_argument("--burst-s", type=float, default=6.0, help="first seconds left out of the steady rate")
    ap.add_argument("--startup-s", type=float, default=300.0, help="longest wait for the server to answer")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        root = Path(tmp)
        pool = args.pool or synthetic_pool(root, args.songs)
        port = free_port()
        cmd = [sys.executable, "-m", "soundloom", "studio", "--root", str(root), "--host", HOST, "--port", str(port)]
        cmd += ["--pool", f"bench={pool}:{args.model}", "--max-listeners", str(args.listeners + 2)]
        log = open(root / "server.log", "w")  # uvicorn's lines about hung-up clients would drown the figures
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://{HOST}:{port}"
        try:
            t0 = time.monotonic()
            while True:  # bounded wait for start-up (the pool's embeddings are computed first)
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() - t0 > args.startup_s:
                    raise SystemExit(
                        f"the studio did not start (exit {server.poll()}): {(root / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.2)
            print(
                f"studio up in {time.monotonic() - t0:.1f} s; {args.listeners} listeners x {args.seconds:g} s "
                f"on the {args.route} route"
            )
            results, lat = asyncio.run(run(base, args.listeners, args.seconds, args.burst_s, args.route))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    bad = [r for r in results if r["status"] != 200]
    rtfs = sorted(r["rtf"] for r in results)
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(f"listeners refused: {len(bad)}")
    print(
        f"real-time factor per listener (steady, after {args.burst_s:g} s): min {rtfs[0]:.2f}  "
        f"median {statistics.median(rtfs):.2f}  max {rtfs[-1]:.2f}"
    )
    print(f"audio received per listener: min {min(r['audio_s'] for r in results):.1f} s in {args.seconds:g} s")
    print(f"page latency over {len(lat)} requests: p50 {p(0.5):.0f} ms  p95 {p(0.95):.0f} ms  max {lat[-1]:.0f} ms")
    lead = min(r["lead_s"] for r in results)
    print(f"least audio in hand ahead of real time, any listener, after 1 s: {lead:.2f} s (< 0: a player starved)")
    ok = not bad and lead > 0 and p(0.95) < 200
    print("PASS" if ok else "FAIL", "(bar: no listener ever behind real time, page p95 < 200 ms)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
