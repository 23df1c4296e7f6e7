"""Export a run's decoder for use outside Python: ONNX (onnxruntime) or TorchScript (``torch.jit.load``).

The exported graph is ``decode(z[, label][, pitch]) -> (features, db)``: ``features`` is the model's
normalised spectrogram ``(batch, rows, frames)`` in [-1, 1]-ish units, ``db`` the same denormalised with
the run's dataset statistics (dB, what :func:`soundloom.core.spectral.features` computes). Audio is one
step further (mel -> linear magnitude -> Griffin-Lim), described in ``export.json`` and done in
``example_onnxruntime.py`` with librosa. Every kind whose decoder gives features is exported the same
way; the inputs (their shapes and dtypes) come from encoding a silent clip, so a new kind needs nothing
here::

    paths = export_run("runs/oneshots", "export/", fmt="onnx")   # decoder.onnx, export.json, example
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core.atomic import write_json
from ..core.errors import ParameterError
from ..data.stats import Normalizer
from .generator import Generator

FORMATS = ("onnx", "torchscript")
#: ONNX opset of the export (onnxruntime >= 1.16 runs it).
OPSET = 17
EXPORT_FILE = "export.json"
EXAMPLE_FILE = "example_onnxruntime.py"


class DecoderGraph(nn.Module):
    """``forward(z[, label][, pitch])`` -> ``(features, db)``, each ``(batch, rows, frames)``.

    ``label`` and ``pitch`` are int64 ``(batch,)`` and present only when the model is conditioned on them.
    """

    def __init__(self, model: nn.Module, normalizer: Normalizer, use_label: bool, use_pitch: bool) -> None:
        super().__init__()
        self.model, self.use_label, self.use_pitch = model, use_label, use_pitch
        self.mode = normalizer.mode
        rows = 1 if normalizer.mode == "range" else len(normalizer.mean)
        mean = (
            torch.zeros(rows) if normalizer.mode == "range" else torch.as_tensor(normalizer.mean, dtype=torch.float32)
        )
        std = torch.ones(rows) if normalizer.mode == "range" else torch.as_tensor(normalizer.std, dtype=torch.float32)
        self.register_buffer("mean", mean.view(-1, 1), persistent=False)
        self.register_buffer("std", std.view(-1, 1), persistent=False)
        self.clip_sigma, self.min_db, self.max_db = float(normalizer.clip_sigma), normalizer.min_db, normalizer.max_db

    def _decode(self, z: torch.Tensor, label: torch.Tensor | None, pitch: torch.Tensor | None) -> torch.Tensor:
        decode = getattr(self.model, "decode_latent", None) or self.model.decode
        return decode(z, label, pitch)

    def _denormalize(self, y: torch.Tensor) -> torch.Tensor:
        # Normalizer.denormalize, written with tensor buffers so the graph holds the statistics.
        y = y.clamp(-1.0, 1.0)
        if self.mode == "range":
            return (y + 1.0) * 0.5 * (self.max_db - self.min_db) + self.min_db
        return y * self.clip_sigma * self.std + self.mean

    def forward(self, z: torch.Tensor, *conditions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        it = iter(conditions)
        label = next(it) if self.use_label else None
        pitch = next(it) if self.use_pitch else None
        feat = self._decode(z, label, pitch)
        return feat, self._denormalize(feat)


def decoder_graph(gen: Generator) -> tuple[DecoderGraph, tuple[torch.Tensor, ...], list[str]]:
    """The decoder graph of a loaded run, example inputs (batch 2) and their names."""
    model = gen.model
    if getattr(model, "output", "features") != "features":
        raise ParameterError(f"export: model kind {model.cfg.kind!r} decodes to {model.output}, not features")
    use_label, use_pitch = bool(model.label_conditioned), bool(model.pitch_conditioned)
    rows, frames = int(model.cfg.rows), int(model.cfg.frames)
    label = torch.zeros(2, dtype=torch.int64) if use_label else None
    pitch = torch.full((2,), 60, dtype=torch.int64) if use_pitch else None
    encode = getattr(model, "encode_latent", None) or (lambda x, lab, pit: model.encode(x, lab, pit)[0])
    with torch.no_grad():
        z = encode(torch.zeros(2, rows, frames), label, pitch)
    if z.is_floating_point():  # a continuous latent: random values exercise the graph better than a silent clip's
        z = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    inputs, names = [z], ["z"]
    if use_label:
        inputs.append(label)
        names.append("label")
    if use_pitch:
        inputs.append(pitch)
        names.append("pitch")
    return DecoderGraph(model.eval(), gen.normalizer, use_label, use_pitch).eval(), tuple(inputs), names


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _export_onnx(graph: DecoderGraph, inputs: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise ParameterError("ONNX export needs the onnx package: pip install 'soundloom[export]'") from exc
    axes = {n: {0: "batch"} for n in names + ["features", "db"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: ~1 s here, where the dynamo exporter took ~20 s for the same graph.
        torch.onnx.export(
            graph,
            inputs,
            str(path),
            input_names=names,
            output_names=["features", "db"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _export_torchscript(graph: DecoderGraph, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, inputs, check_trace=False)
    traced.save(str(path))


def export_description(gen: Generator, inputs: tuple[torch.Tensor, ...], names: list[str], fmt: str, file: str) -> dict:
    """What ``export.json`` holds: inputs, outputs, sample rate, feature config and statistics, how to invert."""
    model = gen.model
    stats = json.loads((Path(gen.info["run"]) / "stats.json").read_text())
    spec = gen.spec.to_dict()
    described = []
    for name, t in zip(names, inputs):
        entry = {"name": name, "shape": ["batch", *list(t.shape[1:])], "dtype": _dtype(t)}
        if name == "label":
            entry["values"] = "index into labels"
        elif name == "pitch":
            entry["values"] = f"MIDI pitch 0..{model.cfg.n_pitches - 1}"
        described.append(entry)
    rows, frames = int(model.cfg.rows), int(model.cfg.frames)
    kind = spec.get("kind")
    invert = [
        "db = output 'db' (batch, rows, frames)",
        "mel: mel power = 10 ** (db / 10) (Slaney filterbank); magnitude = librosa mel_to_stft(power, power=2.0)"
        if kind == "mel"
        else "db: magnitude = 10 ** (db / 20) over n_fft // 2 + 1 bins",
        "audio = Griffin-Lim(magnitude, n_fft, hop_length, win_length, window), trimmed to n_samples",
    ]
    return {
        "format": fmt,
        "file": file,
        "model_kind": model.cfg.kind,
        "run": gen.info["run"],
        "run_sha256": gen.info["sha256"],
        "torch": torch.__version__,
        "opset": OPSET if fmt == "onnx" else None,
        "inputs": described,
        "outputs": [
            {"name": "features", "shape": ["batch", rows, frames], "dtype": "float32", "units": "normalised"},
            {"name": "db", "shape": ["batch", rows, frames], "dtype": "float32", "units": "dB"},
        ],
        "labels": list(getattr(model.cfg, "labels", []) or []),
        "sample_rate": int(gen.spec.sample_rate),
        "n_samples": int(gen.n_samples),
        "spectrogram": spec,
        "statistics": stats,
        "latent": "z ~ N(0, I) for a VAE; the run's fitted prior (model.safetensors prior.*) samples better",
        "invert": invert,
    }


_EXAMPLE = '''"""Decode random latents with onnxruntime and write WAVs (needs numpy, onnxruntime, librosa, soundfile).

python example_onnxruntime.py [OUT_DIR]
"""

import json
import sys
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort
import soundfile as sf

here = Path(__file__).parent
info = json.loads((here / "export.json").read_text())
spec = info["spectrogram"]
session = ort.InferenceSession(str(here / info["file"]), providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
batch = 2
feeds = {}
for inp in info["inputs"]:
    shape = [batch] + inp["shape"][1:]
    if inp["name"] == "z":
        feeds["z"] = rng.standard_normal(shape).astype(inp["dtype"])
    else:  # label / pitch: class 0 / middle C
        feeds[inp["name"]] = np.full(shape, 60 if inp["name"] == "pitch" else 0, dtype=inp["dtype"])
features, db = session.run(["features", "db"], feeds)
print("db", db.shape, float(db.min()), float(db.max()))
out = Path(sys.argv[1] if len(sys.argv) > 1 else here / "decoded")
out.mkdir(parents=True, exist_ok=True)
win = spec.get("win_length") or spec["n_fft"]
for i, d in enumerate(db.astype(np.float64)):
    if spec["kind"] == "mel":
        mag = librosa.feature.inverse.mel_to_stft(  # Slaney mel power -> linear magnitude
            10 ** (d / 10), sr=info["sample_rate"], n_fft=spec["n_fft"], power=2.0, fmin=spec["fmin_hz"],
            fmax=spec["fmax_hz"])
    else:
        mag = 10 ** (d / 20)
    wav = librosa.griffinlim(mag, n_iter=32, hop_length=spec["hop_length"], win_length=win,
                             window=spec.get("window", "hann"), n_fft=spec["n_fft"], length=info["n_samples"])
    wav = 0.9 * wav / max(1e-9, float(np.abs(wav).max()))
    sf.write(out / f"decoded_{i}.wav", wav.astype(np.float32), info["sample_rate"])
print("wrote", out)
'''


def export_run(run: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx") -> dict[str, Path]:
    """Export the decoder of ``run`` into ``out``: ``decoder.onnx`` or ``decoder.pt``, ``export.json``,
    ``example_onnxruntime.py`` (ONNX only). Returns the written paths by role."""
    if fmt not in FORMATS:
        raise ParameterError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    gen = Generator.from_run(run)
    graph, inputs, names = decoder_graph(gen)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    file = "decoder.onnx" if fmt == "onnx" else "decoder.pt"
    if fmt == "onnx":
        _export_onnx(graph, inputs, names, out / file)
    else:
        _export_torchscript(graph, inputs, out / file)
    paths = {"model": out / file}
    paths["json"] = write_json(out / EXPORT_FILE, export_description(gen, inputs, names, fmt, file))
    if fmt == "onnx":
        (out / EXAMPLE_FILE).write_text(_EXAMPLE)
        paths["example"] = out / EXAMPLE_FILE
    return paths
