"""OSVOS and MaskTrack networks on a frozen EfficientNet-Lite0 (seed 000 "OSVOS architecture",
"MaskTrack"; seed 002 "OSVOS", "MaskTrack").

OSVOS (slide "OSVOS architecture"): VGG's five stages (conv blocks at strides 1, 2, 4, 8, 16)
each get a side output ``conv(3, 3, 16)`` + bilinear upsampling; the side outputs are
concatenated and fused by ``conv(1, 1, 1)`` + sigmoid.  Mapping onto EfficientNet-Lite0
(whose stem already has stride 2):

======================  ==========================  =========  ========
VGG stage (slide)       EfficientNet-Lite0 tap      stride     channels
======================  ==========================  =========  ========
1 (2 x conv 64)         stem + stage 1 (MBConv1)    2          16
2 (pool, 3 x conv 128)  stage 2                     4          24
3 (pool, 3 x conv 256)  stage 3                     8          40
4 (pool, 3 x conv 512)  stages 4-5                  16         112
5 (pool, 3 x conv 512)  stages 6-7                  32         320
======================  ==========================  =========  ========

Each tap gets ``conv(3, 3, side)`` + ReLU, is bilinearly upsampled to stride 2 and the five
maps are concatenated; the fusion is ``conv(1, 1, fuse)`` + ReLU + ``conv(1, 1, 1)`` (one
hidden 1x1 layer more than the slide: the backbone is frozen here - on a CPU only the heads
are trained and fine-tuned - so the head needs a non-linearity of its own), sigmoid at the end;
logits at stride 2 are resized to the frame.

MaskTrack (seed 000 "Mask as additional input channel - RGB+Mask"; seed 002 "refine the
segmentation from last frame"): the same network with extra input channels - the previous
frame's mask, and for the +Flow variant the optical-flow magnitude.  Because the pretrained
backbone is frozen (and takes RGB only), the extra channels do not enter the first layer:
they are area-resized to every tap's resolution and concatenated to the backbone features
before each side convolution, so every stage sees the mask (and flow).

Only the head is learned and saved; :func:`load_oneshot` rebuilds the network from a file.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError
from segtrack.models.shared import shared

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
STRIDES: tuple[int, ...] = (2, 4, 8, 16, 32)


@dataclass
class OneShotConfig:
    kind: str = "osvos"  # "osvos" | "masktrack" | "masktrack-flow"
    extra: int = 0  # extra input channels: 0 (OSVOS), 1 (mask), 2 (mask + flow magnitude)
    side: int = 16  # channels of each side output (slide: 16)
    fuse: int = 32  # hidden channels of the 1x1 fusion
    short_side: int = 256  # the network works at this short side (multiple of 32)
    backbone: str = "efficientnet-lite0"


class OneShotHead(nn.Module):
    """Side outputs on the five backbone taps, upsampled to stride 2, concatenated, fused."""

    def __init__(self, cfg: OneShotConfig, channels: dict[int, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.sides = nn.ModuleDict({
            str(s): nn.Sequential(nn.Conv2d(channels[s] + cfg.extra, cfg.side, 3, padding=1),
                                  nn.ReLU(inplace=True))
            for s in STRIDES
        })
        self.fuse = nn.Sequential(
            nn.Conv2d(cfg.side * len(STRIDES), cfg.fuse, 1), nn.ReLU(inplace=True),
            nn.Conv2d(cfg.fuse, 1, 1),
        )

    def forward(self, feats: dict[int, torch.Tensor],
                extra: torch.Tensor | None = None) -> torch.Tensor:
        """Backbone features (+ extra channels (B, E, h, w) at any size) -> logits at stride 2."""
        size = feats[2].shape[-2:]
        outs = []
        for s in STRIDES:
            f = feats[s]
            if self.cfg.extra:
                if extra is None or extra.shape[1] != self.cfg.extra:
                    raise InputError(f"{self.cfg.kind} needs {self.cfg.extra} extra channels")
                e = F.interpolate(extra, size=f.shape[-2:], mode="area")
                f = torch.cat([f, e.to(f.dtype)], 1)
            o = self.sides[str(s)](f)
            if o.shape[-2:] != size:
                o = F.interpolate(o, size=size, mode="bilinear", align_corners=False)
            outs.append(o)
        return self.fuse(torch.cat(outs, 1))


class OneShotNet(nn.Module):
    """Frozen backbone + :class:`OneShotHead`."""

    def __init__(self, cfg: OneShotConfig, backbone: nn.Module | None = None,
                 pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        if backbone is None:
            backbone = shared_backbone(cfg.backbone, pretrained)
        self.backbone = backbone
        self.head = OneShotHead(cfg, backbone.channels)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        return self.backbone(x)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, 3, H, W) in [0, 1] -> logits (B, 1, H, W)."""
        logits = self.head(self.features(x), extra)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def copy_with_head(self) -> OneShotNet:
        """A network sharing the (frozen) backbone with a private copy of the head."""
        new = OneShotNet.__new__(OneShotNet)
        nn.Module.__init__(new)
        new.cfg = self.cfg
        new.backbone = self.backbone
        new.head = copy.deepcopy(self.head)
        return new


def shared_backbone(name: str = "efficientnet-lite0", pretrained: bool = True) -> nn.Module:
    """One frozen, eval-mode backbone per process (taps at strides 2..32)."""

    def build() -> nn.Module:
        from segtrack.models.backbones import build_backbone

        bb = build_backbone(name, pretrained=pretrained, out_strides=STRIDES, freeze_bn=True)
        bb.eval()
        for p in bb.parameters():
            p.requires_grad_(False)
        return bb

    return shared(("oneshot-backbone", name, pretrained), build)


def net_size(h: int, w: int, short_side: int = 256, multiple: int = 32) -> tuple[int, int]:
    """Network input size (h, w): short side ``short_side``, aspect kept, multiples of 32."""
    s = short_side / min(h, w)
    return (max(multiple, int(round(h * s / multiple)) * multiple),
            max(multiple, int(round(w * s / multiple)) * multiple))


def resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an image / mask to ``size`` = (h, w) (bool masks come back bool)."""
    if image.shape[:2] == tuple(size):
        return image
    if image.dtype == bool:
        return cv2.resize(image.astype(np.uint8), (size[1], size[0]),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
    interp = cv2.INTER_NEAREST if nearest else (
        cv2.INTER_AREA if image.shape[0] > size[0] else cv2.INTER_LINEAR)
    return cv2.resize(image, (size[1], size[0]), interpolation=interp)


def images_to_tensor(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 RGB images (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    arr = np.ascontiguousarray(np.stack(list(images)))
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def extra_tensor(prev_masks: list[np.ndarray] | np.ndarray,
                 flow_mags: list[np.ndarray] | np.ndarray | None = None) -> torch.Tensor:
    """Extra MaskTrack channels (N, 1 or 2, h, w): previous mask in {0, 1} (+ flow magnitude)."""
    m = torch.from_numpy(np.stack([np.asarray(x, np.float32) for x in prev_masks]))[:, None]
    if flow_mags is None:
        return m
    f = torch.from_numpy(np.stack([np.asarray(x, np.float32) for x in flow_mags]))[:, None]
    return torch.cat([m, f], 1)


def balanced_bce(logits: torch.Tensor, target: torch.Tensor,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
    """OSVOS' class-balanced cross-entropy (Caelles et al. 2017, Eq. 1), per image:

    ``L = -beta * sum_{Y+} log s(y) - (1 - beta) * sum_{Y-} log(1 - s(y))`` with
    ``beta = |Y-| / |Y|``, divided by |Y| (pixels with ``valid == 0`` are ignored).
    ``logits`` and ``target`` (B, 1, H, W), target in {0, 1}.
    """
    target = target.to(logits.dtype)
    if valid is None:
        valid = torch.ones_like(target)
    valid = valid.to(logits.dtype)
    pos = target * valid
    neg = (1 - target) * valid
    n = valid.sum(dim=(1, 2, 3)).clamp_min(1.0)
    beta = (neg.sum(dim=(1, 2, 3)) / n).view(-1, 1, 1, 1)
    lp = F.logsigmoid(logits)
    ln = F.logsigmoid(-logits)
    loss = -(beta * pos * lp + (1 - beta) * neg * ln).sum(dim=(1, 2, 3)) / n
    return loss.mean()


def save_oneshot(path: str | os.PathLike, net: OneShotNet, half: bool = True, **extra) -> None:
    """Save config + head (fp16 when ``half``); the ImageNet backbone is not stored."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in net.head.state_dict().items()}
    torch.save({"config": asdict(net.cfg), "head": state, **extra}, path)


def resolve_weights(path: str | os.PathLike | None, default_name: str) -> Path:
    """A weight file given as a path or as the name of a committed one ("masktrack"); empty:
    the committed ``default_name``."""
    p = Path(path) if path else WEIGHTS_DIR / f"{default_name}.pt"
    named = WEIGHTS_DIR / f"{str(path).removesuffix('.pt')}.pt"
    if path and not p.is_file() and "/" not in str(path) and named.is_file():
        p = named
    if not p.is_file():
        raise InputError(
            f"weights '{p}' not found (train them with `segtrack train {default_name}`, "
            "see docs/oneshot.md)")
    return p


_CACHE: dict[tuple[str, str], OneShotNet] = {}


def load_oneshot(path: str | os.PathLike, device: str = "cpu") -> OneShotNet:
    """The parent network of a weight file (cached per process; copy before fine-tuning)."""
    key = (str(Path(path).resolve()), device)
    if key in _CACHE:
        return _CACHE[key]
    try:
        doc = torch.load(path, map_location="cpu", weights_only=False)
        cfg = OneShotConfig(**doc["config"])
        net = OneShotNet(cfg)
        net.head.load_state_dict({k: v.float() for k, v in doc["head"].items()})
    except (OSError, KeyError, RuntimeError, TypeError) as e:
        raise InputError(f"weights '{path}': not a one-shot weight file ({e})") from None
    net = net.to(device).eval()
    _CACHE[key] = net
    return net


#: flow magnitudes (network pixels) are divided by this before entering the network
FLOW_NORM = 8.0

_DIS: list = []


def dis_flow(prev_rgb: np.ndarray, cur_rgb: np.ndarray) -> np.ndarray:
    """Backward DIS flow (ULTRAFAST, as the ``flow`` tracker): for each pixel of ``cur_rgb``,
    its displacement to ``prev_rgb`` (H, W, 2) float32."""
    if not _DIS:
        from segtrack.video.optical_flow import DISFlow

        _DIS.append(DISFlow("ultrafast"))
    return _DIS[0].calc(cur_rgb, prev_rgb)


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """Normalised flow magnitude channel (float32, ``|flow| / FLOW_NORM`` clipped to [0, 4])."""
    return np.clip(np.linalg.norm(flow, axis=2) / FLOW_NORM, 0, 4).astype(np.float32)


# -- graphs for the inference runtime (segtrack.runtime) -----------------------------------
def FeatureGraph(backbone: nn.Module) -> nn.Module:  # noqa: N802 - a module factory
    """uint8 frames (B, h, w, 3) -> the backbone taps, in :data:`STRIDES` order."""
    from segtrack.models.backbones import Uint8Backbone

    return Uint8Backbone(backbone, STRIDES)


class HeadGraph(nn.Module):
    """The head with its parameters as inputs (they change with fine-tuning, the graph does
    not): (taps..., [extra,] parameters...) -> logits at stride 2."""

    def __init__(self, head: OneShotHead) -> None:
        super().__init__()
        self.head = head
        self.names = [n for n, _ in head.named_parameters()]

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """:meth:`OneShotHead.forward` written with the parameters passed in (same order as
        ``head.parameters()``: per stride conv weight and bias, then the two fusion layers)."""
        n = len(STRIDES)
        feats = dict(zip(STRIDES, args[:n]))
        has_extra = bool(self.head.cfg.extra)
        extra = args[n] if has_extra else None
        prm = list(args[n + int(has_extra):])
        size = (int(feats[2].shape[-2]), int(feats[2].shape[-1]))  # fixed sizes in the export
        outs = []
        for k, s in enumerate(STRIDES):
            f = feats[s]
            if has_extra:
                e = F.interpolate(extra, size=(int(f.shape[-2]), int(f.shape[-1])), mode="area")
                f = torch.cat([f, e.to(f.dtype)], 1)
            o = F.relu(F.conv2d(f, prm[2 * k], prm[2 * k + 1], padding=1))
            if o.shape[-2:] != size:
                o = F.interpolate(o, size=size, mode="bilinear", align_corners=False)
            outs.append(o)
        w1, b1, w2, b2 = prm[2 * n:]
        return F.conv2d(F.relu(F.conv2d(torch.cat(outs, 1), w1, b1)), w2, b2)

    def inputs_for(self, head: OneShotHead) -> list[torch.Tensor]:
        """The parameter inputs of ``head`` (a fine-tuned copy of the exported one)."""
        return [p.detach() for p in head.parameters()]
