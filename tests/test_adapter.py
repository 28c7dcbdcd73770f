"""The DRA adapter against the equations (docs/design.md section 1), on small tensors."""

import pytest
import torch

from dra.adapters import AdapterBranch, DynamicRankAdapter, PlainAdapter, scale_gradient
from dra.adapters.dynamic_rank import gumbel_like
from dra.config import DRAConfig
from reference import reference_dra


def make(dim=24, n=11, b=3, seed=0, **cfg):
    torch.manual_seed(seed)
    config = DRAConfig(**{"rank": 8, **cfg})
    adapter = DynamicRankAdapter(dim, config)
    x = torch.randn(b, n, dim)
    return adapter, x


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"channel_response": False},
        {"output_relu": False},
        {"num_groups": 3, "rank_ratios": (1.0, 0.7, 0.4)},
        {"num_groups": 5, "rank_ratios": (1.0, 0.8, 0.6, 0.4, 0.2), "rank": 10},
        {"noise_temperature": 0.3},
    ],
)
def test_train_output_matches_reference(cfg):
    adapter, x = make(**cfg)
    adapter.train()
    tn = gumbel_like(torch.empty(x.shape[0], x.shape[1]))
    cn = gumbel_like(torch.empty(x.shape[0], adapter.config.rank))
    got = adapter(x, token_noise=tn, channel_noise=cn)
    want = reference_dra(adapter, x, tn, cn, train=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_eval_output_is_unmasked_and_deterministic():
    adapter, x = make()
    adapter.eval()
    want = reference_dra(adapter, x, None, None, train=False)
    torch.testing.assert_close(adapter(x), want)
    torch.testing.assert_close(adapter(x), adapter(x), rtol=0, atol=0)


def test_kept_channels_and_group_sizes_for_the_paper_defaults():
    cfg = DRAConfig()
    assert cfg.kept_channels == (32, 25, 19, 12)
    torch.manual_seed(0)
    adapter = DynamicRankAdapter(64, cfg).train()
    x = torch.randn(2, 197, 64)
    adapter(x)
    ranks = adapter.last_ranks
    assert ranks.shape == (2, 197) and ranks.dtype == torch.int64
    for b in range(2):
        counts = {int(k): int(v) for k, v in zip(*torch.unique(ranks[b], return_counts=True))}
        assert counts == {32: 50, 25: 49, 19: 49, 12: 49}  # tensor_split: sizes differ by <= 1, larger first


def test_mask_keeps_the_top_of_the_channel_order_scaled_by_inverse_ratio():
    adapter, x = make(rank=10, num_groups=2, rank_ratios=(1.0, 0.5), noise_temperature=0.0)
    adapter.train()
    h = torch.relu(adapter.down(x))
    mask = adapter.rank_mask(h).detach()
    a_c = adapter.channel_scores(h)
    top5 = a_c.argsort(-1, descending=True)[:, :5]
    ranks = adapter.last_ranks
    for b in range(x.shape[0]):
        low = mask[b][ranks[b] == 5]  # tokens of the less important group
        assert torch.all((low == 0) | (low == 2.0))  # 1 / 0.5
        kept = set(torch.nonzero(low[0]).flatten().tolist())
        assert kept == set(top5[b].tolist())
        high = mask[b][ranks[b] == 10]
        assert torch.all(high == 1.0)


def test_channel_response_off_keeps_the_first_channels():
    adapter, x = make(rank=10, num_groups=2, rank_ratios=(1.0, 0.4), channel_response=False)
    assert adapter.channel_proj is None
    adapter.train()
    mask = adapter.rank_mask(torch.relu(adapter.down(x))).detach()
    low = mask[adapter.last_ranks == 4]
    assert torch.all(low[:, :4] == 2.5) and torch.all(low[:, 4:] == 0)


def test_the_most_important_tokens_get_the_highest_rank_without_noise():
    adapter, x = make(noise_temperature=0.0)
    adapter.train()
    adapter(x)
    scores, ranks = adapter.last_token_scores, adapter.last_ranks
    torch.testing.assert_close(scores.sum(-1), torch.ones(x.shape[0]))  # column mean of a softmax
    for b in range(x.shape[0]):
        order = scores[b].argsort(descending=True)
        assert torch.all(ranks[b][order][:-1] >= ranks[b][order][1:])


def test_training_masks_change_with_the_noise():
    adapter, x = make(n=40)
    adapter.train()
    torch.manual_seed(1)
    adapter(x)
    first = adapter.last_ranks.clone()
    torch.manual_seed(2)
    adapter(x)
    assert not torch.equal(first, adapter.last_ranks)


def test_noise_on_log_scores_sorts_log_a_plus_g():
    adapter, x = make(noise_on_log_scores=True, noise_temperature=0.5)
    adapter.train()
    tn = gumbel_like(torch.empty(x.shape[0], x.shape[1]))
    adapter(x, token_noise=tn)
    want = adapter.last_token_scores.log() + 0.5 * tn
    torch.testing.assert_close(adapter.last_noisy_token_scores, want)


def test_learnable_scores_reach_token_and_channel_projections():
    adapter, x = make()
    adapter.train()
    adapter(x).pow(2).sum().backward()
    for name, p in adapter.named_parameters():
        if name == "channel_proj.bias":
            # The variance over tokens is shift-invariant: this bias has exactly zero gradient in
            # exact arithmetic (it stays in the count because the paper gives W_c a bias).
            assert p.grad.abs().max() < 1e-4 * adapter.channel_proj.weight.grad.abs().max()
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_literal_scores_get_no_gradient():
    adapter, x = make(learnable_scores=False)
    adapter.train()
    adapter(x).pow(2).sum().backward()
    assert adapter.token_proj.weight.grad is None and adapter.channel_proj.weight.grad is None
    assert adapter.down.weight.grad.abs().sum() > 0


def test_straight_through_forward_equals_the_hard_mask():
    adapter, x = make()
    adapter.train()
    tn = gumbel_like(torch.empty(x.shape[0], x.shape[1]))
    cn = gumbel_like(torch.empty(x.shape[0], 8))
    soft = adapter(x, tn, cn)
    adapter.config.learnable_scores = False
    hard = adapter(x, tn, cn)
    torch.testing.assert_close(soft, hard, rtol=0, atol=0)


def _two_group_adapter(seed=0):
    """rank 8, groups of 4 + 4 tokens keeping 8 / 4 channels, channels in index order, no noise.

    Channels 4..7 are kept only by the top group, so the sum of a token's mask over them (hard value
    4 x 1.0 in the top group, 0 below) says which group it is in: a loss on that sum prefers a rank.
    """
    torch.manual_seed(seed)
    cfg = DRAConfig(rank=8, num_groups=2, rank_ratios=(1.0, 0.5), channel_response=False, noise_temperature=0.0)
    adapter = DynamicRankAdapter(16, cfg).train()
    h = torch.relu(adapter.down(torch.randn(1, 8, 16))).detach()
    order = adapter.token_scores(h)[0].argsort(descending=True)
    return adapter, h, order


def test_straight_through_gradient_is_the_relaxations_gradient_and_points_up_for_a_promoted_token():
    adapter, h, order = _two_group_adapter()
    i = int(order[4])  # the best token of the lower group
    scores = adapter.token_scores(h).detach().requires_grad_()
    adapter.token_scores = lambda _h: scores  # a leaf in place of a_t, to read d loss / d a_t
    mask = adapter.rank_mask(h)
    assert adapter.last_ranks[0, i] == 4 and torch.equal(mask[0, i, 4:].detach(), torch.zeros(4))  # hard mask
    (-mask[0, i, 4:].sum()).backward()  # lower loss = token i in the top group

    # The forward value is the hard mask, the gradient is exactly the soft relaxation's (finite differences).
    def relaxed(s):
        return -adapter.soft_mask(s, None)[0, i, 4:].sum()

    base, eps = scores.detach().double(), 1e-4
    fd = torch.stack([(relaxed(base + eps * e) - relaxed(base - eps * e)) / (2 * eps) for e in torch.eye(8).double()])
    torch.testing.assert_close(scores.grad[0].double(), fd, rtol=1e-3, atol=1e-6)
    # Direction: raising token i's own score lowers the loss; raising any other token's raises it.
    assert scores.grad[0, i] < 0
    assert all(scores.grad[0, j] > 0 for j in range(8) if j != i)


@pytest.mark.parametrize("position, sign, rank_after", [(4, -1.0, 8), (3, 1.0, 4)])
def test_gradient_steps_on_token_proj_move_the_token_the_loss_prefers(position, sign, rank_after):
    """sign -1: a loss that wants token i (now in the lower group) kept in full; +1: one that wants it cut."""
    adapter, h, order = _two_group_adapter()
    i = int(order[position])
    start = adapter.token_scores(h)[0].detach()
    opt = torch.optim.SGD(adapter.token_proj.parameters(), lr=0.05)
    ranks = []
    for _ in range(60):
        mask = adapter.rank_mask(h)
        ranks.append(int(adapter.last_ranks[0, i]))
        opt.zero_grad()
        (sign * mask[0, i, 4:].sum()).backward()
        opt.step()
        if len(ranks) == 1:  # one small step already moves the score the right way
            after_one = adapter.token_scores(h)[0].detach()
            assert -sign * (after_one[i] - start[i]) > 0
    assert ranks[0] == 12 - rank_after and ranks[-1] == rank_after, ranks


def test_plain_adapter_equation():
    torch.manual_seed(0)
    cfg = DRAConfig(rank=4)
    a = PlainAdapter(6, cfg)
    x = torch.randn(2, 3, 6)
    want = torch.relu(a.up(torch.relu(a.mid(torch.relu(a.down(x))))))
    torch.testing.assert_close(a(x), want)
    assert [n for n, _ in a.named_parameters()] == [
        "down.weight",
        "down.bias",
        "mid.weight",
        "mid.bias",
        "up.weight",
        "up.bias",
    ]


def test_gradient_scaling_forward_is_s_times_and_adapter_gradient_is_unscaled():
    torch.manual_seed(0)
    cfg = DRAConfig(rank=4, regularization=False)
    adapter = PlainAdapter(6, cfg)
    y = torch.randn(2, 3, 6, requires_grad=True)
    out = AdapterBranch(adapter, cfg).train()(y)
    torch.testing.assert_close(out, cfg.scale * adapter(y))
    out.sum().backward()
    g_scaled, gy_scaled = adapter.up.weight.grad.clone(), y.grad.clone()
    adapter.zero_grad()
    y.grad = None
    adapter(y).sum().backward()  # the unscaled branch
    torch.testing.assert_close(g_scaled, adapter.up.weight.grad)
    torch.testing.assert_close(gy_scaled, cfg.scale * y.grad)  # residual stream sees s * grad


def test_without_gradient_scaling_the_gradient_shrinks_by_s():
    torch.manual_seed(0)
    cfg = DRAConfig(rank=4, gradient_scaling=False, regularization=False)
    adapter = PlainAdapter(6, cfg)
    y = torch.randn(2, 3, 6)
    AdapterBranch(adapter, cfg)(y).sum().backward()
    g = adapter.up.weight.grad.clone()
    adapter.zero_grad()
    adapter(y).sum().backward()
    torch.testing.assert_close(g, cfg.scale * adapter.up.weight.grad)


def test_scale_gradient_op():
    x = torch.randn(5, requires_grad=True)
    scale_gradient(x, 3.0).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((5,), 3.0))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_regularization_is_l1_between_masked_and_unmasked_outputs(reduction):
    adapter, x = make(reg_reduction=reduction)
    branch = AdapterBranch(adapter, adapter.config).train()
    torch.manual_seed(7)
    out = branch(x)
    torch.manual_seed(7)  # the same noise draw for the reference
    masked, unmasked = adapter.forward_with_reference(x)
    diff = (adapter.config.scale * (masked - unmasked)).abs()
    torch.testing.assert_close(branch.reg, diff.mean() if reduction == "mean" else diff.sum())
    torch.testing.assert_close(out, adapter.config.scale * masked)
    assert float(branch.reg.detach()) > 0


def test_regularization_is_zero_when_nothing_is_masked():
    adapter, x = make(rank_ratios=(1.0, 1.0, 1.0, 1.0), channel_response=False)
    branch = AdapterBranch(adapter, adapter.config).train()
    branch(x)
    assert float(branch.reg.detach()) == 0.0


def test_regularization_gradient_does_not_depend_on_the_scale():
    """Taken past the gradient-scaling point, the L1 term's gradient on the adapter is s-free."""
    grads = []
    for scale in (0.001, 0.1):
        adapter, x = make(scale=scale)
        branch = AdapterBranch(adapter, adapter.config).train()
        torch.manual_seed(3)
        branch(x)
        branch.reg.backward()
        grads.append(adapter.up.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    "bad",
    [
        {"rank_ratios": (1.0, 0.5)},
        {"rank_ratios": (1.0, 0.8, 0.6, 0.0)},
        {"branches": "audio"},
        {"placement": "mlp"},
        {"start_layer": 0},
        {"rank": 2, "rank_ratios": (1.0, 0.8, 0.6, 0.4)},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DRAConfig(**bad)


def test_config_round_trip_and_unknown_field():
    cfg = DRAConfig(rank=16, branches="image")
    assert DRAConfig.from_dict(cfg.to_dict()) == cfg
    assert DRAConfig.from_dict(cfg.to_dict()) != DRAConfig()  # the non-default values survive
    with pytest.raises(ValueError, match="unknown dra setting .dra.rnak.; did you mean .dra.rank."):
        DRAConfig.from_dict({"rnak": 3})
