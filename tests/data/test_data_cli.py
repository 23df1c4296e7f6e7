"""The data commands through the CLI: thin faces over the API, with parseable JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from soundloom.cli import app
from soundloom.data.store import FeatureStore
from tests.cli import run_cli

runner = CliRunner()


def test_scan_json_and_table(fsdd_dir, bad_kinds):
    res = runner.invoke(app, ["scan", str(fsdd_dir), "--json", "--workers", "1"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["n_files"], report["n_ok"], report["layout"]) == (18, 12, "fsdd")
    assert sorted(b["kind"] for b in report["bad"]) == sorted(bad_kinds.values())
    res = runner.invoke(app, ["scan", str(fsdd_dir), "--workers", "1"])
    assert res.exit_code == 0 and "9_bad-corrupt_0.wav" in res.stdout and "12/18" in res.stdout
    assert "too-short" in res.stdout and "non-finite" in res.stdout


def test_prepare_json_then_rerun(classes_dir, tmp_path):
    args = [
        "prepare",
        str(classes_dir),
        "--out",
        str(tmp_path / "feat"),
        "--sample-rate",
        "8000",
        "--seconds",
        "0.5",
        "--n-fft",
        "256",
        "--hop",
        "64",
        "--window",
        "hamming",
        "--workers",
        "1",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["items"], out["computed"], out["skipped"]) == (9, 15, 6)
    assert out["shape"] == [9, 129, 1 + 4000 // 64]
    store = FeatureStore.open(tmp_path / "feat")
    assert store.features.shape == (9, 129, 1 + 4000 // 64) and store.spectrogram.window == "hamming"
    again = json.loads(runner.invoke(app, args).stdout)
    assert (again["computed"], again["reused"]) == (0, 15)


def test_synth_data_then_plot(tmp_path):
    res = runner.invoke(
        app, ["synth-data", str(tmp_path / "syn"), "--n-per-class", "1", "--songs", "1", "--song-seconds", "3"]
    )
    assert res.exit_code == 0, res.output
    shots = sorted((tmp_path / "syn/oneshots").rglob("*.wav"))
    assert len(shots) == 9 and len(list((tmp_path / "syn/songs").glob("*.wav"))) == 1
    png = tmp_path / "grid.png"
    res = runner.invoke(app, ["plot", str(shots[0]), str(shots[1]), "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_bad_input_exits_with_one_error_line(tmp_path):
    code, out = run_cli("scan", tmp_path / "nowhere")
    assert code == 2 and out.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: not a folder"]
    code, out = run_cli("prepare", tmp_path, "--out", tmp_path / "f", "--kind", "cqt")
    assert code == 2 and len(out.strip().splitlines()) == 1 and "kind must be" in out and "Traceback" not in out
