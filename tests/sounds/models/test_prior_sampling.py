"""The prior's sampling loop on an untrained tiny prior: the window slides in hops and never holds more than a
training window of context, the cache changes nothing, draws follow the model's distribution; and the
training windows that join two items of one label."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundloom.core.errors import ParameterError
from soundloom.sounds.models.prior import PriorConfig, PriorModel
from soundloom.sounds.training.vq import joined_windows

FRAMES = 8  # codes per training item: the context holds at most 7


@pytest.fixture(scope="module")
def model() -> PriorModel:
    torch.manual_seed(0)
    cfg = PriorConfig(codebook_size=16, code_frames=FRAMES, labels=["a", "b"], width=16, layers=1, heads=2)
    return PriorModel(cfg).eval()


def _gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_the_window_slides_in_hops_and_never_exceeds_a_training_window(model, monkeypatch):
    primes: list[tuple[int, int]] = []  # (codes in the context, first code sampled from it)
    steps: list[int] = []
    logits, next_logits = model.logits, model.next_logits

    def spy_logits(codes, labels=None, pitches=None, cache=None, resumed=None):
        out = logits(codes, labels, pitches, cache, resumed)
        primes.append(codes.shape[1])
        return out

    def spy_next(code, cache, weights=None):
        steps.append(len(cache[0]))  # positions before this one (condition token included)
        return next_logits(code, cache, weights)

    monkeypatch.setattr(model, "logits", spy_logits)
    monkeypatch.setattr(model, "next_logits", spy_next)
    prefix = torch.randint(0, 16, (2, 3))
    out = model.sample_codes(prefix, 5 * FRAMES, torch.tensor([0, 1]), None, 1.0, _gens(2))
    assert out.shape == (2, 5 * FRAMES) and torch.equal(out[:, :3], prefix.float())
    assert out.min() >= 0 and out.max() < 16
    window, hop = FRAMES - 1, (FRAMES - 1) // 2
    assert max(primes) <= window and max(steps) <= window  # condition token + codes, the new one included
    # After the first window every restart keeps window - hop codes, at the positions slide_points names.
    assert primes[0] == 3 and all(p == window - hop for p in primes[1:])
    assert len(primes) - 1 == len(model.slide_points(3, 5 * FRAMES))
    # 5 windows' worth of codes cost a handful of context restarts, not a whole window per code.
    assert len(primes) <= 2 + 5 * FRAMES // (hop + 1)


@pytest.mark.parametrize("hop", [1, 3, FRAMES - 1])
def test_cached_and_uncached_sampling_draw_the_same_codes_at_every_hop(model, hop):
    labels = torch.tensor([0, 1, 1])
    runs = [
        model.sample_codes(torch.zeros(3, 0), 4 * FRAMES, labels, None, 1.2, _gens(3, 7), 0, cached, hop)
        for cached in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])
    with pytest.raises(ParameterError, match="hop must be between"):
        model.sample_codes(torch.zeros(1, 0), 2 * FRAMES, labels[:1], None, 1.0, _gens(1), hop=FRAMES)


def test_draws_follow_the_model_distribution_and_top_k(model, monkeypatch):
    probs = torch.tensor([0.6, 0.3, 0.1] + [0.0] * 13)
    fixed = torch.log(probs.clamp_min(1e-30))

    def fake_logits(codes, labels=None, pitches=None, cache=None, resumed=None):
        if cache is not None:
            cache[:] = [[torch.zeros(1, 1, codes.shape[1] + 1, 1)]]
        return fixed.expand(codes.shape[0], codes.shape[1] + 1, -1)

    def fake_next(code, cache, weights=None):
        return fixed.expand(code.shape[0], -1)

    monkeypatch.setattr(model, "logits", fake_logits)
    monkeypatch.setattr(model, "next_logits", fake_next)
    n = 400
    codes = model.sample_codes(torch.zeros(n, 0), 10, None, None, 1.0, _gens(n)).long()
    freq = torch.bincount(codes.flatten(), minlength=16).float() / codes.numel()
    assert torch.allclose(freq[:3], probs[:3], atol=0.03) and freq[3:].sum() == 0
    greedy = model.sample_codes(torch.zeros(n, 0), 10, None, None, 1.0, _gens(n), top_k=1)
    assert (greedy == 0).all()
    # Each item draws from its own generator: the same seed gives the same codes in any batch.
    alone = model.sample_codes(torch.zeros(1, 0), 10, None, None, 1.0, _gens(1, 5))
    assert torch.equal(alone[0], codes[5].float())


def test_joined_windows_cross_two_items_of_one_label():
    torch.manual_seed(3)
    t = 6
    codes = torch.arange(8)[:, None] * 100 + torch.arange(t)[None]  # item i's codes are 100 i + position
    labels = torch.tensor([0, 1, 0, 1, 2, 0, 1, 0])
    out = joined_windows(codes, labels, 0.5)
    assert out.shape == codes.shape and torch.equal(out[4:], codes[4:])
    for row, i in zip(out[:4], range(4)):
        items = row // 100
        assert items[0] == i, row  # starts inside item i ...
        tail = (items == i).sum()
        assert 0 < tail < t and (row[:tail] % 100 == torch.arange(t - tail, t)).all()  # ... with its last codes
        partner = int(items[-1])
        assert labels[partner] == labels[i] and (row[tail:] % 100 == torch.arange(t - tail)).all()
    # The only item of its label joins itself; share 0 changes nothing.
    alone = joined_windows(codes[4:5], labels[4:5], 1.0)[0]
    assert (alone // 100 == 4).all() and not torch.equal(alone, codes[4])
    assert torch.equal(joined_windows(codes, labels, 0.0), codes)


def test_windows_that_begin_inside_a_stream_are_marked_resumed(monkeypatch):
    torch.manual_seed(1)
    cfg = PriorConfig(codebook_size=16, code_frames=FRAMES, labels=["a"], width=16, layers=1, heads=2, joined=0.25)
    model = PriorModel(cfg).eval()
    seen: list[tuple[int, bool]] = []
    logits = model.logits

    def spy(codes, labels=None, pitches=None, cache=None, resumed=None):
        seen.append((codes.shape[1], bool(resumed.all())))
        return logits(codes, labels, pitches, cache, resumed)

    monkeypatch.setattr(model, "logits", spy)
    model.sample_codes(torch.zeros(1, 0), 3 * FRAMES, torch.tensor([0]), None, 1.0, _gens(1))
    assert seen[0] == (0, False) and all(r for _, r in seen[1:]) and len(seen) > 1
    # The mark changes the condition token only where it is set, and a prior trained without joined windows
    # has no such vector.
    lab = torch.tensor([0, 0])
    token = model.condition(lab, None, 2, torch.tensor([False, True]))
    assert torch.equal(token[0], model.condition(lab[:1], None, 1)[0]) and not torch.equal(token[0], token[1])
    assert PriorModel(PriorConfig(codebook_size=16, code_frames=FRAMES, width=16, heads=2)).resumed is None


@pytest.mark.parametrize("batch,past", [(3, 7), (1, 1)])
def test_a_cached_step_is_the_blocks_forward_bit_for_bit(batch, past):
    """Block.step writes the attention out with keys scaled once, when cached; it must be what
    scaled_dot_product_attention gives, to the bit, so cached and uncached sampling keep drawing the same codes."""
    from soundloom.sounds.models.prior import Block, KVCache, alibi_bias

    torch.manual_seed(1)
    block = Block(16, 2).eval()
    ctx, new = torch.randn(batch, past, 16), torch.randn(batch, 1, 16)
    bias = alibi_bias(past + 1, 2)[:, past:]
    with torch.inference_mode():
        # The written-out attention is SDPA's, bit for bit, for one query and for a whole prefix.
        q, k, v = torch.randn(3, batch, 2, past + 1, 8)
        for rows, mask in ((slice(past, None), bias), (slice(None), alibi_bias(past + 1, 2))):
            s = block.scale
            mine = torch.matmul(torch.matmul(q[:, :, rows] * s, (k * s).transpose(-2, -1)).add_(mask).softmax(-1), v)
            assert torch.equal(mine, F.scaled_dot_product_attention(q[:, :, rows], k, v, attn_mask=mask))
        caches = [KVCache(), KVCache()]
        prefix = [block(ctx, alibi_bias(past, 2), c) for c in caches]
        assert torch.equal(prefix[0], block(ctx, alibi_bias(past, 2))) and len(caches[0]) == past
        stepped = block.step(new, bias, caches[0])
        assert torch.equal(stepped, block(new, bias, caches[1])) and len(caches[0]) == past + 1
        assert torch.equal(caches[0].k, caches[1].k) and torch.equal(caches[0].v, caches[1].v)
        # One position more than a whole forward: the same up to rounding (row count changes the matmuls).
        whole = block(torch.cat([ctx, new], dim=1), alibi_bias(past + 1, 2))[:, -1:]
        assert torch.allclose(stepped, whole, atol=1e-5)
