"""Generator: one object per trained run; sample, continue, vary, interpolate, reconstruct.

Every sound is rendered from ``(latent, label, pitch, params[, prompt])`` by one function,
:meth:`Generator.render`, one item at a time, so the latent in a sound's sidecar re-renders it
bit for bit (see :meth:`Generator.from_sidecar`)::

    gen = Generator.from_run("runs/digits")
    sounds = gen.sample(8, label="7", temperature=0.8, seed=1)
    gen.save(sounds, "out/")          # out/sample_000.wav + out/sample_000.json ...
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..core.atomic import write_json
from ..core.errors import ParameterError
from ..core.io import write_audio
from ..core.spectral import SpectrogramConfig
from ..data.stats import Normalizer
from .decode import LEVELS, audio_to_features, features_to_audio, finish_audio
from .models import VAE, ModelFileError, build_model, config_from_dict, load_safetensors, load_state
from .runfiles import CONFIG_FILE, MODEL_FILE, STATS_FILE

PRIORS = ("fitted", "standard")


@dataclass
class Sound:
    """One generated sound: audio ``(samples,)`` at ``sample_rate`` Hz and how to make it again."""

    audio: np.ndarray
    sample_rate: int
    latent: np.ndarray  # (latent_dim,)
    label: str | None
    pitch: int | None
    mode: str
    seed: int | None
    params: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    # A continuation's prompt (audio, rate) when it came as an array: :meth:`Generator.save` writes it
    # beside the sound and names it in ``sources`` so the sidecar can recall the sound.
    prompt: tuple[np.ndarray, int] | None = field(default=None, repr=False, compare=False)

    def sidecar(self, model: dict) -> dict:
        """The JSON record written beside the audio file."""
        return {
            "soundloom": __version__,
            "model": model,
            "mode": self.mode,
            "seed": self.seed,
            "label": self.label,
            "pitch": self.pitch,
            "latent": [float(v) for v in self.latent],
            "params": self.params,
            "sources": self.sources,
            "audio": {"sample_rate": self.sample_rate, "samples": int(len(self.audio))},
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def trim_prompt(wav: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of a prompt ``(samples,)`` (the same cut on generation and recall)."""
    if seconds <= 0:
        raise ParameterError(f"prompt seconds must be > 0, got {seconds}")
    return wav[: int(round(seconds * sample_rate))]


class Generator:
    """Generation from a trained run directory (safetensors + JSON only)."""

    def __init__(
        self,
        model: VAE,
        prior: dict[str, torch.Tensor],
        normalizer: Normalizer,
        spec: SpectrogramConfig,
        n_samples: int,
        info: dict,
        griffin_lim_iters: int = 32,
        sample_rate: int | None = None,
        level: str = "peak",
    ) -> None:
        if level not in LEVELS:
            raise ParameterError(f"level must be one of {LEVELS}, got {level!r}")
        self.model, self.prior, self.normalizer, self.spec = model.eval(), prior, normalizer, spec
        self.n_samples, self.info = n_samples, info
        self.griffin_lim_iters, self.out_rate, self.level = griffin_lim_iters, sample_rate, level

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, **options) -> Generator:
        """Load ``model.safetensors``, ``model.json`` and ``stats.json`` from a run directory."""
        run_dir = Path(run_dir)
        cfg_path = run_dir / CONFIG_FILE
        if not cfg_path.is_file():
            raise ModelFileError(cfg_path, "missing: is this a finished run directory (soundloom train ... --out RUN)?")
        try:
            info = json.loads(cfg_path.read_text())
            stats = json.loads((run_dir / STATS_FILE).read_text())
            model_cfg = config_from_dict(info["model"])  # any registered kind
            normalizer = Normalizer.from_dict(stats)
            spec = SpectrogramConfig.from_dict(info["spectrogram"])
            n_samples = int(info["n_samples"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(cfg_path, f"malformed run config ({exc})") from exc
        if info.get("format") != "soundloom":
            raise ModelFileError(cfg_path, "not a soundloom model config")
        tensors = load_safetensors(run_dir / MODEL_FILE, kind=model_cfg.kind)
        prior = {k: v for k, v in tensors.items() if k.startswith("prior.")}
        model = build_model(model_cfg)
        load_state(model, {k: v for k, v in tensors.items() if not k.startswith("prior.")}, run_dir / MODEL_FILE)
        info = {**info, "run": str(run_dir.resolve()), "sha256": _sha256(run_dir / MODEL_FILE)}
        return cls(model, prior, normalizer, spec, n_samples, info, **options)

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (the option, else the model's)."""
        return self.out_rate or self.spec.sample_rate

    @property
    def labels(self) -> list[str]:
        return list(self.model.cfg.labels)

    @property
    def latent_dim(self) -> int:
        return self.model.cfg.latent_dim

    def model_record(self) -> dict:
        return {"run": self.info["run"], "kind": self.model.cfg.kind, "sha256": self.info["sha256"]}

    # ---- conditions --------------------------------------------------------------------------
    def _label_index(self, label: str | int | None) -> int | None:
        if label is None:
            return None
        if not self.labels:
            raise ParameterError("this model is not conditioned on labels; leave label out")
        name = str(label)
        if name not in self.labels:
            raise ParameterError(f"unknown label {name!r}; this model knows {self.labels}")
        return self.labels.index(name)

    def _pitch(self, pitch: int | None) -> int | None:
        if not self.model.cfg.n_pitches:
            return None
        return 60 if pitch is None else int(pitch)

    def conditions(self, label: str | None, pitch: int | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The model's condition inputs for one item: label index ``(1,)`` and MIDI pitch ``(1,)``, each None
        when the model does not take it. An unknown label raises ValueError naming the known ones."""
        idx = self._label_index(label)
        lab = torch.tensor([idx]) if idx is not None and self.model.label_conditioned else None
        p = self._pitch(pitch)
        return lab, (torch.tensor([p]) if p is not None else None)

    # ---- the one rendering path --------------------------------------------------------------
    @torch.no_grad()
    def decode_features(self, latent: np.ndarray, label: str | None = None, pitch: int | None = None) -> torch.Tensor:
        """Latent ``(latent_dim,)`` -> normalised features ``(rows, frames)``."""
        z = torch.as_tensor(np.asarray(latent, dtype=np.float32)).view(1, -1)
        if z.shape[1] != self.latent_dim:
            raise ParameterError(f"latent has {z.shape[1]} values, this model expects {self.latent_dim}")
        lab, pit = self.conditions(label, pitch)
        return self.model.decode(z, lab, pit)[0]

    def render(
        self,
        latent: np.ndarray,
        label: str | None = None,
        pitch: int | None = None,
        prompt: tuple[np.ndarray, int] | None = None,
        seconds: float | None = None,
    ) -> tuple[np.ndarray, int]:
        """Audio ``(samples,)`` and its rate for one latent (with a continuation's prompt, if any)."""
        feat = self.decode_features(latent, label, pitch)
        if prompt is None:
            wav = features_to_audio(feat[None], self.normalizer, self.spec, self.n_samples, self.griffin_lim_iters)[0]
            return finish_audio(wav.numpy(), self.spec.sample_rate, self.out_rate, self.level), self.sample_rate
        return self._render_continuation(feat, prompt, seconds)

    def render_many(
        self, latents: list[np.ndarray], labels: list[str | None], pitch: int | None = None
    ) -> list[np.ndarray]:
        """:meth:`render` for several latents: each decoded alone (the decoder is not bitwise
        batch-invariant), phase-reconstructed together (Griffin-Lim is; the recall tests check it)."""
        feats = torch.stack([self.decode_features(z, lab, pitch) for z, lab in zip(latents, labels)])
        wavs = features_to_audio(feats, self.normalizer, self.spec, self.n_samples, self.griffin_lim_iters).numpy()
        return [finish_audio(w, self.spec.sample_rate, self.out_rate, self.level) for w in wavs]

    # ---- autonomous and conditioned sampling -------------------------------------------------
    def _prior_row(self, label: str | None) -> int:
        k = self.prior["prior.mean"].shape[0]
        idx = self._label_index(label)
        return k - 1 if idx is None else idx

    def draw_latents(
        self, n: int, label: str | None = None, temperature: float = 1.0, seed: int | None = None, prior: str = "fitted"
    ) -> np.ndarray:
        """``(n, latent_dim)`` latents: ``mean + temperature * chol @ eps`` of the chosen prior."""
        if prior not in PRIORS:
            raise ParameterError(f"prior must be one of {PRIORS}, got {prior!r}")
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        eps = torch.randn(n, self.latent_dim, generator=gen) * float(temperature)
        if prior == "standard" or "prior.mean" not in self.prior:
            return eps.numpy()
        row = self._prior_row(label)
        mean, chol = self.prior["prior.mean"][row], self.prior["prior.chol"][row]
        return (mean + eps @ chol.T).numpy()

    def sample(
        self,
        n: int = 1,
        label: str | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        pitch: int | None = None,
        prior: str = "fitted",
    ) -> list[Sound]:
        """``n`` sounds from the prior; a cvae with ``label=None`` draws labels uniformly (seeded)."""
        seed = 0 if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        if label is None and self.labels and self.model.label_conditioned:
            labels = [self.labels[i] for i in rng.integers(0, len(self.labels), n)]
        else:
            self._label_index(label)
            labels = [None if label is None else str(label)] * n
        latents = [
            self.draw_latents(1, lab, temperature, seed=seed + i, prior=prior)[0] for i, lab in enumerate(labels)
        ]
        wavs = self.render_many(latents, labels, pitch)
        return [
            Sound(
                wav,
                self.sample_rate,
                z,
                lab,
                self._pitch(pitch),
                "sample",
                seed + i,
                self._params(temperature=temperature, prior=prior),
            )
            for i, (wav, z, lab) in enumerate(zip(wavs, latents, labels))
        ]

    def _params(self, **extra) -> dict:
        return {
            "griffin_lim_iters": self.griffin_lim_iters,
            "sample_rate": self.sample_rate,
            "level": self.level,
            **extra,
        }

    # ---- encoding ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self, audio: np.ndarray, sample_rate: int, label: str | None = None, pitch: int | None = None
    ) -> np.ndarray:
        """Posterior mean ``(latent_dim,)`` of a waveform ``(samples,)``."""
        feat = audio_to_features(audio, sample_rate, self.normalizer, self.spec, self.n_samples)
        lab, pit = self.conditions(label, pitch)
        mu, _ = self.model.encode(feat[None], lab, pit)
        return mu[0].numpy()

    def infer_label(
        self, label: str | None, audio: np.ndarray | None = None, sample_rate: int | None = None
    ) -> str | None:
        """The label to encode ``audio`` ``(samples,)`` at ``sample_rate`` Hz with: ``label`` when given or when
        the model takes no label, else the label whose reconstruction of the audio fits best (least MSE)."""
        if label is not None or not (self.labels and self.model.label_conditioned):
            return label
        feat = audio_to_features(audio, sample_rate, self.normalizer, self.spec, self.n_samples)
        errors = []
        with torch.no_grad():
            for name in self.labels:
                lab, pit = self.conditions(name, None)
                rec, _, _ = self.model(feat[None], lab, pit, sample=False)
                errors.append(float((rec - feat).pow(2).mean()))
        return self.labels[int(np.argmin(errors))]

    def reconstruct(
        self, audio: np.ndarray, sample_rate: int, label: str | None = None, pitch: int | None = None
    ) -> Sound:
        """Encode (posterior mean) and decode one sound."""
        label = self.infer_label(label, audio, sample_rate)
        z = self.encode(audio, sample_rate, label, pitch)
        wav, rate = self.render(z, label, pitch)
        return Sound(wav, rate, z, label, self._pitch(pitch), "reconstruct", None, self._params())

    def variation(
        self,
        audio: np.ndarray,
        sample_rate: int,
        amount: float = 0.3,
        n: int = 1,
        seed: int | None = None,
        label: str | None = None,
        pitch: int | None = None,
    ) -> list[Sound]:
        """``n`` variations: posterior mean plus ``amount`` times seeded standard-normal noise."""
        label = self.infer_label(label, audio, sample_rate)
        mu = self.encode(audio, sample_rate, label, pitch)
        seed = 0 if seed is None else int(seed)
        latents = []
        for i in range(n):
            gen = torch.Generator().manual_seed(seed + i)
            latents.append(
                (mu + float(amount) * torch.randn(self.latent_dim, generator=gen).numpy()).astype(np.float32)
            )
        wavs = self.render_many(latents, [label] * n, pitch)
        return [
            Sound(
                wav, self.sample_rate, z, label, self._pitch(pitch), "variation", seed + i, self._params(amount=amount)
            )
            for i, (wav, z) in enumerate(zip(wavs, latents))
        ]

    def interpolate(
        self,
        a: np.ndarray,
        b: np.ndarray,
        steps: int = 8,
        label: str | None = None,
        pitch: int | None = None,
        label_b: str | None = None,
    ) -> list[Sound]:
        """``steps`` sounds on the straight line between latents ``a`` and ``b`` ``(latent_dim,)``.

        With two labels, the first half keeps ``label`` and the second ``label_b``.
        """
        if steps < 2:
            raise ParameterError(f"steps must be >= 2, got {steps}")
        a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
        ts = np.linspace(0.0, 1.0, steps)
        latents = [((1.0 - t) * a + t * b).astype(np.float32) for t in ts]
        labels = [label if (label_b is None or t < 0.5) else label_b for t in ts]
        wavs = self.render_many(latents, labels, pitch)
        return [
            Sound(
                wav,
                self.sample_rate,
                z,
                lab,
                self._pitch(pitch),
                "interpolate",
                None,
                self._params(t=float(t), step=i, steps=steps),
            )
            for i, (wav, z, lab, t) in enumerate(zip(wavs, latents, labels, ts))
        ]

    # ---- continuation ------------------------------------------------------------------------
    def _prompt_frames(self, prompt_samples: int) -> int:
        """Frames fully covered by the prompt (centred frames need half a window of audio)."""
        hop, half = int(self.spec.hop_length), self.spec.n_fft // 2
        return int(np.clip((prompt_samples - half) // hop + 1, 1, self.model.cfg.frames - 1))

    def continue_(
        self,
        prompt: np.ndarray | str | os.PathLike,
        prompt_sample_rate: int | None,
        seconds: float,
        n: int = 1,
        label: str | None = None,
        pitch: int | None = None,
        seed: int | None = None,
        steps: int = 150,
        temperature: float = 0.5,
        prompt_seconds: float | None = None,
    ) -> list[Sound]:
        """Continue ``prompt`` to ``seconds`` in all (prompt included); output at the prompt's rate.

        ``prompt`` is audio ``(samples,)`` at ``prompt_sample_rate`` Hz, or an audio file (then
        ``prompt_sample_rate`` is None: the file's rate). With ``prompt_seconds``, only its first
        seconds are the prompt. Each sound's ``sources`` names the prompt file (an array prompt is
        written beside the sound by :meth:`save`), so :meth:`from_sidecar` can render it again.

        The model is fixed-length, so the latent is optimised (Adam, ``steps``) to reproduce the
        prompt's frames; its decoding fills the frames after them. Each of the ``n`` results starts
        from the prompt's posterior mean plus ``temperature`` times seeded noise.
        """
        sources: dict = {}
        if isinstance(prompt, (str, os.PathLike)):
            from ..core.io import load_audio

            path = Path(prompt)
            prompt, prompt_sample_rate = load_audio(path)
            sources["prompt"] = str(path.resolve())
            if prompt_seconds is not None:
                sources["prompt_seconds"] = prompt_seconds
        elif prompt_sample_rate is None:
            raise ParameterError("prompt_sample_rate is needed when the prompt is audio, not a file")
        if prompt_seconds is not None:
            prompt = trim_prompt(prompt, prompt_sample_rate, prompt_seconds)
        prompt = np.asarray(prompt, dtype=np.float32)
        model_rate = self.spec.sample_rate
        p_model = int(round(len(prompt) * model_rate / prompt_sample_rate))
        total = int(round(seconds * model_rate))
        if total > self.n_samples:
            raise ParameterError(f"this model makes at most {self.n_samples / model_rate:.3f} s; asked {seconds} s")
        if p_model >= total:
            raise ParameterError(
                f"prompt ({len(prompt) / prompt_sample_rate:.3f} s) must be shorter than seconds ({seconds})"
            )
        label = self.infer_label(label, prompt, prompt_sample_rate)
        target = audio_to_features(prompt, prompt_sample_rate, self.normalizer, self.spec, self.n_samples)
        pf = self._prompt_frames(p_model)
        mu = torch.as_tensor(self.encode(prompt, prompt_sample_rate, label, pitch))
        lab, pit = self.conditions(label, pitch)
        seed = 0 if seed is None else int(seed)
        sounds = []
        for i in range(n):
            gen = torch.Generator().manual_seed(seed + i)
            z = (
                (mu + temperature * torch.randn(self.latent_dim, generator=gen))
                .view(1, -1)
                .clone()
                .requires_grad_(True)
            )
            opt = torch.optim.Adam([z], lr=0.05)
            for _ in range(steps):
                opt.zero_grad()
                rec = self.model.decode(z, lab, pit)[0, :, :pf]
                loss = (rec - target[:, :pf]).pow(2).sum() + 0.05 * z.pow(2).sum()
                loss.backward()
                opt.step()
            latent = z.detach()[0].numpy().astype(np.float32)
            wav, rate = self.render(latent, label, pitch, prompt=(prompt, prompt_sample_rate), seconds=seconds)
            sounds.append(
                Sound(
                    wav,
                    rate,
                    latent,
                    label,
                    self._pitch(pitch),
                    "continue",
                    seed + i,
                    self._params(
                        seconds=seconds, steps=steps, temperature=temperature, sample_rate=rate, prompt_frames=pf
                    ),
                    dict(sources),
                    None if sources else (prompt, prompt_sample_rate),
                )
            )
        return sounds

    def _render_continuation(
        self, feat: torch.Tensor, prompt: tuple[np.ndarray, int], seconds: float | None
    ) -> tuple[np.ndarray, int]:
        """Prompt frames from the prompt, later frames from ``feat``; the prompt's own samples are kept
        up to a short crossfade into the phase-reconstructed rest. Output at the prompt's rate."""
        from ..core.convert import resample

        wav_in, rate_in = prompt
        model_rate = self.spec.sample_rate
        p_model_wav = (
            resample(np.asarray(wav_in, dtype=np.float32), rate_in, model_rate)
            if rate_in != model_rate
            else np.asarray(wav_in, dtype=np.float32)
        )
        total = int(round(float(seconds) * model_rate))
        target = audio_to_features(wav_in, rate_in, self.normalizer, self.spec, self.n_samples)
        pf = self._prompt_frames(len(p_model_wav))
        mixed = torch.cat([target[:, :pf], feat[:, pf:]], dim=1)
        wav = features_to_audio(mixed[None], self.normalizer, self.spec, self.n_samples, self.griffin_lim_iters)[
            0
        ].numpy()
        wav = wav[:total].copy()
        fade = min(2 * int(self.spec.hop_length), len(p_model_wav))
        keep = len(p_model_wav) - fade
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        # Match the reconstructed part's level to the prompt before joining them.
        gain = np.sqrt((p_model_wav**2).mean() + 1e-12) / np.sqrt((wav[: len(p_model_wav)] ** 2).mean() + 1e-12)
        wav = wav * np.float32(gain)
        wav[:keep] = p_model_wav[:keep]
        wav[keep : keep + fade] = (1 - ramp) * p_model_wav[keep:] + ramp * wav[keep : keep + fade]
        out = finish_audio(wav, model_rate, rate_in, self.level)
        return out, rate_in

    # ---- files -------------------------------------------------------------------------------
    def save(
        self, sounds: list[Sound], out_dir: str | os.PathLike, format: str = "wav", prefix: str | None = None
    ) -> list[Path]:
        """Write each sound as ``<prefix>_NNN.<format>`` with a ``.json`` sidecar beside it.

        A continuation whose prompt came as an array gets its prompt written once per save, as
        ``<prefix>_NNN_prompt.wav`` (32-bit float, so recall reads the same samples), named in its sidecar.
        """
        out_dir = Path(out_dir)
        paths = []
        prompts: dict[int, str] = {}  # id of a prompt array -> the file it was written to
        for i, s in enumerate(sounds):
            stem = f"{prefix or s.mode}_{i:03d}"
            path = write_audio(out_dir / f"{stem}.{format}", s.audio, s.sample_rate, format=format)
            if s.prompt is not None and "prompt" not in s.sources:
                wav, rate = s.prompt
                if id(wav) not in prompts:
                    written = write_audio(out_dir / f"{stem}_prompt.wav", wav, rate, subtype="FLOAT")
                    prompts[id(wav)] = str(written.resolve())
                s.sources["prompt"] = prompts[id(wav)]
            record = s.sidecar(self.model_record())
            record["audio"]["file"] = path.name
            write_json(out_dir / f"{stem}.json", record)
            paths.append(path)
        return paths

    def from_sidecar(self, record: dict | str | os.PathLike) -> Sound:
        """Render a sound again from its sidecar (a dict or a ``.json`` path)."""
        where = None
        if not isinstance(record, dict):
            where = Path(record)
            try:
                record = json.loads(where.read_text())
            except json.JSONDecodeError as exc:
                raise ParameterError(where, f"not a soundloom sidecar (not JSON: {exc})") from exc
        try:
            latent = np.asarray(record["latent"], dtype=np.float32)
            params, sources = record.get("params", {}), record.get("sources", {})
            label, pitch = record.get("label"), record.get("pitch")
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(where, f"not a soundloom sidecar ({exc})") from exc
        old = (self.griffin_lim_iters, self.out_rate, self.level)
        self.griffin_lim_iters = int(params.get("griffin_lim_iters", self.griffin_lim_iters))
        self.level = params.get("level", self.level)
        try:
            if record.get("mode") == "continue":
                from ..core.io import load_audio

                if "prompt" not in sources:
                    raise ParameterError(where, "this continuation's sidecar names no prompt file")
                wav, rate = load_audio(sources["prompt"])
                if sources.get("prompt_seconds") is not None:
                    wav = trim_prompt(wav, rate, float(sources["prompt_seconds"]))
                audio, rate = self.render(latent, label, pitch, prompt=(wav, rate), seconds=params["seconds"])
            else:
                self.out_rate = int(params.get("sample_rate", self.sample_rate))
                audio, rate = self.render(latent, label, pitch)
        finally:
            self.griffin_lim_iters, self.out_rate, self.level = old
        return Sound(
            audio,
            rate,
            latent,
            label,
            pitch,
            record.get("mode", "sample"),
            record.get("seed"),
            dict(params),
            dict(sources),
        )
