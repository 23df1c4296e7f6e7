"""Where a one-shot run's spectral floor comes from: the front end (mel, its inversion, Griffin-Lim) or the model.

    python benchmarks/bench_floor_decompose.py RUN --temperature 0.8 --seeds 3 --per-label 16 --postfilter fit

Per class, medians of :func:`~soundloom.sounds.evaluation.fidelity.spectral_floor_db` (dB of the quietest tenth of
the time-averaged ~32 ms spectrum, relative to its loudest bin) over the run's training split (real clips, read from
the files the feature store was prepared from and fitted to the run's length as preparation does) and over
``--seeds`` x ``--per-label`` generated sounds a class (seed ``s`` draws items ``s * N`` onward, as
``bench_prior.py --per-label N``). ``--postfilter`` as in ``bench_prior.py``: ``fit`` refits the post-filter
(``--postfilter-kind``, default as export) in a temporary copy, ``run`` keeps the run's, ``off`` renders without.

The first table takes the real clips apart: **raw** (the audio itself), **resynth** (mel -> NNLS -> Griffin-Lim, as
the evaluation's reference is rendered), **phase only** (the true magnitude through Griffin-Lim: what phase
reconstruction alone adds) and **mel only** (the NNLS magnitude with the true phase: what the mel inversion alone
adds). Resynth minus raw is the front end's own floor penalty, which no model can undo.

The second takes the generated sounds apart against the real ones through the same steps: the gap in the **mel
domain** (quietest tenth of the 64 time-averaged mel rows, before any inversion), the same gap measured on the mel
spectra of the rendered audio (what inversion adds, in the feature space the model was trained in), and the gap
the evaluation reports (linear bins, generated minus resynthesised real), then the generated floor under other
phase reconstructions of the same magnitudes (``--gl-iters``, default 8 and 32; ``--ceiling K``:
``griffin_lim(..., ceiling_iters=K)``), each beside the resynthesised real floor under the same reconstruction.
``--mel-method fista-diag`` inverts every mel spectrum here with per-bin steps (``mel_to_magnitude``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench_prior import refit_copy
from soundloom.core import fit_length, load_audio
from soundloom.core.floor import spectral_floor_db
from soundloom.core.spectral import features, features_to_magnitude, griffin_lim, istft, magnitude, stft
from soundloom.data.store import FeatureStore
from soundloom.sounds.evaluation.report import split_rows
from soundloom.sounds.generator import Generator
from soundloom.sounds.postfilter import DEFAULT_KIND, KINDS


def power_floor_db(power: np.ndarray, quantile: float = 0.1) -> np.ndarray:
    """Floor ``(N,)`` of time-averaged power ``(N, rows)``: median dB of the quietest ``quantile`` re the loudest."""
    db = 10 * np.log10(np.maximum(power, 1e-30) / np.maximum(power.max(axis=1, keepdims=True), 1e-30))
    return np.median(np.sort(db, axis=1)[:, : max(1, int(round(quantile * power.shape[1])))], axis=1)


def mel_floor_db(mel_db: torch.Tensor) -> np.ndarray:
    """Mel-domain floor ``(N,)`` of dB mel spectra ``(N, n_mels, frames)``."""
    return power_floor_db((10 ** (mel_db.double() / 10)).mean(-1).numpy())


def real_clips(gen: Generator, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The store items ``rows``' source audio ``(N, samples)`` at the run's rate and length, and their labels."""
    store_dir = Path(gen.info["store"])
    index = json.loads((store_dir / "index.json").read_text())
    key, n = gen.info["label_key"], gen.n_samples
    wavs = [
        fit_length(load_audio(index[i]["path"], sample_rate=gen.spec.sample_rate)[0], n, fade_samples=min(64, n // 8))
        for i in rows
    ]
    return torch.from_numpy(np.stack(wavs).astype(np.float32)), np.array([index[i]["labels"][key] for i in rows])


@torch.no_grad()
def generated_mels(gen: Generator, per_label: int, seeds: int, temperature: float) -> tuple[torch.Tensor, np.ndarray]:
    """dB mel spectra ``(N, n_mels, frames)`` of generated sounds as they reach the mel inversion (post-filter
    applied), and their labels."""
    out, labels = [], []
    for s in range(seeds):
        for i, name in enumerate(sorted(gen.labels)):
            sounds = gen.sample(per_label, label=name, temperature=temperature, seed=s * per_label + 1000 * i)
            names = [name] * len(sounds)
            db = gen.normalizer.denormalize(gen.decode_many([x.latent for x in sounds], names).float())
            sharpen = gen._sharpen(names)  # the run's post-filter, exactly as rendering applies it
            out.append(sharpen(db) if sharpen is not None else db)
            labels += names
    return torch.cat(out), np.array(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--per-label", type=int, default=16)
    ap.add_argument("--postfilter", choices=("run", "fit", "off"), default="fit")
    ap.add_argument("--postfilter-kind", choices=KINDS, default=DEFAULT_KIND)
    ap.add_argument("--gl-iters", default="8,32", help="comma-separated Griffin-Lim iterations to compare")
    ap.add_argument("--ceiling", type=int, default=2, help="ceiling_iters of the first --gl-iters to compare (0: none)")
    ap.add_argument("--mel-method", default="fista", help="mel_to_magnitude's method for every magnitude here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = refit_copy(args.run, Path(tmp) / "run", 10, args.postfilter, args.postfilter_kind)
        gen = Generator.from_run(copy, level="raw")
        cfg, n, rate = gen.spec, gen.n_samples, gen.spec.sample_rate
        if cfg.kind != "mel":
            raise SystemExit(f"{args.run}: a mel run is needed, this one has {cfg.kind!r} features")
        train_rows, _ = split_rows(FeatureStore.open(gen.info["store"]), gen.info)
        wavs, labels = real_clips(gen, np.sort(train_rows))
        gen_db, gen_labels = generated_mels(gen, args.per_label, args.seeds, args.temperature)
    real_db = features(wavs, cfg)
    real_mag = features_to_magnitude(real_db, cfg, mel_method=args.mel_method)
    gen_mag = features_to_magnitude(gen_db, cfg, mel_method=args.mel_method)
    true_mag = magnitude(wavs, cfg)
    default_iters = int(args.gl_iters.split(",")[0])

    def floor(wav: torch.Tensor) -> np.ndarray:
        return spectral_floor_db(wav.numpy(), rate)

    real = {
        "raw": floor(wavs),
        "resynth": floor(griffin_lim(real_mag, cfg, n_iter=default_iters, length=n)),
        "phase only": floor(griffin_lim(true_mag, cfg, n_iter=default_iters, length=n)),
        "mel only": floor(istft(torch.polar(real_mag, stft(wavs, cfg).angle()), cfg, length=n)),
    }
    methods = {f"GL{k}": {"n_iter": int(k)} for k in args.gl_iters.split(",")}
    if args.ceiling:
        methods[f"GL{default_iters} ceiling {args.ceiling}"] = {"n_iter": default_iters, "ceiling_iters": args.ceiling}
    rendered = {
        name: (griffin_lim(real_mag, cfg, length=n, **kw), griffin_lim(gen_mag, cfg, length=n, **kw))
        for name, kw in methods.items()
    }
    first = next(iter(rendered.values()))
    mel_gap = (mel_floor_db(real_db), mel_floor_db(gen_db))
    mel_gap_out = (mel_floor_db(features(first[0], cfg)), mel_floor_db(features(first[1], cfg)))
    floors = {name: (floor(r), floor(g)) for name, (r, g) in rendered.items()}

    classes = sorted(set(labels))

    def med(values: np.ndarray, lab: np.ndarray, c: str) -> float:
        return float(np.median(values[lab == c]))

    print(
        f"{args.run}: T {args.temperature}, {args.seeds} x {args.per_label} a class, post-filter {args.postfilter}"
        f"{' ' + args.postfilter_kind if args.postfilter == 'fit' else ''}; real = training split "
        f"({len(labels)} clips); mel inversion {args.mel_method}; GL{default_iters} is the default render"
    )
    print("\nreal clips, median floor dB | " + " | ".join(real) + " | front-end penalty (resynth - raw)")
    for c in classes:
        v = [med(f, labels, c) for f in real.values()]
        print(f"{c:12s} | " + " | ".join(f"{x:6.1f}" for x in v) + f" | {v[1] - v[0]:+5.1f}")
    print(
        "\ngenerated - real, dB | mel domain, before inversion | mel domain, after | linear (the evaluation's) | "
        + " | ".join(f"{name}: real / generated" for name in floors)
    )
    worst: dict[str, float] = {}
    for c in classes:
        before = med(mel_gap[1], gen_labels, c) - med(mel_gap[0], labels, c)
        after = med(mel_gap_out[1], gen_labels, c) - med(mel_gap_out[0], labels, c)
        lin = {name: (med(r, labels, c), med(g, gen_labels, c)) for name, (r, g) in floors.items()}
        first_lin = next(iter(lin.values()))
        worst[c] = first_lin[1] - first_lin[0]
        cells = " | ".join(f"{r:6.1f} / {g:6.1f} ({g - r:+5.1f})" for r, g in lin.values())
        print(f"{c:12s} | {before:+6.1f} | {after:+6.1f} | {worst[c]:+6.1f} | {cells}")
    off = {str(c): round(v, 1) for c, v in worst.items() if abs(v) > 6}
    print(f"\nclasses > 6 dB off (linear, against the resynthesised training clips): {len(off)} {off}")


if __name__ == "__main__":
    main()
