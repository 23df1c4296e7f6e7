"""Decoder export: ONNX through onnxruntime and TorchScript through torch.jit.load match PyTorch within 1e-4."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds.export import export_run
from soundloom.sounds.generator import Generator
from soundloom.sounds.training import TrainConfig, train
from tests.sounds.models.synth_store import make_store

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


def test_unknown_format_is_a_parameter_error(tiny_run, tmp_path):
    with pytest.raises(ParameterError, match="onnx, torchscript"):
        export_run(tiny_run, tmp_path / "x", fmt="tflite")
