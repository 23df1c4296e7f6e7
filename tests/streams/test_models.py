"""Every transition model at tiny capacity: forward shapes, one training step, safetensors round trip."""

import numpy as np
import pytest
import torch

from soundloom.streams.transitions import build_scorer, load_scorer
from soundloom.streams.transitions.base import TransitionScorer

TINY = {
    "features": {},
    "contrastive": {"width": 16, "dim": 8, "frames": 8},
    "cnn-lstm": {"side_s": 0.1, "filters": 8, "lstm": 8, "dense": 8},
    "fusion": {"contrastive": {"width": 16, "dim": 8, "frames": 8}},
    "contrastive-ensemble": {"members": [{"width": 16, "dim": 8, "frames": 8}] * 2},
}


def windows(n: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n, w, generator=g)


@pytest.mark.parametrize("name", list(TINY))
def test_scores_shape_and_embedding_agrees(name):
    m = build_scorer(name, sample_rate=22050, **TINY[name]).eval()
    assert isinstance(m, TransitionScorer)
    t, h = windows(5, m.edge_samples), windows(5, m.edge_samples, 1)
    s = m.score_pairs(t, h)
    assert s.shape == (5,) and torch.isfinite(s).all()
    if m.embeds:
        et, eh = m.embed_tails(t), m.embed_heads(h)
        assert et.shape[0] == 5 and et.shape == eh.shape
        assert torch.allclose((et * eh).sum(1), s, atol=1e-4)
    else:
        with pytest.raises(NotImplementedError):
            m.embed_tails(t)


@pytest.mark.parametrize("name", list(TINY))
def test_save_load_round_trip(name, tmp_path):
    m = build_scorer(name, sample_rate=22050, **TINY[name]).eval()
    if name == "fusion":
        m.weight.fill_(0.37)
    t, h = windows(4, m.edge_samples), windows(4, m.edge_samples, 2)
    m.save(tmp_path / name)
    assert (tmp_path / name / "model.safetensors").exists()
    back = load_scorer(tmp_path / name)
    assert type(back) is type(m)
    assert torch.allclose(back.score_pairs(t, h), m.score_pairs(t, h), atol=1e-5)


def test_load_refuses_weights_of_another_model(tmp_path):
    from soundloom.sounds.models import ModelFileError

    build_scorer("contrastive", sample_rate=22050, **TINY["contrastive"]).save(tmp_path / "c")
    build_scorer("cnn-lstm", sample_rate=22050, **TINY["cnn-lstm"]).save(tmp_path / "l")
    (tmp_path / "c" / "model.safetensors").replace(tmp_path / "l" / "model.safetensors")
    with pytest.raises(ModelFileError, match="model.safetensors: holds a 'transition-contrastive' model"):
        load_scorer(tmp_path / "l")


def test_features_prefers_continuation():
    m = build_scorer("features", sample_rate=22050).eval()
    n = 22050
    tt = np.arange(2 * n) / 22050
    a = torch.tensor(0.3 * np.sin(2 * np.pi * 220 * tt), dtype=torch.float32)
    b = torch.tensor(0.05 * np.sin(2 * np.pi * 1760 * tt), dtype=torch.float32)
    tail = a[:n][None]
    s_cont = m.score_pairs(tail, a[n:][None])
    s_other = m.score_pairs(tail, b[n:][None])
    assert float(s_cont) > float(s_other)
    assert float(s_cont) == pytest.approx(0.0, abs=0.05)  # identical features: zero distance


def test_contrastive_training_step_lowers_loss():
    from soundloom.streams.transitions.training import infonce

    torch.manual_seed(0)
    m = build_scorer("contrastive", **TINY["contrastive"])
    tails, heads = torch.randn(16, 64, 8) * 10 - 40, torch.randn(16, 64, 8) * 10 - 40
    heads = tails + 0.1 * heads  # learnable: the head mirrors its tail
    shifted = torch.randn(4, 64, 8) * 10 - 40
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss, _ = infonce(m, tails, heads, shifted)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first


def test_cnnlstm_layers_and_step():
    m = build_scorer("cnn-lstm", **TINY["cnn-lstm"])
    x = m.prepare(windows(6, m.tail_samples), windows(6, m.head_samples, 3))
    assert x.shape == (6, 1, (2 * m.tail_samples + 34) // 35)
    assert float(x.abs().max()) <= 1.0
    opt = torch.optim.RMSprop(m.parameters(), lr=1e-3)
    y = torch.tensor([1.0, 0, 1, 0, 1, 0])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x), y)
    loss.backward()
    opt.step()
    full = build_scorer("cnn-lstm")
    assert full.conv.out_channels == 1024 and full.lstm.hidden_size == 256 and full.dense.out_features == 256
    assert full.dropout.p == 0.25


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown transition model"):
        build_scorer("transformer")


def test_cut_batches_shifted_heads_belong_to_their_owner():
    from soundloom.streams.transitions.training import CutBatches, infonce

    frames = torch.arange(400, dtype=torch.float32)[None, :].repeat(4, 1)  # value = frame index
    data = CutBatches(
        [frames, frames + 1000.0], frames=8, gap=4, songs=2, per_song=8, hard=6, seed=0, augment=False
    )  # the slice geometry, unaugmented (test_generalise covers the augmentation)
    tails, heads, shifted, owner = next(iter(data))
    assert tails.shape == (16, 4, 8) and len(shifted) == len(owner) > 0
    # n_fft = 4 hops: the tail's last frame (k - 4) ends where the head's first frame (k) starts
    assert torch.allclose(heads[:, 0, 0] - tails[:, 0, -1], torch.full((16,), 4.0))
    d = shifted[:, 0, 0] - heads[owner, 0, 0]
    assert torch.all((d.abs() >= 4) & (d.abs() < 40))
    loss, acc = infonce(_Tiny4(), tails, heads, shifted, owner)
    assert torch.isfinite(loss)


class _Tiny4(torch.nn.Module):
    """Stand-in encoder pair over 4 mel bands: mean over time."""

    def encode_tail_mel(self, x):
        return x.mean(-1)

    def encode_head_mel(self, x):
        return x.mean(-1)


def test_training_slices_match_inference_windows():
    """Frames sliced from a whole song's log-mel equal the log-mel of the cut windows (no leak)."""
    m = build_scorer("contrastive", **TINY["contrastive"]).eval()
    song = windows(1, 30000, 5)[0]
    mel = m.log_mel(song)
    gap, T, k = m.n_fft // m.hop, m.frames, 60
    cut = k * m.hop
    tail_win = song[cut - m.tail_samples : cut][None]
    head_win = song[cut : cut + m.head_samples][None]
    assert torch.allclose(mel[:, k - gap - T + 1 : k - gap + 1], m.log_mel(tail_win)[0], atol=1e-3)
    assert torch.allclose(mel[:, k : k + T], m.log_mel(head_win)[0], atol=1e-3)


def test_ensemble_scores_the_mean_of_its_members():
    from soundloom.streams.transitions.contrastive import ContrastiveEnsemble

    torch.manual_seed(0)
    members = [build_scorer("contrastive", sample_rate=22050, **TINY["contrastive"]).eval() for _ in range(3)]
    ens = ContrastiveEnsemble.of(members).eval()
    t, h = windows(4, ens.edge_samples), windows(4, ens.edge_samples, 3)
    with torch.no_grad():
        mean = torch.stack([m.score_pairs(t, h) for m in members]).mean(0)
        assert torch.allclose(ens.score_pairs(t, h), mean, atol=1e-5)
