"""Spectral front end in torch: STFT / iSTFT, magnitude, dB, mel, MFCC and Griffin-Lim.

The settings (:class:`SpectrogramConfig`), windows, mel filterbank and DCT come from the
torch-free :mod:`soundloom.core.spectrogram`, which also computes the forward features in NumPy.

Conventions: waveforms are ``(..., samples)``; complex and magnitude spectrograms are
``(..., n_fft // 2 + 1, frames)`` (every bin kept, Nyquist included); mel spectrograms are
``(..., n_mels, frames)``. STFTs are centred (frame ``t`` is centred on sample ``t * hop``), so
a signal of ``n`` samples has ``1 + n // hop`` frames. Everything runs on any device and batch.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch

from .errors import ParameterError
from .spectrogram import KINDS, WINDOWS, SpectrogramConfig, dct_matrix, mel_basis  # noqa: F401  (re-exported)


def get_window(name: str, win_length: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Periodic window of ``win_length`` samples (the STFT convention)."""
    fns = {"hann": torch.hann_window, "blackman": torch.blackman_window, "hamming": torch.hamming_window}
    if name not in fns:
        raise ParameterError(f"window must be one of {WINDOWS}, got {name!r}")
    return fns[name](win_length, periodic=True, device=device, dtype=dtype)


def stft(wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """Complex STFT: ``(..., samples)`` -> ``(..., n_fft // 2 + 1, frames)``."""
    shape = wav.shape
    flat = wav.reshape(-1, shape[-1])
    win = get_window(cfg.window, cfg.win_length, wav.device, wav.dtype)
    spec = torch.stft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=win,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: SpectrogramConfig, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: ``(..., n_fft // 2 + 1, frames)`` complex -> ``(..., samples)``."""
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    win = get_window(cfg.window, cfg.win_length, spec.device, spec.real.dtype)
    wav = torch.istft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=win,
        center=True,
        length=length,
    )
    return wav.reshape(*shape[:-2], wav.shape[-1])


def magnitude(wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """Magnitude spectrogram ``(..., n_fft // 2 + 1, frames)``."""
    return stft(wav, cfg).abs()


def amplitude_to_db(x: torch.Tensor, floor_db: float = -100.0) -> torch.Tensor:
    """``20 log10(x)`` clipped below at ``floor_db`` (absolute, full scale = 1.0)."""
    return (20.0 * torch.log10(x.clamp_min(10 ** (floor_db / 20)))).clamp_min(floor_db)


def power_to_db(x: torch.Tensor, floor_db: float = -100.0) -> torch.Tensor:
    """``10 log10(x)`` clipped below at ``floor_db``."""
    return (10.0 * torch.log10(x.clamp_min(10 ** (floor_db / 10)))).clamp_min(floor_db)


def mean_power_db(db: torch.Tensor, dim: int | tuple[int, ...] = -1, keepdim: bool = False) -> torch.Tensor:
    """The level in dB of the power averaged over ``dim`` of values in dB, ``10 log10 mean(10 ** (db / 10))``, by
    log-sum-exp (stable for -150 dB rows; differentiable)."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    k = math.log(10.0) / 10.0
    n = math.prod(db.shape[d] for d in dims)
    return (torch.logsumexp(db * k, dim=dims, keepdim=keepdim) - math.log(n)) / k


def db_to_amplitude(db: torch.Tensor) -> torch.Tensor:
    return torch.pow(10.0, db / 20.0)


def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Slaney filterbank ``(n_mels, n_fft // 2 + 1)`` float32 (shared with the NumPy path; a
    writable copy, as ``torch.from_numpy`` wants)."""
    return mel_basis(sample_rate, n_fft, n_mels, fmin, fmax).copy()


def mel_filterbank(cfg: SpectrogramConfig, device=None) -> torch.Tensor:
    """Slaney mel filterbank ``(n_mels, n_fft // 2 + 1)``."""
    basis = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz)
    return torch.from_numpy(basis).to(device)


def mel_spectrogram(wav: torch.Tensor, cfg: SpectrogramConfig, power: float = 2.0) -> torch.Tensor:
    """Mel spectrogram ``(..., n_mels, frames)`` of ``|STFT|**power``."""
    mag = magnitude(wav, cfg)
    return torch.matmul(mel_filterbank(cfg, wav.device), mag.pow(power))


def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II ``(n_mfcc, n_mels)`` float32 (shared with the NumPy path; a writable copy)."""
    return dct_matrix(n_mels, n_mfcc).copy()


def mfcc(wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """MFCC ``(..., n_mfcc, frames)``: DCT-II (ortho) of the dB mel power spectrogram (as librosa)."""
    mel_db = power_to_db(mel_spectrogram(wav, cfg), cfg.floor_db)
    dct = torch.from_numpy(_dct_matrix(cfg.n_mels, cfg.n_mfcc)).to(wav.device)
    return torch.matmul(dct, mel_db)


def features(wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """The feature ``cfg.kind`` asks for: ``(..., cfg.n_rows, frames)``.

    "db" is ``20 log10 |STFT|``, "mel" is ``10 log10`` of mel power, both floored at ``floor_db``.
    """
    if cfg.kind == "magnitude":
        return magnitude(wav, cfg)
    if cfg.kind == "power":
        return magnitude(wav, cfg).pow(2)
    if cfg.kind == "db":
        return amplitude_to_db(magnitude(wav, cfg), cfg.floor_db)
    if cfg.kind == "mel":
        return power_to_db(mel_spectrogram(wav, cfg), cfg.floor_db)
    return mfcc(wav, cfg)


def features_to_magnitude(
    feat: torch.Tensor, cfg: SpectrogramConfig, mel_iters: int = 16, mel_method: str = "fista", mel_init: str = "interp"
) -> torch.Tensor:
    """Linear magnitude ``(..., n_fft // 2 + 1, frames)`` from features of ``cfg.kind``.

    Mel features are inverted by non-negative least squares (accelerated projected gradient, as librosa's
    ``mel_to_stft`` solves it, started from each bin's share of its triangles' power rather than from the
    pseudo-inverse; see :func:`mel_to_magnitude`); 16 iterations of it lost less (spectral convergence 0.260 on
    48 dev notes, from the pseudo-inverse) than 32 of the plain projected gradient did (0.275).
    ``mel_method``, ``mel_init``: see :func:`mel_to_magnitude`.
    """
    if cfg.kind == "magnitude":
        return feat.clamp_min(0)
    if cfg.kind == "power":
        return feat.clamp_min(0).sqrt()
    if cfg.kind == "db":
        return db_to_amplitude(feat)
    if cfg.kind == "mel":
        return mel_to_magnitude(torch.pow(10.0, feat / 10.0), cfg, iters=mel_iters, method=mel_method, init=mel_init)
    raise ParameterError("MFCC features cannot be inverted to audio")


@lru_cache(maxsize=8)
def _mel_inverse(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None):
    """Filterbank, its pseudo-inverse and the gradient step ``1 / ||fb||_2^2``, once per config."""
    fb = torch.from_numpy(_mel_basis(sample_rate, n_fft, n_mels, fmin, fmax))
    return fb, torch.linalg.pinv(fb), 1.0 / float(torch.linalg.matrix_norm(fb, ord=2) ** 2)


@lru_cache(maxsize=8)
def _mel_interp(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    """``(bins, n_mels)``: each bin's power as the mean of its triangles' power per unit of filter weight, weighted by
    its weight in each (0 for bins in no triangle). A flat spectrum comes back flat, and a bin only ever gets power
    from the triangles it lies in: unlike the pseudo-inverse, whose rows swing negative and positive across the wide
    high triangles, so that after clamping one band's energy leaks into bins far from it."""
    fb = _mel_inverse(sample_rate, n_fft, n_mels, fmin, fmax)[0]
    cover = fb.sum(dim=0, keepdim=True)  # (1, bins)
    share = torch.where(cover > 0, fb / cover.clamp_min(1e-30), torch.zeros_like(fb))
    return (share / fb.sum(dim=1, keepdim=True).clamp_min(1e-30)).T.contiguous()


@lru_cache(maxsize=8)
def _mel_diagonal_step(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    """Per-bin steps ``(bins, 1)``: ``1 / (fb^T fb 1)_k``, 0 for bins in no triangle (they keep the start's 0).

    ``diag(fb^T fb 1) - fb^T fb`` is diagonally dominant with a non-negative diagonal (every entry of ``fb^T fb`` is
    >= 0), so positive semi-definite (Gershgorin): a diagonal bound on the curvature that keeps each projected step a
    descent (the FISTA bound in that metric). The one global step ``1 / ||fb||_2^2`` is set by the tall narrow low
    triangles of the area-normalised (Slaney) filterbank and crawls in the wide high ones; these steps do not.
    """
    fb = _mel_inverse(sample_rate, n_fft, n_mels, fmin, fmax)[0]
    rows = fb.T @ fb.sum(dim=1, keepdim=True)
    return torch.where(rows > 0, 1.0 / rows.clamp_min(1e-30), torch.zeros_like(rows))


@lru_cache(maxsize=8)
def _mel_sparse(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, diag: bool = False):
    """The filterbank and its transpose (``diag``: each row of the transpose times its bin's step, see
    :func:`_mel_diagonal_step`) as CSR matrices: each bin lies in at most two triangles, so the products of the
    inversion's loop touch ~2 of every ``n_mels`` entries a dense product would. Their indices are int32: with
    int64 ones every product first converts them (the same product, bit for bit, at about 60% of the time)."""
    fb = _mel_inverse(sample_rate, n_fft, n_mels, fmin, fmax)[0]
    fb_t = fb.T * _mel_diagonal_step(sample_rate, n_fft, n_mels, fmin, fmax) if diag else fb.T
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is long stable
        warnings.simplefilter("ignore", UserWarning)
        return tuple(_csr32(m.contiguous().to_sparse_csr()) for m in (fb, fb_t))


def _csr32(m: torch.Tensor) -> torch.Tensor:
    """A CSR matrix with int32 row and column indices (the ones the CPU's sparse product takes as they are)."""
    return torch.sparse_csr_tensor(
        m.crow_indices().int(), m.col_indices().int(), m.values(), m.shape, check_invariants=True
    )


MEL_METHODS = ("fista", "fista-diag")
MEL_INITS = ("interp", "pinv")


def mel_to_magnitude(
    mel_power: torch.Tensor, cfg: SpectrogramConfig, iters: int = 16, method: str = "fista", init: str = "interp"
) -> torch.Tensor:
    """Approximate ``|STFT|`` from mel power ``(..., n_mels, frames)`` (non-negative least squares).

    ``method``: "fista" (one step size for every bin) or "fista-diag" (a step per bin, see
    :func:`_mel_diagonal_step`: the same cost per iteration, closer to the NNLS optimum in as many; on real clips
    through 64 mel bands and 8 Griffin-Lim iterations, 16 iterations of it reach spectral convergence 0.291 /
    0.240 / 0.179 and log-spectral distance 8.24 / 11.38 / 6.01 dB on one-shots / notes / digits, against 0.303 /
    0.260 / 0.181 and 9.24 / 11.70 / 6.20 dB: ``benchmarks/bench_griffin_lim.py --mel-methods``, measured with the
    "pinv" start). ``init``: where the iterations start, "interp" (:func:`_mel_interp`) or "pinv" (the clamped
    pseudo-inverse, as librosa's ``mel_to_stft`` starts and as soundloom rendered before: its leakage gave the built-in
    rising sweeps a spectral floor 5-7 dB noisier than recorded after 16 iterations, README).
    """
    if method not in MEL_METHODS:
        raise ParameterError(f"mel inversion method must be one of {MEL_METHODS}, got {method!r}")
    if init not in MEL_INITS:
        raise ParameterError(f"mel inversion start must be one of {MEL_INITS}, got {init!r}")
    key = (cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz)
    fb, pinv, step = _mel_inverse(*key)
    start = (pinv if init == "pinv" else _mel_interp(*key)).to(mel_power.device)
    diag = method == "fista-diag"
    if mel_power.device.type == "cpu":
        fb_s, fb_t = _mel_sparse(*key, diag)
    else:
        fb_s, fb_t = fb.to(mel_power.device), fb.T.to(mel_power.device)
        if diag:
            fb_t = fb_t * _mel_diagonal_step(*key).to(mel_power.device)
    if diag:  # the per-bin steps are folded into the transpose: the loop is the same as with one step of 1
        step = 1.0
    # Every frame of every item is one column of a 2-D problem, solved in blocks of columns: on the CPU a block
    # of 512 keeps the loop's (bins, 512) matrices in cache (half the time of one pass over every column).
    shape = mel_power.shape
    mel = mel_power.float().movedim(-2, 0).reshape(shape[-2], -1)
    block = 512 if mel_power.device.type == "cpu" else max(1, mel.shape[1])
    power = torch.cat(
        [_mel_nnls(mel[:, i : i + block], fb_s, fb_t, start, step, iters) for i in range(0, mel.shape[1], block)], 1
    )
    out = power.sqrt_().reshape(fb.shape[1], *shape[:-2], shape[-1])
    return out.movedim(0, -2)


def _mel_nnls(
    mel: torch.Tensor, fb_s: torch.Tensor, fb_t: torch.Tensor, start: torch.Tensor, step: float, iters: int
) -> torch.Tensor:
    """Power ``(bins, N) >= 0`` minimising ``||fb @ P - mel||^2`` for mel power ``(n_mels, N)``, from ``start @ mel``
    clamped at 0 (``start`` ``(bins, n_mels)``: the pseudo-inverse or :func:`_mel_interp`). ``fb_t``: the transpose, or
    the transpose with a step per row folded in (``step`` then 1).

    Accelerated projected gradient (FISTA, Beck & Teboulle 2009): the plain projected gradient needs about
    four times the iterations for the same mel error. In place where it can be: the loop is memory-bound.
    """
    power = torch.matmul(start, mel).clamp_min_(0)
    fb_t_mel = torch.matmul(fb_t, mel)
    point, t = power, 1.0
    for _ in range(iters):
        grad = torch.matmul(fb_t, torch.matmul(fb_s, point)).sub_(fb_t_mel)
        new = torch.add(point, grad, alpha=-step).clamp_min_(0)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        point = torch.add(new, power.sub_(new), alpha=-(t - 1.0) / t_next)  # new + c (new - power)
        power, t = new, t_next
    return power


def vocoder_phase(mag: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """Initial phase ``(..., F, frames)`` for Griffin-Lim, as a phase vocoder would build it.

    Each bin takes the frequency of its nearest spectral peak (parabolic interpolation on log
    magnitude) and its phase advances by ``2 pi f hop / n_fft`` per frame; ``pi * k`` is the
    linear-phase term of a centred frame, so the bins of one peak's main lobe start coherent.
    """
    n_bins = mag.shape[-2]
    # Bins last and contiguous (an elementwise op on a transposed view keeps its strides): the running max /
    # min along bins are several times faster that way, and the cumulative sum over frames runs down rows.
    # (``+`` makes a new tensor first: ``mag`` may already be laid out that way, and must not be touched.)
    logm = (mag.float().transpose(-1, -2) + 1e-9).contiguous().log_()
    lo = torch.nn.functional.pad(logm[..., :-1], (1, 0), value=-1e9)
    hi = torch.nn.functional.pad(logm[..., 1:], (0, 1), value=-1e9)
    mid = logm
    not_peak = (mid < lo).logical_or_(mid <= hi)
    denom = torch.add(lo, mid, alpha=-2.0).add_(hi)
    flat = denom.abs() <= 1e-9
    delta = torch.sub(lo, hi).mul_(0.5).div_(denom.masked_fill_(flat, 1.0)).masked_fill_(flat, 0.0).clamp_(-0.5, 0.5)
    # The nearest peak at or below / at or above each bin, by running max / min over bin indices (int32: the
    # scans run about twice as fast as on floats); ties go to the lower one, no peak below to the upper one,
    # no peak at all to bin 0.
    k = torch.arange(n_bins, device=mag.device, dtype=torch.int32).expand_as(mid)
    left = k.masked_fill(not_peak, -1).cummax(dim=-1).values
    right = k.masked_fill(not_peak, 2 * n_bins).flip(-1).cummin(dim=-1).values.flip(-1)
    owner = torch.where((left < 0).logical_or_((k - left) > (right - k)), right, left)
    owner = owner.masked_fill_(owner >= n_bins, 0).long()
    k = k[..., :1, :].to(logm.dtype)
    freq_bins = torch.gather(delta.add_(k), -1, owner)  # (..., frames, F)
    # The running sum over frames along contiguous rows (frames last): torch's cumsum runs several times faster
    # there than down the columns, to the same sums (each one accumulated in order either way).
    step = freq_bins.mul_(2 * np.pi * int(cfg.hop_length) / cfg.n_fft).transpose(-1, -2).contiguous()
    return torch.cumsum(step, dim=-1).sub_(step[..., :1]).add_(np.pi * k.transpose(-1, -2))


def griffin_lim(
    mag: torch.Tensor,
    cfg: SpectrogramConfig,
    n_iter: int = 32,
    momentum: float = 0.99,
    length: int | None = None,
    init: str = "vocoder",
    seed: int | None = 0,
    ceiling_iters: int = 0,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013): phase from a magnitude.

    Args:
        mag: magnitude ``(..., n_fft // 2 + 1, frames)`` on any device; batched.
        n_iter: iterations; 32 is usually enough with momentum.
        momentum: the "fast" acceleration; 0 gives classic Griffin-Lim.
        length: output samples (default ``(frames - 1) * hop``).
        init: "vocoder" (phase advanced at each spectral peak's interpolated frequency, see
            :func:`vocoder_phase`; converges in fewer iterations on tonal sounds), "random"
            (seeded, as librosa) or "zeros".
        ceiling_iters: how many of the ``n_iter`` iterations, the last ones, project the consistent
            spectrum onto ``|X| <= mag`` (keep it where it is below the target, cut it to the target
            where it is above) instead of setting ``|X| = mag``, without momentum (alternating
            projections between two convex sets). They cut what leaks above the target rather than
            re-impose its magnitude everywhere, so less energy lands where the target is near silent
            (tests), at some spectral convergence on inconsistent (mel-inverted) targets; they cost
            what the iterations they replace cost. 0 (the default) is plain fast Griffin-Lim, bit for bit.
    Returns:
        Waveform ``(..., samples)``. Every item is computed independently, so a batch gives
        the same result as its items one by one.
    """
    if mag.shape[-2] != cfg.n_bins:
        raise ValueError(f"expected {cfg.n_bins} bins (n_fft={cfg.n_fft}), got {mag.shape[-2]}")
    if not 0 <= ceiling_iters <= n_iter:
        raise ParameterError(f"ceiling_iters must be within 0..n_iter ({n_iter}), got {ceiling_iters}")
    if init not in ("vocoder", "random", "zeros"):
        raise ParameterError(f"init must be 'vocoder', 'random' or 'zeros', got {init!r}")
    mag = mag.float()
    phase = None  # "vocoder" on the framed path: built chunk by chunk below (every item's phase is its own)
    if init == "random":
        gen = torch.Generator(device="cpu")
        gen.manual_seed(0 if seed is None else seed)
        phase = (torch.rand(mag.shape, generator=gen) * (2 * np.pi)).to(mag.device)
    elif init == "zeros":
        phase = torch.zeros_like(mag)
    hop, frames = int(cfg.hop_length), mag.shape[-1]
    out_len = (frames - 1) * hop if length is None else int(length)
    # Iterate at a length whose STFT has exactly `frames` frames; trim or pad to `length` after.
    work_len = out_len if 1 + out_len // hop == frames else (frames - 1) * hop
    if cfg.n_fft % hop == 0:
        shape = mag.shape
        flat = mag.reshape(-1, *shape[-2:])
        flat_phase = None if phase is None else phase.reshape(-1, *shape[-2:])
        # Items in chunks of about _GL_CHUNK_BINS spectrum values: every item is computed on its own (batch
        # invariant, tested), so chunks give the same audio bit for bit, and on the CPU a chunk's spectra, frames
        # and signals stay in cache through the iterations (about 40% less time than the whole batch at once).
        size = frames * shape[-2]
        step = max(1, round(_GL_CHUNK_BINS / size)) if mag.device.type == "cpu" else max(1, flat.shape[0])
        parts = []
        for i in range(0, flat.shape[0], step):
            m = flat[i : i + step]
            p = vocoder_phase(m, cfg) if flat_phase is None else flat_phase[i : i + step]
            parts.append(_griffin_lim_frames(m, p, cfg, n_iter, momentum, work_len, ceiling_iters))
        wav = torch.cat(parts).reshape(*shape[:-2], work_len)
    else:
        if phase is None:
            phase = vocoder_phase(mag, cfg)
        angles = torch.polar(torch.ones_like(mag), phase)
        prev = torch.zeros_like(angles)
        alpha = momentum / (1.0 + momentum)
        spec = mag * angles
        for i in range(n_iter):
            rebuilt = stft(istft(spec, cfg, length=work_len), cfg)
            if i >= n_iter - ceiling_iters:
                spec = rebuilt * (torch.minimum(rebuilt.abs(), mag) / (rebuilt.abs() + 1e-16))
                continue
            angles = rebuilt - alpha * prev
            angles = angles / (angles.abs() + 1e-16)
            spec = mag * angles
            prev = rebuilt
        wav = istft(spec, cfg, length=work_len)
    if work_len == out_len:
        return wav
    return torch.nn.functional.pad(wav, (0, max(0, out_len - work_len)))[..., :out_len]


# Spectrum values (items x frames x bins) Griffin-Lim iterates on at once on the CPU: 4 one-second items at
# n_fft 512 / hop 128 (128 x 257 each), 8 at n_fft 256; one item when a single one is larger. Measured on 20
# one-shots: 4 items at a time 85-96 ms, 2 at a time 84-95, 1 at a time 96-102, all 20 at once 150-162.
_GL_CHUNK_BINS = 1 << 17


@lru_cache(maxsize=16)
def _frame_plan(n_fft: int, hop: int, win_length: int, window: str, frames: int, length: int, device: str):
    """Window zero-padded to ``n_fft`` (centred, as torch.stft), ``1 / envelope`` of overlap-add ``(n_fft + (frames
    - 1) * hop,)`` and the weight ``(frames, n_fft)`` of each framed sample on the way back to a spectrum: window
    times ``1 / envelope`` inside the signal, 0 in the constant padding around it."""
    win = get_window(window, win_length, device=device)
    left = (n_fft - win_length) // 2
    win = torch.nn.functional.pad(win, (left, n_fft - win_length - left))
    inv_env = 1.0 / _overlap_add(win.pow(2).expand(1, frames, n_fft), hop)[0].clamp_min(1e-11)
    half = n_fft // 2
    inside = torch.zeros_like(inv_env)
    end = min(len(inv_env), half + length)
    inside[half:end] = inv_env[half:end]
    return win, inv_env, (inside.unfold(0, n_fft, hop) * win).contiguous()


def _overlap_add(frames: torch.Tensor, hop: int, win: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, T, n_fft)`` -> ``(N, n_fft + (T - 1) * hop)``, each frame times ``win (n_fft,)`` when given; needs
    ``n_fft % hop == 0``."""
    n, t, n_fft = frames.shape
    r = n_fft // hop
    parts = frames.reshape(n, t, r, hop)
    out = frames.new_zeros(n, t + r - 1, hop)
    for k in range(r):
        if win is None:
            out[:, k : k + t] += parts[:, :, k]
        else:
            out[:, k : k + t].addcmul_(parts[:, :, k], win[k * hop : (k + 1) * hop])
    return out.reshape(n, -1)


def _griffin_lim_frames(
    mag: torch.Tensor,
    phase: torch.Tensor,
    cfg: SpectrogramConfig,
    n_iter: int,
    momentum: float,
    length: int,
    ceiling_iters: int = 0,
) -> torch.Tensor:
    """The same iteration as the ``torch.stft`` loop, with the frame plumbing done once.

    On short clips torch.stft / istft spend most of their time on per-call set-up (window,
    padding, envelope, fold); here frames are strided views and overlap-add is ``n_fft / hop``
    shifted multiply-adds (the synthesis window applied on the way). Between iterations the signal is
    only ever framed again, so its ``1 / envelope`` and the zeros of the centred STFT's constant padding
    (``n_fft // 2`` each side) are folded into one weight per framed sample (:func:`_frame_plan`).
    Spectra are complex ``(B, frames, bins)``. ``mag``, ``phase``: ``(B, bins, frames)``.
    """
    n_fft, hop = cfg.n_fft, int(cfg.hop_length)
    t = mag.shape[-1]
    win, inv_env, frame_w = _frame_plan(n_fft, hop, int(cfg.win_length), cfg.window, t, length, str(mag.device))
    half = n_fft // 2

    def to_signal(spec: torch.Tensor) -> torch.Tensor:  # (B, n_fft + (t - 1) * hop), before 1 / envelope
        return _overlap_add(torch.fft.irfft(spec, n=n_fft), hop, win)

    def to_spec(sig: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft(sig.unfold(-1, n_fft, hop) * frame_w, dim=-1)

    mag_t = mag.transpose(1, 2).contiguous()  # (B, T, F)
    phase_t = phase.transpose(1, 2)
    spec = torch.view_as_complex(torch.stack([torch.cos(phase_t), torch.sin(phase_t)], dim=-1)).mul_(mag_t)
    prev = None
    alpha = momentum / (1.0 + momentum)
    for i in range(n_iter):
        rebuilt = to_spec(to_signal(spec))
        if i >= n_iter - ceiling_iters:
            # Projection onto |X| <= mag of the consistent spectrum itself: min(1, mag / |rebuilt|) per bin.
            pairs = torch.view_as_real(rebuilt)
            scale = torch.mul(pairs[..., 0], pairs[..., 0]).addcmul_(pairs[..., 1], pairs[..., 1]).sqrt_().add_(1e-16)
            spec = rebuilt.mul_(torch.div(mag_t, scale, out=scale).clamp_max_(1.0))
            continue
        spec = rebuilt.clone() if prev is None else torch.add(rebuilt, prev, alpha=-alpha)
        # The accelerated estimate's phase with the target magnitude: one real scale per bin. |x| as the root
        # of re^2 + im^2 (torch.hypot / complex abs guard against overflow, which magnitudes never near, at
        # twice the cost).
        pairs = torch.view_as_real(spec)
        scale = torch.mul(pairs[..., 0], pairs[..., 0]).addcmul_(pairs[..., 1], pairs[..., 1]).sqrt_().add_(1e-16)
        spec.mul_(torch.div(mag_t, scale, out=scale))
        prev = rebuilt
    end = min(len(inv_env), half + length)
    wav = torch.mul(to_signal(spec)[:, half:end], inv_env[half:end])
    return torch.nn.functional.pad(wav, (0, length - wav.shape[-1])) if wav.shape[-1] < length else wav


def spectral_convergence(target_mag: torch.Tensor, wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """``||S - |STFT(wav)|||_F / ||S||_F`` per item: target ``(..., F, T)``, wav ``(..., samples)``."""
    est = magnitude(wav, cfg)
    frames = min(est.shape[-1], target_mag.shape[-1])
    diff = (target_mag[..., :frames] - est[..., :frames]).flatten(-2)
    return diff.norm(dim=-1) / target_mag[..., :frames].flatten(-2).norm(dim=-1).clamp_min(1e-12)
