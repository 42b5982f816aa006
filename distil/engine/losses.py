"""Feature losses between adapted student maps and teacher maps, behind one registry.

Every loss takes ``student`` and ``teacher`` of shape (N, C, H, W) (the student already through
its adapter) and an optional position weight ``weight`` of shape (N, 1, H, W) (the ground-truth
position mask, see `distil.engine.masks`), and returns a scalar. A loss's own hyperparameters are the
arguments of its constructor: ``distill_loss_args`` (e.g. ``{tau: 2.0}`` for ``cwd``) reaches that
constructor and nothing else, and the constructor checks their ranges. Adding a loss, with or
without arguments, takes one class here with ``@register("name")`` and one test against a direct
computation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LOSSES: dict[str, type[FeatureLoss]] = {}


def register(name: str) -> Callable[[type[FeatureLoss]], type[FeatureLoss]]:
    """Class decorator: make a loss available as ``distill_loss=name``."""

    def add(cls: type[FeatureLoss]) -> type[FeatureLoss]:
        cls.name = name
        LOSSES[name] = cls
        return cls

    return add


class FeatureLoss(nn.Module):
    """Base class: ``forward(student, teacher, weight=None) -> scalar``; arguments, if any, in ``__init__``."""

    name = "base"

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def position_weights(weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """``weight`` as (N, 1, H, W) on ``like``'s device and dtype; all ones when absent."""
    if weight is None:
        return like.new_ones(like.shape[0], 1, *like.shape[2:])
    return weight.to(device=like.device, dtype=like.dtype)


@register("mse")
class MSEFeatureLoss(FeatureLoss):
    r"""Mean squared error, the original design's loss.

    .. math:: L = \frac{\sum_{n,c,h,w} w_{nhw}\,(S_{nchw} - T_{nchw})^2}{C \sum_{n,h,w} w_{nhw}}

    With no weight (``w = 1``) this is the plain mean over all elements.
    """

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = position_weights(weight, student)
        return ((student - teacher) ** 2 * w).sum() / (w.sum() * student.shape[1]).clamp_min(1e-12)


@register("cwd")
class ChannelWiseFeatureLoss(FeatureLoss):
    r"""Channel-wise distillation (Shu et al., ICCV 2021): match where each channel fires.

    Each channel becomes a distribution over positions, :math:`P_{nc} = \mathrm{softmax}_{hw}(X_{nc}/\tau)`,
    and the loss is the KL divergence of the student's from the teacher's, scaled by :math:`\tau^2`:

    .. math:: L = \frac{\tau^2}{N C} \sum_{n,c} \sum_{hw} \hat w_{nhw}\, P^T_{nchw}
              \left(\log P^T_{nchw} - \log P^S_{nchw}\right), \qquad \hat w = w / \mathrm{mean}_{hw}(w)

    With no weight (``w = 1``) the inner sum is exactly KL(P^T || P^S). Being a distribution
    match per channel, it ignores each map's scale, which differs between teacher and student.
    With a mask (``distill_mask``) the per-position terms are reweighted: the loss is smallest where
    :math:`P^S \propto \hat w\,P^T` (the teacher's distribution tilted towards the weighted positions),
    and it can go below zero (logged per level as ``dis_p3``...); a weighted cross-entropy, not a divergence.
    """

    def __init__(self, tau: float = 1.0) -> None:
        """Args:
            tau: Softmax temperature (> 0); higher spreads each channel's distribution.
        """
        super().__init__()
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
            raise ValueError(f"tau={tau!r} must be a number > 0")
        self.tau = float(tau)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        n, c = student.shape[:2]
        log_p_s = F.log_softmax(student.flatten(2) / self.tau, dim=2)
        log_p_t = F.log_softmax(teacher.flatten(2) / self.tau, dim=2)
        w = position_weights(weight, student).flatten(2)
        w = w / w.mean(dim=2, keepdim=True).clamp_min(1e-12)
        kl = (w * log_p_t.exp() * (log_p_t - log_p_s)).sum()
        return kl * self.tau**2 / (n * c)


@register("pkd")
class PearsonFeatureLoss(FeatureLoss):
    r"""PKD (Cao et al., NeurIPS 2022): MSE of per-channel standardised maps, i.e. 1 - Pearson r.

    Each channel is standardised over the batch and positions (population std, eps 1e-6):
    :math:`\hat X_c = (X_c - \mu_c) / \sigma_c`; then

    .. math:: L = \frac{\sum_{n,c,h,w} w_{nhw}\,(\hat S_{nchw} - \hat T_{nchw})^2}{2\,C \sum_{n,h,w} w_{nhw}}

    With no weight this equals the mean over channels of :math:`1 - r_c`, where :math:`r_c` is
    the Pearson correlation of student and teacher channel c. Scale- and shift-free, it was made
    for pairs of different architectures, whose feature magnitudes disagree.
    """

    @staticmethod
    def standardise(x: torch.Tensor) -> torch.Tensor:
        """Zero mean, unit (population) variance per channel over (N, H, W)."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False).sqrt()
        return (x - mean) / (std + 1e-6)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = position_weights(weight, student)
        diff = (self.standardise(student) - self.standardise(teacher)) ** 2
        return (diff * w).sum() / (2 * w.sum() * student.shape[1]).clamp_min(1e-12)


@register("at")
class AttentionTransferLoss(FeatureLoss):
    r"""Attention transfer (Zagoruyko and Komodakis, ICLR 2017): match where each map is active.

    Each map becomes a spatial attention vector, the ``p``-th power of its absolute activations summed
    over channels and L2-normalised over positions, :math:`q_{n} = a_n / \lVert a_n \rVert_2` with
    :math:`a_{nhw} = \sum_c |X_{nchw}|^p`; then

    .. math:: L = \frac{1}{N} \sum_{n,h,w} \hat w_{nhw}\,(q^S_{nhw} - q^T_{nhw})^2, \qquad
              \hat w = w / \mathrm{mean}_{hw}(w)

    With no weight this is the mean over images of the squared distance between the two attention
    vectors (within [0, 2]). It ignores channels altogether, so it asks the student for the teacher's
    sense of where things are, not for its channel code.
    """

    def __init__(self, p: float = 2.0) -> None:
        """Args:
            p: Power of the activations (> 0); higher stresses the strongest positions.
        """
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
            raise ValueError(f"p={p!r} must be a number > 0")
        self.p = float(p)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, H*W): L2-normalised sum over channels of ``|x|^p``."""
        return F.normalize(x.abs().pow(self.p).sum(1).flatten(1), dim=1)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = position_weights(weight, student).flatten(1)
        w = w / w.mean(dim=1, keepdim=True).clamp_min(1e-12)
        return (w * (self.attention(student) - self.attention(teacher)) ** 2).sum() / student.shape[0]


def loss_arguments(name: str) -> dict[str, Any]:
    """The arguments a registered loss accepts, with their defaults."""
    signature = inspect.signature(LOSSES[name].__init__)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {key: p.default for key, p in signature.parameters.items() if key != "self" and p.kind in named}


def build_loss(name: str, args: Mapping[str, Any] | None = None) -> FeatureLoss:
    """Instantiate a registered loss by name with its own arguments.

    Raises:
        ValueError: Unknown name (the message lists the known ones), an argument the loss does not
            take (the message lists those it takes), or a value the loss refuses.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown feature loss {name!r}; choose one of {sorted(LOSSES)}")
    args = dict(args or {})
    accepted = loss_arguments(name)
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no arguments"
        raise ValueError(f"loss {name!r} has no argument {', '.join(map(repr, unknown))} (it takes {takes})")
    return LOSSES[name](**args)
