"""DDSP-style harmonic-plus-noise waveform model: a small network predicts synthesiser controls, not samples.

A conv encoder on the clip's log-mel gives a global latent ``(latent_dim,)`` (mean, log-variance), as the
wave-vae, so the fitted Gaussian prior, variation and interpolation work unchanged. The decoder maps the latent
and its conditions to controls at a low frame rate (one frame every ``hop`` samples):

- an overall harmonic amplitude and a distribution over ``n_harmonics`` harmonics (softmax; harmonics at or
  above Nyquist get none);
- the magnitudes of ``noise_bands`` bands of filtered noise;
- for unpitched data only, f0 itself (between ``f0_min_hz`` and ``f0_max_hz``, per frame or one per clip). For
  pitched data f0 *is* the asked MIDI pitch, so a conditioned note cannot drift off it.

Synthesis is differentiable and has no per-sample Python loop. Amplitudes are linear between frames. With one f0
per clip (pitched data) each harmonic's phase is linear in time, so a segment of ``hop`` samples is two
``(2K, hop)`` matrix products against fixed cosine / sine tables, exact; with f0 per frame the phase is the
cumulative sum of f0 and the harmonics are summed by Clenshaw's recurrence (a multiply-add per harmonic and
sample). Noise is shaped in the STFT domain (frequency sampling: a random-phase spectrum times the band
magnitudes, then an inverse STFT); at inference the random phases are a fixed draw, so a latent always decodes to
the same audio.

Trained with the multi-resolution STFT loss plus β·KL (:mod:`soundloom.sounds.training.wave`) on the store's audio.
Engel et al. 2020, "DDSP: Differentiable Digital Signal Processing".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ParameterError
from ...core.spectral import SpectrogramConfig, get_window, magnitude, mel_filterbank
from .protocol import EmbeddedConditions, GaussianLatent
from .registry import KindOption, ModelKind, register

UPSAMPLINGS = 3  # the decoder doubles its frame count this many times
NOISE_BIAS = -5.0  # noise starts about 40 dB down, so early training shapes the harmonics first (as DDSP)


@dataclass
class DDSPConfig:
    """Everything needed to rebuild a ddsp model (JSON beside the weights).

    Attributes:
        n_samples, sample_rate: clip length (samples) and rate (Hz) of the store it was trained on.
        hop: samples between control frames.
        n_harmonics: harmonics of the additive synthesiser.
        noise_bands: magnitudes of the filtered noise, linearly spaced from 0 Hz to Nyquist.
        hidden: width of the encoder and decoder convs.
        n_mels: mel bands the encoder sees.
        latent_dim: size of z.
        labels, n_pitches, embed_dim: conditions (empty / 0 for none); ``n_pitches > 0`` means f0 = the pitch.
        f0_min_hz, f0_max_hz: range of the decoded f0 when the model has no pitch condition.
        f0_per_frame: without a pitch condition, decode f0 per frame (glides; slower) or
            one f0 per clip (the pitched path's speed).
        rows, frames: the store's feature shape (kept for the Generator's bookkeeping).
    """

    kind: str = "ddsp"
    n_samples: int = 16000
    sample_rate: int = 16000
    hop: int = 128
    n_harmonics: int = 64
    noise_bands: int = 32
    hidden: int = 64
    n_mels: int = 64
    latent_dim: int = 64
    labels: list[str] = field(default_factory=list)
    n_pitches: int = 0
    embed_dim: int = 16
    f0_min_hz: float = 30.0
    f0_max_hz: float = 2000.0
    f0_per_frame: bool = True
    rows: int = 0
    frames: int = 0

    def __post_init__(self) -> None:
        if self.hop < 8 or self.n_harmonics < 1 or self.noise_bands < 2 or self.hidden < 1:
            raise ParameterError(
                f"ddsp needs hop >= 8, n_harmonics >= 1, noise_bands >= 2 and hidden >= 1; got hop {self.hop}, "
                f"n_harmonics {self.n_harmonics}, noise_bands {self.noise_bands}, hidden {self.hidden}"
            )
        if not 0.0 < self.f0_min_hz < self.f0_max_hz:
            raise ParameterError(f"ddsp needs 0 < f0_min_hz < f0_max_hz, got {self.f0_min_hz}, {self.f0_max_hz}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DDSPConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def requires(self) -> dict[str, dict]:
        return {}

    @property
    def control_frames(self) -> int:
        """Control frames: frame ``m`` sits on sample ``m * hop``, the last one at or after the clip's end."""
        return -(-self.n_samples // self.hop) + 1

    @property
    def base_frames(self) -> int:
        """Frames the decoder starts from (it doubles them :data:`UPSAMPLINGS` times)."""
        return -(-self.control_frames // 2**UPSAMPLINGS)

    @property
    def encoder_frames(self) -> int:
        n = self.control_frames
        for _ in range(UPSAMPLINGS):
            n = (n + 1) // 2
        return n

    @property
    def mel(self) -> SpectrogramConfig:
        """The encoder's front end: mel power at the control frame rate."""
        return SpectrogramConfig(
            sample_rate=self.sample_rate, n_fft=4 * self.hop, hop_length=self.hop, n_mels=self.n_mels
        )


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0) -> torch.Tensor:
    """DDSP's positive scaling ``max_value * sigmoid(x) ** log(exponent) + 1e-7``: amplitudes over many decades."""
    return max_value * torch.sigmoid(x).pow(math.log(exponent)) + 1e-7


def midi_to_hz(midi: torch.Tensor) -> torch.Tensor:
    return 440.0 * torch.pow(2.0, (midi.float() - 69.0) / 12.0)


class DDSP(EmbeddedConditions, GaussianLatent, nn.Module):
    """Harmonic-plus-noise VAE on waveforms ``(B, n_samples)``, conditioned like the cvae."""

    output = "waveform"
    continuable = False
    interpolable = True
    variable_length = False

    def __init__(self, cfg: DDSPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.label_embed = nn.Embedding(len(cfg.labels), cfg.embed_dim) if cfg.labels else None
        self.pitch_embed = nn.Embedding(cfg.n_pitches, cfg.embed_dim) if cfg.n_pitches else None
        # A pitch is also given as a number, so a pitch never seen in training still has a sensible condition.
        cond = cfg.embed_dim * (self.label_embed is not None) + (cfg.embed_dim + 1) * (self.pitch_embed is not None)
        self.cond_size = cond
        width = cfg.hidden
        enc: list[nn.Module] = []
        for c_in in (cfg.n_mels,) + (width,) * (UPSAMPLINGS - 1):
            enc += [nn.Conv1d(c_in, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc)
        self.to_stats = nn.Linear(width * cfg.encoder_frames + cond, 2 * cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim + cond, width * cfg.base_frames)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, padding=1) for _ in range(UPSAMPLINGS))
        self.cond_bias = nn.Linear(cond, width * UPSAMPLINGS) if cond else None
        self.n_controls = 1 + cfg.n_harmonics + cfg.noise_bands + (0 if self.pitch_embed is not None else 1)
        self.head = nn.Conv1d(width, self.n_controls, 1)
        self.register_buffer("mel_basis", self._mel_basis(), persistent=False)
        self.register_buffer("noise_phase", self._fixed_noise(), persistent=False)
        self.register_buffer("noise_window", get_window("hann", 2 * cfg.hop), persistent=False)

    # ---- conditions and encoder ----------------------------------------------------------------
    def _mel_basis(self) -> torch.Tensor:
        return mel_filterbank(self.cfg.mel)

    def _fixed_noise(self) -> torch.Tensor:
        """Unit complex noise ``(hop + 1, control_frames)`` drawn once from seed 0: the noise at inference."""
        gen = torch.Generator().manual_seed(0)
        re, im = torch.randn(2, self.cfg.hop + 1, self.cfg.control_frames, generator=gen)
        return torch.complex(re, im) / math.sqrt(2.0)

    @property
    def latent_size(self) -> int:
        return self.cfg.latent_dim

    def condition(self, labels, pitches, batch: int) -> torch.Tensor | None:
        parts = []
        if self.label_embed is not None:
            if labels is None:
                raise ParameterError(f"this ddsp model needs a label, one of {self.cfg.labels}")
            parts.append(self.label_embed(labels.long().view(batch)))
        if self.pitch_embed is not None:
            if pitches is None:
                raise ParameterError("this ddsp model needs a MIDI pitch")
            p = pitches.long().clamp(0, self.cfg.n_pitches - 1).view(batch)
            parts += [self.pitch_embed(p), ((p.float() - 64.0) / 32.0)[:, None]]
        return torch.cat(parts, dim=1) if parts else None

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, n_samples)`` -> log-mel ``(B, n_mels, control_frames)``, about [-1, 1] (0 dB .. -100 dB)."""
        x = F.pad(x, (0, (self.cfg.control_frames - 1) * self.cfg.hop - x.shape[-1]))  # one frame per control
        power = magnitude(x, self.cfg.mel).pow(2)
        db = 10.0 * torch.log10(torch.matmul(self.mel_basis, power).clamp_min(1e-10))
        return db / 50.0 + 1.0

    def encode(self, x: torch.Tensor, labels=None, pitches=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, n_samples)`` -> posterior mean and log-variance, each ``(B, latent_dim)``."""
        if x.ndim != 2 or x.shape[-1] != self.cfg.n_samples:
            raise ParameterError(f"expected waveforms (B, {self.cfg.n_samples}), got {tuple(x.shape)}")
        h = self.encoder(self.log_mel(x)).flatten(1)
        c = self.condition(labels, pitches, x.shape[0])
        if c is not None:
            h = torch.cat([h, c], dim=1)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    # ---- decoder: latent -> controls -----------------------------------------------------------
    def controls(self, z: torch.Tensor, labels=None, pitches=None) -> dict[str, torch.Tensor]:
        """Synthesiser controls of latents ``z (B, latent_dim)``, one value per control frame ``M``:
        ``"harmonics" (B, K, M)`` amplitudes, ``"noise" (B, noise_bands, M)`` magnitudes and ``"f0_hz"``
        ``(B, 1)`` (the asked pitch, or one decoded f0 per clip) or ``(B, M)``."""
        cfg = self.cfg
        c = self.condition(labels, pitches, z.shape[0])
        h = self.from_latent(z if c is None else torch.cat([z, c], dim=1)).view(z.shape[0], cfg.hidden, cfg.base_frames)
        biases = self.cond_bias(c).chunk(UPSAMPLINGS, dim=1) if self.cond_bias is not None else (None,) * UPSAMPLINGS
        for conv, bias in zip(self.convs, biases):
            h = conv(F.interpolate(h, scale_factor=2, mode="nearest"))
            h = F.leaky_relu(h if bias is None else h + bias[:, :, None], 0.2)
        out = self.head(h)[..., : cfg.control_frames]
        k, nyquist = cfg.n_harmonics, cfg.sample_rate / 2
        if self.pitch_embed is not None:
            f0 = midi_to_hz(pitches.view(-1, 1)).clamp(max=0.45 * cfg.sample_rate)  # (B, 1)
        else:
            top = min(cfg.f0_max_hz, 0.45 * cfg.sample_rate)
            lo = min(cfg.f0_min_hz, top / 2)
            f0_logit = out[:, -1] if cfg.f0_per_frame else out[:, -1].mean(dim=1, keepdim=True)
            f0 = lo * (top / lo) ** torch.sigmoid(f0_logit)  # (B, M) or (B, 1)
        ranks = torch.arange(1, k + 1, device=z.device, dtype=out.dtype).view(1, k, 1)
        audible = ranks * f0[:, None, :] < nyquist  # (B, K, 1 or M); the first harmonic always is
        logits = out[:, 1 : 1 + k].masked_fill(~audible, float("-inf"))
        harmonics = exp_sigmoid(out[:, :1]) * torch.softmax(logits, dim=1)
        noise = exp_sigmoid(out[:, 1 + k : 1 + k + cfg.noise_bands] + NOISE_BIAS)
        return {"harmonics": harmonics, "noise": noise, "f0_hz": f0}

    # ---- synthesis ------------------------------------------------------------------------------
    def harmonic(self, amps: torch.Tensor, f0_hz: torch.Tensor) -> torch.Tensor:
        """Additive synthesis: amplitudes ``(B, K, M)`` and f0 ``(B, 1)`` or ``(B, M)`` -> ``(B, (M - 1) * hop)``.

        Amplitudes (and f0) are linear between frames; harmonics silent in every frame are skipped (exact).
        """
        hop, sr = self.cfg.hop, self.cfg.sample_rate
        k_used = int(torch.clamp((self.cfg.sample_rate / 2 / f0_hz.detach().min()).ceil(), 1, amps.shape[1]))
        amps = amps[:, :k_used]
        b, k, m = amps.shape
        ranks = torch.arange(1, k + 1, device=amps.device, dtype=torch.float64).view(1, k, 1)
        ramp = torch.arange(hop, device=amps.device, dtype=amps.dtype) / hop  # (hop,) position in a segment
        if f0_hz.shape[1] == 1:
            # One f0: the phase of harmonic k at sample m * hop + t is k * (phi_m + w t), and
            # sin(k phi_m + k w t) = sin(k phi_m) cos(k w t) + cos(k phi_m) sin(k w t).
            cycles = f0_hz.double() / sr  # (B, 1) cycles per sample
            starts = torch.arange(m - 1, device=amps.device, dtype=torch.float64) * hop
            phase = 2 * math.pi * torch.frac(ranks * (cycles[:, :, None] * starts)).float()  # (B, K, M-1)
            t = torch.arange(hop, device=amps.device, dtype=torch.float64)
            wt = 2 * math.pi * torch.frac(ranks * cycles[:, :, None] * t).float()  # (B, K, hop)
            tables = torch.cat([torch.cos(wt), torch.sin(wt)], dim=1)  # (B, 2K, hop)
            sin_p, cos_p = torch.sin(phase), torch.cos(phase)
            left, right = amps[..., :-1], amps[..., 1:]
            coeffs = torch.cat(
                [left * sin_p, left * cos_p, right * sin_p, right * cos_p], dim=1
            )  # (B, 4K, M-1): the two ends of each segment
            both = torch.bmm(coeffs.view(b, 2, 2 * k, m - 1).transpose(2, 3).reshape(b, 2 * (m - 1), 2 * k), tables)
            start_end = both.view(b, 2, m - 1, hop)
            out = start_end[:, 0] * (1 - ramp) + start_end[:, 1] * ramp
            return out.reshape(b, (m - 1) * hop)
        # f0 per frame: linear within a segment, phase = the cumulative sum of cycles per sample.
        f0 = f0_hz[:, :-1, None] * (1 - ramp) + f0_hz[:, 1:, None] * ramp  # (B, M-1, hop)
        cycles = torch.cumsum(f0.reshape(b, -1).double() / sr, dim=1) - f0[:, :1, 0].double() / sr
        turns = (2 * math.pi * torch.frac(cycles)).float().view(b, m - 1, hop)  # whole cycles dropped in float64
        # sin(k phi) = sin(phi) U_{k-1}(cos phi): the sum over harmonics by Clenshaw's recurrence on the Chebyshev
        # polynomials U, one multiply-add per harmonic and sample instead of a sine (about 4x faster; float32 error
        # about 1e-5 of the peak), for the amplitudes at both ends of each segment at once.
        two_cos = 2 * torch.cos(turns)[:, None]  # (B, 1, M-1, hop)
        coeffs = torch.stack([amps[..., :-1], amps[..., 1:]], dim=1).permute(2, 0, 1, 3).unsqueeze(-1)  # (K,B,2,M-1,1)
        b1 = b2 = torch.zeros(b, 2, m - 1, hop, device=amps.device, dtype=amps.dtype)
        for j in range(k - 1, -1, -1):
            b1, b2 = torch.addcmul(coeffs[j] - b2, two_cos, b1), b1
        start_end = b1 * torch.sin(turns)[:, None]  # (B, 2, M-1, hop)
        out = start_end[:, 0] * (1 - ramp) + start_end[:, 1] * ramp
        return out.reshape(b, (m - 1) * hop)

    def filtered_noise(self, bands: torch.Tensor) -> torch.Tensor:
        """Noise shaped by band magnitudes ``(B, noise_bands, M)`` -> ``(B, (M - 1) * hop)``.

        Bands are interpolated to the ``hop + 1`` bins of a ``2 * hop`` STFT and multiply unit complex noise
        (fresh while training, a fixed draw otherwise); the frames are overlap-added as ``torch.istft`` does
        (Hann window, centred, divided by the summed squared window), two half frames per hop, which costs a
        fraction of ``istft``'s general overlap-add at batch size one.
        """
        hop = self.cfg.hop
        b, _, m = bands.shape
        mags = F.interpolate(bands.transpose(1, 2), size=hop + 1, mode="linear", align_corners=True)  # (B, M, hop+1)
        if self.training:
            phase = torch.complex(*torch.randn(2, b, m, hop + 1, device=bands.device)) / math.sqrt(2.0)
        else:
            phase = self.noise_phase.T
        frames = torch.fft.irfft(mags * phase, n=2 * hop) * self.noise_window  # (B, M, 2 hop)
        halves = frames.view(b, m, 2, hop)
        window = self.noise_window.view(2, hop)
        out = (halves[:, :-1, 1] + halves[:, 1:, 0]) / (window[0].square() + window[1].square())
        return out.reshape(b, (m - 1) * hop)

    def decode(self, z: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        """``z (B, latent_dim)`` -> waveform ``(B, n_samples)``."""
        ctl = self.controls(z, labels, pitches)
        wav = self.harmonic(ctl["harmonics"], ctl["f0_hz"]) + self.filtered_noise(ctl["noise"])
        return wav[:, : self.cfg.n_samples]


def _new_ddsp_config(
    rows,
    frames,
    labels,
    n_pitches,
    latent_dim,
    channels,
    n_samples,
    sample_rate,
    hop,
    n_harmonics,
    noise_bands,
    hidden,
    embed_dim,
    f0_min_hz,
    f0_max_hz,
    f0_per_frame,
    stft_weight,
):
    return DDSPConfig(
        n_samples=n_samples,
        sample_rate=sample_rate,
        hop=hop,
        n_harmonics=n_harmonics,
        noise_bands=noise_bands,
        hidden=hidden,
        latent_dim=latent_dim,
        labels=list(labels),
        n_pitches=n_pitches,
        embed_dim=embed_dim,
        f0_min_hz=f0_min_hz,
        f0_max_hz=f0_max_hz,
        f0_per_frame=f0_per_frame,
        rows=rows,
        frames=frames,
    )


register(
    ModelKind(
        name="ddsp",
        config=DDSPConfig,
        build=DDSP,
        new_config=_new_ddsp_config,
        training="soundloom.sounds.training.wave:ddsp_module",
        conditional=True,
        inputs="waveform",
        options=(
            KindOption("hop", int, 128, "Samples between control frames."),
            KindOption("n_harmonics", int, 64, "Harmonics of the additive synthesiser."),
            KindOption("noise_bands", int, 32, "Bands of the filtered noise."),
            KindOption("hidden", int, 64, "Width of the encoder and decoder convs."),
            KindOption("embed_dim", int, 16, "Size of each condition embedding (class, pitch)."),
            KindOption("f0_min_hz", float, 30.0, "Lowest decoded f0 when the data has no pitch."),
            KindOption("f0_max_hz", float, 2000.0, "Highest decoded f0 when the data has no pitch."),
            KindOption("f0_per_frame", bool, True, "Without pitch labels: f0 per frame (glides) or one per clip."),
            KindOption("stft_weight", float, 100.0, "Weight of the multi-resolution STFT loss against β·KL."),
        ),
        help="Harmonic-plus-noise synthesiser (DDSP) driven by a VAE; f0 = the asked pitch on pitched data.",
    )
)
