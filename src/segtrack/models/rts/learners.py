"""Few-shot learners of RTS (seed 001 §5.3.2-5.3.3): unrolled steepest descent.

* :class:`SegmentationLearner` (A_θ, from LWL): the target model T_τ is a 3x3 convolution from
  the segmentation features x_s to a K-channel mask encoding.  τ minimises Eq. 5.1

      L_s(τ) = 1/2 Σ_{(x,y) ∈ D_s} ||W_θ(y) · (T_τ(x) − E_θ(y))||² + λ_s/2 ||τ||²

  with a learnable λ_s.  L_s is quadratic in τ, so the steepest-descent step length
  α = ||g||² / (||W · T_g(x)||² + λ_s ||g||²) is the exact line minimum along −g (LWL's
  ``LinearFilterLearner`` / steepest descent).  A learnable factor scales α.
* :class:`InstanceLearner` (P_θ, from DiMP ``DiMPSteepestDescentGN``): the instance model T_κ is
  a ``filter_size`` convolution of the classification features x_c giving the score map s_c.
  κ minimises Eq. 5.2 with DiMP's robust residual

      r = v(d) · (m(d) s + (1 − m(d)) max(0, s) − y(d)),

  where d is the distance of a cell to the target centre and the label y, target mask m and
  spatial weight v are learned functions of d (triangular-basis bins, as DiMP).  Each iteration
  takes a Gauss-Newton steepest-descent step α = ||g||² / (||J g||² + λ_c ||g||²), with
  J g = v (m + (1 − m) 1[s > 0]) · T_g(x).  The filter is initialised from the features sampled
  on a ``filter_size`` grid inside the target box (a RoIAlign done with ``grid_sample``),
  followed by a learned 1x1 projection (DiMP's ``FilterInitializerLinear``).

Both learners work on a batch of independent problems (one per video): memory features are
``(B, N, C, H, W)`` and each video gets its own filter; grouped convolutions evaluate all of
them at once.  ``create_graph=True`` keeps the iterations differentiable for offline training.
Departures: LWL/DiMP use 512-channel features and learn more iterations; here the features have
64 channels (CPU budget) and λ_c is learned as in DiMP (the thesis calls it fixed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: lower bound of the learned regularisation weights: bounds the step length by 1 / MIN_REG
MIN_REG = 1e-3


def batched_conv(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """Apply per-video filters: x (B, N, C, H, W), w (B, K, C, k, k) -> (B, N, K, H', W')."""
    B, N, C, H, W = x.shape
    K = w.shape[1]
    xi = x.permute(1, 0, 2, 3, 4).reshape(N, B * C, H, W)
    out = F.conv2d(xi, w.reshape(B * K, C, w.shape[-2], w.shape[-1]), padding=padding, groups=B)
    return out.reshape(N, B, K, out.shape[-2], out.shape[-1]).permute(1, 0, 2, 3, 4)


def per_sample_conv(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """x (B, C, H, W) convolved with each sample's own filter w (B, K, C, k, k) -> (B, K, H', W').

    The same values as :func:`batched_conv` with N = 1, written as one batched matrix product
    with the k² shifted copies of x stacked (im2col), so that it exports to ONNX with a variable
    batch (a grouped convolution whose kernel shape depends on the batch does not) and runs as a
    single MatMul there (k² separate products cost 4 ms a frame in ONNX Runtime)."""
    k = w.shape[-1]
    xp = F.pad(x, (padding, padding, padding, padding)) if padding else x
    H = xp.shape[-2] - k + 1
    W = xp.shape[-1] - k + 1
    cols = torch.stack([xp[:, :, dy:dy + H, dx:dx + W] for dy in range(k) for dx in range(k)],
                       2)  # (B, C, k², H, W): the order of w's (C, k, k)
    out = torch.matmul(w.flatten(2), cols.flatten(1, 2).flatten(2))  # (B, K, H W)
    return out.unflatten(2, (H, W))


class SegmentationLearner(nn.Module):
    """A_θ: steepest descent on Eq. 5.1 for the target model T_τ (a k x k conv, C -> K)."""

    def __init__(
        self,
        feat_dim: int = 64,
        enc_dim: int = 16,
        filter_size: int = 3,
        init_reg: float = 1e-2,
        num_iter: int = 5,
    ) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.enc_dim = enc_dim
        self.filter_size = filter_size
        self.num_iter = num_iter
        self.log_reg = nn.Parameter(torch.tensor(math.log(init_reg)))
        self.log_step = nn.Parameter(torch.tensor(0.0))

    @property
    def reg(self) -> torch.Tensor:
        return self.log_reg.exp().clamp_min(MIN_REG)

    def zero_filter(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        k = self.filter_size
        return like.new_zeros(batch, self.enc_dim, self.feat_dim, k, k)

    def apply(self, tau: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """T_τ(x): x (B, N, C, H, W) -> (B, N, K, H, W)."""
        return batched_conv(x, tau, self.filter_size // 2)

    def loss(
        self, tau: torch.Tensor, x: torch.Tensor, enc: torch.Tensor, weight: torch.Tensor,
        sample_w: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Eq. 5.1 per video, (B,); samples weighted by ``sample_w`` (B, N) (0 = unused slot)."""
        r = weight * (self.apply(tau, x) - enc)
        per = (r * r).flatten(2).sum(-1)  # (B, N)
        if sample_w is not None:
            per = per * sample_w
        return 0.5 * per.sum(1) + 0.5 * self.reg * (tau * tau).flatten(1).sum(1)

    def forward(
        self,
        x: torch.Tensor,
        enc: torch.Tensor,
        weight: torch.Tensor,
        tau: torch.Tensor | None = None,
        num_iter: int | None = None,
        sample_w: torch.Tensor | None = None,
        create_graph: bool | None = None,
        return_losses: bool = False,
    ):
        """Run ``num_iter`` steepest-descent steps from ``tau`` (zeros when None)."""
        B = x.shape[0]
        if tau is None:
            tau = self.zero_filter(B, x)
        n = self.num_iter if num_iter is None else int(num_iter)
        cg = torch.is_grad_enabled() if create_graph is None else create_graph
        losses = []
        sw = sample_w.view(B, -1, 1, 1, 1) if sample_w is not None else None
        for _ in range(n):
            with torch.enable_grad():
                t = tau if tau.requires_grad else tau.detach().requires_grad_(True)
                lval = self.loss(t, x, enc, weight, sample_w)
                (g,) = torch.autograd.grad(lval.sum(), t, create_graph=cg)
            if return_losses:
                losses.append(lval.detach())
            jg = weight * self.apply(g, x)  # the model is linear in τ
            if sw is not None:
                jg = jg * sw.sqrt()
            num = (g * g).flatten(1).sum(1)
            den = (jg * jg).flatten(1).sum(1) + self.reg * num
            alpha = self.log_step.exp().clamp(max=2.0) * num / den.clamp_min(1e-8)
            tau = (t if cg else t.detach()) - alpha.view(B, 1, 1, 1, 1) * g
            if not cg:
                tau = tau.detach()
        if return_losses:
            losses.append(self.loss(tau, x, enc, weight, sample_w).detach())
            return tau, losses
        return tau


class DistanceBins(nn.Module):
    """A learned function of the distance to the target centre (DiMP triangular basis)."""

    def __init__(self, num_bins: int, bin_width: float, init: torch.Tensor) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.bin_width = bin_width
        self.values = nn.Parameter(init.clone().float())

    def forward(self, dist: torch.Tensor) -> torch.Tensor:
        """dist (..., H, W) in cells -> values (..., H, W)."""
        t = dist / self.bin_width
        centers = torch.arange(self.num_bins, device=dist.device, dtype=dist.dtype)
        basis = (1 - (t.unsqueeze(-1) - centers).abs()).clamp_min(0)
        # the last bin extends to infinity
        basis[..., -1] = torch.where(t >= self.num_bins - 1, torch.ones_like(t), basis[..., -1])
        return basis @ self.values


def distance_map(centers: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Distance (in cells) of every cell centre to ``centers`` (B, N, 2) as (x, y) in cells."""
    H, W = size
    ys = torch.arange(H, device=centers.device, dtype=centers.dtype) + 0.5
    xs = torch.arange(W, device=centers.device, dtype=centers.dtype) + 0.5
    dx = xs.view(1, 1, 1, W) - centers[..., 0, None, None]
    dy = ys.view(1, 1, H, 1) - centers[..., 1, None, None]
    return torch.sqrt(dx * dx + dy * dy)


def gaussian_label(centers: torch.Tensor, sigma: torch.Tensor, size: tuple[int, int]):
    """Gaussian labels y_c (B, N, H, W) at ``centers`` (B, N, 2) with ``sigma`` (B, N) cells."""
    d = distance_map(centers, size)
    return torch.exp(-0.5 * (d / sigma[..., None, None]) ** 2)


class InstanceLearner(nn.Module):
    """P_θ: DiMP's Gauss-Newton steepest descent on Eq. 5.2 for the instance model T_κ."""

    def __init__(
        self,
        feat_dim: int = 64,
        filter_size: int = 5,
        num_iter: int = 5,
        init_reg: float = 1e-2,
        num_bins: int = 12,
        bin_width: float = 0.5,
        init_sigma: float = 1.0,
    ) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.filter_size = filter_size
        self.num_iter = num_iter
        self.log_reg = nn.Parameter(torch.tensor(math.log(init_reg)))
        self.log_step = nn.Parameter(torch.tensor(0.0))
        d = torch.arange(num_bins) * bin_width
        self.label_fn = DistanceBins(num_bins, bin_width, torch.exp(-0.5 * (d / init_sigma) ** 2))
        self.mask_fn = DistanceBins(num_bins, bin_width, 4.0 * torch.tanh(1.5 - d))  # logits
        self.weight_fn = DistanceBins(num_bins, bin_width, torch.ones(num_bins))
        self.init_proj = nn.Conv2d(feat_dim, feat_dim, 1)
        nn.init.eye_(self.init_proj.weight.view(feat_dim, feat_dim))
        nn.init.zeros_(self.init_proj.bias)

    @property
    def reg(self) -> torch.Tensor:
        return self.log_reg.exp().clamp_min(MIN_REG)

    def apply(self, kappa: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """s_c = T_κ(x): x (B, N, C, H, W) -> (B, N, H, W)."""
        return batched_conv(x, kappa, self.filter_size // 2)[:, :, 0]

    def init_filter(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """κ⁰ from the first memory sample: features on a k x k grid inside ``boxes`` (B, 4)
        (x, y, w, h in cells), averaged, projected, normalised by k²."""
        B, _, C, H, W = x.shape
        k = self.filter_size
        t = (torch.arange(k, device=x.device, dtype=x.dtype) + 0.5) / k
        gx = boxes[:, 0, None] + t[None] * boxes[:, 2, None]  # (B, k)
        gy = boxes[:, 1, None] + t[None] * boxes[:, 3, None]
        grid = torch.stack(
            [
                (gx[:, None, :].expand(B, k, k) / W) * 2 - 1,
                (gy[:, :, None].expand(B, k, k) / H) * 2 - 1,
            ],
            -1,
        )
        feats = F.grid_sample(x[:, 0], grid, mode="bilinear", align_corners=False)
        w = self.init_proj(feats) / (k * k)
        return w.unsqueeze(1)  # (B, 1, C, k, k)

    def residual(
        self, kappa: torch.Tensor, x: torch.Tensor, dist: torch.Tensor, sample_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.apply(kappa, x)
        m = torch.sigmoid(self.mask_fn(dist))
        v = self.weight_fn(dist) * sample_w.sqrt()[..., None, None]
        y = self.label_fn(dist)
        r = v * (m * s + (1 - m) * F.relu(s) - y)
        return r, s, v * (m + (1 - m) * (s > 0).to(s.dtype))

    def loss(self, kappa, x, dist, sample_w) -> torch.Tensor:
        r, _, _ = self.residual(kappa, x, dist, sample_w)
        return (r * r).flatten(1).sum(1) + 0.5 * self.reg * (kappa * kappa).flatten(1).sum(1)

    def forward(
        self,
        x: torch.Tensor,
        centers: torch.Tensor,
        boxes: torch.Tensor | None = None,
        kappa: torch.Tensor | None = None,
        num_iter: int | None = None,
        sample_w: torch.Tensor | None = None,
        create_graph: bool | None = None,
    ) -> list[torch.Tensor]:
        """Return the iterates [κ⁰, κ¹, ..., κ^N] (κ⁰ from ``boxes`` unless ``kappa`` given).

        x: (B, N, C, H, W) memory features; centers: (B, N, 2) target centres in cells.
        """
        B, N = x.shape[:2]
        if kappa is None:
            kappa = self.init_filter(x, boxes)
        sw = x.new_ones(B, N) if sample_w is None else sample_w
        dist = distance_map(centers, x.shape[-2:])
        n = self.num_iter if num_iter is None else int(num_iter)
        cg = torch.is_grad_enabled() if create_graph is None else create_graph
        iterates = [kappa]
        for _ in range(n):
            with torch.enable_grad():
                kk = kappa if kappa.requires_grad else kappa.detach().requires_grad_(True)
                r, s, dr = self.residual(kk, x, dist, sw)
                lval = (r * r).sum() + 0.5 * (self.reg * (kk * kk).flatten(1).sum(1)).sum()
                (g,) = torch.autograd.grad(lval, kk, create_graph=cg)
            jg = dr * self.apply(g, x)
            num = (g * g).flatten(1).sum(1)
            # GN model of the loss: ||r + α J g||² + λ/2 ||κ - α g||²; gradient is 2 Jᵀr + λκ
            den = 2 * (jg * jg).flatten(1).sum(1) + self.reg * num
            alpha = self.log_step.exp().clamp(max=2.0) * num / den.clamp_min(1e-8)
            kappa = (kk if cg else kk.detach()) - alpha.view(B, 1, 1, 1, 1) * g
            if not cg:
                kappa = kappa.detach()
            iterates.append(kappa)
        return iterates
