"""VQ-VAE on normalised spectrograms: a sequence of discrete latent frames (codes), as in Jukebox's first stage.

The spectrogram ``(B, rows, frames)`` is read as ``rows`` channels over time, so the encoder is 1-D: each
stride-2 stage halves the frame rate and widens the channels (width only at low time resolution), down to
``(B, code_dim, frames / 2**len(channels))`` latent frames. Each latent frame is replaced by its nearest
entry of an EMA codebook (van den Oord et al. 2017, appendix; Razavi et al. 2019); codes that no frame
chose for a while are restarted on random encoder outputs (Dhariwal et al. 2020, Jukebox). The decoder is
fully convolutional in time, so a longer code sequence decodes to a longer spectrogram (the prior uses it).

A vqvae alone samples each code position from the code counts of the training set at that position
(fitted at export, see ``fit_code_prior``): rough, but a sound; ``--model prior --vqvae RUN`` learns the
sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ...core.errors import ParameterError
from .blocks import padded_size
from .registry import KindOption, ModelKind, register


@dataclass
class VQConfig:
    """Everything needed to rebuild a vqvae (JSON beside the weights).

    Attributes:
        rows, frames: feature shape (frequency rows, time frames).
        channels: output channels of each stride-2 time stage, e.g. (128, 256).
        code_dim: size of each latent frame (and codebook entry).
        codebook_size: number of codes.
        commitment: weight of the commitment loss ``|z - sg(q)|^2``.
        decay: EMA decay of the codebook statistics.
        restart_below: a code whose EMA count falls below this is restarted on an encoder output.
        labels, n_pitches: kept for the Generator (a vqvae takes no condition; the prior does).
    """

    kind: str = "vqvae"
    rows: int = 64
    frames: int = 128
    channels: tuple[int, ...] = (128, 256)
    code_dim: int = 64
    codebook_size: int = 256
    commitment: float = 0.25
    decay: float = 0.99
    restart_below: float = 0.05
    labels: list[str] = field(default_factory=list)
    n_pitches: int = 0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels:
            raise ParameterError("a vqvae needs at least one stage (channels)")
        if self.codebook_size < 2:
            raise ParameterError(f"codebook_size must be >= 2, got {self.codebook_size}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VQConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def requires(self) -> dict[str, dict]:
        return {}

    @property
    def factor(self) -> int:
        return 2 ** len(self.channels)

    @property
    def code_frames(self) -> int:
        """Latent frames of one training item."""
        return padded_size(self.frames, self.factor) // self.factor


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with an EMA codebook and dead-code restarts.

    The codebook and its statistics are buffers (saved with the weights, never trained by the optimiser).
    """

    def __init__(self, size: int, dim: int, decay: float = 0.99, restart_below: float = 0.05) -> None:
        super().__init__()
        self.size, self.dim, self.decay, self.restart_below = size, dim, decay, restart_below
        # Counts start at zero, so the first training step restarts every code on an encoder output (a
        # data-dependent initialisation); afterwards only codes used less than restart_below per batch are.
        self.register_buffer("codebook", torch.randn(size, dim) * 0.1)
        self.register_buffer("ema_count", torch.zeros(size))
        self.register_buffer("ema_sum", torch.zeros(size, dim))

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code of each latent frame: ``z (B, dim, T)`` -> ``(B, T)`` int64."""
        flat = z.permute(0, 2, 1).reshape(-1, self.dim)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)[None]
        return dist.argmin(dim=1).view(z.shape[0], z.shape[2])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T)`` -> latent frames ``(B, dim, T)``."""
        return F.embedding(codes.long(), self.codebook).permute(0, 2, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z (B, dim, T)`` -> quantised (straight-through) ``(B, dim, T)``, codes ``(B, T)``, commitment ``()``."""
        codes = self.indices(z)
        q = self.lookup(codes)
        if self.training:
            self._update(z.detach(), codes)
        commitment = (z - q.detach()).pow(2).mean()
        return z + (q - z).detach(), codes, commitment

    @torch.no_grad()
    def _update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        flat = z.permute(0, 2, 1).reshape(-1, self.dim)
        onehot = F.one_hot(codes.view(-1), self.size).type_as(flat)
        counts, sums = onehot.sum(0), onehot.T @ flat
        shared = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if shared:
            # DDP: each process sees its part of the batch. The statistics of the whole batch (as Jukebox does)
            # keep every process's codebook the same.
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.size * 1e-5) * n  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / count[:, None])
        dead = self.ema_count < self.restart_below
        if dead.any():
            # Deterministic under the global seed: torch.randint draws from it.
            picks = flat[torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)]
            if shared:
                dist.broadcast(picks, 0)  # the first process's picks, so the codebooks stay equal
            # A restarted code counts as used twice the threshold: unchosen, it is restarted again in ~70 steps.
            fresh = 2.0 * self.restart_below
            self.codebook[dead] = picks
            self.ema_sum[dead] = picks * fresh
            self.ema_count[dead] = fresh

    @staticmethod
    def usage(codes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Share of codes used ``()`` and perplexity ``()`` (exp of the code entropy) of a batch of codes."""
        p = torch.bincount(codes.reshape(-1), minlength=size).float()
        p = p / p.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return (p > 0).float().mean(), entropy.exp()


def _res1d(ch: int) -> nn.Module:
    return nn.Sequential(nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, 1))


class Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VQVAE(nn.Module):
    """Spectrogram VQ-VAE; the latent of a sound is its code sequence ``(code_frames,)`` (as floats)."""

    output = "features"
    continuable = False  # a vqvae continues through a prior run
    interpolable = False  # codes are discrete: there is no straight line between two sounds
    variable_length = True
    label_conditioned = False
    pitch_conditioned = False

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        enc: list[nn.Module] = []
        for c_in, c_out in zip((cfg.rows,) + ch[:-1], ch):
            enc += [nn.Conv1d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        enc += [Residual(_res1d(ch[-1])), nn.LeakyReLU(0.2), nn.Conv1d(ch[-1], cfg.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, cfg.decay, cfg.restart_below)
        rev = ch[::-1]
        dec: list[nn.Module] = [nn.Conv1d(cfg.code_dim, rev[0], 3, padding=1), Residual(_res1d(rev[0]))]
        for c_in, c_out in zip(rev, rev[1:]):
            dec += [nn.LeakyReLU(0.2), nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1)]
        dec += [nn.LeakyReLU(0.2), nn.ConvTranspose1d(rev[-1], cfg.rows, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def latent_size(self) -> int:
        return self.cfg.code_frames

    def latent_frames(self, frames: int) -> int:
        """Code frames that decode to at least ``frames`` feature frames."""
        return -(-int(frames) // self.cfg.factor)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-2] != self.cfg.rows:
            raise ParameterError(f"expected spectrograms (B, {self.cfg.rows}, frames), got {tuple(x.shape)}")

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, rows, frames)`` -> unquantised latent frames ``(B, code_dim, ceil(frames / factor))``."""
        self._check(x)
        pad = padded_size(x.shape[-1], self.cfg.factor) - x.shape[-1]
        return self.encoder(F.pad(x, (0, pad)))

    def encode_latent(self, x: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        """Codes ``(B, code_frames)`` as float (the Generator's latent)."""
        return self.quantizer.indices(self.encode_continuous(x)).float()

    def decode_latent(self, codes: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        """Codes ``(B, T)`` -> normalised spectrogram ``(B, rows, T * factor)``, cropped to ``frames`` when ``T``
        is one item's length."""
        y = self.decoder(self.quantizer.lookup(codes.round().long().clamp(0, self.cfg.codebook_size - 1)))
        return y[..., : self.cfg.frames] if codes.shape[-1] == self.cfg.code_frames else y

    def forward(self, x: torch.Tensor, labels=None, pitches=None, sample: bool = True):
        """Reconstruction ``(B, rows, frames)``, codes ``(B, code_frames)`` and the commitment loss ``()``."""
        q, codes, commitment = self.quantizer(self.encode_continuous(x))
        return self.decoder(q)[..., : x.shape[-1]], codes, commitment

    # ---- sampling without a learned prior ------------------------------------------------------
    def draw_latents(
        self,
        n: int,
        labels: torch.Tensor | None,
        pitches: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | list[torch.Generator],
        prior: dict[str, torch.Tensor],
        top_k: int = 0,
        frames: int | None = None,
    ) -> torch.Tensor:
        """``(n, code_frames)`` codes, each position drawn from the training set's code counts there
        (``prior.codes (code_frames, codebook)``; uniform before export). ``frames`` other than one item's
        length is refused: only a prior run makes longer sounds."""
        if frames is not None and frames != self.cfg.code_frames:
            raise ParameterError("a vqvae alone makes sounds of its training length; use a prior run for --seconds")
        counts = prior.get("prior.codes", torch.ones(self.cfg.code_frames, self.cfg.codebook_size))
        logits = torch.log(counts + 1e-3) / max(float(temperature), 1e-4)
        probs = torch.softmax(_top_k(logits, top_k), dim=-1)
        gens = generator if isinstance(generator, list) else [generator] * n
        draws = [torch.multinomial(probs, 1, generator=g)[:, 0] for g in gens]
        return torch.stack(draws).float()

    def vary_latent(
        self,
        codes: torch.Tensor,
        amount: float,
        generator: torch.Generator,
        prior: dict[str, torch.Tensor],
        labels=None,
        pitches=None,
    ) -> torch.Tensor:
        """Redraw a share ``amount`` (0..1) of the positions of ``codes (T,)`` from the positional counts."""
        fresh = self.draw_latents(1, None, None, 1.0, generator, prior)[0]
        redraw = torch.rand(codes.shape[-1], generator=generator) < float(amount)
        return torch.where(redraw, fresh, codes.float())


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``logits (..., K)`` with all but the ``k`` largest set to -inf (``k <= 0``: unchanged)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _new_vq_config(rows, frames, labels, n_pitches, latent_dim, channels, codebook_size, commitment, vq_channels):
    chans = tuple(int(c) for c in vq_channels.split(",")) if vq_channels else tuple(channels)
    return VQConfig(
        rows=rows,
        frames=frames,
        channels=chans,
        code_dim=latent_dim,
        codebook_size=codebook_size,
        commitment=commitment,
    )


register(
    ModelKind(
        name="vqvae",
        config=VQConfig,
        build=VQVAE,
        new_config=_new_vq_config,
        training="soundloom.sounds.training.vq:vqvae_module",
        fit_prior="soundloom.sounds.training.vq:fit_code_prior",
        options=(
            KindOption("codebook_size", int, 256, "Number of codes."),
            KindOption("commitment", float, 0.25, "Weight of the commitment loss."),
            KindOption(
                "vq_channels", str, "128,256", "Channels of each stride-2 time stage (--latent is the code size)."
            ),
        ),
        help="VQ-VAE: spectrogram to a sequence of discrete codes (EMA codebook); sample through a prior run.",
    )
)
