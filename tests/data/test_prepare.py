"""prepare: data set -> feature store; shapes, statistics, bad files, resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from soundloom.core.errors import DataError
from soundloom.core.spectral import SpectrogramConfig, features
from soundloom.data.prepare import (
    PrepareConfig,
    clip_features,
    compute_features,
    fit_normalizer,
    load_clip,
    prepare,
    work_dir_for,
)
from soundloom.data.stats import Normalizer
from soundloom.data.store import FeatureStore


def test_store_shapes_config_labels_and_skips(classes_dir, tmp_path, bad_kinds):
    cfg = PrepareConfig(sample_rate=8000, seconds=0.5)
    result = prepare(classes_dir, tmp_path / "feat", cfg, workers=1)
    store = FeatureStore.open(tmp_path / "feat")
    assert result.n_items == len(store) == 9 and result.n_computed == 9 + 6
    assert store.features.shape == (9, 512 // 2 + 1, 1 + 4000 // 128)
    assert store.features.dtype == np.float32 and np.isfinite(store.features).all()
    assert store.features.min() >= -100.0
    assert store.sample_rate == 8000 and store.n_samples == 4000
    assert store.spectrogram.n_fft == 512 and store.spectrogram.hop_length == 128
    assert store.config["layout"] == "classes"
    assert store.labels("label") == ["hat"] * 3 + ["kick"] * 3 + ["snare"] * 3
    first = store.items[0]
    assert first["sample_rate"] == 22050 and first["duration_s"] == pytest.approx(0.4, abs=1e-4)
    assert {"id", "path", "labels", "size", "mtime"} <= set(first)
    skipped = {
        os.path.basename(s["path"]): s["reason"] for s in json.loads((tmp_path / "feat/skipped.json").read_text())
    }
    assert set(skipped) == {f"{k}.wav" for k in bad_kinds}
    assert skipped["nan.wav"].startswith("non-finite") and skipped["short.wav"].startswith("too short")
    assert skipped["silent.wav"].startswith("silent") and skipped["corrupt.wav"].startswith(
        "not a decodable audio file"
    )
    assert not work_dir_for(tmp_path / "feat").exists()  # the work folder is gone after success


def test_stats_and_round_trip(classes_dir, tmp_path):
    prepare(classes_dir, tmp_path / "feat", PrepareConfig(sample_rate=8000, seconds=0.5), workers=1)
    store = FeatureStore.open(tmp_path / "feat")
    x = np.asarray(store.features)
    ref = Normalizer.fit(x)  # the statistics must be data-set level, over all items
    np.testing.assert_allclose(store.normalizer.mean, ref.mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(store.normalizer.std, ref.std, rtol=1e-4, atol=1e-4)
    y = store.normalized()
    assert y.min() >= -1 and y.max() <= 1
    back = store.normalizer.denormalize(y)
    lo = store.normalizer.mean[:, None] - 3 * store.normalizer.std[:, None]
    hi = store.normalizer.mean[:, None] + 3 * store.normalizer.std[:, None]
    np.testing.assert_allclose(back, np.clip(x, lo, hi), atol=1e-3)


def test_range_normalisation_and_mel(classes_dir, tmp_path):
    cfg = PrepareConfig(
        sample_rate=8000, seconds=0.5, kind="mel", n_mels=40, normalization="range", min_db=-90, max_db=10
    )
    prepare(classes_dir, tmp_path / "feat", cfg, workers=1)
    store = FeatureStore.open(tmp_path / "feat")
    assert store.features.shape[1] == 40
    assert store.normalizer.mode == "range" and (store.normalizer.min_db, store.normalizer.max_db) == (-90, 10)
    prepare(
        classes_dir, tmp_path / "db", PrepareConfig(sample_rate=8000, seconds=0.5, normalization="range"), workers=1
    )
    store = FeatureStore.open(tmp_path / "db")
    peak = float(store.features.max())  # unscaled STFT: loud tones sit well above 0 dB
    assert peak > 20 and store.normalizer.max_db == np.ceil(peak / 10) * 10
    top = float(store.normalized().max())  # nothing clipped at the top, and the range is used
    assert 0.7 < top < 1 and top == pytest.approx(2 * (peak + 100) / (store.normalizer.max_db + 100) - 1, abs=1e-5)


def test_fast_db_path_matches_the_audio_core():
    clips = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 4000)).astype(np.float32) * 0.1)
    clips[1] = 0  # all-silent rows hit the floor in both
    for window in ("hann", "blackman"):
        spec = SpectrogramConfig(sample_rate=8000, n_fft=256, overlap=0.5, window=window)
        np.testing.assert_allclose(compute_features(clips, spec), features(clips, spec), atol=2e-3)


@pytest.mark.parametrize("kind", ["db", "mel"])
def test_features_skip_the_padding_frames_without_changing_them(kind):
    """clip_features computes only the frames that see a clip; the rest equal the padded clip's."""
    rng = np.random.default_rng(2)
    n = 4000
    clips = [rng.standard_normal(k).astype(np.float32) * 0.1 for k in (900, 1500, 333)]
    for spec in (
        SpectrogramConfig(sample_rate=8000, n_fft=256, hop_length=64, kind=kind, n_mels=20),
        SpectrogramConfig(
            sample_rate=8000, n_fft=512, win_length=300, hop_length=100, window="blackman", kind=kind, n_mels=20
        ),
    ):
        padded = np.zeros((len(clips), n), np.float32)
        for row, c in zip(padded, clips):
            row[: len(c)] = c
        ref = compute_features(padded, spec)
        got = clip_features(clips, n, spec)
        assert got.shape == ref.shape == (3, spec.n_rows, spec.n_frames(n)) and got.flags.c_contiguous
        np.testing.assert_allclose(got, ref, atol=1e-4)
        assert np.all(got[:, :, -1] == spec.floor_db)  # well past every clip: silence
        full = clips + [rng.standard_normal(n).astype(np.float32)]  # one clip fills the length
        with_full, alone = clip_features(full, n, spec)[:3], clip_features(clips, n, spec)
        if kind == "db":  # element-wise maths: bit for bit whatever the batch
            np.testing.assert_array_equal(with_full, alone)
        else:  # the mel product is a BLAS sgemm, whose edge tiles round by the matrix shape
            np.testing.assert_allclose(with_full, alone, atol=1e-4)


def test_a_journal_line_cut_short_by_a_kill_is_recomputed(fsdd_dir, tmp_path):
    cfg = PrepareConfig(sample_rate=8000, seconds=0.3)
    with pytest.raises(KeyboardInterrupt):
        prepare(fsdd_dir, tmp_path / "feat", cfg, workers=1, batch_size=4, progress=_kill_after(3))
    work = next(work_dir_for(tmp_path / "feat").iterdir())
    (journal,) = work.glob("journal-*.jsonl")
    lines = journal.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == ""  # each entry starts a new line
    journal.write_text("\n".join(lines)[:-10])  # the second batch's line is cut short
    resumed = prepare(fsdd_dir, tmp_path / "feat", cfg, workers=1, batch_size=4)
    assert (resumed.n_reused, resumed.n_computed) == (4, 14)
    prepare(fsdd_dir, tmp_path / "fresh", cfg, workers=1)
    np.testing.assert_array_equal(
        FeatureStore.open(tmp_path / "feat").features, FeatureStore.open(tmp_path / "fresh").features
    )


def test_chunked_statistics_equal_normalizer_fit():
    x = np.random.default_rng(1).normal(-50, 20, (300, 17, 9)).astype(np.float32)
    ours, ref = fit_normalizer(x), Normalizer.fit(x)
    np.testing.assert_allclose(ours.mean, ref.mean, rtol=1e-6)
    np.testing.assert_allclose(ours.std, ref.std, rtol=1e-5)


def test_load_clip_pads_and_trims_with_fade(classes_dir):
    cfg = PrepareConfig(sample_rate=8000, seconds=0.25, fade_ms=5.0)
    clip, rate, frames, channels = load_clip(str(classes_dir / "kick/kick0.wav"), cfg)
    assert clip.shape == (2000,) and rate == 22050 and frames == 8820 and channels == 1
    assert abs(clip[-1]) < 1e-3 < np.abs(clip[-200:-100]).max()  # cut end faded, not clicked
    long_cfg = PrepareConfig(sample_rate=8000, seconds=1.0)
    padded = load_clip(str(classes_dir / "kick/kick0.wav"), long_cfg)[0]
    assert padded.shape == (8000,) and np.all(padded[3300:] == 0)


def test_rerun_reuses_and_detects_changes(fsdd_dir, tmp_path):
    cfg = PrepareConfig(sample_rate=8000, seconds=0.3)
    first = prepare(fsdd_dir, tmp_path / "feat", cfg, workers=2, batch_size=4)
    assert (first.n_computed, first.n_reused, first.n_items, len(first.skipped)) == (18, 0, 12, 6)
    mtime = os.stat(tmp_path / "feat/features.npy").st_mtime_ns
    second = prepare(fsdd_dir, tmp_path / "feat", cfg, workers=2, batch_size=4)
    assert (second.n_computed, second.n_reused) == (0, 18)
    assert os.stat(tmp_path / "feat/features.npy").st_mtime_ns == mtime  # up to date: not rewritten
    # A changed file is recomputed; the other rows come from the old store.
    changed = fsdd_dir / "1_jackson_0.wav"
    data = changed.read_bytes()
    changed.write_bytes(data[:-200])
    os.utime(changed, ns=(1, 1))
    third = prepare(fsdd_dir, tmp_path / "feat", cfg, workers=1, batch_size=4)
    assert (third.n_computed, third.n_reused) == (1, 17)
    store = FeatureStore.open(tmp_path / "feat")
    row = [it["id"] for it in store.items].index("1_jackson_0")
    assert store.items[row]["size"] == len(data) - 200
    # Another feature setting computes everything again.
    fourth = prepare(fsdd_dir, tmp_path / "feat", PrepareConfig(sample_rate=8000, seconds=0.3, n_fft=256), workers=1)
    assert fourth.n_computed == 18 and FeatureStore.open(tmp_path / "feat").features.shape[1] == 129


def test_killed_run_resumes_from_the_work_folder(fsdd_dir, tmp_path):
    cfg = PrepareConfig(sample_rate=8000, seconds=0.3)
    calls = []

    def kill_after_two_batches(stage, done, total):
        calls.append(done)
        if len(calls) == 3:  # the initial call, then two finished batches
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(fsdd_dir, tmp_path / "feat", cfg, workers=1, batch_size=4, progress=kill_after_two_batches)
    assert not (tmp_path / "feat").exists()  # no half store
    assert work_dir_for(tmp_path / "feat").exists()
    resumed = prepare(fsdd_dir, tmp_path / "feat", cfg, workers=1, batch_size=4)
    assert (resumed.n_reused, resumed.n_computed) == (8, 10)
    prepare(fsdd_dir, tmp_path / "fresh", cfg, workers=1)
    a, b = FeatureStore.open(tmp_path / "feat"), FeatureStore.open(tmp_path / "fresh")
    np.testing.assert_array_equal(a.features, b.features)
    assert [it["id"] for it in a.items] == [it["id"] for it in b.items]
    np.testing.assert_allclose(a.normalizer.mean, b.normalizer.mean, rtol=1e-6)


def test_nsynth_and_songs_labels_reach_the_index(nsynth_dir, songs_dir, tmp_path):
    prepare(nsynth_dir, tmp_path / "n", PrepareConfig(seconds=0.5), workers=1)
    store = FeatureStore.open(tmp_path / "n")
    assert store.labels("pitch") == [48, 60, 48, 60]
    assert set(store.label_names()) >= {"instrument_family_str", "velocity"}
    result = prepare(songs_dir, tmp_path / "s", PrepareConfig(sample_rate=8000, seconds=2.0), workers=1)
    assert result.n_items == 4 and result.layout == "songs"


def test_no_usable_file_is_a_clear_error(bad_dir, tmp_path):
    with pytest.raises(DataError, match="no usable audio files"):
        prepare(bad_dir, tmp_path / "feat", workers=1)
    assert not (tmp_path / "feat").exists()


def _kill_after(n_calls: int):
    calls = []

    def progress(stage, done, total):
        calls.append(done)
        if len(calls) == n_calls:
            raise KeyboardInterrupt

    return progress


def test_killed_pool_run_resumes_after_the_data_set_grew(fsdd_dir, tmp_path):
    """Workers killed mid-run; a new file appears before the re-run (so the plan changes and
    finished rows are copied over from the old work file, not recomputed)."""
    cfg = PrepareConfig(sample_rate=8000, seconds=0.3)
    with pytest.raises(KeyboardInterrupt):
        prepare(fsdd_dir, tmp_path / "feat", cfg, workers=2, batch_size=3, progress=_kill_after(3))
    assert not (tmp_path / "feat").exists()
    (fsdd_dir / "0_jackson_7.wav").write_bytes((fsdd_dir / "0_jackson_0.wav").read_bytes())
    resumed = prepare(fsdd_dir, tmp_path / "feat", cfg, workers=2, batch_size=3)
    assert resumed.n_reused >= 6 and resumed.n_reused + resumed.n_computed == 19
    prepare(fsdd_dir, tmp_path / "fresh", cfg, workers=1)
    a, b = FeatureStore.open(tmp_path / "feat"), FeatureStore.open(tmp_path / "fresh")
    assert [it["id"] for it in a.items] == [it["id"] for it in b.items] and len(a) == 13
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_allclose(a.normalizer.std, b.normalizer.std, rtol=1e-6)
    assert len(a.skipped) == 6


def test_write_store_moving_moves_the_features_file(tmp_path):
    from soundloom.data.store import StoreError, write_store_moving

    npy = tmp_path / "rows.npy"
    np.save(npy, np.ones((2, 5, 3), np.float32))
    cfg = {"sample_rate": 8000, "n_samples": 100, "spectrogram": SpectrogramConfig(n_fft=8).to_dict()}
    items = [{"id": "a", "path": "a.wav", "labels": {}}, {"id": "b", "path": "b.wav", "labels": {}}]
    with pytest.raises(StoreError, match="do not fit 3 items"):
        write_store_moving(tmp_path / "s", npy, items + items[:1], cfg, Normalizer(mode="range"))
    assert npy.exists() and not (tmp_path / "s").exists()
    write_store_moving(tmp_path / "s", npy, items, cfg, Normalizer(mode="range"))
    assert not npy.exists()
    store = FeatureStore.open(tmp_path / "s")
    assert store.features.shape == (2, 5, 3) and float(store.features.sum()) == 30.0


def test_long_files_decode_only_the_kept_part(tmp_path):
    import soundfile as sf

    sr = 8000
    t = np.arange(3 * sr) / sr
    late_nan = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    late_nan[int(2.5 * sr)] = np.nan  # beyond the kept 0.5 s: never decoded, never matters
    quiet_start = late_nan.copy()
    quiet_start[:sr] = 0.0  # the kept 0.5 s is silent: useless as a clip
    folder = tmp_path / "long"
    folder.mkdir()
    sf.write(folder / "late_nan.wav", late_nan, sr, subtype="FLOAT")
    sf.write(folder / "quiet_start.wav", quiet_start, sr, subtype="FLOAT")
    cfg = PrepareConfig(sample_rate=sr, seconds=0.5)
    clip, rate, frames, _ = load_clip(str(folder / "late_nan.wav"), cfg)
    assert clip.shape == (4000,) and np.isfinite(clip).all() and frames == 3 * sr
    result = prepare(folder, tmp_path / "feat", cfg, layout="plain", workers=1)
    assert result.n_items == 1 and result.skipped[0]["reason"].startswith("silent")
    assert FeatureStore.open(tmp_path / "feat").items[0]["duration_s"] == 3.0
    with pytest.raises(Exception, match="too short"):
        load_clip(str(folder / "late_nan.wav"), PrepareConfig(sample_rate=sr, seconds=0.5, min_seconds=4.0))


def test_refuses_to_replace_a_folder_that_is_not_a_store(plain_dir, tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a feature store"):
        prepare(plain_dir, precious, workers=1)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    assert prepare(plain_dir, tmp_path / "empty", workers=1).n_items == 7  # an empty folder is fine


def test_default_rate_is_the_data_sets_most_common_rate(tmp_path):
    from .conftest import tone, write

    for i in range(5):
        write(tmp_path / "data" / f"{i}_spk_{i}.wav", tone(8000, 0.5, 300 + 50 * i), 8000)
    write(tmp_path / "data" / "9_spk_9.wav", tone(22050, 0.5, 500), 22050)  # one odd rate is resampled
    result = prepare(tmp_path / "data", tmp_path / "store", PrepareConfig(seconds=0.5), workers=1)
    store = FeatureStore.open(result.store)
    assert store.sample_rate == 8000 and store.n_samples == 4000 and len(store) == 6
    assert store.features.shape == (6, 257, 1 + 4000 // 128)
    forced = prepare(tmp_path / "data", tmp_path / "store16", PrepareConfig(sample_rate=16000, seconds=0.5), workers=1)
    assert FeatureStore.open(forced.store).sample_rate == 16000
