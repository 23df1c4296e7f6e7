"""Fixtures shared by the sound engine's test modules."""

import pytest

from tests.sounds.models.test_prior import make_prior_runs


@pytest.fixture(scope="session")
def prior_run(tmp_path_factory):
    """A tiny vqvae + prior over steady tones (8 takes, 2 epochs each, a 16-wide single-layer prior): the run the
    continuation tests (level following, pause and window guards) draw from, trained once per session."""
    return make_prior_runs(
        tmp_path_factory.mktemp("steady_prior"), takes=8, vq_epochs=2, prior_epochs=2, prior_size=(16, 1)
    )[1]
