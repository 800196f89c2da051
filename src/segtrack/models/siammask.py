"""SiamMask network heads (seed 004, §3.2 "SiamMask", appendix A, Table 7 / Figure 7-9).

Layout (two-branch ``2b`` and three-branch ``3b`` variants):

* **Backbone** f_θ: EfficientNet-Lite0 (ImageNet) instead of ResNet-50, truncated after its
  stride-16 stage (as SiamMask stops ResNet-50 after conv4) with that stage run at stride 1 and
  dilation 2, so the output stride is 8 (appendix A).  It is shared by exemplar and search and
  kept frozen (CPU training); it lives outside :class:`SiamMaskNet`
  (:func:`build_siammask_backbone`).  127x127 exemplar -> 16x16x112, 255x255 search -> 32x32x112.
* **Adjust** layers: unshared 1x1 convolutions to 256 channels for exemplar and search.
* **Depth-wise cross-correlation** (:func:`depthwise_xcorr`) of the 16x16 exemplar kernel over
  the 32x32 search features: a 17x17x256 map of "responses of candidate windows" (RoWs).  RoW
  ``(i, j)`` looks at the 128x128 search-crop window starting at pixel ``(8i, 8j)``
  (:func:`window_origin`), centred at ``(8j + 64, 8i + 64)``.
* **Heads**, each two 1x1 convolutions: score (2b: one SiamFC logit per RoW; 3b: 2k logits, the
  RPN classification of k anchors), box (3b only: 4k anchor offsets), mask (``refine=False``:
  256 then 63² channels, a 63x63 mask per RoW; ``refine=True``: the refinement module).
* **Refinement module** (Pinheiro et al., appendix A Figure 7/9): the chosen RoW is deconvolved
  to a 16x16x32 map and merged, through skip connections, with the search features cropped at
  the same window: stride-8 features (16x16, 112+40 channels) then stride-4 features (32x32, 24
  channels), upsampling x2 after each merge; a final x2 upsampling gives a 64x64 mask.  SiamMask
  also merges stride-2 features (127x127 output); they are left out to keep training features in
  RAM.

Anchors (3b): k = 5 ratios (0.33, 0.5, 1, 2, 3) of a 64x64-pixel area, centred on each RoW
(SiamRPN).  Box encoding: ``(dx/aw, dy/ah, log(w/aw), log(h/ah))``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError

EXEMPLAR = 127
SEARCH = 255
STRIDE = 8
RESPONSE = 17  # (32 - 16) + 1
WINDOW = 128  # pixels of the search crop seen by one RoW (16 cells x stride 8)
FEAT_CH = {16: 112, 8: 40, 4: 24}  # EfficientNet-Lite0 channels at the used nominal strides


@dataclasses.dataclass
class SiamMaskConfig:
    variant: str = "3b"  # "2b" (SiamFC score + mask) or "3b" (RPN score + box + mask)
    backbone: str = "efficientnet-lite0"
    ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    anchor_size: float = 64.0  # sqrt of the anchor area in search-crop pixels
    refine: bool = True
    channels: int = 256

    @property
    def k(self) -> int:
        return len(self.ratios) if self.variant == "3b" else 1

    @property
    def mask_size(self) -> int:
        return 64 if self.refine else 63


def depthwise_xcorr(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Depth-wise cross-correlation: ``out[b, c] = x[b, c] (star) z[b, c]`` ("valid" mode).

    x: (B, C, H, W) search features; z: (B, C, h, w) exemplar kernels -> (B, C, H-h+1, W-w+1).
    """
    B, C, H, W = x.shape
    if z.shape[:2] != (B, C):
        raise InputError(f"xcorr: kernel {tuple(z.shape)} does not match features {tuple(x.shape)}")
    out = F.conv2d(x.reshape(1, B * C, H, W), z.reshape(B * C, 1, z.shape[2], z.shape[3]),
                   groups=B * C)
    return out.reshape(B, C, out.shape[2], out.shape[3])


def context_sides(w: float, h: float, search: int = SEARCH) -> tuple[float, float]:
    """SiamFC crop sides in frame pixels for a ``w`` x ``h`` target: exemplar
    ``s_z = sqrt((w + p)(h + p))``, ``p = (w + h) / 2`` (resized to 127), search
    ``s_x = s_z * search / 127`` (the target keeps the same size in pixels of both crops)."""
    p = (w + h) / 2.0
    s_z = float(np.sqrt(max(w + p, 1.0) * max(h + p, 1.0)))
    return s_z, s_z * search / EXEMPLAR


def window_origin(i: int, j: int) -> tuple[float, float]:
    """Top-left ``(x, y)`` in search-crop pixels of the window seen by RoW ``(i, j)``."""
    return float(STRIDE * j), float(STRIDE * i)


def response_size(search: int) -> int:
    """Side of the RoW grid for a ``search`` x ``search`` crop (17 for 255)."""
    return (search + STRIDE - 1) // STRIDE - 16 + 1


def make_anchors(cfg: SiamMaskConfig, n: int = RESPONSE) -> np.ndarray:
    """``(k, n, n, 4)`` anchors ``(cx, cy, w, h)`` in search-crop pixels (n = 17 for 255)."""
    c = STRIDE * np.arange(n, dtype=np.float64) + WINDOW / 2
    out = np.zeros((cfg.k, n, n, 4))
    ratios = cfg.ratios if cfg.variant == "3b" else (1.0,)
    for a, r in enumerate(ratios):  # r = h / w
        w = cfg.anchor_size / np.sqrt(r)
        h = cfg.anchor_size * np.sqrt(r)
        out[a, :, :, 0] = c[None, :]
        out[a, :, :, 1] = c[:, None]
        out[a, :, :, 2] = w
        out[a, :, :, 3] = h
    return out


def cxcywh_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(..., 4)`` cx,cy,w,h boxes ``a`` with one box ``b``."""
    ax0, ay0 = a[..., 0] - a[..., 2] / 2, a[..., 1] - a[..., 3] / 2
    ax1, ay1 = a[..., 0] + a[..., 2] / 2, a[..., 1] + a[..., 3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    return inter / np.maximum(a[..., 2] * a[..., 3] + b[2] * b[3] - inter, 1e-12)


def anchor_labels(
    anchors: np.ndarray, gt: np.ndarray | None, pos: float = 0.6, neg: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """RPN labels of ``(k, 17, 17, 4)`` anchors for a ground-truth box ``gt`` (cx, cy, w, h):
    1 where IoU >= ``pos``, 0 where IoU < ``neg``, -1 (ignored) between; all 0 without a target.
    Returns ``(labels int8 (k, 17, 17), iou)``."""
    if gt is None:
        return np.zeros(anchors.shape[:3], np.int8), np.zeros(anchors.shape[:3])
    iou = cxcywh_iou(anchors, np.asarray(gt, np.float64))
    lab = np.full(iou.shape, -1, np.int8)
    lab[iou >= pos] = 1
    lab[iou < neg] = 0
    return lab, iou


def siamfc_labels(gt: np.ndarray | None, radius: float = 2.0) -> np.ndarray:
    """SiamFC labels of the 17x17 RoWs (2b): 1 within ``radius`` cells (16 px) of the target
    centre, else 0."""
    if gt is None:
        return np.zeros((RESPONSE, RESPONSE), np.int8)
    c = STRIDE * np.arange(RESPONSE, dtype=np.float64) + WINDOW / 2
    d = np.hypot(c[None, :] - gt[0], c[:, None] - gt[1]) / STRIDE
    return (d <= radius).astype(np.int8)


def encode_boxes(anchors: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Regression targets ``(dx/aw, dy/ah, log(w/aw), log(h/ah))`` of box ``gt`` per anchor."""
    a = anchors
    return np.stack([
        (gt[0] - a[..., 0]) / a[..., 2], (gt[1] - a[..., 1]) / a[..., 3],
        np.log(gt[2] / a[..., 2]), np.log(gt[3] / a[..., 3]),
    ], -1)


def decode_boxes(anchors: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_boxes`: ``(..., 4)`` cx, cy, w, h."""
    a = anchors
    d = np.clip(deltas[..., 2:], -4, 4)
    return np.stack([
        a[..., 0] + deltas[..., 0] * a[..., 2], a[..., 1] + deltas[..., 1] * a[..., 3],
        a[..., 2] * np.exp(d[..., 0]), a[..., 3] * np.exp(d[..., 1]),
    ], -1)


def _head(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid),
                         nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))


class Refine(nn.Module):
    """Refinement module with skip connections (appendix A): RoW -> 16x16 -> 32x32 -> 64x64."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(channels, 32, 16, 16)
        self.v2 = nn.Sequential(nn.Conv2d(FEAT_CH[16] + FEAT_CH[8], 64, 3, padding=1),
                                nn.ReLU(inplace=True), nn.Conv2d(64, 32, 3, padding=1),
                                nn.ReLU(inplace=True))
        self.h2 = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True))
        self.post2 = nn.Conv2d(32, 16, 3, padding=1)
        self.v1 = nn.Sequential(nn.Conv2d(FEAT_CH[4], 16, 3, padding=1), nn.ReLU(inplace=True))
        self.h1 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.post1 = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, row: torch.Tensor, f16: torch.Tensor, f8: torch.Tensor,
                f4: torch.Tensor) -> torch.Tensor:
        """row (N, 256); f16/f8 (N, C, 16, 16); f4 (N, 24, 32, 32) -> (N, 64, 64) logits."""
        h = self.deconv(row[:, :, None, None])  # (N, 32, 16, 16)
        h = F.relu(self.post2(self.h2(h) + self.v2(torch.cat([f16, f8], 1))))
        h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        h = F.relu(self.post1(self.h1(h) + self.v1(f4)))
        h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(h)[:, 0]


class SiamMaskNet(nn.Module):
    """Everything of SiamMask after the (frozen, external) backbone."""

    def __init__(self, cfg: SiamMaskConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SiamMaskConfig()
        c = self.cfg
        if c.variant not in ("2b", "3b"):
            raise InputError(f"variant '{c.variant}': must be '2b' or '3b'")
        C = c.channels
        self.adjust_z = nn.Conv2d(FEAT_CH[16], C, 1)
        self.adjust_x = nn.Conv2d(FEAT_CH[16], C, 1)
        self.score = _head(C, C, 2 * c.k if c.variant == "3b" else 1)
        self.box = _head(C, C, 4 * c.k) if c.variant == "3b" else None
        if c.refine:
            self.refine = Refine(C)
            self.mask = None
        else:
            self.refine = None
            self.mask = _head(C, C, 63 * 63)

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def template(self, zf16: torch.Tensor) -> torch.Tensor:
        return self.adjust_z(zf16)

    def correlate(self, kernel: torch.Tensor, xf16: torch.Tensor) -> torch.Tensor:
        """(B, 256, 17, 17) RoWs; normalised by the kernel area."""
        k = kernel
        return depthwise_xcorr(self.adjust_x(xf16), k) / float(k.shape[2] * k.shape[3])

    def heads(self, corr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Score logits ``(B, k, 17, 17)`` (2b: logit; 3b: foreground minus background logit,
        the log-odds of the 2-way softmax) and box deltas ``(B, k, 4, 17, 17)`` (3b) or None."""
        B, _, n, m = corr.shape
        s = self.score(corr)
        if self.cfg.variant == "3b":
            s = s.view(B, 2, self.cfg.k, n, m)
            s = s[:, 1] - s[:, 0]
        box = self.box(corr).view(B, self.cfg.k, 4, n, m) if self.box is not None else None
        return s, box

    def masks(self, corr: torch.Tensor, feats: dict[int, torch.Tensor], b: torch.Tensor,
              i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(N, S, S)`` of RoWs ``(b[n], i[n], j[n])`` (S = 64 refined, 63 plain)."""
        row = corr[b, :, i, j]  # (N, 256)
        if self.refine is None:
            return self.mask(row[:, :, None, None]).view(-1, 63, 63)
        f16 = torch.stack([feats[16][bb, :, ii:ii + 16, jj:jj + 16]
                           for bb, ii, jj in zip(b.tolist(), i.tolist(), j.tolist())])
        f8 = torch.stack([feats[8][bb, :, ii:ii + 16, jj:jj + 16]
                          for bb, ii, jj in zip(b.tolist(), i.tolist(), j.tolist())])
        f4 = torch.stack([feats[4][bb, :, 2 * ii:2 * ii + 32, 2 * jj:2 * jj + 32]
                          for bb, ii, jj in zip(b.tolist(), i.tolist(), j.tolist())])
        return self.refine(row, f16.float(), f8.float(), f4.float())


def build_siammask_backbone(name: str = "efficientnet-lite0") -> nn.Module:
    """The frozen backbone (eval mode): strides {4: 4, 8: 8, 16: 8 (dilated)}."""
    from segtrack.models.backbones import build_backbone

    bb = build_backbone(name, pretrained=True, out_strides=(4, 8, 16), dilate_stride16=True,
                        freeze_bn=True)
    for q in bb.parameters():
        q.requires_grad_(False)
    return bb.eval()


def default_weights(method: str) -> Path:
    """Committed weight file of ``method`` ("siammask" or "siammask-2b")."""
    return Path(__file__).resolve().parents[1] / "weights" / f"{method}.pt"


def save_siammask(net: SiamMaskNet, path: str | os.PathLike, half: bool = True, **meta) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).clone()
             for k, v in net.state_dict().items()}
    torch.save({"config": net.config_dict(), "state_dict": state, "meta": meta}, p)
    return p


def load_siammask(path: str | os.PathLike, device: str = "cpu") -> SiamMaskNet:
    """Load heads saved by :func:`save_siammask` (fp32, eval mode)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights '{p}': no such file (train them with "
                         "`segtrack train siammask --variant 3b --data DIR --out DIR`)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
        cfg = obj["config"]
        cfg["ratios"] = tuple(cfg["ratios"])
        net = SiamMaskNet(SiamMaskConfig(**cfg))
        net.load_state_dict({k: v.float() for k, v in obj["state_dict"].items()})
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user input problem
        raise InputError(
            f"weights '{p}': not a SiamMask weight file ({type(e).__name__})"
        ) from None
    return net.to(device).eval()


# -- graphs for the inference runtime (segtrack.runtime) -----------------------------------
def BackboneGraph(backbone: nn.Module) -> nn.Module:  # noqa: N802 - a module factory
    """uint8 crops (B, S, S, 3) -> backbone features at strides 4, 8 and 8 (dilated "16")."""
    from segtrack.models.backbones import Uint8Backbone

    return Uint8Backbone(backbone, (4, 8, 16))


class TemplateGraph(nn.Module):
    """uint8 exemplar crop (1, 127, 127, 3) -> correlation kernel."""

    def __init__(self, backbone: nn.Module, net: SiamMaskNet) -> None:
        super().__init__()
        self.features, self.net = BackboneGraph(backbone), net

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.net.template(self.features(img)[2])


def toeplitz_kernel(z: torch.Tensor, width: int) -> torch.Tensor:
    """The exemplar kernel (1, C, h, w) as per-channel Toeplitz matrices (C, h * width, n),
    n = width - w + 1, for :func:`xcorr_matmul` on search features ``width`` wide."""
    _, C, h, w = z.shape
    n = width - w + 1
    T = z.new_zeros(C, h, width, n)
    for j in range(n):
        T[:, :, j:j + w, j] = z[0]
    return T.reshape(C, h * width, n)


def xcorr_matmul(x: torch.Tensor, T: torch.Tensor, h: int) -> torch.Tensor:
    """:func:`depthwise_xcorr` of x (1, C, H, W) with a kernel of height ``h`` given by
    :func:`toeplitz_kernel`: one batched matrix product (C x (n, h W) @ (h W, n)).  ONNX
    Runtime runs it twice as fast as the 256-group convolution with a 16x16 kernel."""
    n = T.shape[-1]
    rows = torch.cat([x[0, :, u:u + n, :] for u in range(h)], 2)  # (C, n, h * W)
    return torch.matmul(rows, T)[None]


class SearchGraph(nn.Module):
    """(stride-8 search features, Toeplitz kernel) of one object -> RoWs, score logits, box
    deltas (the correlation of :meth:`SiamMaskNet.correlate`, written as a matrix product)."""

    def __init__(self, net: SiamMaskNet, kernel_size: int = 16) -> None:
        super().__init__()
        self.net = net
        self.k = int(kernel_size)

    def forward(self, f16: torch.Tensor, T: torch.Tensor) -> tuple[torch.Tensor, ...]:
        corr = xcorr_matmul(self.net.adjust_x(f16), T, self.k) / float(self.k * self.k)
        score, box = self.net.heads(corr)
        return (corr, score) if box is None else (corr, score, box)


class RefineGraph(nn.Module):
    """The refinement module on one RoW and its feature windows -> (1, 64, 64) mask logits."""

    def __init__(self, net: SiamMaskNet) -> None:
        super().__init__()
        self.refine = net.refine

    def forward(self, row, f16, f8, f4) -> torch.Tensor:
        return self.refine(row, f16, f8, f4)
