import pytest
import torch

from tests.sounds.models.synth_store import make_store

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("registry-data"))
