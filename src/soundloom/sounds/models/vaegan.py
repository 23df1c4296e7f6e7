"""VAE-GAN: a trained vae/cvae sharpened by a spectrogram discriminator (Larsen et al. 2016), as a second stage.

The generator is the VAE itself (same class, same config with kind "vaegan" and ``init_from`` naming the
run it started from), so generation, the fitted prior and every Generator mode are exactly the VAE's.
Only training differs (:mod:`soundloom.sounds.training.gan`): a multi-scale patch discriminator over
normalised spectrograms, LSGAN and feature-matching losses on top of the VAE's reconstruction + β·KL.
"""

from __future__ import annotations

from ...core.errors import ModelFileError, ParameterError
from ..runfiles import read_run_info, run_reference
from .cvae import CVAE
from .registry import KindOption, ModelKind, register
from .vae import VAE, ModelConfig


def build_vaegan(cfg: ModelConfig) -> VAE:
    """The VAE (or CVAE, when it has conditions) of a vaegan config."""
    return CVAE(cfg) if (cfg.labels or cfg.n_pitches) else VAE(cfg)


def _new_vaegan_config(
    rows, frames, labels, n_pitches, latent_dim, channels, init_from, adv_weight, fm_weight, disc_channels
) -> ModelConfig:
    """The first stage's config with kind "vaegan" (its latent size and channels win over the CLI's)."""
    if not init_from:
        raise ParameterError("a vaegan starts from a trained vae/cvae run: --init-from RUN")
    base = read_run_info(init_from)["model"]
    if base.get("kind") not in ("vae", "cvae", "vaegan"):
        raise ModelFileError(init_from, f"is a {base.get('kind')!r} run; a vaegan starts from a vae or cvae")
    if (base["rows"], base["frames"]) != (rows, frames):
        raise ParameterError(
            f"{init_from} was trained on features ({base['rows']}, {base['frames']}), this store has ({rows}, {frames})"
        )
    if base.get("labels") and list(base["labels"]) != list(labels):
        raise ParameterError(f"{init_from} knows labels {base['labels']}, this store has {labels}")
    cfg = ModelConfig.from_dict({**base, "kind": "vaegan", "init_from": run_reference(init_from)})
    if cfg.n_pitches and not n_pitches:
        raise ParameterError(f"{init_from} is pitch-conditioned but this store has no pitch label")
    return cfg


register(
    ModelKind(
        name="vaegan",
        config=ModelConfig,
        build=build_vaegan,
        new_config=_new_vaegan_config,
        training="soundloom.sounds.training.gan:vaegan_module",
        conditional=True,
        options=(
            KindOption("init_from", str, "", "The trained vae/cvae run to start from (required)."),
            KindOption("adv_weight", float, 1.0, "Weight of the adversarial (LSGAN) loss."),
            KindOption("fm_weight", float, 2.0, "Weight of the discriminator feature-matching loss."),
            KindOption("disc_channels", int, 32, "Channels of the discriminator's first layer."),
        ),
        help="VAE-GAN: a vae/cvae run (--init-from RUN) sharpened by a multi-scale spectrogram discriminator.",
    )
)
