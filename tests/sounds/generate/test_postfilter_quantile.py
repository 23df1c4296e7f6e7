"""The quantile stage of the post-filter: it deepens a smeared spectrum's gaps toward the real quantiles and never
lifts a value, its file (version 2) round-trips while version-1 files stay as they were, export fits it on request,
a run renders with it and recalls exactly, and the exported ONNX example applies the same maths."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError, ParameterError
from soundloom.sounds.generator import Generator
from soundloom.sounds.postfilter import (
    ALL,
    LIFT_BELOW,
    POSTFILTER_FILE,
    PostFilter,
    fit_postfilter,
    fit_quantile_postfilter,
    peak_relative_quantiles,
)
from tests.sounds.generate.test_postfilter import partials, smear

torch.set_num_threads(1)


def below_peak(db: torch.Tensor, q: float) -> float:
    """The ``q`` quantile of dB below each frame's peak over a batch ``(N, rows, frames)``."""
    return float(torch.quantile((db - db.amax(dim=1, keepdim=True)).double().flatten(), q))


def test_deepens_the_gaps_of_a_smeared_spectrum_and_never_lifts():
    real, held = partials(12, seed=0), partials(6, seed=1)
    labels = ["bell"] * 12
    post = fit_quantile_postfilter(real, labels, smear(real), labels, "test")
    assert post.kind == "quantile" and post.ratio == {ALL: 1.0, "bell": 1.0} and set(post.quantiles) == {ALL, "bell"}
    model, real_q = post.quantiles["bell"]
    assert model.shape == (48, 33) and (model.diff(dim=1) > 0).all()
    low, high = torch.full((48,), -300.0), torch.full((48,), 50.0)
    blurred = smear(held)
    sharp = post.apply(blurred, ["bell"] * 6, low, high)
    # the gaps between partials go down toward the real depth (90 dB) on clips it was not fitted on
    assert below_peak(blurred, 0.5) > -50.0 and below_peak(sharp, 0.5) < below_peak(blurred, 0.5) - 30.0
    assert below_peak(sharp, 0.5) > -95.0
    # before the level shift nothing is lifted; the shift keeps each item's power
    assert (post._lower(blurred.double(), ["bell"] * 6) <= blurred.double()).all()
    power = (10 ** (blurred.double() / 10)).sum((1, 2))
    np.testing.assert_allclose((10 ** (sharp.double() / 10)).sum((1, 2)), power, rtol=1e-4)
    # on top of fitted GV ratios: those ratios are kept, and the model's tables are those of the sharpened output
    gv = fit_postfilter(real, labels, smear(real), labels, "test")
    both = fit_quantile_postfilter(real, labels, smear(real), labels, "test", gv.ratio)
    assert both.ratio == gv.ratio and not torch.equal(both.quantiles["bell"][0], model)
    # a batch of several classes (and unknown labels: the all-class tables) renders as its items one at a time
    mixed = fit_quantile_postfilter(real, labels[:6] + ["kick"] * 6, smear(real), labels[:6] + ["kick"] * 6, "test")
    labs = ["kick", "bell", None, "kick", "snare", "bell"]
    alone = torch.cat([mixed.apply(blurred[i : i + 1], [lab], low, high) for i, lab in enumerate(labs)])
    assert torch.equal(mixed.apply(blurred, labs, low, high), alone)


def test_lift_below_restores_a_dull_band_and_leaves_the_peaks(tmp_path):
    real, model = partials(12, seed=0), partials(12, seed=0)
    real[:, 40:] = torch.maximum(real[:, 40:], torch.tensor(-30.0))  # a bright band up top, 30 dB below the peaks
    model[:, 40:] = torch.maximum(model[:, 40:], torch.tensor(-45.0))  # the model's band 15 dB duller
    labels = ["pluck"] * 12
    lifted = fit_quantile_postfilter(real, labels, model, labels, "test", lift_below=0.5)
    lower_only = fit_quantile_postfilter(real, labels, model, labels, "test")
    x = model.double()
    up, kept = lifted._lower(x, labels), lower_only._lower(x, labels)
    band = x[:, 40:] < -1  # the band's quiet values (not the partials that fall in it)
    assert (kept <= x).all() and torch.equal(kept[:, 40:][band], x[:, 40:][band])
    assert float((up[:, 40:][band] - -30.0).abs().max()) < 1.0  # raised to the recordings' level
    peaks = x == 0.0
    assert torch.equal(up[peaks], x[peaks])  # the loud half of a row is never raised
    # a strength scales the lift by at most 1: here the map lowers nothing, so strength 3 renders as strength 1
    low, high = torch.full((48,), -300.0), torch.full((48,), 50.0)
    at = {k: replace(lifted, strength={ALL: k}).apply(x, labels, low, high) for k in (0.5, 1.0, 3.0)}
    torch.testing.assert_close(at[3.0], at[1.0])
    half = at[0.5] - at[0.5].amax(dim=1, keepdim=True)  # dB below each frame's peak (0 dB partials in every frame)
    assert float((half[:, 40:][band] - -37.5).abs().max()) < 1.0
    # the file keeps the setting; a bad one is refused
    lifted.save(tmp_path)
    assert json.loads((tmp_path / POSTFILTER_FILE).read_text())["lift_below"] == 0.5
    assert PostFilter.load(tmp_path).lift_below == 0.5
    record = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    (tmp_path / POSTFILTER_FILE).write_text(json.dumps({**record, "lift_below": 1.5}))
    with pytest.raises(ModelFileError, match="lift_below"):
        PostFilter.load(tmp_path)


def test_quantiles_are_taken_over_active_frames():
    db = partials(3)
    padded = torch.cat([db, torch.full((3, 48, 20), -90.0)], dim=2)  # a silent tail: left out
    np.testing.assert_allclose(peak_relative_quantiles(padded), peak_relative_quantiles(db))
    q = peak_relative_quantiles(db, n=5)
    assert q.shape == (48, 5) and float(q.max()) == 0.0 and float(q.min()) == -90.0


def test_file_round_trip_and_version_1_unchanged(tmp_path):
    real = partials(8)
    labels = ["a"] * 4 + ["b"] * 4
    post = fit_quantile_postfilter(real, labels, smear(real), labels, "test", {ALL: 1.2, "a": 1.1, "b": 1.3})
    post.save(tmp_path)
    record = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    assert record["version"] == 2 and record["kind"] == "quantile" and set(record["quantiles"]) == {ALL, "a", "b"}
    back = PostFilter.load(tmp_path)
    assert back.kind == "quantile" and back.ratio == post.ratio and back.info["source"] == "test"
    low, high = torch.full((48,), -300.0), torch.full((48,), 50.0)
    x = smear(partials(3, seed=5)).double()
    np.testing.assert_allclose(back.apply(x, ["a", "b", None], low, high), post.apply(x, ["a", "b", None], low, high))
    # a GV-only filter writes the version-1 record it always wrote
    assert PostFilter({ALL: 1.2}, {"source": "x"}).to_dict() == {
        "format": "soundloom-postfilter",
        "version": 1,
        "ratio": {ALL: 1.2},
        "source": "x",
    }
    for broken, match in (
        ({**record, "quantiles": {"a": record["quantiles"]["a"]}}, "all-class"),
        ({**record, "kind": "bands"}, "unknown kind"),
        ({**record, "quantiles": {**record["quantiles"], ALL: {"model": [[0.0, -1.0]], "real": [[0.0, 0.0]]}}}, "incr"),
    ):
        (tmp_path / POSTFILTER_FILE).write_text(json.dumps(broken))
        with pytest.raises(ModelFileError, match=match):
            PostFilter.load(tmp_path)


def quantile_copy(tiny_run, dest):
    """A copy of ``tiny_run`` whose post-filter is refitted as export fits one (the quantile kind)."""
    from soundloom.data.store import FeatureStore
    from soundloom.sounds.models import load_safetensors
    from soundloom.sounds.training.data import StoreDataModule, split_store
    from soundloom.sounds.training.export import fit_run_postfilter

    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("checkpoints", "samples", "eval", "plots"))
    gen = Generator.from_run(dest, level="none")
    info, t = gen.info, gen.info["train"]
    store = FeatureStore.open(info["store"])
    split = split_store(store, t["val_fraction"], t["seed"], t.get("group_key", "auto"))
    data = StoreDataModule(store, split, info["label_key"], list(gen.model.cfg.labels), False, 8, 0, t["seed"])
    prior = {k: v for k, v in load_safetensors(dest / "model.safetensors").items() if k.startswith("prior.")}
    with pytest.raises(ParameterError, match="kind"):
        fit_run_postfilter(gen.model, prior, data.train_set, gen.normalizer, kind="bands")
    post = fit_run_postfilter(gen.model, prior, data.train_set, gen.normalizer, kind="quantile")  # the map alone
    assert post.kind == "quantile" and set(post.quantiles) == {ALL, "a", "b", "c"}
    assert set(post.ratio) == {ALL, "a", "b", "c"} and set(post.ratio.values()) == {1.0}
    post.save(dest)
    return dest


def test_a_run_renders_with_it_and_recalls_exactly(tiny_run, tmp_path):
    run = quantile_copy(tiny_run, tmp_path / "q")
    gen = Generator.from_run(run, level="none")
    assert gen.postfilter.kind == "quantile"
    sounds = gen.sample(3, label="b", seed=4)
    assert sounds[0].params["postfilter"] is True
    off = Generator.from_run(run, level="none", postfilter=False).sample(3, label="b", seed=4)
    assert not np.array_equal(sounds[0].audio, off[0].audio)
    np.testing.assert_array_equal(gen.from_sidecar(sounds[1].sidecar(gen.model_record())).audio, sounds[1].audio)


def test_onnx_example_applies_the_same_quantile_stage(tiny_run, tmp_path):
    import runpy

    from soundloom.sounds.export import export_run

    run = quantile_copy(tiny_run, tmp_path / "q")
    paths = export_run(run, tmp_path / "onnx", fmt="onnx")
    info = json.loads(paths["json"].read_text())
    assert info["postfilter"]["kind"] == "quantile" and "quantile" in info["invert"][1]
    example = runpy.run_path(str(paths["example"]), run_name="example")  # functions only: main() not run
    gen = Generator.from_run(run)
    rng = np.random.default_rng(3)
    with torch.no_grad():
        feat = gen.model.decode(torch.from_numpy(rng.standard_normal((2, 3)).astype(np.float32)), torch.tensor([1, 1]))
    db = gen.normalizer.denormalize(feat).double()
    ones = torch.ones(len(gen.normalizer.mean), 1)
    low, high = gen.normalizer.denormalize(-ones)[:, 0], gen.normalizer.denormalize(ones)[:, 0]
    post = PostFilter.from_dict(info["postfilter"])
    assert post.lift_below == LIFT_BELOW  # export's map also lifts a row's quiet part: the example must too
    unlifted = replace(post, lift_below=None)
    assert not np.allclose(post.apply(db, ["b", "b"], low, high), unlifted.apply(db, ["b", "b"], low, high))
    for label in ("b", None):
        ref = post.apply(db, [label, label], low, high).numpy()
        for d, r in zip(db.numpy(), ref):
            got = example["postfilter"](d, label)
            np.testing.assert_allclose(got, r, atol=1e-4)
    # row gains (the calibration takes them per class where they bring the floor nearer): applied alike
    rows = len(gen.normalizer.mean)
    gains = {ALL: [0.0] * rows, "b": [3.0 * ((-1) ** i) for i in range(rows)]}
    example["postfilter"].__globals__["info"]["postfilter"]["row_gain"] = gains
    gained = PostFilter.from_dict(example["postfilter"].__globals__["info"]["postfilter"])
    assert not np.allclose(gained.apply(db, ["b", "b"], low, high), post.apply(db, ["b", "b"], low, high))
    for label in ("b", None):
        ref = gained.apply(db, [label, label], low, high).numpy()
        for d, r in zip(db.numpy(), ref):
            np.testing.assert_allclose(example["postfilter"](d, label), r, atol=1e-4)
    # the floor guard (export fits it; rows the recordings leave to their noise): applied alike
    assert "row_floor" in info["postfilter"] and "row_floor" in info["invert"][1]
    pf = example["postfilter"].__globals__["info"]["postfilter"]
    pf["row_floor"] = {ALL: [None] * rows, "b": [-5.0 if i % 2 else None for i in range(rows)]}
    floored = PostFilter.from_dict(pf)
    assert not np.allclose(floored.apply(db, ["b", "b"], low, high), gained.apply(db, ["b", "b"], low, high))
    for label in ("b", None):
        ref = floored.apply(db, [label, label], low, high).numpy()
        for d, r in zip(db.numpy(), ref):
            np.testing.assert_allclose(example["postfilter"](d, label), r, atol=1e-4)
