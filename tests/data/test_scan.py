"""Pre-flight scan: counts, summaries, and each bad file with the right reason."""

from __future__ import annotations

from soundloom.data.scan import scan


def _kinds(report) -> dict[str, str]:
    return {b["path"].rsplit("/", 1)[-1]: b["kind"] for b in report.bad}


def test_scan_names_every_bad_file(fsdd_dir, bad_kinds):
    report = scan(fsdd_dir, workers=1)
    assert report.layout == "fsdd"
    assert (report.n_files, report.n_ok) == (18, 12)
    assert _kinds(report) == {f"9_bad-{k}_0.wav": v for k, v in bad_kinds.items()}
    assert all(b["reason"] for b in report.bad)
    assert report.labels["label"] == {"0": 4, "1": 4, "2": 4}  # bad files (label 9) are not counted
    assert report.labels["speaker"] == {"espeak-en-029-f2": 6, "jackson": 6}
    assert report.sample_rates == {"8000": 12}
    assert report.duration_s["min"] == 0.25 and report.duration_s["max"] == 0.30
    assert report.bad_kinds == {"unreadable": 1, "empty": 2, "non-finite": 1, "silent": 1, "too-short": 1}


def test_scan_in_worker_processes_matches(classes_dir, bad_kinds):
    one = scan(classes_dir, workers=1, batch_size=4)
    two = scan(classes_dir, workers=2, batch_size=4)
    assert one.to_dict() | {"seconds": 0} == two.to_dict() | {"seconds": 0}
    assert one.labels["label"] == {"hat": 3, "kick": 3, "snare": 3}
    assert sorted(_kinds(one).values()) == sorted(bad_kinds.values())


def test_min_seconds_is_configurable(fsdd_dir):
    report = scan(fsdd_dir, workers=1, min_seconds=0.28)
    short = [b for b in report.bad if b["kind"] == "too-short"]
    assert len(short) == 1 + 6  # the 10 ms file and the six 0.25 s takes


def test_warnings_for_rare_classes_and_mixed_rates(classes_dir, tmp_path):
    import shutil

    import numpy as np
    import soundfile as sf

    shutil.rmtree(classes_dir / "hat")
    (classes_dir / "hat").mkdir()
    sf.write(classes_dir / "hat/only.wav", np.full(4000, 0.1, np.float32), 8000)
    report = scan(classes_dir, workers=1)
    assert report.labels["label"]["hat"] == 1
    assert any("hat (1)" in w for w in report.warnings)
    assert any("2 sample rates" in w for w in report.warnings)
