"""A small causal transformer over a trained vqvae's codes: the learned prior (as Jukebox's, much smaller).

The sequence starts with a condition token (a learned start vector plus the label and pitch embeddings)
and predicts each code from the ones before it. Attention has no position embeddings but ALiBi biases
(Press et al. 2022: a penalty linear in the distance), so a model trained on one-item windows slides past
them: :meth:`PriorModel.sample_codes` keeps at most ``code_frames - 1`` codes as context, sliding in hops of
half a window (as Jukebox samples in overlapping windows), and makes a sound of any length, the vqvae's
convolutional decoder turning the whole code sequence into one spectrogram (no seams between windows).

The run stores a reference to its vqvae (path + SHA-256 of its weights); the Generator loads both
(:meth:`PriorConfig.requires`, :meth:`PriorModel.attach`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ModelFileError, ParameterError
from ..runfiles import read_run_info, run_reference
from .protocol import EmbeddedConditions
from .registry import KindOption, ModelKind, register
from .vqvae import VQVAE, _top_k


@dataclass
class PriorConfig:
    """Everything needed to rebuild a prior (JSON beside the weights).

    Attributes:
        vqvae: the vqvae run ``{"run": path, "sha256": of its weights}``.
        codebook_size, code_frames: the vqvae's codes and one item's latent frames (the attention window).
        rows, frames: the vqvae's feature shape.
        labels, n_pitches: conditions (class names; MIDI pitch classes, 0 = none).
        width, layers, heads: transformer size.
        joined: share of each training batch made of windows across two items of one label played one after
            the other (the tail of one, the head of the next), so the prior learns what follows a sound's
            end when its window slides past one item (0 in runs made before it existed). Such windows, and
            sampling's windows once they slide, begin with a learned "resumed" vector added to the condition
            token, meant to keep a window that starts where a sound starts modelled as without them (on the
            digits it does not yet: 1-s samples still end early, see ``soundloom models``).
    """

    kind: str = "prior"
    vqvae: dict = field(default_factory=dict)
    codebook_size: int = 256
    code_frames: int = 32
    rows: int = 64
    frames: int = 128
    labels: list[str] = field(default_factory=list)
    n_pitches: int = 0
    width: int = 128
    layers: int = 3
    heads: int = 4
    joined: float = 0.0

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ParameterError(f"prior width ({self.width}) must be a multiple of heads ({self.heads})")
        if not 0.0 <= self.joined <= 1.0:
            raise ParameterError(f"prior joined must be between 0 and 1, got {self.joined}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PriorConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def requires(self) -> dict[str, dict]:
        return {"vqvae": dict(self.vqvae)}


@lru_cache(maxsize=64)
def alibi_bias(n: int, heads: int) -> torch.Tensor:
    """Causal ALiBi attention bias ``(heads, n, n)``: ``-slope_h * (i - j)`` for ``j <= i``, ``-inf`` after.

    Cached (sampling asks for the same few sizes at every step); callers must not modify it in place."""
    slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)])
    pos = torch.arange(n)
    dist = (pos[:, None] - pos[None, :]).float()
    bias = -slopes[:, None, None] * dist[None]
    return bias.masked_fill(dist[None] < 0, float("-inf"))


class KVCache:
    """One block's keys and values of the positions so far ``(B, heads, n, d)``, keys already scaled by
    ``sqrt(1 / sqrt(d))`` as the attention uses them, so a sampling step scales one position's key instead of
    the whole cache. Kept contiguous (extended by concatenation): a preallocated buffer's views cost the
    attention's matmuls more than the copy they save at this size."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``k`` (scaled) and ``v`` ``(B, heads, t, d)``; returns every position's ``(B, heads, n, d)``."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[2]


def cached_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, cache: KVCache, scale: float
) -> torch.Tensor:
    """Attention ``(B, heads, t, d)`` of the new positions ``q, k, v (B, heads, t, d)`` over the cached ones and
    themselves (``k`` and ``v`` are added to ``cache``), written out as the CPU's ``scaled_dot_product_attention``
    computes it with a bias ``(heads, t, n)``: q and k each scaled by ``scale``, the same numbers."""
    keys, values = cache.append(k * scale, v)
    return torch.matmul(torch.matmul(q * scale, keys.transpose(-2, -1)).add_(bias).softmax(dim=-1), values)


class Block(nn.Module):
    """Pre-norm transformer block ``(B, T, width) -> (B, T, width)`` with a given attention bias."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    @property
    def scale(self) -> float:
        """What ``scaled_dot_product_attention`` multiplies q and k by, each: ``sqrt(1 / sqrt(d))``."""
        return math.sqrt(1.0 / math.sqrt(self.qkv.out_features // 3 // self.heads))

    def forward(self, x: torch.Tensor, bias: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """``x (B, T, width)``: the new positions; ``bias (heads, T, past + T)``. ``cache``, when given, holds
        this block's keys and values of the earlier positions (empty at first) and is extended; the attention
        is then the one :meth:`step` writes out (the same numbers as ``scaled_dot_product_attention``)."""
        b, t, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            att = cached_attention(q, k, v, bias, cache, self.scale)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, w))
        return x + self.mlp(self.norm2(x))

    def weights(self) -> tuple:
        """The tensors and constants :func:`block_step` needs, looked up once (nn.Module attribute access costs
        about as much as a small op, and a step has a dozen)."""
        n1, n2, up, down = self.norm1, self.norm2, self.mlp[0], self.mlp[2]
        return (
            n1.normalized_shape,
            n1.weight,
            n1.bias,
            n1.eps,
            self.qkv.weight,
            self.qkv.bias,
            self.proj.weight,
            self.proj.bias,
            n2.weight,
            n2.bias,
            n2.eps,
            up.weight,
            up.bias,
            down.weight,
            down.bias,
            self.heads,
            self.scale,
        )

    def step(self, x: torch.Tensor, bias: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """:meth:`forward` for one new position ``x (B, 1, width)`` after the keys and values in ``cache``
        (extended), for sampling: :func:`block_step`."""
        return block_step(x, bias, cache, self.weights())


def block_step(x: torch.Tensor, bias: torch.Tensor, cache: KVCache, weights: tuple) -> torch.Tensor:
    """One block's :meth:`Block.forward` for one new position ``x (B, 1, width)`` after the keys and values in
    ``cache`` (extended), with the block's :meth:`Block.weights`. The layers' functions are called directly (the
    same arithmetic without nn.Module's per-call overhead, a good part of the cost at one position per step), and
    the attention is written out as the CPU's ``scaled_dot_product_attention`` computes it with a bias (its
    generic path: the same arithmetic, the same numbers) without the dispatch and checks that cost as much as
    the attention at this size; the cache's keys are scaled once, when written, not at every step."""
    shape, g1, b1, e1, wqkv, bqkv, wproj, bproj, g2, b2, e2, wup, bup, wdown, bdown, heads, s = weights
    b, t, w = x.shape
    q, k, v = F.linear(F.layer_norm(x, shape, g1, b1, e1), wqkv, bqkv).view(b, t, 3, heads, w // heads).unbind(2)
    att = cached_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), bias, cache, s)
    x = x + F.linear(att.transpose(1, 2).reshape(b, t, w), wproj, bproj)
    return x + F.linear(F.gelu(F.linear(F.layer_norm(x, shape, g2, b2, e2), wup, bup)), wdown, bdown)


class PriorModel(EmbeddedConditions, nn.Module):
    """Autoregressive code model; the latent of a sound is its code sequence (as floats), of any length."""

    output = "features"
    continuable = True  # by priming with the prompt's codes
    interpolable = False
    variable_length = True

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.codebook_size, cfg.width)
        self.start = nn.Parameter(torch.zeros(cfg.width))
        self.label_embed = nn.Embedding(len(cfg.labels), cfg.width) if cfg.labels else None
        self.pitch_embed = nn.Embedding(cfg.n_pitches, cfg.width) if cfg.n_pitches else None
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.codebook_size)
        nn.init.normal_(self.start, std=0.02)
        # Marks a window that does not begin where a sound begins (joined training windows, slid sampling).
        self.resumed = nn.Parameter(torch.randn(cfg.width) * 0.02) if cfg.joined > 0 else None
        self._vqvae: VQVAE | None = None

    # ---- the vqvae it stands on (not part of its own weights) ----------------------------------
    def attach(self, name: str, model: nn.Module) -> None:
        """Give the prior its vqvae (kept outside ``state_dict``: it has its own run)."""
        if name != "vqvae" or not isinstance(model, VQVAE):
            raise ModelFileError(self.cfg.vqvae.get("run", "?"), f"a prior needs a vqvae, got {name!r}")
        if model.cfg.codebook_size != self.cfg.codebook_size or model.cfg.code_frames != self.cfg.code_frames:
            raise ModelFileError(self.cfg.vqvae.get("run", "?"), "this vqvae's codes differ from the prior's")
        object.__setattr__(self, "_vqvae", model.eval())

    def upgrade_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights saved before the "resumed" vector existed (joined priors of older runs) get a zero one: it adds
        nothing to the condition token, so such a prior samples as it did."""
        if self.resumed is not None and "resumed" not in tensors:
            return {**tensors, "resumed": torch.zeros_like(self.resumed)}
        return tensors

    def _apply(self, fn, *args, **kwargs):
        """``.to(device)`` / ``.cpu()`` and the like move the attached vqvae too (it is not a submodule), so a
        prior trained on a GPU exports, and decodes, on the CPU."""
        if getattr(self, "_vqvae", None) is not None:
            self._vqvae._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    @property
    def vqvae(self) -> VQVAE:
        if self._vqvae is None:
            raise ParameterError("this prior has no vqvae attached (load it with Generator.from_run)")
        return self._vqvae

    @property
    def latent_size(self) -> int:
        return self.cfg.code_frames

    def latent_frames(self, frames: int) -> int:
        """Code frames that decode to at least ``frames`` feature frames."""
        return -(-int(frames) // self.vqvae.cfg.factor)

    # ---- the network ---------------------------------------------------------------------------
    def condition(
        self, labels: torch.Tensor | None, pitches: torch.Tensor | None, batch: int, resumed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The first token ``(B, width)``: start vector plus the condition embeddings, plus the "resumed" vector
        for the rows where ``resumed (B,)`` (bool) is true (a window that starts inside a stream of sounds)."""
        c = self.start.expand(batch, -1)
        if resumed is not None and self.resumed is not None:
            c = c + resumed.view(batch, 1).to(c.dtype) * self.resumed
        if self.label_embed is not None:
            if labels is None:
                raise ParameterError(f"this prior needs a label, one of {self.cfg.labels}")
            c = c + self.label_embed(labels.long().view(batch).clamp_min(0))
        if self.pitch_embed is not None:
            if pitches is None:
                raise ParameterError("this prior needs a MIDI pitch")
            c = c + self.pitch_embed(pitches.long().view(batch).clamp(0, self.cfg.n_pitches - 1))
        return c

    def logits(
        self, codes: torch.Tensor, labels=None, pitches=None, cache: list | None = None, resumed=None
    ) -> torch.Tensor:
        """Next-code logits ``(B, T + 1, codebook)`` after the condition token and each of ``codes (B, T)``.

        ``cache``: an empty list to fill with every block's :class:`KVCache`, for :meth:`next_logits`;
        ``resumed (B,)``: see :meth:`condition`.
        """
        b = codes.shape[0]
        x = torch.cat([self.condition(labels, pitches, b, resumed)[:, None], self.tokens(codes.long())], dim=1)
        bias = alibi_bias(x.shape[1], self.cfg.heads).to(x.device, x.dtype)
        if cache is not None:
            cache[:] = [KVCache() for _ in self.blocks]
        for i, block in enumerate(self.blocks):
            x = block(x, bias, cache[i] if cache is not None else None)
        return self.head(self.norm(x))

    def next_logits(self, code: torch.Tensor, cache: list, weights: list[tuple] | None = None) -> torch.Tensor:
        """Logits ``(B, codebook)`` after one more code ``(B,)``, from the keys and values in ``cache``
        (filled by :meth:`logits`, extended here): one position's work instead of the whole window's.
        ``weights``: the blocks' :meth:`Block.weights`, when the caller looked them up once for many steps."""
        weights = weights or [block.weights() for block in self.blocks]
        x = F.embedding(code.long().view(-1, 1), self.tokens.weight)
        t = len(cache[0])  # positions so far (the condition token included)
        bias = alibi_bias(t + 1, self.cfg.heads)[:, t:]
        if bias.dtype != x.dtype or bias.device != x.device:
            bias = bias.to(x.device, x.dtype)
        for kv, w in zip(cache, weights):
            x = block_step(x, bias, kv, w)
        norm, head = self.norm, self.head
        return F.linear(
            F.layer_norm(x[:, -1], norm.normalized_shape, norm.weight, norm.bias, norm.eps), head.weight, head.bias
        )

    def forward(self, codes: torch.Tensor, labels=None, pitches=None, resumed=None) -> torch.Tensor:
        """Mean cross-entropy ``()`` (nats per code) of ``codes (B, T)`` given the conditions."""
        logits = self.logits(codes[:, :-1], labels, pitches, resumed=resumed)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1).long())

    # ---- the generation protocol ---------------------------------------------------------------
    def encode_latent(self, x: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        """The vqvae's codes of ``x (B, rows, frames)``: ``(B, code_frames)`` float."""
        return self.vqvae.encode_latent(x)

    def decode_latent(self, codes: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        """The vqvae's decoding of ``codes (B, T)``: ``(B, rows, T * factor)`` (``frames`` for one item)."""
        return self.vqvae.decode_latent(codes)

    @torch.no_grad()
    def sample_codes(
        self,
        prefix: torch.Tensor,
        total: int,
        labels: torch.Tensor | None,
        pitches: torch.Tensor | None,
        temperature: float,
        generators: list[torch.Generator],
        top_k: int = 0,
        use_cache: bool = True,
        hop: int | None = None,
    ) -> torch.Tensor:
        """Codes ``(B, total)`` that begin with ``prefix (B, P)``; item ``b``'s draws come from ``generators[b]``.

        Each new code is sampled from at most ``code_frames - 1`` codes before it (one training window). Past
        that the window slides in hops (``hop`` codes, default half a window): the context restarts from the
        last ``window - hop`` codes and grows back to a full window, so the keys and values of one hop are
        computed once (``use_cache``) instead of the whole window running again for every code. Without the
        cache every step runs its context from scratch: the same contexts, the same codes (tested). The
        batch is one forward per step, so ``n`` sounds cost little more than one."""
        b, dev = len(generators), self.tokens.weight.device
        codes = prefix.round().long().view(b, -1).to(dev)
        if codes.shape[1] > total:
            raise ParameterError(f"prompt has {codes.shape[1]} code frames, more than the {total} asked")
        window = self.cfg.code_frames - 1
        hop = max(1, window // 2) if hop is None else int(hop)
        if not 1 <= hop <= max(window, 1):
            raise ParameterError(f"hop must be between 1 and the window ({window} codes), got {hop}")
        steps = total - codes.shape[1]
        # One uniform per step and item, drawn up front from the item's own generator: inverse-CDF sampling
        # for the whole batch at once instead of a multinomial call per item and step; (steps, B, 1), so a step
        # takes its column without a copy.
        uniforms = (
            torch.stack([torch.rand(steps, generator=g) for g in generators], dim=1)[..., None].to(dev)
            if steps
            else None
        )
        out = torch.empty(b, total, dtype=torch.long, device=dev)
        n = codes.shape[1]
        out[:, :n] = codes
        start = max(0, n - window)  # first code of the context
        cache: list | None = None
        inv_t = 1.0 / max(float(temperature), 1e-4)
        weights = [block.weights() for block in self.blocks]
        # Inference mode: ~15% less per-op overhead than no_grad in this loop of small ops; the codes are
        # copied out of it (.float()) so callers get an ordinary tensor.
        with torch.inference_mode():
            for step in range(steps):
                if n - start > window:  # slide: keep the last window - hop codes
                    start, cache = n - (window - hop), None
                if use_cache and cache is not None:
                    logits = self.next_logits(out[:, n - 1], cache, weights)
                else:
                    cache = [] if use_cache else None
                    resumed = torch.full((b,), start > 0, device=dev)
                    logits = self.logits(out[:, start:n], labels, pitches, cache, resumed)[:, -1]
                cdf = torch.softmax(_top_k(logits * inv_t if inv_t != 1.0 else logits, top_k), dim=-1).cumsum_(-1)
                # The first code whose cumulative probability exceeds u (scaled by the sum, so rounding never
                # reaches past the last code that has any probability).
                out[:, n : n + 1] = torch.searchsorted(cdf, uniforms[step] * cdf[:, -1:], right=True)
                n += 1
        return out.float()

    def slide_points(self, prefix: int, total: int, hop: int | None = None) -> list[int]:
        """Code positions ``< total`` at which :meth:`sample_codes` restarts its context (the window slides),
        for a prefix of ``prefix`` codes."""
        window = self.cfg.code_frames - 1
        hop = max(1, window // 2) if hop is None else int(hop)
        points, start = [], max(0, prefix - window)
        for n in range(prefix, total):
            if n - start > window:
                start = n - (window - hop)
                points.append(n)
        return points

    def continue_latent(
        self,
        prefix: torch.Tensor,
        total: int,
        labels: torch.Tensor | None,
        pitches: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator,
        top_k: int = 0,
    ) -> torch.Tensor:
        """Codes ``(total,)`` that begin with ``prefix (P,)`` (:meth:`sample_codes` of one item)."""
        return self.sample_codes(prefix[None], total, labels, pitches, temperature, [generator], top_k)[0]

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
        """``(n, frames)`` code sequences (``frames`` defaults to one item's ``code_frames``); ``labels`` /
        ``pitches`` ``(n,)`` or ``(1,)``; ``generator``: one, or one per item."""
        gens = generator if isinstance(generator, list) else [generator] * n
        labels = labels.expand(n) if labels is not None and labels.numel() == 1 else labels
        pitches = pitches.expand(n) if pitches is not None and pitches.numel() == 1 else pitches
        empty = torch.zeros(n, 0)
        return self.sample_codes(empty, frames or self.cfg.code_frames, labels, pitches, temperature, gens, top_k)

    def vary_latent(
        self,
        codes: torch.Tensor,
        amount: float,
        generator: torch.Generator,
        prior: dict[str, torch.Tensor],
        labels: torch.Tensor | None = None,
        pitches: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Keep the first ``1 - amount`` of ``codes (T,)`` and sample the rest again."""
        keep = int(math.floor((1.0 - min(max(float(amount), 0.0), 1.0)) * codes.shape[-1]))
        return self.continue_latent(codes[:keep], codes.shape[-1], labels, pitches, 1.0, generator)


def _new_prior_config(rows, frames, labels, n_pitches, latent_dim, channels, vqvae, width, layers, heads, joined):
    if not vqvae:
        raise ParameterError("a prior needs a trained vqvae run: --vqvae RUN")
    ref = run_reference(vqvae)
    vq = read_run_info(vqvae)["model"]
    if vq.get("kind") != "vqvae":
        raise ModelFileError(vqvae, f"is a {vq.get('kind')!r} run, not a vqvae")
    if (vq["rows"], vq["frames"]) != (rows, frames):
        raise ParameterError(
            f"the vqvae was trained on features ({vq['rows']}, {vq['frames']}), this store has ({rows}, {frames})"
        )
    factor = 2 ** len(vq["channels"])
    return PriorConfig(
        vqvae=ref,
        codebook_size=int(vq["codebook_size"]),
        code_frames=-(-int(vq["frames"]) // factor),
        rows=rows,
        frames=frames,
        labels=list(labels),
        n_pitches=n_pitches,
        width=width,
        layers=layers,
        heads=heads,
        joined=joined,
    )


register(
    ModelKind(
        name="prior",
        config=PriorConfig,
        build=PriorModel,
        new_config=_new_prior_config,
        training="soundloom.sounds.training.vq:prior_module",
        fit_prior="soundloom.sounds.training.vq:fit_no_prior",
        conditional=True,
        options=(
            KindOption("vqvae", str, "", "The trained vqvae run whose codes this prior models (required)."),
            KindOption("width", int, 128, "Transformer width."),
            KindOption("layers", int, 3, "Transformer blocks."),
            KindOption("heads", int, 4, "Attention heads."),
            KindOption(
                "joined",
                float,
                0.0,
                "Share of training windows across two items of a label, so continuations go on past a sound's end "
                "(0.25: level jumps between windows 41.5 -> 3.2 dB median on digits, but 1-s samples shorter).",
            ),
        ),
        help="Causal transformer over a vqvae's codes (--vqvae RUN), label/pitch-conditioned; any length.",
    )
)
