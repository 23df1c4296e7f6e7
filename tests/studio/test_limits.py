"""The stream server's limits: validated queries, exact lengths, a listener cap, idle drops, pacing,
an escaped page, and a property test: any query string gets audio or a 4xx with a reason, never 5xx."""

from __future__ import annotations

import shutil
import socket
import struct
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soundloom.cli.server_cmds import listen_socket
from soundloom.data.synth import write_songs
from soundloom.streams.catalog import ChunkCatalog, find_songs
from soundloom.streams.chunking import ChunkConfig
from soundloom.studio.app import ServeLimits, create_app

RATE = 22050


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    write_songs(root / "songs", n_songs=3, seconds=8.0, seed=1)
    with ChunkCatalog(root / "pool") as catalog:
        catalog.add_songs(find_songs(root / "songs"), ChunkConfig(method="fixed", seconds=1.0))
    return root / "pool"


@contextmanager
def served(app):
    """``app`` on a loopback port (uvicorn in a thread); yields the base URL, stops the server after."""
    import uvicorn

    # Listening before the server starts: the first request waits in the backlog. The socket is
    # serve's own (its send buffer bounded as in production).
    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def wait_for(pred, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll ``pred`` until true (bounded); a server-side state change has no event to wait on."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stream_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "soundloom-stream"]


@pytest.mark.parametrize(
    "query, word",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**40}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"seconds": "inf"}, "seconds"),
        ({"seconds": "nan"}, "seconds"),
        ({"seconds": "1e400"}, "seconds"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": -3}, "seconds"),
        ({"seconds": 10**6}, "seconds"),
    ],
)
def test_bad_query_is_422_with_a_reason(pool, query, word):
    client = TestClient(create_app(pool, "features"))
    resp = client.get("/stream.wav", params=query)
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "ParameterError" and body["detail"].startswith(word), body


@pytest.mark.parametrize("seconds", [0.5, 3.0, 1 / RATE])
def test_seconds_is_exact_and_the_header_says_so(pool, seconds):
    client = TestClient(create_app(pool, "features", limits=ServeLimits(burst_s=60)))
    body = client.get("/stream.wav", params={"seconds": seconds, "seed": 3}).content
    n = round(seconds * RATE)
    assert len(body) == 44 + 2 * n
    riff, data = struct.unpack("<I", body[4:8])[0], struct.unpack("<I", body[40:44])[0]
    assert (riff, data) == (36 + 2 * n, 2 * n)
    if n > 1000:
        pcm = np.frombuffer(body[44:], "<i2")
        assert np.abs(pcm[-5:]).max() < 200 and np.abs(pcm).max() > 1000  # faded out, not cut


def test_page_escapes_what_it_shows(pool, monkeypatch):
    import soundloom.studio.app as app_mod

    real = app_mod.load_pool_embeddings  # any model name gets the features embeddings: no training here
    monkeypatch.setattr(app_mod, "load_pool_embeddings", lambda catalog, model: real(catalog, "features"))
    page = TestClient(create_app(pool, "<script>alert(1)</script>")).get("/").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_pacing_bounds_a_greedy_listener(pool):
    # 1 s burst, then at most 4x real time: 5 s of audio cannot arrive before (5 - 1) / 4 = 1 s.
    client = TestClient(create_app(pool, "features", limits=ServeLimits(pace=4.0, burst_s=1.0)))
    t0 = time.monotonic()
    body = client.get("/stream.wav", params={"seconds": 5}).content
    elapsed = time.monotonic() - t0
    assert len(body) == 44 + 2 * 5 * RATE and elapsed >= 0.95, elapsed


def test_listener_cap_answers_503_and_frees_slots(pool):
    app = create_app(pool, "features", limits=ServeLimits(max_listeners=2))
    with served(app) as base, httpx.Client(timeout=30) as client:
        with client.stream("GET", f"{base}/stream.wav") as a, client.stream("GET", f"{base}/stream.wav?seed=5") as b:
            assert a.status_code == b.status_code == 200
            readers = [a.iter_bytes(), b.iter_bytes()]  # kept: a dropped iterator closes its response
            assert all(next(r)[:4] == b"RIFF" for r in readers)
            busy = client.get(f"{base}/stream.wav")
            assert busy.status_code == 503 and "2 listeners" in busy.json()["detail"]
            assert client.get(f"{base}/info").json()["listeners"] == 2
        wait_for(lambda: client.get(f"{base}/info").json()["listeners"] == 0, what="slots freed")
        assert client.get(f"{base}/stream.wav", params={"seconds": 0.5}).status_code == 200
        wait_for(lambda: not stream_workers(), what="workers to end")


def test_a_listener_that_stops_reading_is_dropped(pool):
    app = create_app(pool, "features", limits=ServeLimits(idle_timeout_s=0.5, pace=200.0, burst_s=0))
    with served(app) as base:
        port = int(base.rsplit(":", 1)[1])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: the server's queue fills fast
        stalled.connect(("127.0.0.1", port))
        try:
            stalled.sendall(b"GET /stream.wav HTTP/1.1\r\nHost: x\r\n\r\n")
            assert stalled.recv(12).startswith(b"HTTP/1.1 200")
            # ... and never reads again
            wait_for(lambda: httpx.get(f"{base}/info").json()["listeners"] == 0, 60, "the idle listener's drop")
            wait_for(lambda: not stream_workers(), 10, "its renderer to stop")
        finally:
            stalled.close()


def test_a_song_deleted_while_serving_ends_the_stream_cleanly(tmp_path, caplog):
    write_songs(tmp_path / "songs", n_songs=2, seconds=6.0, seed=4)
    with ChunkCatalog(tmp_path / "pool") as catalog:
        catalog.add_songs(find_songs(tmp_path / "songs"), ChunkConfig(method="fixed", seconds=1.0))
    client = TestClient(create_app(tmp_path / "pool", "features"))
    shutil.rmtree(tmp_path / "songs")
    with caplog.at_level("WARNING", logger="soundloom.studio"):
        resp = client.get("/stream.wav", params={"seconds": 3})
    assert resp.status_code == 200 and len(resp.content) < 44 + 2 * 3 * RATE
    lines = [r.getMessage() for r in caplog.records if r.name == "soundloom.studio"]
    assert len(lines) == 1 and "ended early" in lines[0] and "songs" in lines[0]
    assert all(r.exc_info is None for r in caplog.records)


_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "0x10", "1_000", " 1", "1.5", "true", "%00", "\u00e9"]),
    st.text(max_size=12),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["seed", "seconds", "x", "", "seed[]", "SEED"]), _VALUES), min_size=0, max_size=4
    )
)
def test_any_query_gets_audio_or_a_4xx_reason(served_pool, pairs):
    base, client = served_pool
    with client.stream("GET", f"{base}/stream.wav?{urlencode(pairs)}") as resp:
        if resp.status_code == 200:
            head = b""
            for chunk in resp.iter_bytes():
                head += chunk
                if len(head) >= 44:
                    break
            assert head[:4] == b"RIFF" and head[8:12] == b"WAVE"
        else:
            resp.read()
            assert 400 <= resp.status_code < 500 and resp.json()["detail"], (pairs, resp.text)


@pytest.fixture(scope="module")
def served_pool(pool):
    with served(create_app(pool, "features", limits=ServeLimits(max_listeners=64))) as base:
        with httpx.Client(timeout=30) as client:
            yield base, client
        wait_for(lambda: not stream_workers(), what="workers to end")


def test_one_start_slot_is_not_held_by_a_listener_that_stopped_reading(pool):
    # start_slots=1: a client that never reads takes the only slot first; it must give it back once its
    # queue is full (not after the idle timeout), so the next listener gets audio well before that.
    app = create_app(pool, "features", limits=ServeLimits(start_slots=1, idle_timeout_s=60, burst_s=30))
    with served(app) as base:
        port = int(base.rsplit(":", 1)[1])
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        try:
            stalled.sendall(b"GET /stream.wav HTTP/1.1\r\nHost: x\r\n\r\n")
            assert stalled.recv(12).startswith(b"HTTP/1.1 200")
            body = httpx.get(f"{base}/stream.wav", params={"seconds": 2, "seed": 9}, timeout=30).content
            assert len(body) == 44 + 2 * 2 * RATE
            assert httpx.get(f"{base}/info").json()["listeners"] == 1  # the stalled one, still connected
        finally:
            stalled.close()
        wait_for(lambda: not stream_workers(), what="workers to end")


def test_start_slots_must_be_positive():
    from soundloom.core.errors import ParameterError

    with pytest.raises(ParameterError, match="start_slots"):
        ServeLimits(start_slots=0)
