import pytest
import torch

from soundloom.sounds.training import TrainConfig, train
from tests.sounds.models.synth_store import make_store

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    store = make_store(root)
    cfg = TrainConfig(
        features=str(store),
        model="cvae",
        epochs=2,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        sample_items=0,
        val_fraction=0.25,
    )
    return train(cfg, root / "run", progress_bar=False)
