"""Training losses: Lovász hinge (segmentation, seed 001 §5.3.5 citing Berman et al. 2018) and
DiMP's hinge classification loss (§5.3.5 Eq. 5.4, "the hinge loss defined in [4]").

The Lovász hinge is the Lovász extension of the Jaccard loss Δ_J applied to the hinge errors
``max(0, 1 - logit * sign)``, computed per image ("per_image" of the reference implementation):
errors sorted in decreasing order, weighted by the increments of Δ_J along that order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Increments of the Jaccard loss along a sorted order (``gt_sorted`` 0/1 float, 1-D)."""
    p = gt_sorted.numel()
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if p > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász hinge of one image: ``logits`` and 0/1 ``labels`` flattened to 1-D."""
    if labels.numel() == 0:
        return logits.sum() * 0.0
    labels = labels.to(logits.dtype)
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    grad = lovasz_grad(labels[perm])
    return torch.dot(F.relu(errors_sorted), grad)


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over images of the Lovász hinge; logits/labels (B, ...) with labels in {0, 1}."""
    B = logits.shape[0]
    losses = [lovasz_hinge_flat(logits[b].reshape(-1), labels[b].reshape(-1)) for b in range(B)]
    return torch.stack(losses).mean()


def hinge_cls_loss(scores: torch.Tensor, labels: torch.Tensor, threshold: float = 0.05):
    """DiMP's LBHinge: negatives (label < threshold) only penalised when positive."""
    neg = labels < threshold
    pred = torch.where(neg, F.relu(scores), scores)
    target = torch.where(neg, torch.zeros_like(labels), labels)
    return F.mse_loss(pred, target)
