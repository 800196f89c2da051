"""The EVS Refiner (seed 001, §3.3.5, Fig. 3.4): a shallow network that re-predicts the class
probabilities of a non-keyframe from the current image, the low-level features of the last
keyframe warped to the current frame, the warped probabilities and the IAM attention map.

The thesis' Refiner reuses ICNet's own low-level branch; a generic wrapped segmenter does not
expose its features, so here the low-level features are the stride-4 output (24 channels) of the
frozen ImageNet EfficientNet-Lite0 stem, computed on keyframes only and warped in between (the
point of the design: they are not recomputed on propagated frames).  The network predicts a
correction of the warped logits, ``P_refiner = softmax(log P_warped + delta)``, with ``delta``
initialised to zero (an untrained Refiner returns ``P_warped``).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError


class Refiner(nn.Module):
    def __init__(self, num_classes: int, low_ch: int = 24, width: int = 48) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.image = nn.Sequential(  # shallow image branch, stride 4
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(True), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(True)
        )
        cin = 32 + low_ch + num_classes + 1
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(width, width, 3, 1, 2, dilation=2), nn.ReLU(True),
        )
        self.out = nn.Conv2d(width, num_classes, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, img_feats: torch.Tensor, low_w: torch.Tensor, p_w: torch.Tensor,
                att: torch.Tensor) -> torch.Tensor:
        """All (B, ., h, w) at the D resolution except img_feats/low_w at stride 4 -> probs."""
        s4 = img_feats.shape[-2:]
        p4 = F.interpolate(p_w, size=s4, mode="bilinear", align_corners=False)
        a4 = F.interpolate(att, size=s4, mode="bilinear", align_corners=False)
        low_w = F.interpolate(low_w, size=s4, mode="bilinear", align_corners=False)
        delta = self.out(self.body(torch.cat([img_feats, low_w, p4, a4], 1)))
        delta = F.interpolate(delta, size=p_w.shape[-2:], mode="bilinear", align_corners=False)
        return torch.softmax(torch.log(p_w.clamp_min(1e-4)) + delta, 1)


class RefinerRunner:
    """Numpy-side helpers used by :class:`segtrack.video.evs.EVSPipeline`."""

    def __init__(self, refiner: Refiner, device: str = "cpu") -> None:
        from segtrack.models.backbones import build_backbone

        self.net = refiner.to(device).eval()
        self.device = device
        self.low = build_backbone("efficientnet-lite0", pretrained=True, out_strides=(4,),
                                  freeze_bn=True).to(device).eval()

    def _t(self, small: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].float() / 255.0
        return x.to(self.device)

    @torch.no_grad()
    def lowlevel(self, small: np.ndarray) -> np.ndarray:
        """Low-level features (h4, w4, 24) float32 of a keyframe."""
        return self.low(self._t(small))[4][0].permute(1, 2, 0).cpu().numpy().copy()

    @torch.no_grad()
    def image_branch(self, small: np.ndarray) -> torch.Tensor:
        return self.net.image(self._t(small))

    @staticmethod
    def warp_features(feats: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
        """Warp stride-4 features with the (downsampled, rescaled) D-resolution flow."""
        from segtrack.video.evs import warp_probs

        h4, w4 = feats.shape[:2]
        sy, sx = h4 / flow_back.shape[0], w4 / flow_back.shape[1]
        f = cv2.resize(flow_back, (w4, h4), interpolation=cv2.INTER_AREA)
        f = f * np.array([sx, sy], np.float32)
        return warp_probs(feats, np.ascontiguousarray(f, np.float32))

    @torch.no_grad()
    def refine(self, img_feats: torch.Tensor, feats_w: np.ndarray, p_w: np.ndarray,
               att: np.ndarray) -> np.ndarray:
        def t(a):
            a = a if a.ndim == 3 else a[..., None]
            return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].to(
                self.device)

        out = self.net(img_feats, t(feats_w), t(p_w), t(att))
        return out[0].permute(1, 2, 0).cpu().numpy()


def save_refiner(path: str | os.PathLike, net: Refiner, **extra) -> None:
    torch.save({"num_classes": net.num_classes,
                "state": {k: v.detach().cpu() for k, v in net.state_dict().items()}, **extra},
               path)


def load_refiner(path: str | os.PathLike, device: str = "cpu") -> RefinerRunner:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"refiner weights '{p}' not found (train with `segtrack train evs`)")
    try:
        doc = torch.load(p, map_location="cpu", weights_only=False)
        net = Refiner(doc["num_classes"])
        net.load_state_dict(doc["state"])
    except (OSError, KeyError, RuntimeError) as e:
        raise InputError(f"refiner weights '{p}': unusable ({e})") from None
    return RefinerRunner(net, device)
