"""Generator: one object per trained run; sample, continue, vary, interpolate, reconstruct.

Every sound is rendered from ``(latent, label, pitch, params[, prompt])`` by one function,
:meth:`Generator.render`, one item at a time, so the latent in a sound's sidecar re-renders it
bit for bit (see :meth:`Generator.from_sidecar`)::

    gen = Generator.from_run("runs/digits")
    sounds = gen.sample(8, label="7", temperature=0.8, seed=1)
    gen.save(sounds, "out/")          # out/sample_000.wav + out/sample_000.json ...
"""

from __future__ import annotations

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
from ..core.spectral import MEL_INITS, SpectrogramConfig
from ..data.stats import Normalizer
from . import latent_prior
from .decode import LEVELS, audio_to_features, default_griffin_lim_iters, features_to_audio, finish_audio
from .levelfollow import (
    FOLLOW_WINDOW_DB,
    MAX_GAIN_DB,
    PAUSE_GUARD_DB,
    PAUSE_REDRAWS,
    WINDOW_GUARD_DB,
    ends_in_sound,
    follow_level,
    quietest_window_db,
    sliding_window_levels_db,
    window_jump_db,
    window_level_db,
)
from .models import ModelFileError, build_model, config_from_dict, load_safetensors, load_state, protocol
from .postfilter import PostFilter, clip_range
from .runfiles import CONFIG_FILE, MODEL_FILE, STATS_FILE, file_sha256, read_run_info

PRIORS = ("fitted", "standard")
# Latents a spectrogram kind decodes at once, always (see Generator.decode_many): 16 decode in about 5x the CPU
# of one alone. At 16 the one-shot, digits and notes decoders (vae, cvae, vaegan, vqvae) gave the same output at
# 1, 2, 4 and 8 threads, as one at a time does; in blocks of 8, 10 or 12 some did not.
DECODE_BLOCK = 16
# Sample formats Generator.save writes to wav and flac, by bits. 24 by default: a rendered sound's floor lies below a
# 16-bit step (the built-in sweeps' quietest bins at about -115 dB under their loudest), and rounding to 16 bits
# without dither puts a signal-dependent floor over it, one that the recordings' own 16-bit floor does not predict
# (README: "Generated files are 24-bit").
BIT_DEPTHS = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
DEFAULT_BITS = 24
LOSSLESS = ("wav", "flac")


def sample_subtype(format: str, bits: int) -> str | None:
    """The soundfile subtype :meth:`Generator.save` writes ``format`` files in at ``bits`` per sample (None for a
    lossy format, whose codec decides); ParameterError for a depth the format cannot hold."""
    if bits not in BIT_DEPTHS:
        raise ParameterError(f"bits must be one of {sorted(BIT_DEPTHS)}, got {bits!r}")
    if format.lower() == "flac" and bits == 32:
        raise ParameterError("flac holds at most 24-bit samples; write wav for 32-bit float")
    return BIT_DEPTHS[bits] if format.lower() in LOSSLESS else None


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
    # A continuation's sounds after the prompt and the gain each got to follow its level (not in the sidecar:
    # re-rendering finds them again).
    followed: list[dict] = field(default_factory=list, repr=False, compare=False)

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


def redraw_seed(seed: int, attempt: int) -> int:
    """The seed of a continuation's ``attempt``-th draw: ``seed`` itself first (a continuation that needs no
    redraw is what it was before the pause guard), then one derived from both, apart from other sounds' seeds."""
    if attempt == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**63, attempt]).generate_state(1, np.uint64)[0] % 2**63)


def _sha256(path: Path) -> str:
    return file_sha256(path)


def load_run_model(run_dir: str | os.PathLike, sha256: str | None = None, _seen: tuple = ()) -> torch.nn.Module:
    """The model of a finished run (weights without the fitted prior), with the runs it requires attached.

    ``sha256``: the expected hash of its weights (a dependent run's reference); a mismatch raises
    :class:`ModelFileError` (the run was retrained since).
    """
    model, _ = _load_model(Path(run_dir), sha256, _seen)
    return model


def _load_model(run_dir: Path, sha256: str | None, seen: tuple) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    info = read_run_info(run_dir)
    weights = run_dir / MODEL_FILE
    if run_dir.resolve() in seen:
        raise ModelFileError(run_dir, "requires itself (a loop of run references)")
    if sha256 is not None and weights.is_file() and _sha256(weights) != sha256:
        raise ModelFileError(weights, "changed since the run that depends on it was trained (sha256 differs)")
    try:
        cfg = config_from_dict(info["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(run_dir / CONFIG_FILE, f"malformed model config ({exc})") from exc
    tensors = load_safetensors(weights, kind=cfg.kind)
    model = build_model(cfg)
    load_state(model, {k: v for k, v in tensors.items() if not k.startswith("prior.")}, weights)
    requires = cfg.requires() if hasattr(cfg, "requires") else {}
    for name, ref in requires.items():
        if not ref.get("run"):
            raise ModelFileError(run_dir / CONFIG_FILE, f"names no {name} run")
        model.attach(name, load_run_model(ref["run"], ref.get("sha256"), seen + (run_dir.resolve(),)))
    return model.eval(), {k: v for k, v in tensors.items() if k.startswith("prior.")}


def trim_prompt(wav: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of a prompt ``(samples,)`` (the same cut on generation and recall)."""
    if seconds <= 0:
        raise ParameterError(f"prompt seconds must be > 0, got {seconds}")
    return wav[: int(round(seconds * sample_rate))]


class Generator:
    """Generation from a trained run directory (safetensors + JSON only)."""

    def __init__(
        self,
        model: torch.nn.Module,
        prior: dict[str, torch.Tensor],
        normalizer: Normalizer,
        spec: SpectrogramConfig,
        n_samples: int,
        info: dict,
        griffin_lim_iters: int | None = None,
        sample_rate: int | None = None,
        level: str = "peak",
        postfilter: PostFilter | None = None,
        follow_level: float | None = 3.0,
        follow_window: float | None = FOLLOW_WINDOW_DB,
        pause_guard: float | None = PAUSE_GUARD_DB,
        pause_redraws: int = PAUSE_REDRAWS,
        window_guard: float | None = WINDOW_GUARD_DB,
    ) -> None:
        """``follow_level``: a continuation's sounds after the prompt are kept within this many dB of the prompt's
        active level (:mod:`.levelfollow`, gain at most ``MAX_GAIN_DB``); None leaves them at the level drawn.
        ``follow_window``: with it, the sounds' gains also keep two adjacent training-length windows within this
        many dB of each other (RMS, silence included; None: off). ``pause_guard``: a prior's continuation with a
        training-length window (anywhere after the prompt) more than this many dB below the prompt's is drawn
        again, at most ``pause_redraws`` times, unless the prompt has such a pause itself (None: off).
        ``window_guard``: a prior's continuation whose adjacent training-length windows (from the output's start, or
        half a window apart) still differ by more than this many dB after following is drawn again, within the same
        ``pause_redraws`` (None: off)."""
        if level not in LEVELS:
            raise ParameterError(f"level must be one of {LEVELS}, got {level!r}")
        if follow_level is not None and not 0.0 <= float(follow_level) <= MAX_GAIN_DB:
            raise ParameterError(f"follow_level must be None or 0..{MAX_GAIN_DB:g} dB, got {follow_level!r}")
        if follow_window is not None and not float(follow_window) > 0.0:
            raise ParameterError(f"follow_window must be None or > 0 dB, got {follow_window!r}")
        if pause_guard is not None and not float(pause_guard) > 0.0:
            raise ParameterError(f"pause_guard must be None or > 0 dB, got {pause_guard!r}")
        if window_guard is not None and not float(window_guard) > 0.0:
            raise ParameterError(f"window_guard must be None or > 0 dB, got {window_guard!r}")
        if int(pause_redraws) < 0:
            raise ParameterError(f"pause_redraws must be >= 0, got {pause_redraws!r}")
        self.follow_level = None if follow_level is None else float(follow_level)
        self.follow_max_gain = MAX_GAIN_DB
        self.follow_window = None if follow_window is None else float(follow_window)
        self.follow_window_samples = int(n_samples)
        self.pause_guard = None if pause_guard is None else float(pause_guard)
        self.pause_redraws = int(pause_redraws)
        self.window_guard = None if window_guard is None else float(window_guard)
        self.model, self.prior, self.normalizer, self.spec = model.eval(), prior, normalizer, spec
        self.postfilter = postfilter
        self.n_samples, self.info = n_samples, info
        if griffin_lim_iters is None:
            griffin_lim_iters = default_griffin_lim_iters(spec)
        self.griffin_lim_iters, self.out_rate, self.level = griffin_lim_iters, sample_rate, level
        self.mel_init = "interp"  # where mel inversion starts (sidecars record it: core.spectral.mel_to_magnitude)

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, postfilter: bool = True, **options) -> Generator:
        """Load ``model.safetensors``, ``model.json`` and ``stats.json`` from a run directory, and its
        ``postfilter.json`` when it has one (unless ``postfilter`` is False: render without it)."""
        run_dir = Path(run_dir)
        cfg_path = run_dir / CONFIG_FILE
        if not cfg_path.is_file():
            raise ModelFileError(cfg_path, "missing: is this a finished run directory (soundloom train ... --out RUN)?")
        try:
            info = json.loads(cfg_path.read_text())
            stats = json.loads((run_dir / STATS_FILE).read_text())
            normalizer = Normalizer.from_dict(stats)
            spec = SpectrogramConfig.from_dict(info["spectrogram"])
            n_samples = int(info["n_samples"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(cfg_path, f"malformed run config ({exc})") from exc
        if info.get("format") != "soundloom":
            raise ModelFileError(cfg_path, "not a soundloom model config")
        model, prior = _load_model(run_dir, None, ())  # any registered kind, with the runs it requires
        info = {**info, "run": str(run_dir.resolve()), "sha256": _sha256(run_dir / MODEL_FILE)}
        post = PostFilter.load(run_dir) if postfilter and protocol.output(model) != "waveform" else None
        return cls(model, prior, normalizer, spec, n_samples, info, postfilter=post, **options)

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (the option, else the model's)."""
        return self.out_rate or self.spec.sample_rate

    @property
    def labels(self) -> list[str]:
        return list(self.model.cfg.labels)

    @property
    def latent_dim(self) -> int:
        """Latent length of one training-length sound (a code model's latent grows with ``seconds``)."""
        return protocol.latent_size(self.model)

    def _needs(self, mode: str, what: str) -> None:
        if not protocol.supports(self.model, mode):
            raise ParameterError(f"a {self.model.cfg.kind} model cannot {what}")

    def _latent_length(self, seconds: float | None) -> int | None:
        """Latent frames for a sound of ``seconds`` (None: the training length)."""
        if seconds is None:
            return None
        total = int(round(float(seconds) * self.spec.sample_rate))
        if total == self.n_samples:
            return None
        self._needs("variable_length", f"make {seconds} s (only its training length, {self.seconds:.3f} s)")
        return self.model.latent_frames(1 + total // int(self.spec.hop_length))

    @property
    def seconds(self) -> float:
        """Length of one training item in seconds."""
        return self.n_samples / self.spec.sample_rate

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
    def decode_features(self, latent: np.ndarray, label: str | None = None, pitch: int | None = None) -> torch.Tensor:
        """Latent ``(latent_dim,)`` -> normalised features ``(rows, frames)`` (waveform kinds: ``(samples,)``)."""
        return self.decode_many([latent], [label], pitch)[0]

    def decode_many(
        self, latents: list[np.ndarray], labels: list[str | None], pitch: int | None = None
    ) -> torch.Tensor:
        """Latents of one length ``(latent_dim,)`` each -> decoded items ``(n, rows, frames)`` (waveform kinds:
        ``(n, samples)``), each bit for bit what it decodes to alone.

        A decoder's output for one latent depends on the batch size it runs in (oneDNN picks its convolution
        by batch and threads), not on its slot or its neighbours in a batch of a given size. So a spectrogram
        kind decodes every latent, alone or among many, in a block of exactly :data:`DECODE_BLOCK` (the last
        one filled with copies of its first item): the same features either way, at a quarter of the CPU of
        decoding them one by one. Waveform kinds decode one at a time (a vocoder may draw seeded noise per
        call).
        """
        z = [torch.as_tensor(np.asarray(v, dtype=np.float32)).view(1, -1) for v in latents]
        for v in z:
            if v.shape[1] != z[0].shape[1]:
                raise ParameterError("latents decoded together must have one length")
            if v.shape[1] != self.latent_dim and not (protocol.supports(self.model, "variable_length") and v.shape[1]):
                raise ParameterError(f"latent has {v.shape[1]} values, this model expects {self.latent_dim}")
        conds = [self.conditions(lab, pitch) for lab in labels]
        if protocol.output(self.model) == "waveform":
            blocks = [(v, c[0], c[1], 1) for v, c in zip(z, conds)]
        else:
            blocks = []
            for i in range(0, len(z), DECODE_BLOCK):
                part = list(range(i, min(i + DECODE_BLOCK, len(z))))
                rows = part + [i] * (DECODE_BLOCK - len(part))
                lab = torch.cat([conds[j][0] for j in rows]) if conds[i][0] is not None else None
                pit = torch.cat([conds[j][1] for j in rows]) if conds[i][1] is not None else None
                blocks.append((torch.cat([z[j] for j in rows]), lab, pit, len(part)))
        # Inference mode: a third less per-layer overhead than no_grad; copied out of it so callers get an
        # ordinary tensor.
        with torch.inference_mode():
            out = torch.cat([protocol.decode_latent(self.model, v, lab, pit)[:m] for v, lab, pit, m in blocks])
        return out.clone()

    def _sharpen(self, labels: list[str | None], from_frame: int = 0):
        """The post-filter for items of ``labels`` as a dB -> dB function (frames before ``from_frame`` left as
        they are), or None when the run has none."""
        post = self.postfilter
        if post is None:
            return None
        low, high = clip_range(self.normalizer)

        def apply(db: torch.Tensor) -> torch.Tensor:
            if from_frame <= 0:
                return post.apply(db, labels, low, high)
            return torch.cat([db[..., :from_frame], post.apply(db[..., from_frame:], labels, low, high)], dim=-1)

        return apply

    def _to_audio(self, decoded: torch.Tensor, length: int, labels: list[str | None]) -> np.ndarray:
        """Decoded items ``(B, rows, frames)`` or ``(B, samples)`` -> waveforms ``(B, length)`` at the model's rate;
        ``labels`` (one per item) choose each item's post-filter ratio and fade-in."""
        if protocol.output(self.model) == "waveform":
            return decoded.detach().float().cpu().numpy()[:, :length]
        wav = features_to_audio(
            decoded,
            self.normalizer,
            self.spec,
            length,
            self.griffin_lim_iters,
            self._sharpen(labels),
            mel_init=self.mel_init,
        ).numpy()
        return wav if self.postfilter is None else self.postfilter.fade(wav, labels, self.spec.sample_rate)

    def _length(self, seconds: float | None) -> int:
        return self.n_samples if seconds is None else int(round(float(seconds) * self.spec.sample_rate))

    def render(
        self,
        latent: np.ndarray,
        label: str | None = None,
        pitch: int | None = None,
        prompt: tuple[np.ndarray, int] | None = None,
        seconds: float | None = None,
    ) -> tuple[np.ndarray, int]:
        """Audio ``(samples,)`` and its rate for one latent (with a continuation's prompt, if any)."""
        if prompt is not None:
            return self._render_prompted(latent, label, pitch, prompt, seconds)[:2]
        feat = self.decode_features(latent, label, pitch)
        wav = self._to_audio(feat[None], self._length(seconds), [label])[0]
        return finish_audio(wav, self.spec.sample_rate, self.out_rate, self.level), self.sample_rate

    def _render_prompted(
        self,
        latent: np.ndarray,
        label: str | None,
        pitch: int | None,
        prompt: tuple[np.ndarray, int],
        seconds: float | None,
    ) -> tuple[np.ndarray, int, list[dict]]:
        """:meth:`render` of a continuation, and the sounds level following found after the prompt, each with
        the gain it got (:meth:`.levelfollow.FollowedSound.to_dict`; empty when not followed)."""
        return self._render_continuation(self.decode_features(latent, label, pitch), prompt, seconds, label)

    def render_many(
        self,
        latents: list[np.ndarray],
        labels: list[str | None],
        pitch: int | None = None,
        seconds: float | None = None,
    ) -> list[np.ndarray]:
        """:meth:`render` for several latents, bit for bit: decoded in fixed blocks (:meth:`decode_many`),
        phase-reconstructed together (Griffin-Lim is batch-invariant; the recall tests check both)."""
        feats = self.decode_many(latents, labels, pitch)
        wavs = self._to_audio(feats, self._length(seconds), labels)
        return [finish_audio(w, self.spec.sample_rate, self.out_rate, self.level) for w in wavs]

    # ---- autonomous and conditioned sampling -------------------------------------------------
    def _prior_row(self, label: str | None) -> int:
        k = self.prior["prior.mean"].shape[0]
        idx = self._label_index(label)
        return k - 1 if idx is None else idx

    def draw_latents(
        self,
        n: int,
        label: str | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        prior: str = "fitted",
        top_k: int = 0,
        seconds: float | None = None,
        pitch: int | None = None,
    ) -> np.ndarray:
        """``(n, latent_dim)`` latents: ``mean + temperature * chol @ eps`` of the chosen prior, or the model's
        own draw (a code model: ``temperature`` and ``top_k`` shape each code's distribution). The fitted prior
        of a Gaussian-latent run is a mixture per class (:mod:`.latent_prior`)."""
        if prior not in PRIORS:
            raise ParameterError(f"prior must be one of {PRIORS}, got {prior!r}")
        if top_k < 0:
            raise ParameterError(f"top_k must be >= 0, got {top_k}")
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        frames = self._latent_length(seconds)
        if protocol.discrete(self.model):
            lab, pit = self.conditions(label, pitch)
            return self.model.draw_latents(
                n, lab, pit, temperature, gen, self.prior, top_k=top_k, frames=frames
            ).numpy()
        if top_k:
            raise ParameterError("top_k applies to code models (vqvae, prior), not a Gaussian latent")
        if prior == "standard" or "prior.mean" not in self.prior:
            return (torch.randn(n, self.latent_dim, generator=gen) * float(temperature)).numpy()
        return latent_prior.draw(self.prior, self._prior_row(label), n, temperature, gen).numpy()

    def _draw_codes(
        self,
        labels: list[str | None],
        pitch: int | None,
        temperature: float,
        seed: int,
        top_k: int,
        seconds: float | None,
    ) -> np.ndarray:
        """A code model's latents ``(n, frames)`` for all items in one batched draw, item ``i`` seeded ``seed + i``."""
        if top_k < 0:
            raise ParameterError(f"top_k must be >= 0, got {top_k}")
        n = len(labels)
        conds = [self.conditions(lab, pitch) for lab in labels]
        lab = torch.cat([c[0] for c in conds]) if conds[0][0] is not None else None
        pit = torch.cat([c[1] for c in conds]) if conds[0][1] is not None else None
        gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
        frames = self._latent_length(seconds)
        return self.model.draw_latents(n, lab, pit, temperature, gens, self.prior, top_k=top_k, frames=frames).numpy()

    def sample(
        self,
        n: int = 1,
        label: str | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        pitch: int | None = None,
        prior: str = "fitted",
        top_k: int = 0,
        seconds: float | None = None,
    ) -> list[Sound]:
        """``n`` sounds from the prior; a cvae with ``label=None`` draws labels uniformly (seeded).

        ``seconds``: length of each sound (default: the training length; longer only for a kind that slides,
        such as the prior). ``top_k``: keep only the k likeliest codes at each step (code models)."""
        seed = 0 if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        if label is None and self.labels and self.model.label_conditioned:
            labels = [self.labels[i] for i in rng.integers(0, len(self.labels), n)]
        else:
            self._label_index(label)
            labels = [None if label is None else str(label)] * n
        if protocol.discrete(self.model):
            latents = list(self._draw_codes(labels, pitch, temperature, seed, top_k, seconds))
        else:
            latents = [
                self.draw_latents(1, lab, temperature, seed + i, prior, top_k, seconds, pitch)[0]
                for i, lab in enumerate(labels)
            ]
        wavs = self.render_many(latents, labels, pitch, seconds)
        extra = {"top_k": top_k} if top_k else {}
        if seconds is not None:
            extra["seconds"] = float(seconds)
        return [
            Sound(
                wav,
                self.sample_rate,
                z,
                lab,
                self._pitch(pitch),
                "sample",
                seed + i,
                self._params(temperature=temperature, prior=prior, **extra),
            )
            for i, (wav, z, lab) in enumerate(zip(wavs, latents, labels))
        ]

    def _params(self, **extra) -> dict:
        post = {"postfilter": True} if self.postfilter is not None else {}
        if self.spec.kind == "mel":
            post["mel_init"] = self.mel_init
        return {
            "griffin_lim_iters": self.griffin_lim_iters,
            "sample_rate": self.sample_rate,
            "level": self.level,
            **post,
            **extra,
        }

    # ---- encoding ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self, audio: np.ndarray, sample_rate: int, label: str | None = None, pitch: int | None = None
    ) -> np.ndarray:
        """Posterior mean ``(latent_dim,)`` (a code model: its codes) of a waveform ``(samples,)``."""
        lab, pit = self.conditions(label, pitch)
        return protocol.encode_latent(self.model, self.model_input(audio, sample_rate)[None], lab, pit)[0].numpy()

    def model_input(self, audio: np.ndarray, sample_rate: int, n_samples: int | None = None) -> torch.Tensor:
        """What the model encodes: normalised features ``(rows, frames)``, or for a waveform kind the audio
        ``(n_samples,)`` at the model's rate (``n_samples`` defaults to the training length)."""
        n = n_samples or self.n_samples
        if protocol.output(self.model) != "waveform":
            return audio_to_features(audio, sample_rate, self.normalizer, self.spec, n)
        from ..core.convert import fit_length, resample

        wav = np.asarray(audio, dtype=np.float32)
        if wav.ndim != 1:
            raise ParameterError(f"expected mono audio (samples,), got shape {wav.shape}")
        if sample_rate != self.spec.sample_rate:
            wav = resample(wav, sample_rate, self.spec.sample_rate)
        return torch.from_numpy(fit_length(wav, n, fade_samples=min(64, n // 8)))

    def infer_label(
        self, label: str | None, audio: np.ndarray | None = None, sample_rate: int | None = None
    ) -> str | None:
        """The label to encode ``audio`` ``(samples,)`` at ``sample_rate`` Hz with: ``label`` when given or when
        the model takes no label, else the label whose reconstruction of the audio fits best (least MSE)."""
        if label is not None or not (self.labels and self.model.label_conditioned):
            return label
        x = self.model_input(audio, sample_rate)[None]
        errors = []
        with torch.no_grad():
            for name in self.labels:
                lab, pit = self.conditions(name, None)
                rec = protocol.decode_latent(self.model, protocol.encode_latent(self.model, x, lab, pit), lab, pit)
                errors.append(float((rec - x).pow(2).mean()))
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
        """``n`` variations: posterior mean plus ``amount`` times seeded standard-normal noise (a code model:
        its own ``vary_latent``, e.g. a share ``amount`` of the codes drawn again)."""
        label = self.infer_label(label, audio, sample_rate)
        mu = self.encode(audio, sample_rate, label, pitch)
        seed = 0 if seed is None else int(seed)
        latents = []
        for i in range(n):
            gen = torch.Generator().manual_seed(seed + i)
            if protocol.discrete(self.model):
                lab, pit = self.conditions(label, pitch)
                z = self.model.vary_latent(torch.from_numpy(mu), amount, gen, self.prior, labels=lab, pitches=pit)
                latents.append(z.numpy().astype(np.float32))
                continue
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
        self._needs("interpolable", "interpolate (its latent is discrete codes)")
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
    def _prompt_frames(self, prompt_samples: int, total_samples: int | None = None) -> int:
        """Frames fully covered by the prompt (centred frames need half a window of audio)."""
        hop, half = int(self.spec.hop_length), self.spec.n_fft // 2
        frames = self.model.cfg.frames if total_samples is None else 1 + total_samples // hop
        return int(np.clip((prompt_samples - half) // hop + 1, 1, frames - 1))

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
        top_k: int = 0,
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
        self._needs("continuable", "continue a prompt (train a prior on it: --model prior --vqvae RUN)")
        model_rate = self.spec.sample_rate
        p_model = int(round(len(prompt) * model_rate / prompt_sample_rate))
        total = int(round(seconds * model_rate))
        if hasattr(self.model, "continue_latent"):
            if p_model >= total:
                raise ParameterError(
                    f"prompt ({len(prompt) / prompt_sample_rate:.3f} s) must be shorter than seconds ({seconds})"
                )
            label = self.infer_label(label, prompt, prompt_sample_rate)
            return self._continue_by_priming(
                prompt, prompt_sample_rate, seconds, n, label, pitch, seed, temperature, top_k, sources
            )
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
            wav, rate, followed = self._render_prompted(latent, label, pitch, (prompt, prompt_sample_rate), seconds)
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
                        seconds=seconds,
                        steps=steps,
                        temperature=temperature,
                        sample_rate=rate,
                        prompt_frames=pf,
                        **self._follow_params(),
                    ),
                    dict(sources),
                    None if sources else (prompt, prompt_sample_rate),
                    followed,
                )
            )
        return sounds

    def _continue_by_priming(
        self,
        prompt: np.ndarray,
        prompt_sample_rate: int,
        seconds: float,
        n: int,
        label: str | None,
        pitch: int | None,
        seed: int | None,
        temperature: float,
        top_k: int,
        sources: dict,
    ) -> list[Sound]:
        """Continuation for a model that primes (a prior): the prompt's codes, then sampled ones, to ``seconds``.

        With ``pause_guard``, a draw whose output has a training-length window (from half a window before the
        prompt's end on) more than that many dB below the prompt's last window is drawn again with the next
        :func:`redraw_seed`, at most ``pause_redraws`` times; with ``window_guard``, so is one with two adjacent
        training-length windows from the output's start (or two whole ones half a window apart) more than that many
        dB apart after following. If no
        draw clears both, the one with the least excess over them (dB, summed) is kept. The params record how many
        redraws it took and what was left. The sidecar holds the codes, so it renders without redrawing."""
        model_rate = self.spec.sample_rate
        p_model = int(round(len(prompt) * model_rate / prompt_sample_rate))
        total = int(round(seconds * model_rate))
        hop = int(self.spec.hop_length)
        pf = self._prompt_frames(p_model, total)
        x = audio_to_features(prompt, prompt_sample_rate, self.normalizer, self.spec, max(p_model, self.n_samples))
        lab, pit = self.conditions(label, pitch)
        with torch.no_grad():
            codes = protocol.encode_latent(self.model, x[None], lab, pit)[0]
        # Code frames whose receptive field lies inside the prompt's frames (the last one also sees the edge).
        keep = max(0, min(self.model.latent_frames(pf + 1) - 2, len(codes)))
        n_codes = self.model.latent_frames(1 + total // hop)
        seed = 0 if seed is None else int(seed)
        guard = self._guards_pauses(prompt, prompt_sample_rate)
        wguard = self._guards_windows(prompt, prompt_sample_rate)
        sounds = []
        for i in range(n):
            # (dB over the guards, pause over, jump over, latent, rendering); the first within both is kept.
            tries: list[tuple] = []
            for attempt in range(1 + (self.pause_redraws if guard or wguard else 0)):
                gen = torch.Generator().manual_seed(redraw_seed(seed + i, attempt))
                latent = self.model.continue_latent(codes[: max(keep, 0)], n_codes, lab, pit, temperature, gen, top_k)
                latent = latent.numpy().astype(np.float32)
                done = self._render_prompted(latent, label, pitch, (prompt, prompt_sample_rate), seconds)
                pause = max(self._pause_depth(done[0], done[1], len(prompt)) - self.pause_guard, 0.0) if guard else 0.0
                jump = max(self._window_jump(done[0], done[1], len(prompt)) - self.window_guard, 0.0) if wguard else 0.0
                tries.append((pause + jump, pause, jump, latent, done))
                if pause + jump <= 0.0:
                    break
            best = min(tries, key=lambda t: t[0])  # the first of the least excess: the last try when it clears
            latent, (wav, rate, followed) = best[3], best[4]
            params = self._params(
                seconds=seconds,
                temperature=temperature,
                sample_rate=rate,
                prompt_frames=pf,
                prompt_codes=keep,
                **self._follow_params(),
            )
            # How the codes were drawn (the sidecar holds the codes, so it renders the same without this);
            # pause_redraws counts the redraws of both guards.
            if self.pause_guard is not None:
                params["pause_guard_db"] = self.pause_guard
            if self.window_guard is not None:
                params["window_guard_db"] = self.window_guard
            if self.pause_guard is not None or self.window_guard is not None:
                params["pause_redraws"] = len(tries) - 1
            if self.pause_guard is not None:
                params["pause_left"] = bool(best[1] > 0.0)
            if self.window_guard is not None:
                params["window_left"] = bool(best[2] > 0.0)
            if top_k:
                params["top_k"] = top_k
            sounds.append(
                Sound(
                    wav,
                    rate,
                    latent,
                    label,
                    self._pitch(pitch),
                    "continue",
                    seed + i,
                    params,
                    dict(sources),
                    None if sources else (prompt, prompt_sample_rate),
                    followed,
                )
            )
        return sounds

    def _follow_params(self) -> dict:
        """A continuation's level following as its sidecar records it (null: not followed)."""
        if self.follow_level is None:
            return {"follow_level": None}
        out = {"follow_level": self.follow_level, "follow_max_gain_db": self.follow_max_gain}
        out["follow_window_db"] = self.follow_window
        if self.follow_window is not None:
            out["follow_window_samples"] = self.follow_window_samples
        return out

    def _window_at(self, rate: int) -> int:
        """The training length in samples at ``rate`` Hz (the windows level following and the pause guard read)."""
        return int(round(self.follow_window_samples * rate / self.spec.sample_rate))

    def _guards_pauses(self, prompt: np.ndarray, rate: int) -> bool:
        """Whether the pause guard reads continuations of ``prompt`` (at ``rate`` Hz): it is on, the prompt is not
        silent, does not end inside a sound (a note cut mid-decay: the quiet that follows is its decay, not a
        pause) and has no pause of its own (a window ``pause_guard`` below its loudest)."""
        if self.pause_guard is None or window_level_db(prompt) is None or ends_in_sound(prompt, rate):
            return False
        levels = sliding_window_levels_db(prompt, 0, self._window_at(rate), rate)
        return not (len(levels) and levels.min() < levels.max() - self.pause_guard)

    def _guards_windows(self, prompt: np.ndarray, rate: int) -> bool:
        """Whether the window guard reads continuations of ``prompt`` (at ``rate`` Hz): it is on, the prompt is not
        silent, does not end inside a sound (a note's decay falls from window to window) and has no such jump between
        its own windows."""
        if self.window_guard is None or window_level_db(prompt) is None or ends_in_sound(prompt, rate):
            return False
        return window_jump_db(prompt, self._window_at(rate)) <= self.window_guard

    def _window_jump(self, wav: np.ndarray, rate: int, prompt_samples: int) -> float:
        """Largest dB between adjacent training-length windows of ``wav`` from its start, and between whole ones half
        a window apart, the prompt's own pairs left out (:func:`window_jump_db`)."""
        return window_jump_db(wav, self._window_at(rate), prompt_samples, half_hop=True)

    def _pause_depth(self, wav: np.ndarray, rate: int, prompt_samples: int) -> float:
        """dB from the prompt's last window (the output's own copy of it, so any output level counts alike) down to
        the quietest training-length window of ``wav`` from half a window before the prompt's end (-inf when no whole
        window fits there, or the prompt is silent: nothing to guard)."""
        window = self._window_at(rate)
        reference = window_level_db(wav[:prompt_samples][-window:])
        quiet = quietest_window_db(wav, prompt_samples - window // 2, window, rate)
        if reference is None or quiet is None:
            return -np.inf
        return float(reference - quiet)

    def _render_continuation(
        self, feat: torch.Tensor, prompt: tuple[np.ndarray, int], seconds: float | None, label: str | None = None
    ) -> tuple[np.ndarray, int, list[dict]]:
        """Prompt frames from the prompt, later frames from ``feat`` (post-filtered for ``label``); the prompt's
        own samples are kept up to a short crossfade into the phase-reconstructed rest, and the sounds after it
        follow the prompt's level (``follow_level``). Output at the prompt's rate, and the sounds followed."""
        from ..core.convert import resample

        wav_in, rate_in = prompt
        model_rate = self.spec.sample_rate
        p_model_wav = (
            resample(np.asarray(wav_in, dtype=np.float32), rate_in, model_rate)
            if rate_in != model_rate
            else np.asarray(wav_in, dtype=np.float32)
        )
        total = int(round(float(seconds) * model_rate))
        length = max(total, self.n_samples)
        target = audio_to_features(wav_in, rate_in, self.normalizer, self.spec, length)
        pf = self._prompt_frames(len(p_model_wav), length if length > self.n_samples else None)
        mixed = torch.cat([target[:, :pf], feat[:, pf:]], dim=1)
        sharpen = self._sharpen([label], from_frame=pf)
        wav = features_to_audio(
            mixed[None], self.normalizer, self.spec, length, self.griffin_lim_iters, sharpen, mel_init=self.mel_init
        )
        wav = wav[0].numpy()
        wav = wav[:total].copy()
        fade = min(2 * int(self.spec.hop_length), len(p_model_wav))
        keep = len(p_model_wav) - fade
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        # Match the reconstructed part's level to the prompt before joining them.
        gain = np.sqrt((p_model_wav**2).mean() + 1e-12) / np.sqrt((wav[: len(p_model_wav)] ** 2).mean() + 1e-12)
        wav = wav * np.float32(gain)
        wav[:keep] = p_model_wav[:keep]
        wav[keep : keep + fade] = (1 - ramp) * p_model_wav[keep:] + ramp * wav[keep : keep + fade]
        followed: list[dict] = []
        if self.follow_level is not None:
            window = self.follow_window_samples if self.follow_window is not None else None
            wav, found = follow_level(
                wav, p_model_wav, model_rate, self.follow_level, self.follow_max_gain, window, self.follow_window
            )
            followed = [f.to_dict(model_rate) for f in found]
        out = finish_audio(wav, model_rate, rate_in, self.level)
        return out, rate_in, followed

    # ---- files -------------------------------------------------------------------------------
    def save(
        self,
        sounds: list[Sound],
        out_dir: str | os.PathLike,
        format: str = "wav",
        prefix: str | None = None,
        bits: int = DEFAULT_BITS,
    ) -> list[Path]:
        """Write each sound as ``<prefix>_NNN.<format>`` with a ``.json`` sidecar beside it; wav and flac as ``bits``
        per sample (16, 24 or 32: 32-bit float, wav only; see :data:`BIT_DEPTHS`), lossy formats as their codec has it.

        A continuation whose prompt came as an array gets its prompt written once per save, as
        ``<prefix>_NNN_prompt.wav`` (32-bit float, so recall reads the same samples), named in its sidecar.
        """
        subtype = sample_subtype(format, bits)
        out_dir = Path(out_dir)
        paths = []
        prompts: dict[int, str] = {}  # id of a prompt array -> the file it was written to
        for i, s in enumerate(sounds):
            stem = f"{prefix or s.mode}_{i:03d}"
            path = write_audio(out_dir / f"{stem}.{format}", s.audio, s.sample_rate, format=format, subtype=subtype)
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
        mel_init = str(params.get("mel_init", "pinv"))  # sounds made before the key existed started from "pinv"
        if mel_init not in MEL_INITS:
            raise ParameterError(where, f"unknown mel inversion start {mel_init!r} (one of {', '.join(MEL_INITS)})")
        old = (self.griffin_lim_iters, self.out_rate, self.level, self.postfilter, self.follow_level)
        old_gain, old_window = self.follow_max_gain, (self.follow_window, self.follow_window_samples)
        old_init = self.mel_init
        self.griffin_lim_iters = int(params.get("griffin_lim_iters", self.griffin_lim_iters))
        self.mel_init = mel_init
        self.level = params.get("level", self.level)
        # A continuation saved before level following has no key: it was not followed.
        self.follow_level = params.get("follow_level")
        self.follow_max_gain = float(params.get("follow_max_gain_db", MAX_GAIN_DB))
        # Nor window following before it existed.
        self.follow_window = params.get("follow_window_db")
        self.follow_window_samples = int(params.get("follow_window_samples", self.n_samples))
        if not params.get("postfilter"):
            self.postfilter = None  # rendered without one (an older run, or the option off)
        try:
            if record.get("mode") == "continue":
                from ..core.io import load_audio

                if "prompt" not in sources:
                    raise ParameterError(where, "this continuation's sidecar names no prompt file")
                wav, rate = load_audio(sources["prompt"])
                if sources.get("prompt_seconds") is not None:
                    wav = trim_prompt(wav, rate, float(sources["prompt_seconds"]))
                audio, rate, followed = self._render_prompted(latent, label, pitch, (wav, rate), params["seconds"])
            else:
                self.out_rate = int(params.get("sample_rate", self.sample_rate))
                audio, rate = self.render(latent, label, pitch, seconds=params.get("seconds"))
                followed = []
        finally:
            self.griffin_lim_iters, self.out_rate, self.level, self.postfilter, self.follow_level = old
            self.follow_max_gain = old_gain
            self.follow_window, self.follow_window_samples = old_window
            self.mel_init = old_init
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
            followed=followed,
        )
