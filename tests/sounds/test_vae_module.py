"""The VAE family's training module: fused AdamW on CPU, and the optional per-class weighting of the loss."""

import pytest
import torch

from soundloom.core.errors import ParameterError
from soundloom.sounds.losses import elbo_terms, long_term_spectrum_error
from soundloom.sounds.training.module import VAEModule

TINY = {"kind": "cvae", "rows": 16, "frames": 16, "channels": [4, 8], "latent_dim": 4, "labels": ["a", "b"]}


def _steps(module: VAEModule, opt: torch.optim.Optimizer, n: int = 3) -> list[float]:
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(n):
        x = torch.rand(4, 16, 16, generator=gen) * 2 - 1
        lab = torch.tensor([0, 1, 0, 1])
        torch.manual_seed(1)  # the same posterior noise for both optimizers
        x_hat, mu, logvar = module.model(x, lab)
        loss = elbo_terms(x_hat, x, mu, logvar, 0.03).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _step_and_forward(module: VAEModule, stage: str):
    """The module's loss on a fixed batch, the batch, and the model's forward pass with the same posterior noise."""
    x = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    batch = (x, torch.tensor([0, 1, 0, 1]), torch.full((4,), -1))
    torch.manual_seed(3)
    got = module._step(batch, stage, 0.03).loss
    torch.manual_seed(3)
    return got, batch, module.model(x, batch[1])


def test_fused_adamw_on_cpu_updates_as_the_plain_loop_does():
    torch.manual_seed(0)
    fused_module = VAEModule(TINY)
    plain_module = VAEModule(TINY)
    plain_module.load_state_dict(fused_module.state_dict())
    fused = fused_module.configure_optimizers()
    assert fused.defaults["fused"]
    plain = torch.optim.AdamW(plain_module.parameters(), lr=fused_module.lr, weight_decay=0.0)
    fused_losses, plain_losses = _steps(fused_module, fused), _steps(plain_module, plain)
    assert fused_losses[0] == plain_losses[0] and fused_losses[-1] < fused_losses[0]
    assert all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(fused_losses, plain_losses))
    # Outputs, not weights: a conv bias before a batch norm has a zero gradient up to rounding, which Adam
    # scales to a full step either way.
    x = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    lab = torch.tensor([0, 1])
    with torch.no_grad():
        got = fused_module.model.eval()(x, lab, sample=False)[0]
        want = plain_module.model.eval()(x, lab, sample=False)[0]
    assert torch.allclose(got, want, atol=1e-4)


def test_class_weighting_weights_items_by_their_class_running_error():
    module = VAEModule(TINY, class_weighting=True)
    w = module.item_weights(torch.tensor([1.0, 1.0, 4.0, 4.0]), torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(w, torch.tensor([2 / 3, 2 / 3, 4 / 3, 4 / 3]))  # sqrt of the 1:4 error ratio, mean 1
    assert torch.allclose(module.class_error, torch.tensor([1.0, 4.0]))
    module.item_weights(torch.tensor([1.0, 1.0]), torch.tensor([1, 1]))
    assert torch.allclose(module.class_error, torch.tensor([1.0, 3.7]))  # running mean, decay 0.9
    assert "class_error" in module.state_dict()  # kept by a checkpoint, so a resumed run goes on with it


def test_without_class_weighting_the_loss_is_the_plain_elbo_and_checkpoints_are_as_before():
    module = VAEModule(TINY)
    assert not any(k.startswith("class_error") for k in module.state_dict())
    module.log_dict = module.log = lambda *args, **kwargs: None
    got, batch, (x_hat, mu, logvar) = _step_and_forward(module, "train")
    assert torch.equal(got, elbo_terms(x_hat, batch[0], mu, logvar, 0.03).loss)
    weighted = VAEModule(TINY, class_weighting=True)
    weighted.load_state_dict({**module.state_dict(), "class_error": torch.zeros(2)})
    weighted.log_dict = weighted.log = lambda *args, **kwargs: None
    torch.manual_seed(3)
    assert not torch.equal(weighted._step(batch, "train", 0.03).loss, got)
    assert bool((weighted.class_error > 0).all())


def test_the_long_term_spectrum_term_adds_to_the_loss_and_stays_out_of_checkpoints():
    with pytest.raises(ParameterError, match="row_scale"):
        VAEModule(TINY, spectrum_weight=1.0)
    plain, module = VAEModule(TINY), VAEModule(TINY, spectrum_weight=0.5, row_scale=[60.0] * 16)
    module.load_state_dict(plain.state_dict())  # the scale is not a persistent buffer: same keys as before
    logged = {}
    module.log_dict = lambda d, **kwargs: logged.update(d)
    got, (x, _, _), (x_hat, mu, logvar) = _step_and_forward(module, "val")
    spectrum = long_term_spectrum_error(x_hat, x, torch.full((16,), 60.0)).mean().detach()
    assert float(spectrum) > 0 and torch.allclose(logged["val/spectrum"], spectrum)
    assert torch.allclose(got.detach(), elbo_terms(x_hat, x, mu, logvar, 0.03).loss.detach() + 0.5 * spectrum)
