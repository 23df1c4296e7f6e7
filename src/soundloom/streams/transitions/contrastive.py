"""``contrastive``: a tail encoder and a head encoder over ~0.3 s of log-mel frames at the cut.

Trained with InfoNCE (see ``soundloom.streams.transitions.training``) so that, in a batch holding chunks of
the same song and of other songs, the true continuation's head scores highest. Score = dot product
of the tail embedding (scaled by the learned inverse temperature) and the unit-norm head embedding.

Frames are not centred: the tail's last frame ends exactly at the cut and the head's first frame
starts there, so neither side sees audio from across the cut.
"""

from __future__ import annotations

import torch
from torch import nn

from ...core.errors import ParameterError
from ...core.spectral import SpectrogramConfig, mel_filterbank
from .base import TransitionScorer
from .registry import TrainContext, register
from .spectra import uncentred_power


class EdgeEncoder(nn.Module):
    """Log-mel frames ``(B, n_mels, frames)`` -> unit-norm embedding ``(B, dim)``.

    Convolutions keep time order and the flatten keeps position, so frames next to the cut can
    weigh more than frames further away.
    """

    def __init__(self, n_mels: int, frames: int, width: int, dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, width, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
        )
        t = (((frames - 1) // 2 + 1) - 1) // 2 + 1
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * t, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.head(self.conv(mel)), dim=1)


class ContrastiveScorer(TransitionScorer):
    """Two :class:`EdgeEncoder` s over ``frames`` log-mel frames (n_fft 1024, hop 256) each side.

    Args:
        sample_rate: Hz.
        frames: frames per side (24 at 22050 Hz = 0.31 s).
        n_mels: mel bands.
        width: conv channels.
        dim: embedding size.
    """

    name = "contrastive"

    def __init__(
        self,
        sample_rate: int = 22050,
        frames: int = 24,
        n_mels: int = 64,
        width: int = 128,
        dim: int = 128,
        n_fft: int = 1024,
        hop: int = 256,
    ):
        window = (frames - 1) * hop + n_fft
        super().__init__(sample_rate, window, window)
        self.frames, self.n_mels, self.width, self.dim, self.n_fft, self.hop = frames, n_mels, width, dim, n_fft, hop
        self.spec = SpectrogramConfig(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin_hz=30.0, kind="mel"
        )
        self.register_buffer("mel_fb", mel_filterbank(self.spec))
        # The core front end makes its own window; the buffer stays so that saved runs keep loading.
        self.register_buffer("window", torch.hann_window(n_fft))
        # Dataset-level normalisation of log-mel dB (set from training songs, saved with the model).
        self.register_buffer("mel_mean", torch.full((n_mels, 1), -40.0))
        self.register_buffer("mel_std", torch.full((n_mels, 1), 20.0))
        self.log_scale = nn.Parameter(torch.tensor(2.66))  # exp(2.66) = 1 / 0.07, CLIP's start
        self.tail_encoder = EdgeEncoder(n_mels, frames, width, dim)
        self.head_encoder = EdgeEncoder(n_mels, frames, width, dim)

    def config(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "frames": self.frames,
            "n_mels": self.n_mels,
            "width": self.width,
            "dim": self.dim,
            "n_fft": self.n_fft,
            "hop": self.hop,
        }

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Un-centred log-mel dB ``(..., n_mels, 1 + (samples - n_fft) // hop)`` of ``(..., samples)``."""
        shape = wav.shape[:-1]
        power = uncentred_power(wav.reshape(-1, wav.shape[-1]), self.spec)
        mel = torch.matmul(self.mel_fb, power)
        out = 10 * torch.log10(mel + 1e-10).clamp_min(-100.0)
        return out.reshape(*shape, *out.shape[-2:])

    def normalise(self, mel_db: torch.Tensor) -> torch.Tensor:
        return (mel_db - self.mel_mean) / self.mel_std

    def encode_tail_mel(self, mel_db: torch.Tensor) -> torch.Tensor:
        """Tail embedding ``(B, dim)`` from log-mel ``(B, n_mels, frames)``, scaled by the inverse temperature."""
        return self.tail_encoder(self.normalise(mel_db)) * self.log_scale.clamp(max=4.6).exp()

    def encode_head_mel(self, mel_db: torch.Tensor) -> torch.Tensor:
        """Head embedding ``(B, dim)`` (unit norm) from log-mel ``(B, n_mels, frames)``."""
        return self.head_encoder(self.normalise(mel_db))

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        return self.encode_tail_mel(self.log_mel(self.fit_tails(tails)))

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        return self.encode_head_mel(self.log_mel(self.fit_heads(heads)))


def _train(scorer: ContrastiveScorer, ctx: TrainContext) -> dict:
    from .training import train_contrastive

    return train_contrastive(
        scorer, ctx.audio, ctx.split, ctx.steps, ctx.max_minutes, ctx.seed, ctx.lr, ctx.progress, ctx.cpu_minutes
    )


register(ContrastiveScorer, train=_train, cli_options={"width": "width"})


class ContrastiveEnsemble(TransitionScorer):
    """The mean score of several :class:`ContrastiveScorer` s of one config (the members), still one product:
    tail embeddings concatenated and divided by the number of members, head embeddings concatenated.

    Made by cross-fitted training on a small pool (see
    :func:`~soundloom.streams.transitions.training.train_cross_fitted`): each member trained without one
    fold of the songs, so that every song has scores from a model that never heard it.

    Args:
        members: configs of the members (``ContrastiveScorer.config()``), all equal.
    """

    name = "contrastive-ensemble"

    def __init__(self, members: list[dict]):
        if not members:
            raise ValueError("a contrastive ensemble needs at least one member")
        built = [ContrastiveScorer.from_config(m) for m in members]
        first = built[0]
        super().__init__(first.sample_rate, first.tail_samples, first.head_samples)
        self.members = nn.ModuleList(built)

    @classmethod
    def of(cls, members: list[ContrastiveScorer]) -> ContrastiveEnsemble:
        """An ensemble holding these trained members (their weights copied)."""
        out = cls([m.config() for m in members])
        for mine, theirs in zip(out.members, members):
            mine.load_state_dict(theirs.state_dict())
        return out

    def config(self) -> dict:
        return {"members": [m.config() for m in self.members]}

    @classmethod
    def from_config(cls, cfg: dict) -> ContrastiveEnsemble:
        """Members' configs carry their own rate; a top-level ``sample_rate`` (a fresh build) fills it in."""
        rate = {"sample_rate": cfg["sample_rate"]} if "sample_rate" in cfg else {}
        return cls([{**rate, **m} for m in cfg["members"]])

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed_tails(tails) for m in self.members], 1) / len(self.members)

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.embed_heads(heads) for m in self.members], 1)


def _train_ensemble(scorer: ContrastiveEnsemble, ctx: TrainContext) -> dict:
    raise ParameterError(
        "a contrastive ensemble is made by `--model fusion` on a pool with few validation songs, not trained alone"
    )


register(ContrastiveEnsemble, train=_train_ensemble)
