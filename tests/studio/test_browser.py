"""The studio in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Needs ``apt-get install -y chromium`` and ``pip install playwright`` (``.ci/run`` does both). The studio
serves a tmp root holding class-folder one-shots, a tiny run trained here in-process (1 epoch: ~20-30 s
of the test on a loaded 2-core box, most of it Lightning's import) and a tiny pool streamed with the
``features`` scorer. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading

import httpx
import pytest

from soundloom.data.prepare import PrepareConfig, prepare
from soundloom.studio.studio import create_studio
from tests.studio.test_studio_api import make_root

CHROMIUM = os.environ.get("SOUNDLOOM_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import torch
    import uvicorn

    from soundloom.sounds.training import TrainConfig, train

    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (the browser tests need it; .ci/run installs it)")
    root = make_root(tmp_path_factory.mktemp("browser"))
    prepare(root / "sounds", root / "features", PrepareConfig(seconds=0.5, n_fft=256), workers=1)
    torch.set_num_threads(1)
    cfg = TrainConfig(
        features=str(root / "features"), epochs=1, batch_size=8, latent_dim=3, channels=[4, 8], warmup_steps=2
    )
    cfg.sample_items, cfg.griffin_lim_iters, cfg.val_fraction = 0, 2, 0.25
    train(cfg, root / "runs" / "tiny", progress_bar=False)
    (root / "empty").mkdir()
    # The socket listens before the server starts, so the first GET /health waits in the backlog: the
    # readiness wait is that one bounded request, no polling loop.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(
        uvicorn.Config(create_studio(root, {"demo": (root / "pool", "features")}), log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        assert httpx.get(f"{base}/health", timeout=60).json() == {"status": "ok"}
        failed = httpx.post(f"{base}/api/jobs/prepare", json={"source": "empty", "out": "features/empty"}, timeout=30)
        assert failed.status_code == 200
        yield base, root
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def test_studio_in_chromium(served, tmp_path):
    from playwright.sync_api import sync_playwright

    base, root = served
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")

            # Data: open the folder, scan it, the report shows the counts
            page.click("#dirlist li:has-text('sounds')")
            page.wait_for_selector("#crumbs:has-text('/sounds')")
            page.click("#scan-btn")
            page.wait_for_selector("#scan-files", timeout=60_000)
            assert page.inner_text("#scan-files b") == "19" and page.inner_text("#scan-ok b") == "18"
            assert page.locator(".scan-label .count").all_inner_texts() == ["6", "6", "6"]
            assert "broken.wav" in page.inner_text("#scan-report")
            page.screenshot(path=tmp_path / "data.png", full_page=True)

            # Generate: two sounds whose players know their duration
            page.click("#tabs button[data-tab=generate]")
            page.wait_for_function("document.querySelector('#gen-run').value === 'runs/tiny'")
            page.fill("#gen-form input[name=count]", "2")
            page.click("#gen-btn")
            page.wait_for_selector("#gen-grid .card audio", timeout=60_000)
            page.wait_for_function(
                "[...document.querySelectorAll('#gen-grid audio')].every(a => a.duration > 0)", timeout=30_000
            )
            durations = page.eval_on_selector_all("#gen-grid audio", "els => els.map(a => a.duration)")
            assert len(durations) == 2 and all(d == pytest.approx(0.5, abs=0.01) for d in durations)
            page.screenshot(path=tmp_path / "generate.png", full_page=True)

            # Stream: the compressed (Ogg Vorbis) live stream plays, the <audio> element's clock advances,
            # and the next candidates are listed with their scores
            page.click("#tabs button[data-tab=stream]")
            page.wait_for_function("document.querySelector('#stream-name').value === 'demo'")
            page.click("#stream-btn")
            assert "/live.ogg?" in page.evaluate("document.querySelector('#stream-audio').src")
            page.wait_for_function("document.querySelector('#stream-audio').currentTime > 0.5", timeout=60_000)
            t0 = page.evaluate("document.querySelector('#stream-audio').currentTime")
            page.wait_for_function(f"document.querySelector('#stream-audio').currentTime > {t0 + 1.0}", timeout=30_000)
            page.wait_for_selector("#next tbody tr.taken", timeout=30_000)
            page.screenshot(path=tmp_path / "stream.png", full_page=True)
            page.evaluate("document.querySelector('#stream-audio').pause()")

            # Jobs: a failed job shows its error line; the list survives a reload
            page.reload()
            page.click("#tabs button[data-tab=jobs]")
            page.wait_for_selector("#jobs .errline", timeout=30_000)
            assert "empty" in page.inner_text("#jobs .errline")
            page.screenshot(path=tmp_path / "jobs.png", full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert all((tmp_path / f"{n}.png").stat().st_size > 10_000 for n in ("data", "generate", "stream", "jobs"))
