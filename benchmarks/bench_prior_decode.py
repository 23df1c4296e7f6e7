"""``bench_prior.py`` with every render, the held-out reference's and the generated sounds', through another decode.

    python benchmarks/bench_prior_decode.py --mel-method fista-diag --ceiling 0 RUN --classifier CLF \
        --temperature 0.8 --seeds 3 --priors mixture --per-label 16 --postfilter fit --postfilter-kind gv+quantile

``--mel-method`` (``mel_to_magnitude``: "fista", the default render, or "fista-diag") and ``--ceiling``
(``griffin_lim(..., ceiling_iters=K)``; 0 is the default render) replace the decode's defaults for the whole run;
every other argument goes to ``bench_prior.py`` unchanged, so its output compares line for line with a plain
``bench_prior.py`` run (``--mel-method fista --ceiling 0`` prints exactly what ``bench_prior.py`` prints).
"""

from __future__ import annotations

import argparse
import sys

import bench_prior
import soundloom.sounds.decode as decode
from soundloom.core.spectral import MEL_METHODS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    ap.add_argument("--mel-method", choices=MEL_METHODS, default="fista")
    ap.add_argument("--ceiling", type=int, default=0)
    args, rest = ap.parse_known_args()
    # The decode module's own names, which features_to_audio calls (the Generator and the reference both render
    # there), replaced by ones that force the asked method whatever their caller passes.
    to_magnitude, griffin_lim = decode.features_to_magnitude, decode.griffin_lim

    def forced_magnitude(*a, **k):
        return to_magnitude(*a, **{**k, "mel_method": args.mel_method})

    def forced_griffin_lim(*a, **k):
        return griffin_lim(*a, **{**k, "ceiling_iters": args.ceiling})

    decode.features_to_magnitude, decode.griffin_lim = forced_magnitude, forced_griffin_lim
    print(f"decode: mel inversion {args.mel_method}, Griffin-Lim ceiling_iters {args.ceiling}", flush=True)
    sys.argv = ["bench_prior.py", *rest]
    bench_prior.main()


if __name__ == "__main__":
    main()
