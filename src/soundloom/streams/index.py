"""Pool embeddings (computed once per model, cached in the pool) and the head index used by search.

    POOL/embeddings/<model-key>-<pool-fingerprint>.npz   tails (n, D), heads (n, D), float32

The score of "chunk b after chunk a" is ``tails[a] @ heads[b]``; an index returns the best heads
for a tail: :class:`ExactIndex` (NumPy matrix-vector product, the default) or :class:`FaissIndex`
(inner-product FAISS; IVF for large pools).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path, write_json
from ..core.errors import ModelFileError, ParameterError
from ..core.progress import ProgressCallback, null_progress
from .transitions.registry import load_scorer, named_model


@dataclass
class PoolEmbeddings:
    """Tail and head embeddings ``(n, D)`` aligned with ``catalog.chunks()`` rows."""

    tails: np.ndarray
    heads: np.ndarray
    model: str

    def __len__(self) -> int:
        return len(self.tails)


def model_key(run: str | Path) -> str:
    """Short hash of a run's weights and config; the model name for a model used untrained by name."""
    name = named_model(run)
    if name is not None:
        return name
    run = Path(run)
    if not (run / "config.json").exists():
        raise ModelFileError(run, "not a transition run (no config.json); train one with train-transitions")
    h = hashlib.sha1((run / "config.json").read_bytes())
    h.update((run / "model.safetensors").read_bytes())
    return h.hexdigest()[:12]


def embed_chunks(
    scorer, audio, table, batch: int = 512, progress: ProgressCallback = null_progress
) -> tuple[np.ndarray, np.ndarray]:
    """Tail and head embeddings ``(n, D)`` float32 of every chunk of ``table`` with an embedding scorer.

    Song by song: each song is read once and dropped from ``audio``'s cache when done.
    """
    from .pairs import chunk_windows
    from .transitions.base import batched

    song_ids = list(dict.fromkeys(table.song_id.tolist()))
    tails, heads = [], []
    for i, s in enumerate(song_ids):
        progress("embedding", i, len(song_ids))
        rows = np.flatnonzero(table.song_id == s)
        t, h = chunk_windows(audio, table, rows, scorer.edge_samples)
        tails.append(batched(scorer.embed_tails, t, batch))
        heads.append(batched(scorer.embed_heads, h, batch))
        audio._cache.clear()
    progress("embedding", len(song_ids), len(song_ids))
    d = 0 if not tails else tails[0].shape[1]
    cat = lambda xs: np.concatenate(xs).astype(np.float32) if xs else np.zeros((0, d), np.float32)  # noqa: E731
    return cat(tails), cat(heads)


def embed_pool(
    catalog, run: str | Path, progress: ProgressCallback = null_progress, batch: int = 512
) -> PoolEmbeddings:
    """Embed every chunk's tail and head with the run's scorer."""
    from .pairs import SongAudio

    scorer = load_scorer(run, sample_rate=catalog.sample_rate)
    if not scorer.embeds:
        raise ParameterError(run, f"model {scorer.name!r} cannot embed; search needs an embedding model")
    audio = SongAudio(catalog.song_map(), catalog.sample_rate)
    tails, heads = embed_chunks(scorer, audio, catalog.chunks(), batch, progress)
    return PoolEmbeddings(tails, heads, scorer.name)


def load_pool_embeddings(catalog, run: str | Path, progress: ProgressCallback = null_progress) -> PoolEmbeddings:
    """Cached :func:`embed_pool`: recomputed only when the run or the pool's chunks change."""
    folder = Path(catalog.pool) / "embeddings"
    path = folder / f"{model_key(run)}-{catalog.fingerprint()}.npz"
    if path.exists():
        with np.load(path) as z:
            return PoolEmbeddings(z["tails"], z["heads"], str(z["model"]))
    emb = embed_pool(catalog, run, progress)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, tails=emb.tails, heads=emb.heads, model=np.array(emb.model))
    write_json(folder / f"{model_key(run)}.json", {"run": str(run), "model": emb.model})
    return emb


#: Pools at least this large use FAISS (IVF) when the index kind is "auto".
AUTO_FAISS_MIN = 50_000


class ExactIndex:
    """Exact top-k by inner product over heads ``(n, D)``; one matrix-vector product per query."""

    def __init__(self, heads: np.ndarray):
        self.heads = np.ascontiguousarray(heads, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.heads)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """All scores ``(n,)`` for one tail embedding ``(D,)``."""
        # A matrix-vector product is memory-bound. einsum's single-threaded loop beats BLAS sgemv
        # here, which spins its threads while waiting for busy cores (2-20x slower under load).
        return np.einsum("nd,d->n", self.heads, np.asarray(query, dtype=np.float32))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` heads for one tail ``(D,)``: (scores ``(k,)``, rows ``(k,)``), best first."""
        s = self.scores(query)
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        order = np.argsort(-s[top], kind="stable")
        return s[top[order]], top[order]


class FaissIndex:
    """FAISS inner-product index: flat (exact) below ``ivf_min`` heads, IVF-flat above it.

    Args:
        heads: ``(n, D)`` float32.
        nprobe: IVF lists probed per query (recall vs speed).
    """

    def __init__(self, heads: np.ndarray, ivf_min: int = 50_000, nprobe: int = 16, seed: int = 0):
        import faiss

        x = np.ascontiguousarray(heads, dtype=np.float32)
        d = x.shape[1]
        faiss.omp_set_num_threads(1)  # one query at a time: threads only add synchronisation
        self.n = len(x)
        if self.n >= ivf_min:
            nlist = int(4 * np.sqrt(self.n))
            quant = faiss.IndexFlatIP(d)
            self.index = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = x[rng.choice(self.n, size=min(self.n, 40 * nlist), replace=False)]
            self.index.train(sample)
            self.index.nprobe = nprobe
        else:
            self.index = faiss.IndexFlatIP(d)
        self.index.add(x)

    def __len__(self) -> int:
        return self.n

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(np.asarray(query, dtype=np.float32)[None, :], min(k, self.n))
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep].astype(np.int64)


def make_index(heads: np.ndarray, kind: str = "auto") -> ExactIndex | FaissIndex:
    """ "exact" (NumPy), "faiss", or "auto": exact below :data:`AUTO_FAISS_MIN` heads, FAISS above."""
    if kind == "auto":
        kind = "exact" if len(heads) < AUTO_FAISS_MIN else "faiss"
    if kind == "exact":
        return ExactIndex(heads)
    if kind == "faiss":
        return FaissIndex(heads)
    raise ParameterError(f"index must be 'auto', 'exact' or 'faiss', got {kind!r}")
