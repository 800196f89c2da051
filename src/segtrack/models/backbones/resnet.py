"""ResNet-50 feature backbone (torchvision key names, no torchvision), local weights only.

RTS/LWL (seed 001, ch. 5 and appendix: "ResNet-50 backbone") and SiamMask (seed 004, appendix A:
ResNet-50 up to conv4 with output stride 8 by stride-1 + dilation-2 convolutions) use ResNet-50.
This is the torchvision v1.5 layout (stride on the 3x3 conv of a bottleneck, BatchNorm eps 1e-5,
ImageNet mean/std normalisation) so a torchvision ``resnet50`` state dict loads unchanged; the
dilation options follow torchvision's ``replace_stride_with_dilation``.  No weights are bundled and
nothing is ever downloaded: pretrained weights must be given as a local file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError
from segtrack.models.backbones.efficientnet_lite import (
    _check_out_strides,
    check_and_load,
    check_image_batch,
    load_state_file,
    set_bn_eval,
)

__all__ = ["Bottleneck", "ResNet50"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4) residual block, torchvision names."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        idt = x if self.downsample is None else self.downsample(x)
        return F.relu(y + idt)


class ResNet50(nn.Module):
    """ResNet-50 encoder returning ``{stride: features}`` like :class:`EfficientNetLite`.

    Channels (``self.channels``): {2: 64, 4: 256, 8: 512, 16: 1024, 32: 2048}; stride 2 is the
    conv1 output (before max-pooling), strides 4..32 are the outputs of ``layer1``..``layer4``.
    Output sizes are ``ceil(H / s)`` for any input size.

    Args:
        pretrained: must come with ``weights``; there are no bundled ResNet weights (InputError).
        weights: local file with a torchvision-named ``resnet50`` state dict (``fc.*`` optional
            unless ``with_head``).
        out_strides, dilate_stride32, dilate_stride16, with_head, freeze_bn: as for
            :class:`EfficientNetLite` (``dilate_stride16`` implies ``dilate_stride32``; the first
            block of a dilated layer keeps the previous dilation, later blocks double it).
    """

    def __init__(
        self,
        pretrained: bool = True,
        out_strides: Iterable[int] = (4, 8, 16, 32),
        dilate_stride32: bool = False,
        dilate_stride16: bool = False,
        with_head: bool = False,
        weights: str | os.PathLike | None = None,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        if pretrained and weights is None:
            raise InputError(
                "resnet50: no pretrained weights are bundled; pass weights=PATH of a local "
                "torchvision resnet50 state dict, or pretrained=False"
            )
        self.out_strides = _check_out_strides(out_strides)
        if dilate_stride16:
            dilate_stride32 = True
        self.dilate_stride16 = bool(dilate_stride16)
        self.dilate_stride32 = bool(dilate_stride32)
        self.with_head = bool(with_head)
        self.freeze_bn = bool(freeze_bn)

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin, dilation, actual = 64, 1, 4
        strides = {2: 2, 4: 4}
        dilate = {16: self.dilate_stride16, 32: self.dilate_stride32}
        for li, (planes, n, nominal) in enumerate(
            ((64, 3, 4), (128, 4, 8), (256, 6, 16), (512, 3, 32)), start=1
        ):
            stride, first_dil = (1 if li == 1 else 2), dilation
            if dilate.get(nominal, False):
                stride, dilation = 1, dilation * 2
            elif li > 1:
                actual *= 2
            blocks = [Bottleneck(cin, planes, stride, first_dil)]
            cin = planes * Bottleneck.expansion
            blocks += [Bottleneck(cin, planes, 1, dilation) for _ in range(n - 1)]
            setattr(self, f"layer{li}", nn.Sequential(*blocks))
            strides[nominal] = actual
        all_ch = {2: 64, 4: 256, 8: 512, 16: 1024, 32: 2048}
        self.channels = {s: all_ch[s] for s in self.out_strides}
        self.strides = {s: strides[s] for s in self.out_strides}
        if self.with_head:
            self.fc = nn.Linear(2048, 1000)
        self.register_buffer(
            "_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if weights is not None:
            self.load_weights(weights)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Strictly load a torchvision-named state dict from ``path``; InputError on mismatch."""
        state = load_state_file(path)
        head = [k for k in state if k.startswith("fc.")]
        check_and_load(self, state, repr(str(path)), ignorable=() if self.with_head else head)

    def train(self, mode: bool = True) -> ResNet50:
        super().train(mode)
        if mode and self.freeze_bn:
            set_bn_eval(self)
        return self

    def _run(self, x: torch.Tensor, last: int) -> dict[int, torch.Tensor]:
        check_image_batch(x)
        x = (x - self._mean) / self._std
        x = F.relu(self.bn1(self.conv1(x)))
        out = {2: x}
        x = self.maxpool(x)
        for li, nominal in enumerate((4, 8, 16, 32), start=1):
            if nominal > last:
                break
            x = getattr(self, f"layer{li}")(x)
            out[nominal] = x
        return out

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``x`` (B, 3, H, W) RGB in [0, 1] -> {nominal stride: (B, C, ceil(H/s'), ceil(W/s'))}."""
        out = self._run(x, max(self.out_strides))
        return {s: out[s] for s in self.out_strides}

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000); needs ``with_head=True`` (and a file with ``fc.*``)."""
        if not self.with_head:
            raise InputError("classify: the backbone was built with with_head=False")
        return self.fc(self._run(x, 32)[32].mean(dim=(2, 3)))
