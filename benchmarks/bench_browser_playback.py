"""The studio's live stream played in headless Chromium for minutes: does the ``<audio>`` clock ever stop?

    python benchmarks/bench_browser_playback.py           # 10 min, synthetic pool, Ogg if Chromium plays it
    python benchmarks/bench_browser_playback.py --minutes 1 --format wav
    python benchmarks/bench_browser_playback.py --pool POOL --model RUN --screenshot /tmp/playback.png

Starts ``soundloom studio`` (a subprocess) on 127.0.0.1 with one stream over ``--pool`` (default: a small
synthetic pool built in a temp folder), opens the page in Debian's chromium through Playwright
(``executable_path``; never ``playwright install``), presses Play on the Stream tab and then, once a
second for ``--minutes``, samples the audio element's ``currentTime``. It counts the element's
``waiting``, ``stalled`` and ``error`` events after playback started and every second in which
``currentTime`` did not advance (a gap a listener hears), prints PASS (no gap, no waiting/stalled/error)
or FAIL, saves a screenshot and stops the server. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from loopback import free_port, make_pool, stop_server

CHROMIUM = os.environ.get("SOUNDLOOM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
#: A second in which currentTime advanced less than this (s) counts as a gap.
MIN_ADVANCE_S = 0.05
#: Counts the audio element's events (after playback started) in window.__events.
WATCH_EVENTS = """() => {
  const a = document.querySelector('#stream-audio');
  window.__events = {waiting: 0, stalled: 0, error: 0, ended: 0};
  for (const k of Object.keys(window.__events)) a.addEventListener(k, () => { window.__events[k] += 1; });
}"""

#: ``[currentTime, seconds buffered ahead of it]`` of the stream's audio element.
SAMPLE = """(() => {
  const a = document.querySelector('#stream-audio'), b = a.buffered;
  return [a.currentTime, b.length ? b.end(b.length - 1) - a.currentTime : 0];
})()"""


def start_studio(root: Path, pool: Path, model: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from soundloom.cli import main; main()", "studio", "--root", str(root)]
    cmd += ["--port", str(port), "--pool", f"radio={pool}:{model}"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:  # readiness: bounded polling
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"studio did not start: {server.stderr.read()[-2000:]}")
        time.sleep(0.5)


def play(port: int, minutes: float, fmt: str, screenshot: Path) -> dict:
    """Play the stream in Chromium for ``minutes``; returns the samples and event counts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.click("#tabs button[data-tab=stream]")
            page.wait_for_function("document.querySelector('#stream-name').value === 'radio'", timeout=30_000)
            page.evaluate(WATCH_EVENTS)
            page.click("#stream-btn")
            if fmt != "auto":
                play_js = f"a => {{ a.src = '/api/streams/radio/live.{fmt}'; a.play(); }}"
                page.evaluate(f"({play_js})(document.querySelector('#stream-audio'))")
            src = page.evaluate("document.querySelector('#stream-audio').src")
            t_click = time.monotonic()
            page.wait_for_function("document.querySelector('#stream-audio').currentTime > 0", timeout=60_000)
            start_s = time.monotonic() - t_click
            page.evaluate("for (const k in window.__events) window.__events[k] = 0")  # count from playback on
            times, walls, ahead = [], [], []

            def sample() -> None:  # the clock, and the audio buffered ahead of it (s)
                t, b = page.evaluate(SAMPLE)
                times.append(t)
                ahead.append(b)
                walls.append(time.monotonic())

            sample()
            end = walls[0] + 60 * minutes
            shot_at = walls[0] + min(30.0, 30 * minutes)
            shot = False
            while time.monotonic() < end:
                time.sleep(max(0.0, walls[-1] + 1.0 - time.monotonic()))
                sample()
                if not shot and walls[-1] >= shot_at:  # while playing, the candidates listed
                    page.screenshot(path=str(screenshot), full_page=True)
                    shot = True
            events = page.evaluate("window.__events")
            paused = page.evaluate("document.querySelector('#stream-audio').paused")
            page.screenshot(path=str(screenshot.with_name(screenshot.stem + "_end.png")), full_page=True)
        finally:
            browser.close()
    return {
        "src": src,
        "start_s": start_s,
        "times": times,
        "walls": walls,
        "ahead": ahead,
        "events": events,
        "paused": paused,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--pool", type=Path, default=None, help="a pool folder (default: a synthetic one)")
    ap.add_argument("--model", default="features", help="transition run folder, or 'features'")
    ap.add_argument("--format", choices=("auto", "ogg", "wav"), default="auto", help="auto: what the page picks")
    ap.add_argument("--screenshot", type=Path, default=Path("/tmp/soundloom_playback.png"))
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} missing: apt-get install -y chromium (or set SOUNDLOOM_CHROMIUM)")

    tmp = Path(tempfile.mkdtemp(prefix="bench_playback_"))
    pool = (args.pool or make_pool(tmp)).resolve()
    port = free_port()
    load_before = os.getloadavg()
    server = start_studio(tmp, pool, args.model, port)
    try:
        got = play(port, args.minutes, args.format, args.screenshot)
    finally:
        err = stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)

    times, walls = got["times"], got["walls"]
    steps = [b - a for a, b in zip(times, times[1:])]
    gaps = [i + 1 for i, d in enumerate(steps) if d < MIN_ADVANCE_S]
    wall = walls[-1] - walls[0]
    played = times[-1] - times[0]
    bad_events = {k: v for k, v in got["events"].items() if k in ("waiting", "stalled", "error") and v}
    ok = bool(steps) and not gaps and not bad_events and not got["paused"] and wall >= 60 * args.minutes - 2
    print(f"stream {got['src'].split('?')[0].rsplit('/', 1)[-1]} in {CHROMIUM}, pool {pool}, model {args.model}")
    print(f"playback started {got['start_s']:.1f} s after Play")
    print(
        f"played {played:.1f} s of audio in {wall:.1f} s wall ({played / max(wall, 1e-9):.3f}x), {len(steps)} samples"
    )
    if steps:
        print(
            f"currentTime advance per 1 s sample (s): min {min(steps):.3f}, median {statistics.median(steps):.3f}, "
            f"max {max(steps):.3f}"
        )
    ahead = got["ahead"]
    print(
        f"audio buffered ahead of the clock (s): min {min(ahead):.2f}, median {statistics.median(ahead):.2f}, "
        f"max {max(ahead):.2f}"
    )
    print(f"seconds with no advance (< {MIN_ADVANCE_S} s): {len(gaps)}{' at ' + repr(gaps[:10]) if gaps else ''}")
    print(f"events after playback started: {got['events']}; paused at the end: {got['paused']}")
    print(f"machine load average before {load_before}, after {tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"server stderr lines: {len(err.splitlines())}; tracebacks: {err.count('Traceback')}")
    print(f"screenshots: {args.screenshot}, {args.screenshot.with_name(args.screenshot.stem + '_end.png')}")
    print("PASS  no gap" if ok else "FAIL  gaps or stalls (see above)")


if __name__ == "__main__":
    main()
