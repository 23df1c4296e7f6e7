"""Layout detection and discovery on real on-disk layouts."""

from __future__ import annotations

import pytest

from soundloom.data.layouts import LayoutError, detect_layout, discover


def test_fsdd_labels_keep_hyphenated_speakers(fsdd_dir):
    ds = discover(fsdd_dir)
    assert ds.layout == "fsdd"
    item = next(it for it in ds.items if it.id == "2_espeak-en-029-f2_1")
    assert item.labels == {"label": "2", "speaker": "espeak-en-029-f2", "take": "1"}
    assert item.sample_rate == 8000 and item.duration_s == pytest.approx(0.30)
    assert len(ds) == 12 + 6  # 12 good + 6 bad files, all named like FSDD


def test_fsdd_with_metadata_adds_columns(fsdd_meta_dir):
    ds = discover(fsdd_meta_dir)
    assert ds.layout == "fsdd" and ds.metadata.name == "metadata.csv"
    jackson = next(it for it in ds.items if it.id == "1_jackson_0")
    assert jackson.labels == {"label": "1", "speaker": "jackson", "take": "0", "digit": 1, "engine": "human"}
    other = next(it for it in ds.items if it.id == "1_espeak-en-029-f2_0")
    assert other.labels == {"label": "1", "speaker": "espeak-en-029-f2", "take": "0"}


def test_header_errors_are_recorded_not_raised(fsdd_dir):
    ds = discover(fsdd_dir)
    errors = {it.path.name: it.error for it in ds.items if it.error}
    assert errors["9_bad-empty_0.wav"].startswith("empty")
    assert errors["9_bad-corrupt_0.wav"] == "not a decodable audio file (format not recognised)"
    assert errors["9_bad-headeronly_0.wav"].startswith("empty")
    assert "9_bad-nan_0.wav" not in errors  # the header is fine; only decoding finds NaN


def test_class_folders_win_over_an_index_csv(classes_dir):
    assert detect_layout(classes_dir) == "classes"
    ds = discover(classes_dir)
    labels = {it.labels["label"] for it in ds.items}
    assert labels == {"kick", "snare", "hat"}
    assert next(it for it in ds.items if it.id == "kick/kick0").duration_s == pytest.approx(0.4)


def test_nsynth(nsynth_dir):
    ds = discover(nsynth_dir)
    assert ds.layout == "nsynth" and len(ds) == 4
    it = next(it for it in ds.items if it.id == "bass_electronic_000-060-100")
    assert it.labels == {
        "pitch": 60,
        "velocity": 100,
        "instrument_family_str": "bass",
        "instrument_source_str": "electronic",
        "instrument_str": "bass_electronic_000",
    }
    assert it.path == nsynth_dir / "audio" / "bass_electronic_000-060-100.wav"


def test_maestro_metadata_columns_become_labels(maestro_dir):
    ds = discover(maestro_dir)
    assert ds.layout == "maestro" and ds.metadata.name == "maestro-v3.0.0.csv"
    it = next(it for it in ds.items if it.id == "2006/perf_1")
    assert it.labels == {"canonical_composer": "Chopin", "year": 2006, "duration": 31.0}


def test_songs_are_recursive_and_any_format(songs_dir):
    ds = discover(songs_dir)
    assert ds.layout == "songs"
    assert sorted(it.path.suffix for it in ds.items) == [".flac", ".mp3", ".ogg", ".wav"]
    assert {it.labels.get("folder") for it in ds.items} == {"album_a", "album_b", "album_b/disc2"}
    assert all(it.error is None and it.duration_s > 30 for it in ds.items)


def test_plain_folder_with_a_few_fsdd_like_names(plain_dir):
    ds = discover(plain_dir)
    assert ds.layout == "plain" and len(ds) == 7
    assert all(it.labels == {} for it in ds.items)


def test_ids_are_unique_when_only_the_extension_differs(plain_dir):
    (plain_dir / "rain.flac").write_bytes((plain_dir / "door_slam.flac").read_bytes())
    ids = [it.id for it in discover(plain_dir).items]
    assert "rain.wav" in ids and "rain.flac" in ids and "wind" in ids and len(set(ids)) == len(ids)


def test_explicit_layout_overrides_detection(fsdd_dir):
    ds = discover(fsdd_dir, layout="plain")
    assert ds.layout == "plain" and all(it.labels == {} for it in ds.items)


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(LayoutError, match="not a folder"):
        discover(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no audio"):
        discover(tmp_path / "empty")
    with pytest.raises(LayoutError, match="layout must be"):
        discover(tmp_path / "empty", layout="bogus")
