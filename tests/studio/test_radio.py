"""The studio's shared radio: the Ogg Vorbis live route and the next candidates in ``/now``."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from soundloom.data.synth import write_songs
from soundloom.streams.catalog import ChunkCatalog, find_songs
from soundloom.streams.chunking import ChunkConfig
from soundloom.studio.studio import create_studio

RATE = 22050


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("radio")
    write_songs(root / "songs", n_songs=3, seconds=8.0, seed=1)
    with ChunkCatalog(root / "pool") as catalog:
        catalog.add_songs(find_songs(root / "songs"), ChunkConfig(method="fixed", seconds=1.0))
    with TestClient(create_studio(root, {"demo": (root / "pool", "features")})) as c:
        yield c


def read_live(client: TestClient, url: str, n_bytes: int) -> bytes:
    got = bytearray()
    with client.stream("GET", url) as resp:
        assert resp.status_code == 200
        kind = resp.headers["content-type"]
        for chunk in resp.iter_bytes():
            got += chunk
            if len(got) >= n_bytes:
                break
    return kind, bytes(got)


def test_live_ogg_decodes_to_audio_at_the_pool_rate(client):
    kind, got = read_live(client, "/api/streams/demo/live.ogg", 48_000)
    assert kind == "audio/ogg" and got[:4] == b"OggS"
    audio, rate = sf.read(io.BytesIO(got), dtype="float32")  # a cut-off bitstream decodes up to its last page
    assert rate == RATE and len(audio) >= 2 * RATE
    assert 0.01 < np.sqrt(np.mean(audio**2)) and np.abs(audio).max() <= 1.0  # not silent, not clipped
    assert len(got) < 2 * len(audio) / 3  # compressed: under a third of 16-bit PCM


def test_now_lists_the_next_candidates_with_scores_and_seam_verdicts(client):
    read_live(client, "/api/streams/demo/live.wav", 44 + 2 * RATE * 3)  # starts the radio: 3 s burst
    deadline = time.monotonic() + 30  # bounded wait until the chunk playing has a rendered successor
    now = client.get("/api/streams/demo/now").json()
    while not now.get("next_known") and time.monotonic() < deadline:
        read_live(client, "/api/streams/demo/live.wav", 44 + 2 * RATE)
        now = client.get("/api/streams/demo/now").json()
    assert now["playing"] and now["next_known"]
    nxt = now["next"]
    assert 1 <= len(nxt) <= 5
    scores = [c["score"] for c in nxt]
    assert all(np.isfinite(scores))
    for c in nxt:
        assert c["song"].startswith("song_") and isinstance(c["chunk_index"], int)
        assert isinstance(c["seam_predicted"], bool) and c["seam_pass"] in (True, False)
        assert c["chunk_id"] != now["chunk_id"]
    assert sum(c["taken"] for c in nxt) == 1  # the search joined to one of those it showed
    assert nxt[0]["taken"]  # greedy at temperature 0 takes the first (a passing one goes first)
