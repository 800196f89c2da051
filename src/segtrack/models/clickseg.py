"""Click- and box-to-mask network: an image crop plus the user's clicks, box and current mask
in, the object's mask out (RITM-style interactive segmentation, sized for a CPU).

Not one of the seed systems: it makes the first mask of every tracker from a box or clicks
(the seeds start from a given mask, or from a box with their own box-to-mask heads), and
corrects a tracked frame's mask.  Its design follows RITM (Sofiiuk et al., "Reviving Iterative
Training with Mask Guidance for Interactive Segmentation", 2021):

* input: the crop (RGB) and four guidance maps of the same size: positive clicks and negative
  clicks as disks, the previous mask (zeros when there is none) and the box as a filled
  rectangle (zeros without a box);
* "Conv1S" fusion: the guidance maps go through two small convolutions to the stem's channels
  and are *added* to the output of the pretrained stem, so the ImageNet backbone keeps its
  first layer (the last fusion convolution starts at zero: training starts from the pretrained
  features);
* backbone: EfficientNet-Lite0 from ImageNet (HRNet in RITM), trained end to end with its
  BatchNorm statistics frozen;
* decoder: a feature pyramid from strides 32, 16, 8 to 4 (64 channels), then a head at stride 4
  that also sees the guidance maps at that stride; logits at stride 4 are upsampled to the
  crop.  Full-resolution boundaries come from the guided filter of
  :mod:`segtrack.geometry.edges` in :mod:`segtrack.interactive`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError
from segtrack.models.backbones import build_backbone, images_in
from segtrack.models.backbones.efficientnet_lite import STEM_CHANNELS

__all__ = ["ClickSegConfig", "ClickSegNet", "ClickSegGraph", "GUIDE_CHANNELS", "save_clickseg",
           "load_clickseg"]

#: guidance maps, in this order: positive clicks, negative clicks, previous mask, box
GUIDE_CHANNELS = 4
_TAPS = (4, 8, 16, 32)


@dataclass
class ClickSegConfig:
    backbone: str = "efficientnet-lite0"
    size: int = 320  # side of the square crop the network sees
    decoder: int = 64  # channels of the feature pyramid
    disk_radius: float = 5.0  # click disks, in crop pixels (RITM: 5)
    box_expand: float = 1.4  # crop side / box side when a box is given
    zoom_expand: float = 1.4  # crop side / mask box side when zooming in on a mask


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class ClickSegNet(nn.Module):
    """``forward(image, guide) -> logits``: image (B, 3, S, S) RGB in [0, 1], guide
    (B, 4, S, S) in [0, 1] -> logits (B, 1, S, S)."""

    def __init__(self, cfg: ClickSegConfig | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = cfg or ClickSegConfig()
        self.backbone = build_backbone(self.cfg.backbone, pretrained=pretrained,
                                       out_strides=_TAPS, freeze_bn=True)
        self.fuse = nn.Sequential(_conv(GUIDE_CHANNELS, 16, 3, 2), nn.ReLU(inplace=True),
                                  _conv(16, STEM_CHANNELS, 3))
        nn.init.zeros_(self.fuse[2].weight)
        nn.init.zeros_(self.fuse[2].bias)
        D = self.cfg.decoder
        ch = self.backbone.channels
        self.lateral = nn.ModuleList([nn.Conv2d(ch[s], D, 1) for s in _TAPS])
        self.smooth = nn.ModuleList([_conv(D, D) for _ in _TAPS[:-1]])
        self.head = nn.Sequential(
            _conv(D + GUIDE_CHANNELS, D), nn.ReLU(inplace=True),
            _conv(D, D // 2), nn.ReLU(inplace=True),
            nn.Conv2d(D // 2, 1, 1))

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        S = image.shape[-2:]
        feats = self.backbone(image, stem_add=self.fuse(guide))
        x = self.lateral[-1](feats[32])
        for i in range(len(_TAPS) - 2, -1, -1):  # 16, 8, 4
            f = self.lateral[i](feats[_TAPS[i]])
            x = F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False) + f
            x = F.relu(self.smooth[i](x))
        # a click disk survives at stride 4 (max over 4x4 cells: ceil(S / 4) of them, the
        # size of the stride-4 tap; the same as an adaptive max pool when 4 divides S)
        g4 = F.max_pool2d(guide, 4, 4, ceil_mode=True)
        logits = self.head(torch.cat([x, g4], 1))
        return F.interpolate(logits, size=S, mode="bilinear", align_corners=False)


class ClickSegGraph(nn.Module):
    """The inference graph the runtime exports: uint8 crops (B, S, S, 3) and guidance maps
    (B, 4, S, S) -> object probabilities (B, S, S)."""

    def __init__(self, net: ClickSegNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(images_in(image), guide))[:, 0]


def save_clickseg(net: ClickSegNet, path: str | os.PathLike, **extra) -> Path:
    """Save config and weights (fp16) to ``path`` atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).detach().cpu().clone()
             for k, v in net.state_dict().items()}
    tmp = p.with_name(p.name + ".tmp")
    torch.save({"config": asdict(net.cfg), "state_dict": state, **extra}, tmp)
    os.replace(tmp, p)
    return p


def load_clickseg(path: str | os.PathLike, device: str = "cpu") -> ClickSegNet:
    """Rebuild the network of a file written by :func:`save_clickseg` (fp32, eval mode)."""
    try:
        doc = torch.load(path, map_location="cpu", weights_only=False)
        net = ClickSegNet(ClickSegConfig(**doc["config"]), pretrained=False)
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in doc["state_dict"].items()})
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input
        raise InputError(f"segmentation weights '{path}': not a click-to-mask weight file "
                         f"({type(e).__name__})") from None
    return net.eval().to(device)
