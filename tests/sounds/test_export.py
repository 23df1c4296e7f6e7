"""Decoder export: ONNX through onnxruntime and TorchScript through torch.jit.load match PyTorch within 1e-4;
a wave-vae's decoder exports to audio; a killed ``soundloom export`` leaves no export or the whole one."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds.export import export_run
from soundloom.sounds.generator import Generator
from soundloom.sounds.training import TrainConfig, train
from tests.killing import kill_and_rerun, temp_leftovers, tree_digest
from tests.sounds.models.synth_store import N_SAMPLES, make_store

SOUNDLOOM = [sys.executable, "-c", "from soundloom.cli import main; main()"]

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cfg = TrainConfig(
        features=str(make_store(root)),
        model="cvae",
        epochs=1,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        sample_items=0,
        val_fraction=0.25,
    )
    return train(cfg, root / "run", progress_bar=False)


def reference(run, z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's normalised features and dB for latents ``(B, D)`` and label indices ``(B,)``."""
    gen = Generator.from_run(run)
    with torch.no_grad():
        feat = gen.model.decode(torch.from_numpy(z), torch.from_numpy(labels), None)
    return feat.numpy(), gen.normalizer.denormalize(feat).numpy()


def inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 3)).astype(np.float32), (np.arange(n) % 3).astype(np.int64)


def test_onnx_matches_pytorch_for_other_batch_sizes(tiny_run, tmp_path):
    import onnxruntime as ort

    paths = export_run(tiny_run, tmp_path / "onnx", fmt="onnx")
    info = json.loads(paths["json"].read_text())
    assert [i["name"] for i in info["inputs"]] == ["z", "label"]
    assert info["inputs"][0]["shape"] == ["batch", 3] and info["inputs"][1]["dtype"] == "int64"
    assert info["sample_rate"] == 8000 and info["labels"] == ["a", "b", "c"]
    assert info["statistics"]["mode"] == "meanstd" and len(info["statistics"]["mean"]) == info["outputs"][1]["shape"][1]
    assert set(info["postfilter"]["ratio"]) == {"*", "a", "b", "c"} and "postfilter" in info["invert"][1]
    session = ort.InferenceSession(str(paths["model"]), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # the graph was traced at batch 2: the batch axis must be dynamic
        z, lab = inputs(n)
        feat, db = session.run(["features", "db"], {"z": z, "label": lab})
        ref_feat, ref_db = reference(tiny_run, z, lab)
        assert feat.shape == ref_feat.shape == (n, 65, 65)
        np.testing.assert_allclose(feat, ref_feat, atol=1e-4, rtol=0)
        np.testing.assert_allclose(db, ref_db, atol=1e-4 * float(np.abs(ref_db).max()), rtol=0)
    # conditioning reaches the graph: another label, other features
    z, _ = inputs(1)
    a = session.run(["features"], {"z": z, "label": np.array([0])})[0]
    b = session.run(["features"], {"z": z, "label": np.array([2])})[0]
    assert np.abs(a - b).max() > 1e-3


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_matches_pytorch(tiny_run, tmp_path):
    paths = export_run(tiny_run, tmp_path / "ts", fmt="torchscript")
    loaded = torch.jit.load(str(paths["model"]))
    z, lab = inputs(4)
    with torch.no_grad():
        feat, db = loaded(torch.from_numpy(z), torch.from_numpy(lab))
    ref_feat, ref_db = reference(tiny_run, z, lab)
    np.testing.assert_allclose(feat.numpy(), ref_feat, atol=1e-4, rtol=0)
    np.testing.assert_allclose(db.numpy(), ref_db, atol=1e-4 * float(np.abs(ref_db).max()), rtol=0)
    assert json.loads(paths["json"].read_text())["format"] == "torchscript"


def test_example_script_writes_audio(tiny_run, tmp_path):
    import soundfile as sf

    paths = export_run(tiny_run, tmp_path / "onnx", fmt="onnx")
    done = subprocess.run(
        [sys.executable, str(paths["example"]), str(tmp_path / "decoded")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    wav, rate = sf.read(tmp_path / "decoded" / "decoded_0.wav")
    assert rate == 8000 and len(wav) == 2048 and np.abs(wav).max() > 0.1


def test_example_postfilter_matches_soundloom(tiny_run, tmp_path):
    """The example's NumPy post-filter is the one soundloom renders with (ratios forced above 1 and strengths
    forced away from 0 so it acts; the calibration may switch a tiny run's classes off)."""
    import runpy

    from soundloom.sounds.postfilter import PostFilter

    paths = export_run(tiny_run, tmp_path / "onnx", fmt="onnx")
    info = json.loads(paths["json"].read_text())
    info["postfilter"]["ratio"] = {"*": 1.3, "a": 1.0, "b": 1.7, "c": 1.2}
    info["postfilter"]["strength"] = {"*": 0.8, "a": 1.0, "b": 1.5, "c": 0.0}
    assert info["postfilter"]["envelope_rows"] % 2 == 1  # export stretches about the envelope
    info["postfilter"]["envelope_rows"] = 5
    paths["json"].write_text(json.dumps(info))
    example = runpy.run_path(str(paths["example"]), run_name="example")  # functions only: main() not run
    gen = Generator.from_run(tiny_run)
    z, lab = inputs(2)
    _, db = reference(tiny_run, z, lab)
    ones = torch.ones(len(gen.normalizer.mean), 1)
    low, high = gen.normalizer.denormalize(-ones)[:, 0], gen.normalizer.denormalize(ones)[:, 0]
    post = PostFilter.from_dict(info["postfilter"])
    for label in ("b", None):
        ref = post.apply(torch.from_numpy(db).double(), [label, label], low, high).numpy()
        for d, r in zip(db.astype(np.float64), ref):
            got = example["postfilter"](d, label)
            assert np.abs(got - d).max() > 0.5  # it sharpens
            np.testing.assert_allclose(got, r, atol=1e-4)


def test_unknown_format_is_a_parameter_error(tiny_run, tmp_path):
    with pytest.raises(ParameterError, match="onnx, torchscript"):
        export_run(tiny_run, tmp_path / "x", fmt="tflite")


@pytest.fixture(scope="module")
def wave_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_wave")
    cfg = TrainConfig(
        features=str(make_store(root)),
        model="wave-vae",
        epochs=1,
        batch_size=8,
        latent_dim=3,
        warmup_steps=2,
        sample_items=0,
        val_fraction=0.25,
        model_options={"wave_channels": "4,8", "strides": "4,4"},
    )
    return train(cfg, root / "run", progress_bar=False)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_wave_vae_exports_audio_matching_pytorch(wave_run, tmp_path):
    import onnxruntime as ort
    import soundfile as sf

    paths = export_run(wave_run, tmp_path / "onnx", fmt="onnx")
    info = json.loads(paths["json"].read_text())
    assert info["model_kind"] == "wave-vae" and [o["name"] for o in info["outputs"]] == ["audio"]
    assert info["outputs"][0]["shape"] == ["batch", N_SAMPLES] and [i["name"] for i in info["inputs"]] == ["z", "label"]
    gen = Generator.from_run(wave_run)
    session = ort.InferenceSession(str(paths["model"]), providers=["CPUExecutionProvider"])
    ts = torch.jit.load(str(export_run(wave_run, tmp_path / "ts", fmt="torchscript")["model"]))
    for n in (1, 3):  # traced at batch 2: the batch axis is dynamic
        z, lab = inputs(n)
        (audio,) = session.run(["audio"], {"z": z, "label": lab})
        with torch.no_grad():
            ref = gen.model.decode(torch.from_numpy(z), torch.from_numpy(lab), None).numpy()
            scripted = ts(torch.from_numpy(z), torch.from_numpy(lab)).numpy()
        assert audio.shape == ref.shape == (n, N_SAMPLES) and np.abs(ref).max() > 1e-3
        np.testing.assert_allclose(audio, ref, atol=1e-4, rtol=0)
        np.testing.assert_allclose(scripted, ref, atol=1e-4, rtol=0)
    done = subprocess.run(
        [sys.executable, str(paths["example"]), str(tmp_path / "decoded")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    wav, rate = sf.read(tmp_path / "decoded" / "decoded_0.wav")
    assert rate == 8000 and len(wav) == N_SAMPLES


def test_export_into_an_existing_folder_keeps_other_files(tiny_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    paths = export_run(tiny_run, out, fmt="torchscript")
    assert (out / "notes.txt").read_text() == "mine" and paths["json"].exists() and paths["model"].exists()
    assert temp_leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="must be a folder"):
        export_run(tiny_run, tmp_path / "file", fmt="onnx")


def test_killed_export_leaves_no_export_or_the_whole_one(tiny_run, tmp_path):
    """Five ``soundloom export`` processes (a reference, three killed, a final one): about a minute here."""
    ref, parent = tmp_path / "ref", tmp_path / "kills"
    parent.mkdir()
    out = parent / "out"

    def export(folder):
        return SOUNDLOOM + ["export", str(tiny_run), "--format", "onnx", "--out", str(folder)]

    started = time.monotonic()
    done = subprocess.run(export(ref), capture_output=True, text=True, timeout=240)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    reference = tree_digest(ref)
    assert set(reference) == {"decoder.onnx", "export.json", "example_onnxruntime.py"}
    states = []

    def check(_: int) -> None:  # after each kill: no export, or the complete one
        if not out.exists():
            states.append("none")
            return
        assert tree_digest(out) == reference
        states.append("complete")
        for f in out.iterdir():  # so that the next kill is judged on its own
            f.unlink()
        out.rmdir()

    result = kill_and_rerun(
        export(out), parent, kills=3, seed=3, min_delay_s=0.2 * took, max_delay_s=0.95 * took, after_kill=check
    )
    assert result.final_returncode == 0 and "Traceback" not in result.final_stderr, result.final_stderr
    assert any(result.killed_running), "no run was killed while running: the delays are too long here"
    assert result.children_left == [] and result.temp_files == [], result
    assert tree_digest(out) == reference and len(states) == 3


def test_example_fade_in_matches_soundloom(tiny_run, tmp_path):
    """The example fades each decoded sound in as soundloom renders it (the class's, else the all-class fade)."""
    import runpy

    from soundloom.sounds.postfilter import PostFilter

    paths = export_run(tiny_run, tmp_path / "onnx", fmt="onnx")
    info = json.loads(paths["json"].read_text())
    info["postfilter"]["fade_in_s"] = {"*": 0.002, "b": 0.01}
    paths["json"].write_text(json.dumps(info))
    example = runpy.run_path(str(paths["example"]), run_name="example")
    post = PostFilter.from_dict(info["postfilter"])
    wav = np.random.default_rng(0).uniform(-1, 1, 2048).astype(np.float32)
    for label in ("b", "a", None):
        ref = post.fade(wav[None], [label], info["sample_rate"])[0]
        got = example["fade_in"](wav, label)
        np.testing.assert_allclose(got, ref, atol=1e-6)
        assert (got != wav).any()
