"""Train transition models on a chunk pool, split by song.

    soundloom train-transitions POOL --model contrastive --out runs/tr-contrastive --max-minutes 15
    soundloom train-transitions POOL --model fusion --out runs/tr-fusion    # contrastive + features, weight fit on val
    soundloom train-transitions POOL --model features --out runs/tr-features    # no training: pool statistics only
    soundloom train-transitions POOL --model cnn-lstm --out runs/tr-cnnlstm --max-minutes 10

``contrastive`` learns from *any* cut position inside the training songs, not only chunk
boundaries: a batch takes 16 songs x 16 random cut points, so every tail sees 15 same-song heads
and 240 other-song heads as negatives, plus heads with shifted cut points (0.05-0.5 s off) as hard
negatives. Log-mel frames of the training songs are computed once (un-centred, so a frame never
straddles the cut) and batches are slices of them.

On a pool with fewer than 3 validation songs (the demo's 8 songs give one), a fusion trains cross-fitted
(:func:`train_cross_fitted`): three contrastive members, each on two thirds of the non-test songs, so that its
fallback to ``features`` is decided on every non-test song instead of one.

A run directory holds ``config.json`` (model, config, split, metrics), ``model.safetensors`` and
``metrics.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from ...core.atomic import write_json
from ...core.cputime import process_cpu_seconds
from ...core.errors import ParameterError, PoolError
from ...core.progress import ProgressCallback, null_progress
from ...core.quiet import quiet_lightning
from ..catalog import ChunkCatalog
from ..pairs import SongAudio, chunk_windows, make_pairs, open_split, pair_windows
from .base import TransitionScorer, run_info
from .registry import TrainContext, build_scorer, get_kind, load_scorer, scorer_from_config


class CpuBudget(L.Callback):
    """Stops training (as ``max_time`` does: the fit ends and the run is saved) once the process has used
    ``cpu_minutes`` of CPU since the fit started, so that a run on a shared, loaded machine gets the steps
    it would get on an idle one. ``fraction()`` is how much of the budget is spent (0 without one)."""

    def __init__(self, cpu_minutes: float | None):
        self.limit_s = None if cpu_minutes is None else 60.0 * cpu_minutes
        self.start = process_cpu_seconds()

    def used_s(self) -> float:
        return process_cpu_seconds() - self.start

    def fraction(self) -> float:
        return 0.0 if self.limit_s is None else self.used_s() / max(self.limit_s, 1e-9)

    def on_train_start(self, trainer, *_):
        self.start = process_cpu_seconds()

    def on_train_batch_end(self, trainer, *_):
        if self.limit_s is not None and self.used_s() >= self.limit_s:
            trainer.should_stop = True


def _trainer(max_minutes: float, cpu: CpuBudget | None = None, callbacks: list | None = None, **kwargs) -> L.Trainer:
    """A CPU Trainer within ``max_minutes`` of wall clock (and ``cpu``'s CPU budget); no loggers,
    checkpoints or bars (ours report progress)."""
    callbacks = list(callbacks or []) + ([cpu] if cpu is not None else [])
    with quiet_lightning():  # the "GPU available" / tip banners are printed while the Trainer is built
        return L.Trainer(
            callbacks=callbacks,
            max_time={"minutes": max_minutes},
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
            num_sanity_val_steps=0,
            **kwargs,
        )


# ---------------------------------------------------------------------------------------------
# contrastive
# ---------------------------------------------------------------------------------------------
@dataclass
class MelAugmentation:
    """A corpus-level change of sound applied to log-mel dB frames ``(n_mels, frames)``: EQ tilt (dB from
    the lowest to the highest band), pitch shift (mel bands), tempo (frames per output frame) and a noise
    floor (dB below the window's peak band level). Gain is drawn per pair by :class:`CutBatches`.
    """

    tilt_db: float
    shift_bands: float
    tempo: float
    noise_below_db: float

    def span(self, frames: int) -> int:
        """Source frames that :meth:`apply` stretches to ``frames``."""
        return max(2, int(round(frames * self.tempo)))

    def apply(self, mel_db: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Augmented ``(n_mels, frames)``; ``frames`` defaults to ``round(span / tempo)``."""
        n_mels, span = mel_db.shape
        frames = frames or max(2, int(round(span / self.tempo)))
        x = mel_db
        if span != frames:  # tempo: resample the frame axis
            x = nn.functional.interpolate(x[None], size=frames, mode="linear", align_corners=True)[0]
        if self.shift_bands:  # pitch: move the spectrum along the mel axis, edge bands repeated
            pos = (torch.arange(n_mels, dtype=x.dtype) - self.shift_bands).clamp(0, n_mels - 1)
            i0 = pos.floor().long()
            i1 = (i0 + 1).clamp(max=n_mels - 1)
            w = (pos - i0)[:, None]
            x = x[i0] * (1 - w) + x[i1] * w
        x = x + torch.linspace(-0.5, 0.5, n_mels, dtype=x.dtype)[:, None] * self.tilt_db
        floor = x.max() - self.noise_below_db  # a stationary noise floor, added in power
        return 10 * torch.log10(10 ** (x / 10) + 10 ** (floor / 10))


def song_augmentation(rng: np.random.Generator, n_mels: int) -> MelAugmentation:
    """A random :class:`MelAugmentation`: tilt +-6 dB, pitch +-1 band, tempo 0.92-1.08, noise 25-60 dB down."""
    return MelAugmentation(
        tilt_db=float(rng.uniform(-6, 6)),
        shift_bands=float(rng.uniform(-1, 1)),
        tempo=float(rng.uniform(0.92, 1.08)),
        noise_below_db=float(rng.uniform(25, 60)),
    )


class CutBatches(IterableDataset):
    """Endless batches of (tail mel, head mel, shifted head mel) cut at random frames of songs.

    Yields ``tails (B, n_mels, T)``, ``heads (B, n_mels, T)``, ``shifted (H, n_mels, T)`` and
    ``owner (H,)``: ``shifted[j]`` is the head of tail ``owner[j]`` with its cut moved 4-40 frames
    (about 0.05-0.46 s), a hard negative for that tail only. With ``augment``, each song of a batch
    gets one :class:`MelAugmentation` (EQ tilt, pitch, tempo, noise) so that the encoders learn what
    makes a join rather than the sound of the training corpus.
    """

    def __init__(
        self,
        mels: list[torch.Tensor],
        frames: int,
        gap: int,
        songs: int = 16,
        per_song: int = 16,
        hard: int = 64,
        seed: int = 0,
        n_batches: int | None = None,
        gain_db: float = 6.0,
        augment: bool = True,
    ):
        self.mels, self.T, self.gap = mels, frames, gap
        self.songs, self.per_song, self.hard, self.seed, self.n_batches, self.gain_db = (
            songs,
            per_song,
            hard,
            seed,
            n_batches,
            gain_db,
        )
        self.augment = augment
        lengths = np.array([m.shape[1] for m in mels], dtype=np.float64)
        self.p = lengths / lengths.sum()

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        T, g, n = self.T, self.gap, 0
        while self.n_batches is None or n < self.n_batches:
            n += 1
            song_idx = rng.choice(len(self.mels), size=min(self.songs, len(self.mels)), replace=False, p=self.p)
            tails, heads, shifted, owner = [], [], [], []
            for s in song_idx:
                m = self.mels[s]
                # one augmentation per song and batch, so that it never tells a song's chunks apart
                aug = song_augmentation(rng, m.shape[0]) if self.augment else None
                span = T if aug is None else aug.span(T)
                lo, hi = g + span + 45, m.shape[1] - span - 45  # room for shifted heads
                if hi <= lo:
                    continue
                fit = (lambda x: x) if aug is None else (lambda x, aug=aug: aug.apply(x, T))  # noqa: E731
                for k in rng.integers(lo, hi, size=self.per_song):
                    off = float(rng.uniform(-self.gain_db, self.gain_db))  # same gain both sides
                    tails.append(fit(m[:, k - g - span + 1 : k - g + 1]) + off)
                    heads.append(fit(m[:, k : k + span]) + off)
                    if len(shifted) < self.hard and rng.random() < 0.5:
                        d = int(rng.integers(4, 40)) * int(rng.choice([-1, 1]))
                        shifted.append(fit(m[:, k + d : k + d + span]) + off)
                        owner.append(len(tails) - 1)
            if not tails:
                raise PoolError("songs too short for contrastive training")
            sh = torch.stack(shifted) if shifted else torch.zeros(0, *tails[0].shape)
            yield torch.stack(tails), torch.stack(heads), sh, torch.tensor(owner, dtype=torch.long)


def infonce(
    scorer, tails: torch.Tensor, heads: torch.Tensor, shifted: torch.Tensor, owner: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE over the batch; each shifted head is one extra negative column that only its
    owner tail competes with (``owner[j]`` = row of ``shifted[j]``; default ``arange(H)``).

    Returns (loss, in-batch top-1 accuracy of tail -> head).
    """
    zt = scorer.encode_tail_mel(tails)
    zh = scorer.encode_head_mel(heads)
    logits = zt @ zh.T  # (B, B): row i's positive is column i
    target = torch.arange(len(zt))
    back = nn.functional.cross_entropy(logits.T, target)
    if len(shifted):
        zs = scorer.encode_head_mel(shifted)
        owner = torch.arange(len(zs)) if owner is None else owner
        mask = torch.zeros(len(zt), len(zs), dtype=torch.bool)
        mask[owner, torch.arange(len(zs))] = True
        extra = torch.where(mask, zt @ zs.T, torch.full((len(zt), len(zs)), -1e4))
        forward_logits = torch.cat([logits, extra], 1)
    else:
        forward_logits = logits
    loss = 0.5 * (nn.functional.cross_entropy(forward_logits, target) + back)
    acc = (logits.argmax(1) == target).float().mean()
    return loss, acc


class ContrastiveModule(L.LightningModule):
    def __init__(
        self, scorer, lr: float = 1e-3, steps: int = 3000, budget_min: float = 1e9, cpu: CpuBudget | None = None
    ):
        super().__init__()
        self.scorer, self.lr, self.steps, self.budget_min = scorer, lr, steps, budget_min
        self.cpu_budget = cpu  # not `cpu`: that is the module's own .cpu()
        self.best: tuple[float, dict] | None = None
        self.val_losses: list[float] = []
        self.history: list[dict] = []

    def training_step(self, batch, _):
        loss, acc = infonce(self.scorer, *batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        loss, acc = infonce(self.scorer, *batch)
        self.val_losses.append(float(loss))
        self.val_accs.append(float(acc))

    def on_validation_epoch_start(self):
        self.val_losses, self.val_accs = [], []

    def on_validation_epoch_end(self):
        if not self.val_losses:
            return
        v = float(np.mean(self.val_losses))
        self.history.append(
            {"step": int(self.global_step), "val_loss": v, "val_top1_in_batch": float(np.mean(self.val_accs))}
        )
        if self.best is None or v < self.best[0]:
            self.best = (v, {k: t.detach().clone() for k, t in self.scorer.state_dict().items()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.scorer.parameters(), lr=self.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_start(self):
        self.t0 = time.time()

    def _lr_factor(self, step: int) -> float:
        """Warm-up then cosine decay over whichever runs out first: the steps, the time budget or the CPU
        budget, so a run cut short by ``max_minutes`` or ``cpu_minutes`` still ends at a small learning rate."""
        warm = max(1, self.steps // 20)
        if step < warm:
            return (step + 1) / warm
        elapsed = time.time() - getattr(self, "t0", time.time())
        cpu = self.cpu_budget.fraction() / 0.97 if self.cpu_budget is not None else 0.0
        p = min(1.0, max(step / self.steps, elapsed / (60.0 * self.budget_min * 0.97), cpu))
        return 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * p))


def song_mels(scorer, audio: SongAudio, song_ids: list[int]) -> list[torch.Tensor]:
    """Un-centred log-mel dB ``(n_mels, frames)`` of each song (frame k starts at sample k * hop)."""
    with torch.no_grad():
        return [scorer.log_mel(torch.from_numpy(audio[s])) for s in song_ids]


#: Songs per contrastive batch and cut points per song: 8 x 32 gives each tail 31 heads of its own song
#: as negatives (16 x 16 gave 15), the kind a stream's search and the ranking test must tell apart; other
#: songs' heads (224) are easy negatives.
BATCH_SONGS, CUTS_PER_SONG = 8, 32


def train_contrastive(
    scorer,
    audio: SongAudio,
    split: dict,
    steps: int,
    max_minutes: float,
    seed: int,
    lr: float = 1e-3,
    progress: ProgressCallback = null_progress,
    cpu_minutes: float | None = None,
    batch_songs: int = BATCH_SONGS,
    cuts_per_song: int = CUTS_PER_SONG,
    mels: dict[int, torch.Tensor] | None = None,
) -> dict:
    """Fit ``scorer`` (a ContrastiveScorer) in place within ``steps``, ``max_minutes`` of wall clock and
    ``cpu_minutes`` of process CPU; returns metrics (val history, steps, seconds, CPU seconds).

    ``mels``: the songs' log-mel frames (:func:`song_mels`) by song id when already computed."""
    torch.manual_seed(seed)
    val_ids = split["val"] or split["train"][:1]
    if mels is None:
        mels = dict(zip(split["train"] + val_ids, song_mels(scorer, audio, split["train"] + val_ids)))
    train = [mels[s] for s in split["train"]]
    val = [mels[s] for s in val_ids]
    allf = torch.cat([m for m in train], 1)
    scorer.mel_mean.copy_(allf.mean(1, keepdim=True))
    scorer.mel_std.copy_(allf.std(1, keepdim=True).clamp_min(1.0))
    gap = scorer.n_fft // scorer.hop  # frame k - gap spans [(k - gap) * hop, k * hop): ends at the cut
    data = CutBatches(train, scorer.frames, gap, songs=batch_songs, per_song=cuts_per_song, seed=seed)
    vdata = CutBatches(val, scorer.frames, gap, seed=10_000 + seed, n_batches=8, hard=0, augment=False)
    cpu = CpuBudget(cpu_minutes)
    module = ContrastiveModule(scorer, lr=lr, steps=steps, budget_min=max_minutes, cpu=cpu)

    class _Progress(L.Callback):
        def on_train_batch_end(self, trainer, *a):
            if trainer.global_step % 20 == 0:
                progress("training", trainer.global_step, steps)

    trainer = _trainer(
        max_minutes,
        max_steps=steps,
        val_check_interval=250,
        check_val_every_n_epoch=None,
        limit_val_batches=8,
        callbacks=[_Progress()],
        cpu=cpu,
    )
    t0 = time.time()
    with quiet_lightning():
        trainer.fit(module, DataLoader(data, batch_size=None), DataLoader(vdata, batch_size=None))
        cpu_s = cpu.used_s()
        # one final validation so the last weights compete with the best earlier ones
        trainer.validate(module, DataLoader(vdata, batch_size=None), verbose=False)
    if module.best is not None:
        scorer.load_state_dict(module.best[1])
    progress("training", steps, steps)
    return {
        "steps": int(trainer.global_step),
        "seconds": time.time() - t0,
        "cpu_seconds": cpu_s,
        "cpu_minutes_budget": cpu_minutes,
        "batch": {"songs": batch_songs, "cuts_per_song": cuts_per_song},
        "history": module.history,
    }


# ---------------------------------------------------------------------------------------------
# cnn-lstm (the seed's classifier)
# ---------------------------------------------------------------------------------------------
class CnnLstmModule(L.LightningModule):
    def __init__(self, scorer, pos_weight: float):
        super().__init__()
        self.scorer = scorer
        self.loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))
        self.val_acc: list[float] = []

    def training_step(self, batch, _):
        x, y = batch
        loss = self.loss(self.scorer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.val_acc.append(float(((self.scorer(x) > 0).float() == y).float().mean()))

    def configure_optimizers(self):
        return torch.optim.RMSprop(self.scorer.parameters(), lr=1e-3)


def _prepared(scorer, audio: SongAudio, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    xs = []
    for i in range(0, len(pairs), 512):
        p = pairs.select(np.arange(i, min(i + 512, len(pairs))))
        t, h = pair_windows(audio, p, scorer.tail_samples, scorer.head_samples)
        xs.append(scorer.prepare(torch.from_numpy(t), torch.from_numpy(h)))
    return torch.cat(xs), torch.from_numpy(pairs.label.astype(np.float32))


def train_cnnlstm(
    scorer,
    catalog: ChunkCatalog,
    audio: SongAudio,
    split: dict,
    max_minutes: float,
    seed: int,
    batch: int = 32,
    epochs: int = 20,
    progress: ProgressCallback = null_progress,
    cpu_minutes: float | None = None,
) -> dict:
    table, songs = catalog.chunks(), catalog.song_map()
    tr = make_pairs(table, songs, split["train"], audio.sample_rate, seed=seed)
    va = make_pairs(table, songs, split["val"] or split["train"][:1], audio.sample_rate, seed=seed + 1)
    xt, yt = _prepared(scorer, audio, tr)
    xv, yv = _prepared(scorer, audio, va)
    pos_weight = float((yt == 0).sum() / max(1, (yt == 1).sum()))
    module = CnnLstmModule(scorer, pos_weight)
    g = torch.Generator().manual_seed(seed)
    tl = DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=batch, shuffle=True, generator=g)
    vl = DataLoader(torch.utils.data.TensorDataset(xv[:512], yv[:512]), batch_size=64)
    cpu = CpuBudget(cpu_minutes)
    trainer = _trainer(max_minutes, cpu=cpu, max_epochs=epochs)
    t0 = time.time()
    with quiet_lightning():
        trainer.fit(module, tl, vl)
    return {
        "steps": int(trainer.global_step),
        "seconds": time.time() - t0,
        "cpu_seconds": cpu.used_s(),
        "train_pairs": len(tr),
        "val_accuracy": float(np.mean(module.val_acc[-8:])) if module.val_acc else None,
    }


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def fit_features(
    scorer, catalog: ChunkCatalog, audio: SongAudio, song_ids: list[int], seed: int, n: int = 2000
) -> None:
    """Set the features scorer's MFCC statistics from up to ``n`` heads of the given songs."""
    table = catalog.chunks()
    rows = np.flatnonzero(np.isin(table.song_id, song_ids))
    rows = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False))
    _, heads = chunk_windows(audio, table, rows, scorer.edge_samples)
    with torch.no_grad():
        scorer.fit(torch.from_numpy(heads))


def part_scores(parts: dict[str, TransitionScorer], audio: SongAudio, table, anchors, cands) -> dict[str, np.ndarray]:
    """Each part's scores ``(m, n)`` of the candidates ``cands`` of the anchors ``anchors`` (rows of ``table``)."""
    from ..index import embed_chunks

    raw = {}
    for name, part in parts.items():
        t, h = embed_chunks(part.eval(), audio, table)
        raw[name] = np.einsum("md,mnd->mn", t[anchors], h[cands]).astype(np.float64)
    return raw


def _spread(scores: np.ndarray) -> float:
    """Mean spread of an anchor's candidate scores ``(m, n)`` (1 without anchors)."""
    return float(scores.std(1).mean()) + 1e-9 if len(scores) else 1.0


def choose_weights(raw: dict[str, np.ndarray]) -> tuple[dict[str, float], list[float]]:
    """Weights of the parts' raw scores ``{name: (m, n)}`` (column 0 the true candidate) and the MRR of each option.

    A softmax over each anchor's candidates on the parts' scores, each divided by its spread across
    candidates so that one L2 penalty suits all; weights kept >= 0. The softmax fit is smooth but is not
    MRR: on a few anchors (a small pool) it can rank worse than one part alone. So the weights are the best
    by MRR (the first best: the fit on ties) of the options: the fit, each part alone, all equal.
    """
    from .evaluation import rank_from_scores

    names = list(raw)
    spread = {n: _spread(raw[n]) for n in names}
    m = len(next(iter(raw.values())))
    x = torch.tensor(np.stack([raw[n] / spread[n] for n in names], -1), dtype=torch.float32)  # (m, n, parts)
    w = torch.ones(len(names), requires_grad=True)
    if m:
        opt = torch.optim.LBFGS([w], max_iter=100, line_search_fn="strong_wolfe")
        target = torch.zeros(m, dtype=torch.long)

        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy((x * w).sum(-1), target) + 1e-3 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
    fitted = w.detach().clamp_min(0.0).numpy()
    options = [fitted] + [np.eye(len(names))[k] for k in range(len(names))] + [np.ones(len(names))]

    def mrr_of(v: np.ndarray) -> float:
        return rank_from_scores(sum(v[k] / spread[n] * raw[n] for k, n in enumerate(names)))["mrr"] if m else 0.0

    found = [mrr_of(v) if v.sum() > 0 else -1.0 for v in options]
    best = options[int(np.argmax(found))]
    return {n: float(best[k]) / spread[n] for k, n in enumerate(names)}, found


def _set_fusion_weights(fusion, weights: dict[str, float]) -> dict[str, float]:
    """Set ``weights`` scaled so that contrastive's is 1 when it has one (as in runs saved before); returns them."""
    top = weights["contrastive"] or 1.0
    weights = {n: v / top for n, v in weights.items()}
    fusion.set_weights(**weights)
    return weights


def _fusion_parts(fusion) -> dict[str, TransitionScorer]:
    parts = {"contrastive": fusion.contrastive, "features": fusion.features}
    if getattr(fusion, "partials", None) is not None:
        parts["partials"] = fusion.partials
    return parts


def fit_fusion_weights(fusion, catalog: ChunkCatalog, audio: SongAudio, song_ids: list[int], seed: int) -> dict:
    """Fit the fusion's part weights on ``song_ids`` (never test songs) by :func:`choose_weights` over each
    anchor's 100 candidates (true next, up to 49 of its song, the rest of others).

    Returns the weights (of the raw part scores) and the validation MRR of each part and of the fusion.
    """
    from .evaluation import rank_from_scores, ranking_candidates

    table = catalog.chunks()
    sub = table.subset(np.flatnonzero(np.isin(table.song_id, song_ids)))
    anchors, cands = ranking_candidates(sub, seed)
    raw = part_scores(_fusion_parts(fusion), audio, sub, anchors, cands)
    weights, found = choose_weights(raw)
    weights = _set_fusion_weights(fusion, weights)
    mrr = {n: rank_from_scores(v)["mrr"] if len(anchors) else float("nan") for n, v in raw.items()}
    mrr["fit"] = found[0]
    mrr["fusion"] = max(found)
    return {"fusion_weights": weights, "val_mrr_by_part": mrr}


#: Fewer validation songs than this and a fusion is trained cross-fitted (:func:`train_cross_fitted`): on one
#: song's 15-20 chunk boundaries, many of them repeats of a section, a learned model and ``features`` often
#: tie, and whether it falls back is chance.
CROSS_FIT_BELOW_VAL_SONGS = 3
#: Folds of the non-test songs in cross-fitted training: members of the ensemble, each trained on the others.
CROSS_FIT_FOLDS = 3


def cross_fitted(split: dict) -> bool:
    """Whether a fusion on this split is trained cross-fitted (fewer than :data:`CROSS_FIT_BELOW_VAL_SONGS`
    validation songs and at least two non-test songs)."""
    return len(split["val"]) < CROSS_FIT_BELOW_VAL_SONGS and len(split["train"]) + len(split["val"]) >= 2


def song_folds(song_ids: list[int], k: int, seed: int) -> list[list[int]]:
    """``song_ids`` dealt into ``k`` folds in a seeded order (sizes differ by at most one)."""
    order = np.random.default_rng(seed).permutation(sorted(song_ids))
    return [sorted(int(s) for s in order[i::k]) for i in range(k)]


def train_cross_fitted(fusion, ctx: TrainContext, folds: int = CROSS_FIT_FOLDS) -> dict:
    """Train a fusion on a small pool so that its fallback decision rests on every non-test song.

    The non-test songs (training and validation together) are dealt into ``folds`` folds; one contrastive
    model per fold trains on the other folds' songs with that share of the budget (steps, wall clock, CPU)
    and validates on its own fold's, and the fusion's contrastive part is their ensemble
    (:class:`~soundloom.streams.transitions.contrastive.ContrastiveEnsemble`). Every non-test chunk
    boundary is then scored by a model that never heard its song (cross-fitted). The decision is nested:
    each fold's anchors are scored with weights chosen (:func:`choose_weights`) on the other folds' anchors,
    and the fusion's MRR over all of them is compared with ``features`` alone on the same candidates
    (``val_mrr``, ``val_mrr_features``; per fold in ``validation``). The saved weights are chosen on all of
    them, the contrastive one rescaled to the ensemble's spread (a mean of members spreads less than one).

    Returns the run's metrics (steps and CPU seconds summed over the members).
    """
    from ..index import embed_chunks
    from .evaluation import rank_from_scores, ranking_candidates

    songs = sorted(ctx.split["train"] + ctx.split["val"])
    k = max(1, min(folds, len(songs)))
    groups = song_folds(songs, k, ctx.seed)
    template = fusion.contrastive
    mels = dict(zip(songs, song_mels(template, ctx.audio, songs)))
    share = (lambda v: None) if ctx.cpu_minutes is None else (lambda v: v / k)  # noqa: E731
    members, runs = [], []
    for i, fold in enumerate(groups):
        member = scorer_from_config(template.name, template.config())
        rest = [s for s in songs if s not in fold]
        run = train_contrastive(
            member,
            ctx.audio,
            {"train": rest, "val": fold},
            max(1, ctx.steps // k),
            ctx.max_minutes / k,
            ctx.seed + i,
            ctx.lr,
            ctx.progress,
            share(ctx.cpu_minutes),
            mels=mels,
        )
        members.append(member.eval())
        runs.append({"songs": fold, **{key: run[key] for key in ("steps", "cpu_seconds", "seconds")}})
    fit_features(fusion.features, ctx.catalog, ctx.audio, ctx.split["train"], ctx.seed)

    table = ctx.catalog.chunks()
    sub = table.subset(np.flatnonzero(np.isin(table.song_id, songs)))
    anchors, cands = ranking_candidates(sub, ctx.seed)
    fold_of = {s: i for i, fold in enumerate(groups) for s in fold}
    anchor_fold = np.array([fold_of[int(sub.song_id[a])] for a in anchors], dtype=np.int64)
    raw = {"contrastive": np.zeros(cands.shape)}
    for i, member in enumerate(members):  # each anchor's candidates scored by the member that never heard it
        t, h = embed_chunks(member, ctx.audio, sub)
        rows = anchor_fold == i
        raw["contrastive"][rows] = np.einsum("md,mnd->mn", t[anchors[rows]], h[cands[rows]])
    parts = {n: p for n, p in _fusion_parts(fusion).items() if n != "contrastive"}
    raw.update(part_scores(parts, ctx.audio, sub, anchors, cands))

    fused = np.zeros(cands.shape)
    per_fold = []
    for i in range(k):
        rows = anchor_fold == i
        w, _ = choose_weights({n: v[~rows] for n, v in raw.items()})
        fused[rows] = sum(w[n] * raw[n][rows] for n in raw)
        mine, base = rank_from_scores(fused[rows]), rank_from_scores(raw["features"][rows])
        per_fold.append(
            {"songs": groups[i], "anchors": mine["anchors"], "mrr": mine["mrr"], "mrr_features": base["mrr"]}
        )
    learned, baseline = rank_from_scores(fused)["mrr"], rank_from_scores(raw["features"])["mrr"]

    weights, found = choose_weights(raw)
    # through the registry: contrastive.py imports this module for its training hook
    ensemble = get_kind("contrastive-ensemble").cls.of(members).eval()
    t, h = embed_chunks(ensemble, ctx.audio, sub)
    weights["contrastive"] *= _spread(raw["contrastive"]) / _spread(np.einsum("md,mnd->mn", t[anchors], h[cands]))
    fusion.contrastive = ensemble
    weights = _set_fusion_weights(fusion, weights)
    by_part = {n: rank_from_scores(v)["mrr"] if len(anchors) else float("nan") for n, v in raw.items()}
    return {
        "steps": int(sum(r["steps"] for r in runs)),
        "seconds": float(sum(r["seconds"] for r in runs)),
        "cpu_seconds": float(sum(r["cpu_seconds"] for r in runs)),
        "cpu_minutes_budget": ctx.cpu_minutes,
        "members": runs,
        "fusion_weights": weights,
        "val_mrr_by_part": {**by_part, "fit": found[0], "fusion": max(found)},
        "val_mrr": float(learned),
        "val_mrr_features": float(baseline),
        "validation": {
            "cross_fitted": True,
            "songs": len(songs),
            "folds": k,
            "anchors": int(len(anchors)),
            "per_fold": per_fold,
        },
    }


def validation_mrr(scorer, catalog: ChunkCatalog, audio: SongAudio, song_ids: list[int], seed: int) -> dict:
    """Top-1, MRR and anchors of the true next chunk among 100 candidates on the songs ``song_ids`` (an
    embedding scorer)."""
    from ..index import embed_chunks
    from .evaluation import rank_metrics

    table = catalog.chunks()
    sub = table.subset(np.flatnonzero(np.isin(table.song_id, song_ids)))
    tails, heads = embed_chunks(scorer, audio, sub)
    return rank_metrics(tails @ heads.T, sub, seed=seed)


def features_check(scorer, ctx: TrainContext, metrics: dict | None = None) -> dict:
    """Compare a trained embedding scorer with ``features`` (fitted on the same training songs) on the
    pool's own validation songs; ``fallback`` is True when the learned model does not beat it. A cross-fitted
    run (``metrics`` from :func:`train_cross_fitted`) has made that comparison over every non-test song."""
    val = ctx.split["val"] or ctx.split["train"]
    features = build_scorer("features", sample_rate=ctx.audio.sample_rate)
    fit_features(features, ctx.catalog, ctx.audio, ctx.split["train"], ctx.seed)
    if metrics and metrics.get("validation", {}).get("cross_fitted"):
        learned, baseline = metrics["val_mrr"], metrics["val_mrr_features"]
        validation = metrics["validation"]
    else:
        mine = validation_mrr(scorer.eval(), ctx.catalog, ctx.audio, val, ctx.seed)
        learned = mine["mrr"]
        baseline = validation_mrr(features.eval(), ctx.catalog, ctx.audio, val, ctx.seed)["mrr"]
        validation = {"cross_fitted": False, "songs": len(val), "anchors": mine["anchors"]}
    return {
        "val_mrr": float(learned),
        "val_mrr_features": float(baseline),
        "validation": validation,
        "fallback": bool(learned <= baseline),
        "features_scorer": features,
    }


def contrastive_of_run(run: str | Path, catalog: ChunkCatalog, test_ids: list[int]) -> tuple[TransitionScorer, dict]:
    """The contrastive part of a trained ``run`` (a contrastive or fusion run) and its training metrics, for a
    fusion that reuses it (steps and CPU seconds are then that run's).

    Raises:
        ParameterError: the run trained or validated on any of the songs ``test_ids`` of ``catalog`` (matched
            by content, through the run's own pool), or its pool is gone so that this cannot be checked.
    """
    run = Path(run)
    info = run_info(run)
    part = run / "contrastive" if info.get("model") == "fusion" else run
    split = info.get("split", {})
    if not info.get("pool") or not (Path(info["pool"]) / "catalog.sqlite").exists():
        raise ParameterError(f"{run}: its pool ({info.get('pool')}) is gone; cannot check which songs it saw")
    with ChunkCatalog(info["pool"], create=False) as theirs:
        seen = {s.content_hash for s in theirs.songs() if s.id in set(split.get("train", []) + split.get("val", []))}
    tested = {s.content_hash for s in catalog.songs() if s.id in set(test_ids)}
    if seen & tested:
        raise ParameterError(f"{run} was trained on {len(seen & tested)} of this run's test songs")
    scorer = load_scorer(part)
    if scorer.name not in ("contrastive", "contrastive-ensemble"):
        raise ParameterError(f"{run} holds no contrastive model (its model is {scorer.name!r})")
    m = info.get("metrics", {})
    return scorer, {"contrastive_from": str(run), **{k: m[k] for k in ("steps", "cpu_seconds", "seconds") if k in m}}


def train_transitions(
    pool: str | Path,
    model: str,
    out: str | Path,
    seed: int = 0,
    steps: int = 3000,
    max_minutes: float = 15.0,
    lr: float = 1e-3,
    model_kwargs: dict | None = None,
    progress: ProgressCallback = null_progress,
    holdout_package: str | None = None,
    fallback: bool = True,
    cpu_minutes: float | None = None,
    contrastive_from: str | Path | None = None,
) -> dict:
    """Train ``model`` on the pool's training songs and write the run to ``out``; returns its config.json content.

    Training stops at ``steps``, after ``max_minutes`` of wall clock or after ``cpu_minutes`` of process CPU
    time (see :class:`CpuBudget`), whichever comes first; the run records its steps and CPU seconds.

    With ``holdout_package``, the test songs are that package's (from the songs' ``index.csv``) and
    training uses the others. With ``fallback``, a learned model that does not beat ``features`` on the
    validation songs is recorded as falling back to it (``config.json``: ``"fallback": "features"``,
    the fitted features scorer in ``out/features``), and :func:`load_scorer` returns that scorer.
    ``contrastive_from`` (fusion only): see :func:`contrastive_of_run`.
    """
    L.seed_everything(seed, verbose=False)
    out = Path(out)
    kind = get_kind(model)
    with ChunkCatalog(pool, create=False) as catalog:
        split = open_split(catalog, seed=seed, holdout=holdout_package)
        if not split["train"]:
            raise PoolError(pool, "no training songs (need at least 3 songs for a train/val/test split)")
        rate = catalog.sample_rate
        audio = SongAudio(catalog.song_map(), rate)
        scorer = build_scorer(model, sample_rate=rate, **(model_kwargs or {}))
        ctx = TrainContext(catalog, audio, split, seed, steps, max_minutes, lr, progress, cpu_minutes)
        if contrastive_from is not None:
            if model != "fusion":
                raise ParameterError(f"--contrastive-from applies to model 'fusion', not {model!r}")
            ctx.contrastive_from = str(contrastive_from)
        t0 = time.time()
        metrics = dict(kind.train(scorer, ctx) or {})
        metrics["train_seconds"] = time.time() - t0
        check = features_check(scorer, ctx, metrics) if fallback and scorer.embeds and model != "features" else None
        features = check.pop("features_scorer") if check else None
        if check:
            metrics.update(check)
        extra = {"split": split, "split_seed": seed, "pool": str(Path(pool).resolve()), "metrics": metrics}
        if holdout_package:
            extra["holdout_package"] = split["package"]
        if check and check["fallback"]:
            extra["fallback"] = "features"
            features.eval().save(out / "features", extra={k: v for k, v in extra.items() if k != "fallback"})
        scorer.eval().save(out, extra=extra)
        for sub, part in scorer.parts().items():
            part.save(out / sub, extra={k: v for k, v in extra.items() if k != "fallback"})
        write_json(out / "metrics.json", metrics, indent=2)
        return json.loads((out / "config.json").read_text())
