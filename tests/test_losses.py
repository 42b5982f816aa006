"""Each feature loss against a direct computation of its formula, and its basic properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distil.engine.losses import LOSSES, build_loss
from distil.engine.masks import foreground_weights


@pytest.fixture
def maps():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 5, 4, 6, generator=generator)
    teacher = torch.randn(2, 5, 4, 6, generator=generator) * 3 + 1
    weight = torch.rand(2, 1, 4, 6, generator=generator)
    return student.double(), teacher.double(), weight.double()


def test_registry_holds_the_three_losses():
    assert {"mse", "cwd", "pkd"} <= set(LOSSES)
    with pytest.raises(ValueError, match="unknown feature loss 'kl'.*cwd"):
        build_loss("kl")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_zero_when_features_match(name, maps):
    student, _, weight = maps
    loss = build_loss(name)
    assert float(loss(student, student.clone())) == pytest.approx(0.0, abs=1e-9)
    assert float(loss(student, student.clone(), weight)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_positive_and_differentiable_when_features_differ(name, maps):
    student, teacher, _ = maps
    student = student.clone().requires_grad_(True)
    value = build_loss(name)(student, teacher)
    value.backward()
    assert float(value.detach()) > 1e-3
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


def test_mse_matches_direct_computation(maps):
    s, t, w = (x.numpy() for x in maps)
    assert float(build_loss("mse")(*maps[:2])) == pytest.approx(((s - t) ** 2).mean())
    weighted = ((s - t) ** 2 * w).sum() / (w.sum() * s.shape[1])
    assert float(build_loss("mse")(*maps)) == pytest.approx(weighted)


def test_cwd_matches_direct_kl_of_spatial_softmax(maps):
    s, t, _ = (x.numpy() for x in maps)
    tau = 2.0
    n, c = s.shape[:2]
    total = 0.0
    for i in range(n):
        for j in range(c):
            ps = np.exp(s[i, j].ravel() / tau) / np.exp(s[i, j].ravel() / tau).sum()
            pt = np.exp(t[i, j].ravel() / tau) / np.exp(t[i, j].ravel() / tau).sum()
            total += (pt * np.log(pt / ps)).sum()
    expected = total * tau**2 / (n * c)
    assert float(build_loss("cwd", {"tau": tau})(*maps[:2])) == pytest.approx(expected, rel=1e-9)


def test_cwd_with_uniform_weight_equals_unweighted(maps):
    s, t, _ = maps
    uniform = torch.full((2, 1, 4, 6), 0.3, dtype=s.dtype)
    loss = build_loss("cwd")
    assert float(loss(s, t, uniform)) == pytest.approx(float(loss(s, t)))


def test_masked_cwd_pulls_the_student_towards_the_teacher_tilted_to_the_mask(maps):
    """Under a mask the loss is a weighted cross-entropy (docstring): lowest, and below zero, for the teacher's
    distribution reweighted by the mask, not for the teacher's own."""
    _, teacher, weight = maps
    loss = build_loss("cwd")
    tilted = (weight.flatten(2) * torch.softmax(teacher.flatten(2), dim=2)).view_as(teacher)
    tilted_logits = (tilted / tilted.sum(dim=(2, 3), keepdim=True)).log()
    assert float(loss(teacher, teacher, weight)) == pytest.approx(0.0, abs=1e-9)
    assert float(loss(tilted_logits, teacher, weight)) < 0.0
    nudged = tilted_logits + 0.05 * torch.randn(teacher.shape, generator=torch.Generator().manual_seed(1),
                                                dtype=teacher.dtype)
    assert float(loss(nudged, teacher, weight)) > float(loss(tilted_logits, teacher, weight))


def test_pkd_equals_one_minus_pearson_per_channel(maps):
    s, t, _ = (x.numpy() for x in maps)
    c = s.shape[1]
    r = [np.corrcoef(s[:, k].ravel(), t[:, k].ravel())[0, 1] for k in range(c)]
    expected = float(np.mean([1 - x for x in r]))
    assert float(build_loss("pkd")(*maps[:2])) == pytest.approx(expected, rel=1e-5)


def test_pkd_ignores_scale_and_shift_of_the_teacher(maps):
    s, t, _ = maps
    loss = build_loss("pkd")
    assert float(loss(s, t * 7.5 - 3)) == pytest.approx(float(loss(s, t)), rel=1e-6)


def test_foreground_weights_mark_boxes_and_centres():
    # image 0: a box covering the left half; image 1: a tiny box smaller than a cell at 4x4
    boxes = torch.tensor([[0.25, 0.5, 0.5, 1.0], [0.9, 0.1, 0.01, 0.01]])
    weights = foreground_weights(boxes, torch.tensor([0, 1]), batch_size=3, size=(4, 4), background=0.2)
    assert weights.shape == (3, 1, 4, 4)
    assert torch.all(weights[0, 0, :, :2] == 1) and torch.allclose(weights[0, 0, :, 2:], torch.tensor(0.2))
    assert weights[1, 0, 0, 3] == 1 and (weights[1] == 1).sum() == 1  # the centre cell keeps the tiny box
    assert torch.allclose(weights[2], torch.tensor(0.2))  # image without objects


def test_masked_mse_ignores_background_differences():
    student = torch.zeros(1, 2, 4, 4)
    teacher = torch.zeros(1, 2, 4, 4)
    teacher[..., :, 2:] = 5.0  # differences only outside the box
    weights = foreground_weights(torch.tensor([[0.25, 0.5, 0.5, 1.0]]), torch.tensor([0]), 1, (4, 4), 0.0)
    assert float(build_loss("mse")(student, teacher, weights)) == 0.0
    assert float(build_loss("mse")(student, teacher)) > 0


def test_loss_arguments_reach_only_the_loss_that_takes_them():
    assert build_loss("cwd", {"tau": 3.0}).tau == 3.0
    with pytest.raises(ValueError, match="loss 'mse' has no argument 'tau' \\(it takes no arguments\\)"):
        build_loss("mse", {"tau": 3.0})
    with pytest.raises(ValueError, match="loss 'cwd' has no argument 'temperature' \\(it takes tau\\)"):
        build_loss("cwd", {"temperature": 3.0})
    with pytest.raises(ValueError, match="tau=-1 must be a number > 0"):
        build_loss("cwd", {"tau": -1})


def test_attention_transfer_matches_its_formula_and_takes_its_power(maps):
    s, t = (m.double().numpy() for m in maps[:2])
    for p in (2.0, 3.0):
        def attention(x, p=p):
            a = (np.abs(x) ** p).sum(axis=1).reshape(len(x), -1)
            return a / np.linalg.norm(a, axis=1, keepdims=True)
        expected = ((attention(s) - attention(t)) ** 2).sum() / len(s)
        loss = build_loss("at", {"p": p})
        assert loss.p == p
        assert float(loss(*(m.double() for m in maps[:2]))) == pytest.approx(expected, rel=1e-9)
    assert float(build_loss("at")(maps[1], maps[1])) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="loss 'at' has no argument 'tau' \\(it takes p\\)"):
        build_loss("at", {"tau": 1.0})
