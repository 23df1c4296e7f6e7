import pytest
import torch

from soundloom.sounds.training import TrainConfig, train
from tests.sounds.models.synth_store import make_store

torch.set_num_threads(1)


def train_tiny(root, kind: str = "db", epochs: int = 2):
    """A tiny cvae (latent 3, channels 4, 8) trained for ``epochs`` on a synthetic store of feature ``kind``."""
    cfg = TrainConfig(
        features=str(make_store(root, kind=kind)),
        model="cvae",
        epochs=epochs,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        sample_items=0,
        val_fraction=0.25,
    )
    return train(cfg, root / "run", progress_bar=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="session")
def mel_run(tmp_path_factory):
    """A tiny cvae on a mel store (the kind whose inversion starts somewhere)."""
    return train_tiny(tmp_path_factory.mktemp("mel"), kind="mel", epochs=1)
