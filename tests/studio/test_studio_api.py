"""The studio's API end to end on a tiny root: browse, scan, thumbnails, a prepare and a train job followed
over server-sent events, generate / vary / interpolate / zip, the latent map, a mounted stream, the CLI.

The module trains one tiny run through the job API (a spawned worker importing Lightning: ~20-40 s on a
loaded 2-core box); every other test reuses it.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from soundloom.data.synth import write_oneshots, write_songs
from soundloom.streams.catalog import ChunkCatalog, find_songs
from soundloom.streams.chunking import ChunkConfig
from soundloom.studio.studio import create_studio

CLASSES = ("kick", "bell", "hihat")
TINY = dict(model="cvae", epochs=2, batch_size=8, latent_dim=3, channels=[4, 8], warmup_steps=2)
TINY.update(checkpoint_every=50, sample_items=1, griffin_lim_iters=2, val_fraction=0.25)


def make_root(root, songs: bool = True):
    """A studio root: ``sounds/`` (class folders of 0.5 s one-shots at 8 kHz, one broken file) and a pool."""
    write_oneshots(root / "sounds", n_per_class=6, sample_rate=8000, seconds=0.5, classes=CLASSES)
    (root / "sounds" / "kick" / "broken.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    if songs:
        write_songs(root / "songs", n_songs=2, seconds=6.0, seed=1)
        with ChunkCatalog(root / "pool") as catalog:
            catalog.add_songs(find_songs(root / "songs"), ChunkConfig(method="fixed", seconds=1.0))
    return root


def sse_events(client: TestClient, url: str) -> list[tuple[str, dict]]:
    """Every ``(event, data)`` of a server-sent event stream, read until the server ends it."""
    out, event = [], None
    with client.stream("GET", url) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
    return out


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("studio"))
    client = TestClient(create_studio(root, {"demo": (root / "pool", "features")}))
    prep = client.post("/api/jobs/prepare", json={"source": "sounds", "out": "features/sounds", "seconds": 0.5})
    assert prep.status_code == 200, prep.text
    events = sse_events(client, f"/api/jobs/{prep.json()['id']}/events")
    assert events[-2][1]["status"] == "done", events[-2]
    train = client.post("/api/jobs/train", json={"features": "features/sounds", "out": "runs/tiny", **TINY})
    assert train.status_code == 200, train.text
    events = sse_events(client, f"/api/jobs/{train.json()['id']}/events")
    yield client, root, events
    client.close()


def test_train_job_streams_progress_then_done(studio):
    client, root, events = studio
    assert events[-1][0] == "end"
    final = events[-2][1]
    assert final["status"] == "done" and final["result"] == {"run": "runs/tiny"}
    assert [int(r["epoch"]) for r in final["metrics"]] == [0, 1]
    assert all(np.isfinite(r["train/loss"]) for r in final["metrics"])
    assert final["samples"] and all(s["path"].startswith("runs/tiny/samples/epoch_001/") for s in final["samples"])
    assert all(e[1]["status"] == "running" for e in events[:-2])  # snapshots while it ran
    runs = client.get("/api/runs").json()
    assert runs == [{"path": "runs/tiny", "finished": True, "labels": sorted(CLASSES), "kind": "cvae"}]
    jobs = client.get("/api/jobs").json()
    assert [j["kind"] for j in jobs] == ["train", "prepare"] and all(j["status"] == "done" for j in jobs)
    again = client.post("/api/jobs/train", json={"features": "features/sounds", "out": "runs/tiny", **TINY})
    assert again.status_code == 422 and "already holds a run" in again.json()["detail"]
    nothing = client.post("/api/jobs/resume", json={"run": "sounds"})
    assert nothing.status_code == 422 and "no checkpoint" in nothing.json()["detail"]


def test_browse_play_and_thumbnails(studio):
    client, root, _ = studio
    top = client.get("/api/files").json()
    assert {d["name"] for d in top["dirs"]} >= {"sounds", "runs", "pool"} and top["parent"] is None
    assert not any(d["name"].startswith(".") for d in top["dirs"])
    kicks = client.get("/api/files", params={"path": "sounds/kick"}).json()
    assert kicks["parent"] == "sounds" and len(kicks["files"]) == 7
    path = kicks["files"][1]["path"]
    audio = client.get("/api/audio", params={"path": path})
    wav, rate = sf.read(io.BytesIO(audio.content))
    assert rate == 8000 and len(wav) == 4000
    part = client.get("/api/audio", params={"path": path}, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100  # players can seek
    for kind in ("spec", "wave"):
        png = client.get("/api/thumb", params={"path": path, "kind": kind})
        assert png.headers["content-type"] == "image/png"
        from PIL import Image

        img = np.asarray(Image.open(io.BytesIO(png.content)))
        assert img.shape[:2] == (72, 240) and img.std() > 5  # a picture, not a blank
    bad = client.get("/api/thumb", params={"path": "sounds/kick/broken.wav"})
    assert bad.status_code == 400 and "broken.wav" in bad.json()["detail"]


def test_scan_report_counts_labels_and_names_bad_files(studio):
    client, _, _ = studio
    r = client.post("/api/scan", json={"path": "sounds"}).json()
    assert r["layout"] == "classes" and r["n_files"] == 19 and r["n_ok"] == 18
    assert r["labels"]["label"] == {"bell": 6, "hihat": 6, "kick": 6}
    assert r["duration_s"]["median"] == pytest.approx(0.5)
    assert [b["path"] for b in r["bad"]] == ["sounds/kick/broken.wav"] and r["bad"][0]["reason"]


def test_generate_vary_interpolate_and_zip(studio):
    client, root, _ = studio
    gen = client.post("/api/generate", json={"run": "runs/tiny", "label": "bell", "count": 3, "seed": 5})
    assert gen.status_code == 200, gen.text
    sounds = gen.json()["sounds"]
    assert [s["label"] for s in sounds] == ["bell"] * 3 and [s["seed"] for s in sounds] == [5, 6, 7]
    for s in sounds:
        wav, rate = sf.read(io.BytesIO(client.get("/api/audio", params={"path": s["path"]}).content))
        assert rate == 8000 and len(wav) == 4000 and np.abs(wav).max() > 0  # a 2-epoch model: quiet, not silent
        side = json.loads((root / s["path"]).with_suffix(".json").read_text())
        assert side["label"] == "bell" and len(side["latent"]) == 3
    again = client.post("/api/generate", json={"run": "runs/tiny", "label": "bell", "count": 3, "seed": 5}).json()
    first = sf.read(io.BytesIO(client.get("/api/audio", params={"path": sounds[0]["path"]}).content))[0]
    second = sf.read(io.BytesIO(client.get("/api/audio", params={"path": again["sounds"][0]["path"]}).content))[0]
    assert np.array_equal(first, second)  # same seed, same sound
    zipped = zipfile.ZipFile(io.BytesIO(client.get(gen.json()["zip"]).content))
    assert len([n for n in zipped.namelist() if n.endswith(".wav")]) == 3
    assert len([n for n in zipped.namelist() if n.endswith(".json")]) == 3
    var = client.post("/api/variation", json={"run": "runs/tiny", "path": sounds[0]["path"], "count": 2}).json()
    assert len(var["sounds"]) == 2 and var["sounds"][0]["label"] == "bell"
    a, b = sounds[0]["path"], "sounds/kick/kick_0001.wav"  # a generated sound (sidecar latent) and a file (encoded)
    mid = client.post("/api/interpolate", json={"run": "runs/tiny", "a": a, "b": b, "steps": 4}).json()
    assert [s["params"]["t"] for s in mid["sounds"]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    lat = [json.loads((root / s["path"]).with_suffix(".json").read_text())["latent"] for s in mid["sounds"]]
    first_latent = json.loads((root / a).with_suffix(".json").read_text())["latent"]
    assert np.allclose(lat[0], first_latent, atol=1e-6)
    assert client.post("/api/generate", json={"run": "runs/tiny", "label": "nope"}).status_code == 422
    assert client.post("/api/generate", json={"run": "sounds", "count": 1}).status_code == 422
    assert client.post("/api/generate", json={"run": "runs/tiny", "count": 0}).status_code == 422
    assert client.get("/api/batches/..%2F..%2Fetc.zip").status_code in (404, 422)


def test_latent_map_places_every_training_item(studio):
    client, _, _ = studio
    m = client.get("/api/latents", params={"run": "runs/tiny"}).json()
    assert len(m["points"]) == 18 and m["labels"] == sorted(CLASSES)
    xy = np.array([[p["x"], p["y"]] for p in m["points"]])
    assert np.abs(xy).max() == pytest.approx(1.0) and xy.std(axis=0).min() > 0
    assert all(p["path"].startswith("sounds/") for p in m["points"])
    assert 0.5 < sum(m["explained"]) <= 1.0


def test_stream_mounted_and_schema_documents_the_api(studio):
    client, _, _ = studio
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/api/streams").json() == [
        {
            "name": "demo",
            "url": "/streams/demo/stream.wav",
            "info": "/streams/demo/info",
            "live": "/api/streams/demo/live.wav",
            "live_ogg": "/api/streams/demo/live.ogg",
            "now": "/api/streams/demo/now",
        }
    ]
    resp = client.get("/streams/demo/stream.wav", params={"seconds": 2, "seed": 3})
    wav, rate = sf.read(io.BytesIO(resp.content))
    assert resp.headers["content-type"] == "audio/wav" and len(wav) == 2 * rate and np.abs(wav).max() > 0.01
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/files", "/api/scan", "/api/jobs/train", "/api/jobs/{job_id}/events", "/api/generate"):
        assert p in paths
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere: works offline


def test_cli_warns_when_not_on_loopback(tmp_path, monkeypatch, capsys):
    import uvicorn

    from soundloom.cli.app import run_app
    from soundloom.cli.studio_cmds import is_loopback, parse_pool

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert parse_pool("pools/wes") == ("wes", __import__("pathlib").Path("pools/wes"), "features")
    assert parse_pool("main=pools/wes:runs/trans")[::2] == ("main", "runs/trans")
    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append(sockets))
    monkeypatch.setattr("sys.setswitchinterval", lambda s: None)  # the command's, not this test process's
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_app(["studio", "--root", str(tmp_path), "--host", "0.0.0.0", "--port", str(port)]) == 0
    err = capsys.readouterr().err
    assert served and "warning: listening on 0.0.0.0, not loopback" in err
    assert run_app(["studio", "--root", str(tmp_path / "none")]) == 2
    assert "--root must be an existing folder" in capsys.readouterr().err


def test_a_job_error_reaches_the_page(studio):
    client, root, _ = studio
    bad = client.post("/api/jobs/train", json={"features": "sounds", "out": "runs/bad", **TINY})
    assert bad.status_code == 422 and "not a feature store" in bad.json()["detail"]  # refused before a worker starts
    (root / "empty").mkdir()
    job = client.post("/api/jobs/prepare", json={"source": "empty", "out": "features/empty"}).json()
    events = sse_events(client, f"/api/jobs/{job['id']}/events")  # ends when the job ends
    final = events[-2][1]
    assert final["status"] == "failed" and "empty" in final["error"] and "\n" not in final["error"]
    listed = next(j for j in client.get("/api/jobs").json() if j["id"] == job["id"])
    assert listed["error"] == final["error"]


def test_shared_stream_now_playing_and_skip(studio):
    client, _, _ = studio
    got = bytearray()
    with client.stream("GET", "/api/streams/demo/live.wav") as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "audio/wav"
        for chunk in resp.iter_bytes():
            got += chunk
            if len(got) >= 44 + 2 * 22050 * 2:  # the first 2 s (the burst), then hang up
                break
    assert got[:4] == b"RIFF" and got[36:40] == b"data"
    pcm = np.frombuffer(bytes(got[44 : 44 + 2 * 22050 * 2]), dtype="<i2") / 32767
    assert 0.01 < np.abs(pcm).max() <= 0.95
    now = client.get("/api/streams/demo/now").json()
    assert now["playing"] and now["song"].startswith("song_") and isinstance(now["chunk_index"], int)
    assert client.post("/api/streams/demo/skip").json() == {"name": "demo", "skipped": True}
    assert client.get("/api/streams/nope/now").status_code == 404
