"""Stream engine benchmarks: chunking, embedding, next-chunk choice latency, rendering.

    python benchmarks/bench_stream.py --songs /path/to/songs --pool POOL --run RUN [--sizes 1000 10000 100000 1000000]

* chunking speed: minutes of audio chunked per second (fresh temporary pool, ``--chunk-songs`` songs);
* embedding speed: chunks (and minutes of audio) embedded per second with the run's model;
* choice latency: one greedy step (index search + constraints + seam filter) at each pool size,
  exact (NumPy) vs FAISS, on synthetic embeddings of the run's width; and the seed's way, running
  ``cnn-lstm`` on every candidate pair (measured on a batch, scaled to the pool size);
* rendering speed: minutes of stream rendered per second (10 minutes, search excluded).

Timings depend on machine load; the script prints the thread count it ran with.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def bench_chunking(songs: Path, n_songs: int) -> None:
    from soundloom.streams.catalog import ChunkCatalog, find_songs
    from soundloom.streams.chunking import ChunkConfig

    paths = find_songs(songs)[:n_songs]
    with tempfile.TemporaryDirectory() as tmp:
        for method, cfg in (
            ("fixed 3 s", ChunkConfig(method="fixed", seconds=3.0)),
            ("beats x8", ChunkConfig(method="beats", beats=8)),
        ):
            with ChunkCatalog(Path(tmp) / method.replace(" ", "_")) as c:
                t0 = time.perf_counter()
                c.add_songs(paths, cfg)
                dt = time.perf_counter() - t0
                minutes = c.summary()["minutes"]
                print(
                    f"chunking [{method}]: {minutes:.1f} min of audio in {dt:.1f} s = {minutes / dt:.2f} min/s "
                    f"({c.summary()['chunks']} chunks)"
                )


def bench_embedding(pool: Path, run: str) -> None:
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.index import embed_pool

    with ChunkCatalog(pool, create=False) as c:
        t0 = time.perf_counter()
        emb = embed_pool(c, run)
        dt = time.perf_counter() - t0
        minutes = c.summary()["minutes"]
    print(
        f"embedding [{emb.model}]: {len(emb)} chunks ({minutes:.0f} min) in {dt:.1f} s = {len(emb) / dt:.0f} chunks/s, "
        f"{minutes / dt:.1f} min/s, dim {emb.tails.shape[1]}"
    )


def synthetic_table(n: int, rng: np.random.Generator):
    from soundloom.streams.catalog import ChunkTable
    from soundloom.streams.edges import SEAM_BANDS

    per_song = 60
    song = np.arange(n) // per_song
    spec = rng.random((n, SEAM_BANDS), dtype=np.float32)
    spec /= np.linalg.norm(spec, axis=1, keepdims=True)
    level = rng.normal(-20, 3, n).astype(np.float32)
    return ChunkTable(
        np.arange(n),
        song,
        np.arange(n) % per_song,
        np.zeros(n, np.int64),
        np.full(n, 66150),
        level,
        level,
        np.zeros(n, np.float32),
        level,
        level,
        spec,
        spec.copy(),
    )


def bench_choice(sizes: list[int], dim: int, steps: int = 200) -> None:
    from soundloom.streams.index import PoolEmbeddings
    from soundloom.streams.search import NextChunkChooser, SearchConfig, iter_greedy

    rng = np.random.default_rng(0)
    for n in sizes:
        table = synthetic_table(n, rng)
        x = rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim)
        emb = PoolEmbeddings(x, rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim), "synthetic")
        line = [f"choice latency n={n:>8}:"]
        for kind in ("exact", "faiss"):
            t0 = time.perf_counter()
            chooser = NextChunkChooser(table, emb, SearchConfig(index=kind, seed=0))
            build = time.perf_counter() - t0
            it = iter_greedy(chooser, 0)
            next(it)
            for _ in range(5):
                next(it)
            t0 = time.perf_counter()
            for _ in range(steps):
                next(it)
            per = (time.perf_counter() - t0) / steps
            line.append(f"{kind} {1000 * per:7.3f} ms/choice (index build {build:.1f} s)")
        print("  ".join(line))


def bench_cnnlstm(sizes: list[int], batch: int = 32) -> None:
    from soundloom.streams.transitions import build_scorer

    m = build_scorer("cnn-lstm").eval()
    t = 0.1 * torch.randn(batch, m.tail_samples)
    h = 0.1 * torch.randn(batch, m.head_samples)
    with torch.no_grad():
        m.score_pairs(t[:2], h[:2])
        t0 = time.perf_counter()
        m.score_pairs(t, h)
        per_pair = (time.perf_counter() - t0) / batch
    for n in sizes:
        print(
            f"choice latency n={n:>8}: cnn-lstm on every candidate {per_pair * n:10.1f} s/choice "
            f"(measured {1000 * per_pair:.1f} ms/pair on a batch of {batch}, scaled)"
        )


def bench_render(pool: Path, run: str, minutes: float) -> None:
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.index import load_pool_embeddings
    from soundloom.streams.render import RenderConfig, render_stream, write_stream
    from soundloom.streams.seams import SeamVerifier
    from soundloom.streams.search import SearchConfig, build_stream

    with ChunkCatalog(pool, create=False) as c:
        emb = load_pool_embeddings(c, run)
        t0 = time.perf_counter()
        plan = build_stream(c, emb, SearchConfig(minutes=minutes), verifier=SeamVerifier(c, RenderConfig()))
        t1 = time.perf_counter()
        wav, cue = render_stream(c, plan, RenderConfig())
        t2 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_stream(Path(tmp) / "s.wav", wav, cue, plot=False)
            t3 = time.perf_counter()
            write_stream(Path(tmp) / "s.mp3", wav, cue, plot=False)
            t4 = time.perf_counter()
    print(
        f"stream {minutes:.0f} min: search with seam verification {t1 - t0:.2f} s "
        f"({1000 * (t1 - t0) / len(plan.rows):.2f} ms/choice, "
        f"{len(emb)} chunks), render {t2 - t1:.1f} s = {minutes / (t2 - t1):.2f} min/s; "
        f"write wav {t3 - t2:.1f} s, mp3 {t4 - t3:.1f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=Path, help="folder of songs for the chunking benchmark")
    ap.add_argument("--chunk-songs", type=int, default=10)
    ap.add_argument("--pool", type=Path, help="an existing pool for embedding / rendering")
    ap.add_argument("--run", help="embedding run (or 'features') for embedding / rendering")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=128, help="embedding width for the synthetic latency runs")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on shared cores; 0: default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}")
    if args.songs:
        bench_chunking(args.songs, args.chunk_songs)
    if args.pool and args.run:
        bench_embedding(args.pool, args.run)
    bench_choice(args.sizes, args.dim)
    bench_cnnlstm(args.sizes)
    if args.pool and args.run:
        bench_render(args.pool, args.run, args.minutes)


if __name__ == "__main__":
    main()
