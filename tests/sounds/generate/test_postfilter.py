"""The global-variance post-filter: it sharpens a smeared spectrum toward the fitted spread, training writes a
post-filter, sounds rendered with it recall exactly, and a run without the file renders bit for bit as before."""

import json
import shutil

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError
from soundloom.sounds.decode import features_to_audio
from soundloom.sounds.generator import Generator
from soundloom.sounds.postfilter import ALL, POSTFILTER_FILE, PostFilter, fit_postfilter, frame_spread_db

torch.set_num_threads(1)


def partials(n: int, rows: int = 48, frames: int = 20, seed: int = 0) -> torch.Tensor:
    """dB spectra ``(n, rows, frames)``: a few 0 dB partials at random rows over a -90 dB floor."""
    rng = np.random.default_rng(seed)
    db = np.full((n, rows, frames), -90.0)
    for i in range(n):
        db[i, rng.choice(rows, 4, replace=False), :] = 0.0
    return torch.tensor(db, dtype=torch.float32)


def smear(db: torch.Tensor) -> torch.Tensor:
    """Each frame's dB spectrum blurred across rows (a decoder's over-smoothing)."""
    kernel = torch.tensor([0.25, 0.5, 0.25])[None, None]
    flat = db.permute(0, 2, 1).reshape(-1, 1, db.shape[1])
    out = torch.nn.functional.conv1d(torch.nn.functional.pad(flat, (1, 1), mode="replicate"), kernel)
    return out.reshape(db.shape[0], db.shape[2], db.shape[1]).permute(0, 2, 1)


def test_sharpens_a_smeared_spectrum_toward_the_fitted_spread():
    real, held = partials(12, seed=0), partials(6, seed=1)
    labels = ["bell"] * 12
    post = fit_postfilter(real, labels, smear(real), labels, "test")
    assert post.ratio["bell"] > 1.1 and post.ratio[ALL] == post.ratio["bell"]
    low, high = torch.full((48,), -300.0), torch.full((48,), 50.0)
    blurred = smear(held)
    sharp = post.apply(blurred, ["bell"] * 6, low, high)
    # the fitted spread is met on clips it was not fitted on, the gaps between partials go down, the power stays
    assert abs(frame_spread_db(sharp) - frame_spread_db(held)) < 0.2 * (
        frame_spread_db(held) - frame_spread_db(blurred)
    )
    assert float(sharp.min()) < float(blurred.min()) - 10.0
    power = (10 ** (blurred / 10)).sum((1, 2))
    np.testing.assert_allclose((10 ** (sharp.double() / 10)).sum((1, 2)), power, rtol=1e-4)
    # and never leaves the range the normaliser represents
    clipped = post.apply(blurred, ["bell"] * 6, torch.full((48,), -100.0), torch.full((48,), 0.0))
    assert float(clipped.min()) == -100.0 and float(clipped.max()) <= 0.0
    # an unknown label gets the all-class ratio; ratio 1 leaves a spectrum as it is
    assert post.ratio_for("kick") == post.ratio[ALL]
    np.testing.assert_array_equal(PostFilter({ALL: 1.0}).apply(blurred, [None] * 6, low, high), blurred)


def test_silent_frames_do_not_dilute_the_spread():
    real = partials(4)
    padded = torch.cat([real, torch.full((4, 48, 20), -90.0)], dim=2)  # a one-shot's silent tail
    assert frame_spread_db(padded) == pytest.approx(frame_spread_db(real), rel=1e-6)


def test_file_round_trip_and_errors(tmp_path):
    assert PostFilter.load(tmp_path) is None
    post = PostFilter({ALL: 1.2, "a": 1.5}, {"source": "test"})
    post.save(tmp_path)
    back = PostFilter.load(tmp_path)
    assert back.ratio == post.ratio and back.info["source"] == "test"
    (tmp_path / POSTFILTER_FILE).write_text(json.dumps({"format": "soundloom-postfilter", "ratio": {"a": 1.0}}))
    with pytest.raises(ModelFileError, match="all-class"):
        PostFilter.load(tmp_path)
    (tmp_path / POSTFILTER_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable"):
        PostFilter.load(tmp_path)


def test_training_writes_one_and_a_run_without_it_renders_as_before(tiny_run, tmp_path):
    record = json.loads((tiny_run / POSTFILTER_FILE).read_text())
    assert set(record["ratio"]) == {ALL, "a", "b", "c"} and record["source"].startswith("samples of the fitted prior")
    assert record["kind"] == "quantile" and set(record["quantiles"]) == {ALL, "a", "b", "c"}  # export's kind

    bare = tmp_path / "bare"
    shutil.copytree(tiny_run, bare, ignore=shutil.ignore_patterns("checkpoints", "samples", "eval", "plots"))
    (bare / POSTFILTER_FILE).unlink()
    gen = Generator.from_run(bare, level="none")
    assert gen.postfilter is None
    sounds = gen.sample(3, label="b", seed=4)
    assert "postfilter" not in sounds[0].params
    # bit for bit what the render path gave before the post-filter existed: decode, invert, nothing between
    feats = gen.decode_many([s.latent for s in sounds], ["b"] * 3)
    plain = features_to_audio(feats, gen.normalizer, gen.spec, gen.n_samples, gen.griffin_lim_iters).numpy()
    for s, wav in zip(sounds, plain):
        np.testing.assert_array_equal(s.audio, wav)
    # the same run with its file: other audio, recalled exactly from the sidecar; switched off: as the bare run
    with_file = Generator.from_run(tiny_run, level="none")
    sharp = with_file.sample(3, label="b", seed=4)
    assert sharp[0].params["postfilter"] is True
    assert not np.array_equal(sharp[0].audio, sounds[0].audio)
    np.testing.assert_array_equal(
        with_file.from_sidecar(sharp[1].sidecar(with_file.model_record())).audio, sharp[1].audio
    )
    off = Generator.from_run(tiny_run, level="none", postfilter=False)
    np.testing.assert_array_equal(off.sample(3, label="b", seed=4)[2].audio, sounds[2].audio)


def test_generate_cli_switches_it_off(tiny_run, tmp_path):
    from tests.cli import run_cli

    runs = {}
    for name, flag in (("on", []), ("off", ["--no-postfilter"])):
        code, out = run_cli("generate", tiny_run, "--out", tmp_path / name, "--n", "1", "--label", "b", *flag)
        assert code == 0, out
        (sidecar,) = (tmp_path / name).glob("*.json")
        runs[name] = json.loads(sidecar.read_text())
    assert runs["on"]["params"]["postfilter"] is True
    assert "postfilter" not in runs["off"]["params"]


def test_the_envelope_centre_deepens_valleys_and_keeps_the_tilt(tmp_path):
    """About the frame mean a falling spectrum's top rows count as deviation and the stretch dulls the sound; about
    the envelope only the ripple between partials is stretched."""
    rows = torch.arange(64, dtype=torch.float64)
    ripple = 5.0 * (-1.0) ** rows  # partials and the valleys between them
    db = (-60.0 * rows / 63 + ripple)[None, :, None].repeat(1, 1, 4)  # (1, 64, 4), falling 60 dB to the top
    mean = PostFilter({ALL: 1.5})._stretch(db, [None])
    env = PostFilter({ALL: 1.5}, envelope_rows=9)._stretch(db, [None])
    tilt = lambda x: float(x[0, 4:12, 0].mean() - x[0, 52:60, 0].mean())  # noqa: E731  (away from the edges)
    assert tilt(mean) > tilt(db) + 10  # the top rows pushed down: duller
    assert abs(tilt(env) - tilt(db)) < 1.0
    depth = lambda x: float((x[0, 10:54:2, 0] - x[0, 11:55:2, 0]).mean())  # noqa: E731
    assert depth(env) == pytest.approx(1.5 * depth(db), rel=0.1)
    post = fit_postfilter(db, ["a"], db - 0.5 * ripple[None, :, None], ["a"], "test", envelope_rows=9)
    assert post.envelope_rows == 9 and post.ratio["a"] > 1.5  # the model's ripple is half the real one's
    post.save(tmp_path)
    assert PostFilter.load(tmp_path).envelope_rows == 9
    record = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    record["envelope_rows"] = 4
    (tmp_path / POSTFILTER_FILE).write_text(json.dumps(record))
    with pytest.raises(ModelFileError, match="odd positive"):
        PostFilter.load(tmp_path)
