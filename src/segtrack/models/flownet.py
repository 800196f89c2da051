"""FlowNetS and FlowNetC, sized for a CPU (seed 002, "Optical flow with CNNs", "FlowNet:
architecture 1 / 2", "Correlation layer").

* **FlowNetS** ("simple"): the two frames stacked into 6 channels and a plain encoder.
* **FlowNetC** ("correlation"): the same tower applied to each frame separately (shared
  weights) up to stride 8, then the *correlation layer* compares them explicitly:

      c(x1, x2) = sum_{o in [-k, k]^2} <f1(x1 + o), f2(x2 + o)>

  for every displacement d = x2 - x1 within ``max_displacement`` (here k = 0, so a dot product
  of two feature vectors, normalised by the number of channels), giving (2D + 1)^2 channels; the
  first frame's features, reduced by a 1x1 convolution (``conv_redir``), are concatenated.
* **Refinement** (both): "upconvolution" (transposed convolution) stages, each concatenated with
  the encoder's features at its resolution and the coarser flow prediction upsampled, predicting
  flow at strides 32, 16, 8 and 4; the final stride-4 flow is bilinearly upsampled (as FlowNet).

Departures from the paper: channel widths about a quarter of FlowNet's and the encoder stops at
stride 32 (FlowNet: 64) so that a 240x432 pair runs in tens of milliseconds on two CPU cores;
FlowNetC's correlation is computed at stride 8 with displacements of 1 cell up to 4 cells
(+-32 pixels; FlowNet: stride 2 in cells, up to 20 cells = +-80 pixels at its 384x512 input).
The network takes (current, previous) and predicts the *backward* flow segtrack's trackers use
(from the current frame to the previous one), in pixels divided by ``FLOW_DIV`` = 20 (FlowNet's
scaling of the targets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FLOW_DIV = 20.0  # FlowNet divides the ground-truth flow by 20
_MEAN = torch.tensor([0.411, 0.432, 0.45]).view(1, 3, 1, 1)  # FlowNet's mean subtraction


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int) -> torch.Tensor:
    """FlowNet's correlation layer with kernel size 1 (k = 0): for every displacement (dx, dy)
    in [-D, D]^2 (row-major, dy outer), ``sum_c f1[c, y, x] * f2[c, y + dy, x + dx] / C``;
    positions outside ``f2`` count as zero.  (B, C, H, W) x2 -> (B, (2D+1)^2, H, W)."""
    D = int(max_displacement)
    B, C, H, W = f1.shape
    p = F.pad(f2, (D, D, D, D))
    out = [(f1 * p[:, :, D + dy:D + dy + H, D + dx:D + dx + W]).sum(1)
           for dy in range(-D, D + 1) for dx in range(-D, D + 1)]
    return torch.stack(out, 1) / C


def _conv(cin: int, cout: int, k: int = 3, s: int = 1, bn: bool = False) -> nn.Sequential:
    if bn:
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout),
                             nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2), nn.LeakyReLU(0.1, inplace=True))


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.1, inplace=True))


@dataclass
class FlowNetConfig:
    variant: str = "s"  # s | c
    width: int = 24  # channels of conv1 (FlowNet: 64)
    max_displacement: int = 4  # FlowNetC: correlation range in stride-8 cells
    batchnorm: bool = False  # batch normalisation after every encoder convolution


class FlowNet(nn.Module):
    """FlowNetS / FlowNetC: (cur, prev) uint8-range float (B, 3, H, W) each, H and W multiples of
    32 -> flow predictions at strides 4, 8, 16, 32 (training) or the stride-4 flow (eval),
    in pixels / ``FLOW_DIV``."""

    def __init__(self, cfg: FlowNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FlowNetConfig()
        if cfg.variant not in ("s", "c"):
            raise ValueError(f"FlowNet variant {cfg.variant!r}: expected s or c")
        w, bn = cfg.width, cfg.batchnorm
        c1, c2, c3, c4, c5 = w, 2 * w, 4 * w, 5 * w, 6 * w
        if cfg.variant == "s":
            self.conv1 = _conv(6, c1, 7, 2, bn=bn)
            self.conv2 = _conv(c1, c2, 5, 2, bn=bn)
            self.conv3 = _conv(c2, c3, 5, 2, bn=bn)
            self.conv3_1 = _conv(c3, c3, bn=bn)
        else:
            self.conv1 = _conv(3, c1, 7, 2, bn=bn)
            self.conv2 = _conv(c1, c2, 5, 2, bn=bn)
            self.conv3 = _conv(c2, c3, 5, 2, bn=bn)
            self.conv_redir = _conv(c3, c3 // 3, 1, bn=bn)
            n_corr = (2 * cfg.max_displacement + 1) ** 2
            self.conv3_1 = _conv(n_corr + c3 // 3, c3, bn=bn)
        self.conv4 = _conv(c3, c4, 3, 2, bn=bn)
        self.conv4_1 = _conv(c4, c4, bn=bn)
        self.conv5 = _conv(c4, c5, 3, 2, bn=bn)
        self.conv5_1 = _conv(c5, c5, bn=bn)
        self.pred5 = nn.Conv2d(c5, 2, 3, 1, 1)
        self.deconv4 = _deconv(c5, c3)
        self.up5 = nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False)
        self.pred4 = nn.Conv2d(c4 + c3 + 2, 2, 3, 1, 1)
        self.deconv3 = _deconv(c4 + c3 + 2, c2)
        self.up4 = nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False)
        self.pred3 = nn.Conv2d(c3 + c2 + 2, 2, 3, 1, 1)
        self.deconv2 = _deconv(c3 + c2 + 2, c1)
        self.up3 = nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False)
        self.pred2 = nn.Conv2d(c2 + c1 + 2, 2, 3, 1, 1)

    def _encode(self, cur: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = cur / 255.0 - _MEAN.to(cur)
        b = prev / 255.0 - _MEAN.to(prev)
        if self.cfg.variant == "s":
            x2 = self.conv2(self.conv1(torch.cat([a, b], 1)))
            x3 = self.conv3_1(self.conv3(x2))
        else:
            both = self.conv2(self.conv1(torch.cat([a, b], 0)))
            f3 = self.conv3(both)
            n = cur.shape[0]
            x2 = both[:n]
            corr = correlation(f3[:n], f3[n:], self.cfg.max_displacement)
            x3 = self.conv3_1(torch.cat([F.leaky_relu(corr, 0.1), self.conv_redir(f3[:n])], 1))
        return x2, x3

    def forward(self, cur: torch.Tensor, prev: torch.Tensor):
        x2, x3 = self._encode(cur, prev)
        x4 = self.conv4_1(self.conv4(x3))
        x5 = self.conv5_1(self.conv5(x4))
        f5 = self.pred5(x5)
        y4 = torch.cat([x4, self.deconv4(x5), self.up5(f5)], 1)
        f4 = self.pred4(y4)
        y3 = torch.cat([x3, self.deconv3(y4), self.up4(f4)], 1)
        f3 = self.pred3(y3)
        y2 = torch.cat([x2, self.deconv2(y3), self.up3(f3)], 1)
        f2 = self.pred2(y2)
        if self.training:
            return f2, f3, f4, f5
        return f2


def save_flownet(path: str | Path, model: FlowNet) -> None:
    """Config and weights to ``path``, atomically."""
    import os

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save({"config": asdict(model.cfg), "state": model.state_dict()}, tmp)
    os.replace(tmp, p)


def load_flownet(path: str | Path) -> FlowNet:
    doc = torch.load(path, map_location="cpu", weights_only=False)
    model = FlowNet(FlowNetConfig(**doc["config"]))
    model.load_state_dict(doc["state"])
    return model.eval()


class FlowNetEstimator:
    """Backward flow of two RGB uint8 frames with a trained FlowNet: the pair is resized so that
    its longer side is at most ``max_side`` (then padded to multiples of 32), the stride-4
    prediction upsampled to the input size and rescaled to its pixels."""

    def __init__(self, model: FlowNet, max_side: int = 448, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.max_side = int(max_side)
        self.device = device

    def calc(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        import cv2

        H, W = cur.shape[:2]
        s = min(1.0, self.max_side / max(H, W))
        h, w = max(32, round(H * s)), max(32, round(W * s))
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32

        def prep(img: np.ndarray) -> torch.Tensor:
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, 2)
            if (h, w) != (H, W):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
            return F.pad(t, (0, pw - w, 0, ph - h), mode="replicate")

        with torch.inference_mode():
            f = self.model(prep(cur).to(self.device), prep(prev).to(self.device))
            f = F.interpolate(f, scale_factor=4, mode="bilinear", align_corners=False)
            f = f[:, :, :h, :w] * FLOW_DIV
        flow = f[0].permute(1, 2, 0).cpu().numpy()
        if (h, w) != (H, W):
            flow = cv2.resize(flow, (W, H), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= W / w
            flow[..., 1] *= H / h
        return np.ascontiguousarray(flow, np.float32)
