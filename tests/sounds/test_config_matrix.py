"""Every registered model kind at tiny capacity, end to end (as RAVE's test_configs, extended).

For each kind: train through the real entry (:func:`train`), forward shapes, a safetensors save and
reload through the registry, and every Generator mode: sample (recalled from its sidecar), variation,
and interpolation / continuation where the kind does them, a clear ParameterError where it does not.
A kind registered without an entry here fails the test, so the matrix cannot silently fall behind.

``SOUNDLOOM_TEST_ACCELERATOR=gpu`` trains every kind on a CUDA GPU instead (``benchmarks/check_cuda.sh`` does, on a
machine that has one); generation then runs from the saved safetensors on the CPU, as a user's would.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds import Generator
from soundloom.sounds.models import (
    build_model,
    config_from_dict,
    kind_names,
    load_safetensors,
    load_state,
    protocol,
    save_safetensors,
)
from soundloom.sounds.training import TrainConfig, train
from tests.sounds.models.synth_store import N_SAMPLES, SAMPLE_RATE, make_store, tone

torch.set_num_threads(1)
ACCELERATOR = os.environ.get("SOUNDLOOM_TEST_ACCELERATOR", "cpu")

# Per kind: (TrainConfig overrides, the kind it starts from or stands on, and the option naming that run).
MATRIX = {
    "vae": ({"latent_dim": 3, "channels": [4, 8]}, None, None),
    "cvae": ({"latent_dim": 3, "channels": [4, 8]}, None, None),
    "vqvae": ({"latent_dim": 4, "model_options": {"codebook_size": 8, "vq_channels": "8,16"}}, None, None),
    "prior": ({"model_options": {"width": 16, "layers": 1, "heads": 2}}, "vqvae", "vqvae"),
    "vaegan": ({"model_options": {"disc_channels": 4}}, "cvae", "init_from"),
    "wave-vae": ({"latent_dim": 3, "model_options": {"wave_channels": "4,8", "strides": "4,4"}}, None, None),
    "ddsp": (
        {"latent_dim": 3, "model_options": {"hop": 32, "n_harmonics": 8, "noise_bands": 4, "hidden": 8}},
        None,
        None,
    ),
}


@pytest.fixture(scope="module")
def matrix_runs(tmp_path_factory):
    """Each kind trained for one epoch on a tiny store; the dependent kinds after the runs they need."""
    root = tmp_path_factory.mktemp("matrix")
    store = make_store(root)
    runs: dict = {}

    def run_of(kind: str):
        if kind in runs:
            return runs[kind]
        overrides, needs, option = MATRIX[kind]
        options = dict(overrides.get("model_options", {}))
        if needs:
            options[option] = str(run_of(needs))
        cfg = TrainConfig(
            features=str(store),
            model=kind,
            epochs=1,
            batch_size=8,
            warmup_steps=2,
            sample_items=1,
            griffin_lim_iters=2,
            val_fraction=0.25,
            accelerator=ACCELERATOR,
            **{**overrides, "model_options": options},
        )
        runs[kind] = train(cfg, root / kind, progress_bar=False)
        return runs[kind]

    return run_of


def test_every_registered_kind_is_in_the_matrix():
    assert set(kind_names()) <= set(MATRIX), f"add {set(kind_names()) - set(MATRIX)} to MATRIX"


@pytest.mark.parametrize("kind", sorted(MATRIX))
def test_kind_end_to_end(kind, matrix_runs, tmp_path):
    run = matrix_runs(kind)
    info = json.loads((run / "model.json").read_text())
    assert info["model"]["kind"] == kind
    gen = Generator.from_run(run, griffin_lim_iters=2)
    model = gen.model
    labels = gen.labels if model.label_conditioned else []
    label = labels[0] if labels else None

    # Forward: shapes of the latent and of what it decodes to.
    wav = tone(440.0, 0, 0)
    x = gen.model_input(wav, SAMPLE_RATE)[None]
    lab, pit = gen.conditions(label, None)
    with torch.no_grad():
        z = protocol.encode_latent(model, x, lab, pit)
        out = protocol.decode_latent(model, z, lab, pit)
    assert z.shape == (1, gen.latent_dim)
    assert out.shape == x.shape and torch.isfinite(out).all()

    # Save and reload through safetensors and the registry's config round trip.
    path = save_safetensors(tmp_path / "m.safetensors", model.state_dict(), kind=kind)
    again = build_model(config_from_dict(json.loads(json.dumps(model.cfg.to_dict()))))
    load_state(again, load_safetensors(path, kind=kind), path)
    for name in model.cfg.requires():
        again.attach(name, getattr(model, name))
    with torch.no_grad():
        assert torch.equal(protocol.decode_latent(again.eval(), z, lab, pit), out)

    # Sample: seeded, the training length, recalled bit for bit from the sidecar.
    a, b = gen.sample(2, label=label, seed=3), gen.sample(2, label=label, seed=3)
    assert all(len(s.audio) == N_SAMPLES and np.isfinite(s.audio).all() for s in a)
    assert all(np.array_equal(s.audio, t.audio) for s, t in zip(a, b))
    assert np.array_equal(gen.from_sidecar(a[1].sidecar(gen.model_record())).audio, a[1].audio)

    varied = gen.variation(wav, SAMPLE_RATE, amount=0.5, n=2, seed=1, label=label)
    assert len(varied) == 2 and all(len(s.audio) == N_SAMPLES for s in varied)

    zb = gen.encode(tone(880.0, 1, 1), SAMPLE_RATE, label)
    if protocol.supports(model, "interpolable"):
        steps = gen.interpolate(z[0].numpy(), zb, steps=3, label=label)
        assert len(steps) == 3 and np.allclose(steps[0].latent, z[0].numpy())
    else:
        with pytest.raises(ParameterError, match=f"a {kind} model cannot interpolate"):
            gen.interpolate(z[0].numpy(), zb, steps=3, label=label)

    seconds = N_SAMPLES / SAMPLE_RATE
    if protocol.supports(model, "continuable"):
        cont = gen.continue_(wav[: N_SAMPLES // 2], SAMPLE_RATE, seconds, label=label, steps=3, seed=2)
        assert len(cont[0].audio) == N_SAMPLES
        assert np.array_equal(gen.from_sidecar(_saved_sidecar(gen, cont, tmp_path)).audio, cont[0].audio)
    else:
        with pytest.raises(ParameterError, match=f"a {kind} model cannot continue"):
            gen.continue_(wav[: N_SAMPLES // 2], SAMPLE_RATE, seconds, label=label)


def _saved_sidecar(gen: Generator, sounds, folder) -> dict:
    gen.save(sounds, folder / "cont")
    return json.loads((folder / "cont" / "continue_000.json").read_text())
