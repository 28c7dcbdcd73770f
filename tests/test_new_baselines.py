"""MetaPrompt, LFA and ProDA against plain references on small tensors (the matrix covers the rest)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from dra.methods import build_method
from dra.methods.lfa import ema_momentum, procrustes, reranking_loss
from dra.methods.metaprompt import select, split_classes
from dra.methods.proda import diversity, gaussian_upper_bound, layout, position_of

CLASSES = ["circle", "square", "triangle", "star", "cross"]


# -- LFA ----------------------------------------------------------------------------------------------
def test_procrustes_is_the_orthogonal_map_pulled_to_the_identity():
    torch.manual_seed(0)
    x, y = torch.randn(20, 6, dtype=torch.float64), torch.randn(20, 6, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(x.T @ y)
    w0 = u @ vh
    torch.testing.assert_close(procrustes(x, y, 0.0), w0)
    torch.testing.assert_close(procrustes(x, y, 0.0) @ procrustes(x, y, 0.0).T, torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(procrustes(x, y, 1.0), torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(procrustes(x, y, 0.9), 0.1 * w0 + 0.9 * torch.eye(6, dtype=torch.float64))


def test_reranking_loss_matches_a_loop():
    torch.manual_seed(0)
    v, t, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64), torch.randint(4, (7,))
    vn, tn = F.normalize(v, dim=-1), F.normalize(t, dim=-1)
    terms = []
    for i in range(7):
        d = [float((vn[i] - tn[j]).norm()) for j in range(4)]
        for j in sorted(range(4), key=lambda j: d[j])[:3]:
            margin = (1 - float(tn[j] @ tn[y[i]])) / 4.0
            terms.append(max(0.0, d[y[i]] + margin - d[j]))
    assert float(reranking_loss(v, t, y, knn=3, scale=4.0)) == pytest.approx(sum(terms) / len(terms), abs=1e-12)


def test_ema_momentum_ramps_from_0_9():
    assert ema_momentum(0, 100) == 0.9
    assert ema_momentum(25, 100) == pytest.approx(0.9 + 0.1 * (1 - math.exp(-2.5)))
    assert ema_momentum(80, 100) == pytest.approx(0.9 + 0.1 * (1 - math.exp(-5)))


def test_lfa_uses_the_fitted_map_on_its_classes_and_the_ema_elsewhere(tiny_backbone):
    model = build_method("lfa", tiny_backbone, CLASSES[:3], {"iterations": 3})
    assert model.mapping() is model.align.weight  # not fitted yet: the identity
    with torch.no_grad():
        model.align.weight.add_(0.1)
    model.fit_classnames = CLASSES[:3]
    assert model.mapping() is model.align.weight
    model.set_classnames(CLASSES[3:])
    assert model.mapping() is model.align.ema


# -- ProDA --------------------------------------------------------------------------------------------
def test_gaussian_upper_bound_matches_the_covariance_matrices():
    torch.manual_seed(0)
    k, c, d, b = 5, 3, 4, 6
    w = F.normalize(torch.randn(k, c, d, dtype=torch.float64), dim=-1)
    x = F.normalize(torch.randn(b, d, dtype=torch.float64), dim=-1)
    y = torch.randint(c, (b,))
    tau = torch.tensor(10.0, dtype=torch.float64)
    mu = w.mean(0)
    dev = w - mu
    logits = torch.zeros(b, c, dtype=torch.float64)
    for i in range(b):
        for j in range(c):
            quad = 0.0
            for dim in range(d):  # Sigma_ij[d] = mean_k dev_ki[d] dev_kj[d]
                s = lambda p, q, dim=dim: float((dev[:, p, dim] * dev[:, q, dim]).mean())  # noqa: E731
                quad += float(x[i, dim]) ** 2 * (s(j, j) + s(y[i], y[i]) - 2 * s(y[i], j))
            logits[i, j] = tau * mu[j] @ x[i] + 0.5 * tau**2 * quad
    want = F.cross_entropy(logits, y)
    torch.testing.assert_close(gaussian_upper_bound(x, w, y, tau), want)


def test_diversity_is_the_mean_off_diagonal_abs_cosine():
    e = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]), dim=-1)
    c = 1 / math.sqrt(2)
    assert float(diversity(e)) == pytest.approx((0 + c + 0 + c + c + c) / 6)


def test_prompt_positions_and_layouts():
    assert [position_of(k, 8) for k in range(8)] == ["front"] * 2 + ["middle"] * 2 + ["end"] * 4
    # SOS, ctx (3, 4, 5, 6), class (7, 8), ".", EOT=99, pad
    tokens = torch.tensor([[1, 3, 4, 5, 6, 7, 8, 2, 99, 0]])
    pick = lambda p: tokens[0, layout(tokens, 4, p)[0]].tolist()  # noqa: E731
    assert pick("end") == [1, 3, 4, 5, 6, 7, 8, 2, 99, 0]
    assert pick("front") == [1, 7, 8, 3, 4, 5, 6, 2, 99, 0]
    assert pick("middle") == [1, 3, 4, 7, 8, 5, 6, 2, 99, 0]


def test_proda_infers_with_the_mean_of_all_prompts(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("proda", tiny_backbone, CLASSES, {"n_prompts": 4, "n_ctx": 2, "prompt_batch": 2}).eval()
    with torch.no_grad():
        want = F.normalize(torch.stack([model.prompt_features(k) for k in range(4)]).mean(0), dim=-1)
        torch.testing.assert_close(model.text_features(), want)


# -- MetaPrompt ---------------------------------------------------------------------------------------
def test_class_split_and_relabelling():
    torch.manual_seed(0)
    groups = split_classes(5, 2)
    assert [len(g) for g in groups] == [3, 2] and sorted(groups[0] + groups[1]) == list(range(5))
    rows, new = select(torch.tensor([4, 0, 2, 4, 1]), [4, 1], 5)
    assert rows.tolist() == [0, 3, 4] and new.tolist() == [0, 0, 1]


def test_frozen_image_pass_is_clip_without_prompts(tiny_backbone):
    images = torch.randn(2, 3, 32, 32)
    model = build_method("metaprompt", tiny_backbone, CLASSES, {"layers": 3}).eval()
    with torch.no_grad():
        prompted, frozen = model.image_features(images), model.frozen_image_features(images)
        model.unload()
        plain = tiny_backbone.encode_image(images)
    torch.testing.assert_close(frozen, plain, rtol=0, atol=0)
    assert not torch.allclose(prompted, plain)


def test_metaprompt_loss_is_three_cross_entropies(tiny_backbone):
    torch.manual_seed(0)
    model = build_method("metaprompt", tiny_backbone, CLASSES, {"layers": 3}).train()
    labels = torch.tensor([0, 1, 2, 3])
    logits = model(torch.randn(4, 3, 32, 32))
    loss, parts = model.loss(logits, labels)
    li, lt = model._parts
    torch.testing.assert_close(logits, (li + lt) / 2)
    want = sum(F.cross_entropy(z, labels) for z in (logits, li, lt))
    torch.testing.assert_close(loss, want)


def _meta_setup(backbone, **config):
    torch.manual_seed(0)
    model = build_method("metaprompt", backbone, CLASSES, {"layers": 3, **config}).train()
    images, labels = torch.randn(10, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    return model, images, labels


def test_meta_step_matches_a_plain_first_order_reference(tiny_backbone):
    """Plain SGD (no momentum, no decay), resets after every split: theta - lr * step * sum_i g_i, where g_i
    is the gradient on group i at the prompts after one SGD step on the other group."""
    model, images, labels = _meta_setup(tiny_backbone, alias_reset=False, frozen_prompt_momentum=False)
    text, lr, step = model.prompts_deep.text, 0.5, 0.2
    opt = torch.optim.SGD(model.trainable_parameters(), lr=lr)
    theta, image = text.detach().clone(), model.prompts_deep.image.detach().clone()
    x_zs = model.frozen_image_features(images)
    torch.manual_seed(7)
    groups = split_classes(len(CLASSES), 2)
    want = theta.clone()
    for i, own in enumerate(groups):
        other = groups[1 - i]
        orows, olab = select(labels, other, 5)
        p = theta.clone().requires_grad_(True)
        with torch.no_grad():
            text.copy_(p)
        (g_inner,) = torch.autograd.grad(F.cross_entropy(model._text_logits(x_zs[orows], other), olab), text)
        with torch.no_grad():
            text.copy_(theta - lr * g_inner)
        rows, lab = select(labels, own, 5)
        (g,) = torch.autograd.grad(F.cross_entropy(model._text_logits(x_zs[rows], own), lab), text)
        want -= lr * step * g
    with torch.no_grad():
        text.copy_(theta)
    torch.manual_seed(7)
    model.after_step(images, labels, opt, lambda: torch.autocast("cpu", enabled=False))
    torch.testing.assert_close(text.detach(), want)
    torch.testing.assert_close(model.prompts_deep.image.detach(), image, rtol=0, atol=0)


def test_official_behaviours_change_the_step(tiny_backbone):
    """alias_reset: the last inner step stays in the prompts; frozen_prompt_momentum: the image prompts move."""
    results = {}
    for alias, momentum in ((False, False), (True, True)):
        model, images, labels = _meta_setup(
            tiny_backbone, alias_reset=alias, frozen_prompt_momentum=momentum, meta_step=0.0
        )
        opt = torch.optim.SGD(model.trainable_parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
        loss, _ = model.loss(model(images), labels)
        loss.backward()
        opt.step()
        text, image = model.prompts_deep.text.detach().clone(), model.prompts_deep.image.detach().clone()
        torch.manual_seed(3)
        model.after_step(images, labels, opt, lambda: torch.autocast("cpu", enabled=False))
        results[alias] = (
            torch.equal(model.prompts_deep.text, text),
            torch.equal(model.prompts_deep.image, image),
        )
        model.unload()
    assert results[False] == (True, True)  # meta step 0, every reset restores, image prompts untouched
    assert results[True] == (False, False)
