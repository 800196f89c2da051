"""A small per-frame semantic segmenter: frozen EfficientNet-Lite0 + a light FPN decoder.

This is the single-frame network that EVS (seed 001, ch. 3, §3.3.2: "any deep framework can be
used") and LMANet (ch. 4, §4.3: an existing Encoder-Decoder backbone) are built around.  It is
split the way LMANet needs it:

* **encoder** = the frozen ImageNet backbone (strides 4, 8, 16, 32) + a top-down neck giving one
  ``width``-channel map at stride 8 (``encode``), plus the stride-4 skip feature;
* **decoder** = upsampling to stride 4, fusion with the stride-4 skip, 3x3 conv, 1x1 classifier
  (``decode``), logits at stride 4, bilinearly resized to the input size by ``forward``.

Only neck + decoder are learned (and saved: the backbone weights are never stored in segtrack's
weight files).  :func:`load_semseg` rebuilds the model from such a file.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError

#: committed weights live next to the package
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

_BACKBONE_CH = {4: 24, 8: 40, 16: 112, 32: 320}


@dataclass
class SemSegConfig:
    num_classes: int = 10
    class_names: list[str] = field(default_factory=list)
    width: int = 96  # encoder output channels (stride 8)
    skip: int = 32  # stride-4 skip channels
    backbone: str = "efficientnet-lite0"
    input_multiple: int = 32  # inputs are resized so both sides are multiples of this


def _cbr(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
    )


class SemSegHead(nn.Module):
    """Neck (encoder part) and decoder on top of backbone features ``{4, 8, 16, 32}``."""

    def __init__(self, cfg: SemSegConfig) -> None:
        super().__init__()
        w = cfg.width
        self.cfg = cfg
        self.lat32 = nn.Conv2d(_BACKBONE_CH[32], w, 1)
        self.lat16 = nn.Conv2d(_BACKBONE_CH[16], w, 1)
        self.lat8 = nn.Conv2d(_BACKBONE_CH[8], w, 1)
        self.smooth16 = _cbr(w, w)
        self.smooth8 = _cbr(w, w)
        self.lat4 = _cbr(_BACKBONE_CH[4], cfg.skip, 1)
        self.dec = _cbr(w + cfg.skip, 64)
        self.cls = nn.Conv2d(64, cfg.num_classes, 1)

    def encode(self, feats: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features -> (encoder output at stride 8, stride-4 skip)."""
        p = self.lat32(feats[32])
        f16 = feats[16]
        p = self.lat16(f16) + F.interpolate(p, size=f16.shape[-2:], mode="bilinear",
                                            align_corners=False)
        p = self.smooth16(p)
        f8 = feats[8]
        p = self.lat8(f8) + F.interpolate(p, size=f8.shape[-2:], mode="bilinear",
                                          align_corners=False)
        return self.smooth8(p), self.lat4(feats[4])

    def decode(self, enc: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(encoder output, skip) -> class logits at stride 4."""
        up = F.interpolate(enc, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.cls(self.dec(torch.cat([up, skip], 1)))

    def forward(self, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.decode(*self.encode(feats))


class SemSeg(nn.Module):
    """Backbone + head; ``forward(x (B,3,H,W) in [0,1]) -> logits (B, C, H, W)``."""

    def __init__(self, cfg: SemSegConfig, backbone: nn.Module | None = None,
                 pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        if backbone is None:
            from segtrack.models.backbones import build_backbone

            backbone = build_backbone(cfg.backbone, pretrained=pretrained, freeze_bn=True)
        self.backbone = backbone.eval()
        for prm in self.backbone.parameters():
            prm.requires_grad_(False)
        self.head = SemSegHead(cfg)

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        with torch.no_grad():
            return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def head_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.head.state_dict().items()}


def network_size(h: int, w: int, multiple: int = 32) -> tuple[int, int]:
    """Size (h, w) rounded to the nearest multiple (at least one multiple)."""
    return (max(multiple, int(round(h / multiple)) * multiple),
            max(multiple, int(round(w / multiple)) * multiple))


def to_tensor(image: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float (1, 3, h, w) in [0, 1], resized to ``size`` = (h, w)."""
    import cv2

    if size is not None and (image.shape[0], image.shape[1]) != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


class SemSegGraph(nn.Module):
    """Backbone + head -> class logits at stride 4 (what the inference runtime exports)."""

    def __init__(self, model: SemSeg) -> None:
        super().__init__()
        self.model = model

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.backbone(x))


def predict_probs(model: SemSeg, image: np.ndarray, device: str = "cpu",
                  net: nn.Module | None = None) -> np.ndarray:
    """Class probabilities (C, H, W) float32 of an RGB frame, at the frame's own size
    (``net``: the model's :class:`SemSegGraph` on a runtime, see :mod:`segtrack.runtime`)."""
    h, w = image.shape[:2]
    x = to_tensor(image, network_size(h, w, model.cfg.input_multiple)).to(device)
    with torch.no_grad():
        logits = net(x) if net is not None else model.head(model.features(x))
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return torch.softmax(logits, 1)[0].cpu().numpy()


def save_semseg(path: str | os.PathLike, model: SemSeg, **extra) -> None:
    torch.save({"config": asdict(model.cfg), "head": model.head_state(), **extra}, path)


_CACHE: dict[tuple[str, str], SemSeg] = {}


def resolve_weights(path: str | os.PathLike | None, default_name: str) -> Path:
    """``path``, or the committed ``weights/<default_name>.pt``; InputError when missing."""
    p = Path(path) if path else WEIGHTS_DIR / f"{default_name}.pt"
    if not p.is_file():
        raise InputError(
            f"weights '{p}' not found (train them with `segtrack train`, see docs/evs_lmanet.md)"
        )
    return p


def load_semseg(path: str | os.PathLike, device: str = "cpu") -> SemSeg:
    """Rebuild a :class:`SemSeg` (pretrained backbone + saved head) from a weight file."""
    key = (str(Path(path).resolve()), device)
    if key in _CACHE:
        return _CACHE[key]
    try:
        doc = torch.load(path, map_location="cpu", weights_only=False)
        cfg = SemSegConfig(**doc["config"])
        model = SemSeg(cfg)
        model.head.load_state_dict(doc["head"])
    except (OSError, KeyError, RuntimeError, TypeError) as e:
        raise InputError(f"weights '{path}': not a semseg weight file ({e})") from None
    model = model.to(device).eval()
    _CACHE[key] = model
    return model
