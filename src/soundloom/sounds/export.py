"""Export a run's decoder for use outside Python: ONNX (onnxruntime) or TorchScript (``torch.jit.load``).

The exported graph is ``decode(z[, label][, pitch]) -> (features, db)``: ``features`` is the model's
normalised spectrogram ``(batch, rows, frames)`` in [-1, 1]-ish units, ``db`` the same denormalised with
the run's dataset statistics (dB, what :func:`soundloom.core.spectral.features` computes). Audio is one
step further (mel -> linear magnitude -> Griffin-Lim), described in ``export.json`` and done in
``example_onnxruntime.py`` with librosa. A kind whose decoder gives audio itself (``output ==
"waveform"``: wave-vae) exports ``decode(z[, label][, pitch]) -> audio`` ``(batch, n_samples)`` in [-1, 1]
at the run's sample rate. The inputs (their shapes and dtypes) come from encoding a silent clip, so a new
kind needs nothing here::

    paths = export_run("runs/oneshots", "export/", fmt="onnx")   # decoder.onnx, export.json, example

The files are written into a temp folder beside ``out`` and published whole: a kill leaves either no
export or a complete one (``export.json``, written last, marks it complete), and the next export removes
the temp folders of writers that are gone.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core.atomic import make_temp_dir, pid_alive, write_json
from ..core.errors import ParameterError
from ..data.stats import Normalizer
from .generator import Generator

FORMATS = ("onnx", "torchscript")
#: ONNX opset of the export (onnxruntime >= 1.16 runs it).
OPSET = 17
EXPORT_FILE = "export.json"
EXAMPLE_FILE = "example_onnxruntime.py"
#: Output names of the graph, by what the model's decoder gives.
OUTPUTS = {"features": ["features", "db"], "waveform": ["audio"]}


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


class WaveformGraph(nn.Module):
    """``forward(z[, label][, pitch])`` -> ``audio (batch, n_samples)`` in [-1, 1], for kinds that decode to audio."""

    def __init__(self, model: nn.Module, use_label: bool, use_pitch: bool) -> None:
        super().__init__()
        self.model, self.use_label, self.use_pitch = model, use_label, use_pitch

    def forward(self, z: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        it = iter(conditions)
        label = next(it) if self.use_label else None
        pitch = next(it) if self.use_pitch else None
        return self.model.decode_latent(z, label, pitch)


def decoder_graph(gen: Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str]]:
    """The decoder graph of a loaded run (:class:`DecoderGraph`, or :class:`WaveformGraph` for a kind that
    decodes to audio), example inputs (batch 2) and their names."""
    model = gen.model
    output = getattr(model, "output", "features")
    if output not in OUTPUTS:
        raise ParameterError(f"export: model kind {model.cfg.kind!r} decodes to {output}, not features or audio")
    use_label, use_pitch = bool(model.label_conditioned), bool(model.pitch_conditioned)
    label = torch.zeros(2, dtype=torch.int64) if use_label else None
    pitch = torch.full((2,), 60, dtype=torch.int64) if use_pitch else None
    encode = getattr(model, "encode_latent", None) or (lambda x, lab, pit: model.encode(x, lab, pit)[0])
    silent = (
        torch.zeros(2, int(model.cfg.n_samples))
        if output == "waveform"
        else torch.zeros(2, int(model.cfg.rows), int(model.cfg.frames))
    )
    with torch.no_grad():
        z = encode(silent, label, pitch)
    if z.is_floating_point():  # a continuous latent: random values exercise the graph better than a silent clip's
        z = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    inputs, names = [z], ["z"]
    if use_label:
        inputs.append(label)
        names.append("label")
    if use_pitch:
        inputs.append(pitch)
        names.append("pitch")
    if output == "waveform":
        return WaveformGraph(model.eval(), use_label, use_pitch).eval(), tuple(inputs), names
    return DecoderGraph(model.eval(), gen.normalizer, use_label, use_pitch).eval(), tuple(inputs), names


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _outputs(graph: nn.Module) -> list[str]:
    return OUTPUTS["waveform" if isinstance(graph, WaveformGraph) else "features"]


def _export_onnx(graph: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise ParameterError("ONNX export needs the onnx package: pip install 'soundloom[export]'") from exc
    outputs = _outputs(graph)
    axes = {n: {0: "batch"} for n in names + outputs}
    # no_grad: a decoder's inference path (wave-vae: its faster kernels, equal within 1e-6) is the one traced
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: ~1 s here, where the dynamo exporter took ~20 s for the same graph.
        torch.onnx.export(
            graph,
            inputs,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _export_torchscript(graph: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, inputs, check_trace=False)
    traced.save(str(path))


def export_description(gen: Generator, inputs: tuple[torch.Tensor, ...], names: list[str], fmt: str, file: str) -> dict:
    """What ``export.json`` holds: inputs, outputs, sample rate, feature config and statistics, how to invert."""
    model = gen.model
    stats_file = Path(gen.info["run"]) / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
    spec = gen.spec.to_dict()
    waveform = getattr(model, "output", "features") == "waveform"
    described = []
    for name, t in zip(names, inputs):
        entry = {"name": name, "shape": ["batch", *list(t.shape[1:])], "dtype": _dtype(t)}
        if name == "label":
            entry["values"] = "index into labels"
        elif name == "pitch":
            entry["values"] = f"MIDI pitch 0..{model.cfg.n_pitches - 1}"
        described.append(entry)
    kind = spec.get("kind")
    invert = [
        "db = output 'db' (batch, rows, frames)",
        "mel: mel power = 10 ** (db / 10) (Slaney filterbank); magnitude = librosa mel_to_stft(power, power=2.0)"
        if kind == "mel"
        else "db: magnitude = 10 ** (db / 20) over n_fft // 2 + 1 bins",
        "audio = Griffin-Lim(magnitude, n_fft, hop_length, win_length, window), trimmed to n_samples",
    ]
    post = getattr(gen, "postfilter", None)
    if post is not None and not waveform:
        if post.strength is not None:
            strength = (
                "; then db = db_before + s * (db - db_before) with s = postfilter.strength[label] ('*' for none or a "
                "label not there)"
            )
        else:
            strength = ""
        invert.insert(
            1,
            "postfilter (soundloom renders with it): per frame m = mean of db over rows (with postfilter.envelope_rows"
            " = e: per row, the mean of the e rows centred on it, edge rows repeated); db = m + r * (db - m) "
            "with r = postfilter.ratio[label] ('*' for none); shift each item by one dB offset to its power before; "
            "clip per row to the statistics' range (normalised -1..1)",
        )
        if post.kind == "quantile":
            invert[1] = invert[1].replace(
                "; shift each item",
                "; then (kind 'quantile') per row i: p = frame peak of db; m = p + interp(db - p, "
                "postfilter.quantiles[label].model[i], postfilter.quantiles[label].real[i]) (numpy.interp); "
                "db = min(db, m), and with postfilter.lift_below = L, plus w * max(m - db, 0) where w = "
                "interp(db - p, model[i], max(0, 1 - linspace(0, 1, n) / L)) (raised only in a row's quiet part; "
                "a strength s scales that lift by min(s, 1)); "
                "shift each item",
            )
        invert[1] = invert[1].replace("; shift each item", strength + "; shift each item")
        if post.row_gain is not None:
            invert[1] = invert[1].replace(
                "; shift each item",
                "; then add postfilter.row_gain[label] (dB per row; '*' for none or a label not there); "
                "shift each item",
            )
        if post.row_floor is not None:
            invert[1] = invert[1].replace(
                "; clip per row",
                "; then (with postfilter.row_floor) per row i with a floor f = row_floor[label][i] ('*' for none or a "
                "label not there; null: no floor), db = max(db, min(db_before, max(db_before) + f)), max(db_before) "
                "over the whole item; clip per row",
            )
        if post.fade_in_s is not None:
            invert.append(
                "audio[:n] *= sin(0.5 * pi * (arange(n) + 0.5) / n) ** 2 with n = round(postfilter.fade_in_s[label] "
                "* sample_rate) ('*' for none or a label not there): the fade-in the class's recordings start with"
            )
    if waveform:
        outputs = [{"name": "audio", "shape": ["batch", int(gen.n_samples)], "dtype": "float32", "units": "[-1, 1]"}]
        invert = ["audio = output 'audio' (batch, n_samples) at sample_rate: no phase reconstruction"]
    else:
        rows, frames = int(model.cfg.rows), int(model.cfg.frames)
        outputs = [
            {"name": "features", "shape": ["batch", rows, frames], "dtype": "float32", "units": "normalised"},
            {"name": "db", "shape": ["batch", rows, frames], "dtype": "float32", "units": "dB"},
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
        "outputs": outputs,
        "labels": list(getattr(model.cfg, "labels", []) or []),
        "sample_rate": int(gen.spec.sample_rate),
        "n_samples": int(gen.n_samples),
        "spectrogram": spec,
        "statistics": stats,
        "postfilter": post.to_dict() if post is not None and not waveform else None,
        "latent": "z ~ N(0, I) for a VAE; the run's fitted prior (model.safetensors prior.*) samples better",
        "invert": invert,
    }


_EXAMPLE = '''"""Decode random latents with onnxruntime and write WAVs (needs numpy, onnxruntime, librosa, soundfile).

python example_onnxruntime.py [OUT_DIR]
"""

import json
import sys
from pathlib import Path

import numpy as np

here = Path(__file__).parent
info = json.loads((here / "export.json").read_text())


def postfilter(db, label):
    """The run's post-filter, as soundloom renders: dB (rows, frames) sharpened about its spectral envelope."""
    pf = info.get("postfilter")
    if not pf:
        return db
    r = pf["ratio"].get(label, pf["ratio"]["*"])
    e = pf.get("envelope_rows")  # the centre: each row's local mean over e rows (edge rows repeated), else the frame's
    if e:
        padded = np.pad(db, ((e // 2, e // 2), (0, 0)), mode="edge")
        m = np.stack([padded[i : i + e].mean(axis=0) for i in range(len(db))])
    else:
        m = db.mean(axis=0, keepdims=True)
    out = m + r * (db - m)
    q, lift = pf.get("quantiles"), 0.0
    if q:  # kind "quantile": each row's dB below the frame peak mapped to the real quantiles, lowered only ...
        t = q.get(label, q["*"]) if label is not None else q["*"]
        peak = out.max(axis=0, keepdims=True)
        rel = out - peak
        mapped = np.stack([np.interp(row, xp, fp) for row, xp, fp in zip(rel, t["model"], t["real"])])
        lift = np.zeros_like(rel)
        if pf.get("lift_below"):  # ... but in a row's quiet part: raised, in full at the lowest quantile, tapering
            knots = np.clip(1.0 - np.linspace(0.0, 1.0, len(t["model"][0])) / pf["lift_below"], 0.0, None)
            weight = np.stack([np.interp(row, xp, knots) for row, xp in zip(rel, t["model"])])  # to 0 at lift_below
            lift = weight * np.maximum(mapped - rel, 0.0)
        out = np.minimum(mapped, rel) + peak
    strength = pf.get("strength") or {}  # per class, how much of the filter's change is applied (1 or absent: all)
    a = strength.get(label, strength.get("*", 1.0)) if label is not None else strength.get("*", 1.0)
    out = db + a * (out - db) + min(a, 1.0) * lift  # a lift is never extrapolated past the recordings' level
    if pf.get("row_gain"):  # per row, the class's long-term colour the model misses (its fixed pattern undone)
        g = pf["row_gain"]
        out = out + np.asarray(g.get(label, g["*"]) if label is not None else g["*"])[:, None]
    k = np.log(10.0) / 10.0  # the item keeps its power: one dB shift (log-sum-exp of power)
    out = out + (np.logaddexp.reduce(db.ravel() * k) - np.logaddexp.reduce(out.ravel() * k)) / k
    if pf.get("row_floor"):  # rows the recordings leave to their noise: not sharpened below that noise's level
        f = pf["row_floor"]
        f = np.array([-np.inf if v is None else v for v in (f.get(label, f["*"]) if label is not None else f["*"])])
        out = np.maximum(out, np.minimum(db, db.max() + f[:, None]))
    st = info["statistics"]
    if st["mode"] == "range":
        low, high = np.full(len(db), st["min_db"]), np.full(len(db), st["max_db"])
    else:
        mean, std = np.asarray(st["mean"]), np.asarray(st["std"])
        low, high = mean - st["clip_sigma"] * std, mean + st["clip_sigma"] * std
    return np.clip(out, low[:, None], high[:, None])


def fade_in(wav, label):
    """The fade-in the class's recordings start with (postfilter.fade_in_s, seconds), as soundloom renders it."""
    fades = (info.get("postfilter") or {}).get("fade_in_s") or {}
    n = min(len(wav), round(fades.get(label, fades.get("*", 0.0)) * info["sample_rate"]))
    out = np.array(wav, copy=True)
    out[:n] *= (np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / max(n, 1)) ** 2).astype(out.dtype)
    return out


def main():
    import librosa
    import onnxruntime as ort
    import soundfile as sf

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
    out = Path(sys.argv[1] if len(sys.argv) > 1 else here / "decoded")
    out.mkdir(parents=True, exist_ok=True)
    if info["outputs"][0]["name"] == "audio":  # a waveform decoder: audio straight out
        (audio,) = session.run(["audio"], feeds)
        for i, wav in enumerate(audio):
            sf.write(out / f"decoded_{i}.wav", wav.astype(np.float32), info["sample_rate"])
        print("wrote", out)
        return
    features, db = session.run(["features", "db"], feeds)
    print("db", db.shape, float(db.min()), float(db.max()))
    label = info["labels"][0] if info["labels"] and "label" in feeds else None
    win = spec.get("win_length") or spec["n_fft"]
    for i, d in enumerate(db.astype(np.float64)):
        d = postfilter(d, label)
        if spec["kind"] == "mel":
            mag = librosa.feature.inverse.mel_to_stft(  # Slaney mel power -> linear magnitude
                10 ** (d / 10), sr=info["sample_rate"], n_fft=spec["n_fft"], power=2.0, fmin=spec["fmin_hz"],
                fmax=spec["fmax_hz"])
        else:
            mag = 10 ** (d / 20)
        wav = librosa.griffinlim(mag, n_iter=32, hop_length=spec["hop_length"], win_length=win,
                                 window=spec.get("window", "hann"), n_fft=spec["n_fft"], length=info["n_samples"])
        wav = fade_in(wav, label)
        wav = 0.9 * wav / max(1e-9, float(np.abs(wav).max()))
        sf.write(out / f"decoded_{i}.wav", wav.astype(np.float32), info["sample_rate"])
    print("wrote", out)


if __name__ == "__main__":
    main()
'''


def _temp_prefix(out: Path) -> str:
    return f".{out.name}.tmp-"


def remove_stale_exports(out: Path) -> list[Path]:
    """Remove the temp folders beside ``out`` that killed exports left (their writer's pid is gone)."""
    removed = []
    prefix = _temp_prefix(out)
    for tmp in out.parent.glob(f"{prefix}*") if out.parent.is_dir() else ():
        pid = tmp.name[len(prefix) :].split("-", 1)[0]
        if tmp.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _publish(tmp: Path, out: Path, names: list[str]) -> None:
    """Move the files ``names`` of ``tmp`` into ``out``, ``export.json`` (the completion mark) last.

    A new ``out`` is one rename. Into an existing folder (other files in it stay), the old ``export.json``
    goes first, so a kill midway leaves a folder that is not a complete export, never a mixed one."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if not out.is_dir():
        raise ParameterError(f"{out}: --out must be a folder (it is a file)")
    (out / EXPORT_FILE).unlink(missing_ok=True)
    for name in sorted(names, key=lambda n: n == EXPORT_FILE):
        os.replace(tmp / name, out / name)
    shutil.rmtree(tmp, ignore_errors=True)


def export_run(run: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx") -> dict[str, Path]:
    """Export the decoder of ``run`` into ``out``: ``decoder.onnx`` or ``decoder.pt``, ``export.json``,
    ``example_onnxruntime.py`` (ONNX only). Returns the written paths by role."""
    if fmt not in FORMATS:
        raise ParameterError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    gen = Generator.from_run(run)
    graph, inputs, names = decoder_graph(gen)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out}: --out must be a folder (it is a file)")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_exports(out)
    tmp = make_temp_dir(out.parent, f"{_temp_prefix(out)}{os.getpid()}-")
    try:
        file = "decoder.onnx" if fmt == "onnx" else "decoder.pt"
        if fmt == "onnx":
            _export_onnx(graph, inputs, names, tmp / file)
        else:
            _export_torchscript(graph, inputs, tmp / file)
        written = [file]
        if fmt == "onnx":
            (tmp / EXAMPLE_FILE).write_text(_EXAMPLE)
            written.append(EXAMPLE_FILE)
        write_json(tmp / EXPORT_FILE, export_description(gen, inputs, names, fmt, file))
        written.append(EXPORT_FILE)
        _publish(tmp, out, written)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    roles = {"model": file, "json": EXPORT_FILE, "example": EXAMPLE_FILE}
    return {role: out / name for role, name in roles.items() if name in written}
