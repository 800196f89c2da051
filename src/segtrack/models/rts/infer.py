"""Inference helpers shared by the RTS / LWL trackers and the trainer's evaluation.

:func:`box_to_mask` is the box initialisation of issue deliverable 6 (the thesis uses STA): the
search region is centred on the box, the box is drawn as a soft map at stride 4 and the
box-to-mask network of :class:`segtrack.models.rts.net.RTSNet` predicts the object mask.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from segtrack.models.rts.search import Crop, box_map, crop_image, paste_scores, search_side


def to_tensor(img: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(img)).to(device)
    return t.permute(2, 0, 1)[None].float() / 255


@torch.no_grad()
def box_to_mask(
    net, features, image: np.ndarray, box: tuple[float, ...], size: int = 288,
    factor: float = 4.0, device: str = "cpu", threshold: float = 0.5,
) -> np.ndarray:
    """Frame-size bool mask of the object inside ``box`` (x, y, w, h); the filled box itself
    when the network finds nothing.  ``features`` maps a uint8 crop (size, size, 3) to the
    backbone's ``{4, 8, 16}`` feature dict (a torch backbone is accepted too)."""
    x, y, w, h = (float(v) for v in box)
    H, W = image.shape[:2]
    crop = Crop(x + w / 2, y + h / 2, search_side(w, h, (H, W), factor), size)
    img = crop_image(image, crop)
    if isinstance(features, torch.nn.Module):
        feats = features(to_tensor(img, device))
    else:
        feats = features(img)
    cb = crop.box_to_crop((x, y, w, h))
    n4 = feats[4].shape[-1]
    bm = box_map(tuple(v / (size / n4) for v in cb), n4)
    logits = net.b2m(feats, torch.from_numpy(bm).to(device)[None, None])
    prob = torch.sigmoid(logits)[0, 0].cpu().numpy()
    full = paste_scores(prob, crop, (H, W))
    # the object lies inside its box
    inside = np.zeros((H, W), bool)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    inside[max(y0, 0) : int(np.ceil(y + h)), max(x0, 0) : int(np.ceil(x + w))] = True
    mask = (full > threshold) & inside
    if not mask.any():
        mask = inside
    return mask


def upsample(logits: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def fuse_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Fold every ``conv -> BatchNorm`` pair named ``<x>_conv`` / ``<x>_bn`` (the EfficientNet-Lite
    naming) into the convolution, in place, and replace the BN by identity (inference only; the
    frozen backbone's BN statistics never change).  Saves ~10 ms per frame on the CPU."""
    from torch import nn

    for mod in module.modules():
        for name, child in list(mod.named_children()):
            if not (isinstance(child, nn.BatchNorm2d) and name.endswith("_bn")):
                continue
            conv = getattr(mod, name[: -len("_bn")] + "_conv", None)
            if not isinstance(conv, nn.Conv2d):
                continue
            scale = child.weight / torch.sqrt(child.running_var + child.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(child.running_mean)
            new_bias = (bias - child.running_mean) * scale + child.bias
            conv.bias = nn.Parameter(new_bias)
            setattr(mod, name, nn.Identity())
    return module


from segtrack.models.backbones import images_in  # noqa: E402


class FeatureGraph(torch.nn.Module):
    """Crops -> backbone features (strides 4, 8, 16), x_s and (``use_instance``) x_c."""

    def __init__(self, backbone, seg_net, net, use_instance: bool) -> None:
        super().__init__()
        self.backbone, self.seg_net, self.net = backbone, seg_net, net
        self.use_instance = use_instance

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.backbone(images_in(img))
        xs = self.seg_net.seg_features(f[16])
        if not self.use_instance:
            return f[4], f[8], f[16], xs
        return f[4], f[8], f[16], xs, self.net.cls_features(f[16])


class FrameGraph(torch.nn.Module):
    """Everything RTS / LWL compute on a tracked frame that does not learn online: backbone,
    x_s, x_c, the target models T_τ and T_κ applied (τ, κ are inputs: they change online),
    H_θ and the decoder; returns x_s, (x_c, s_c,) and the stride-4 probability.  A batch holds
    one crop per object, each with its own τ / κ."""

    def __init__(self, backbone, seg_net, net, use_instance: bool, conditioning: bool) -> None:
        super().__init__()
        self.backbone, self.seg_net, self.net = backbone, seg_net, net
        self.use_instance, self.conditioning = use_instance, conditioning

    def forward(self, img: torch.Tensor, tau: torch.Tensor,
                kappa: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        f = self.backbone(images_in(img))
        xs = self.seg_net.seg_features(f[16])
        from segtrack.models.rts.learners import per_sample_conv

        fs = self.seg_net.seg_learner.filter_size
        xm = per_sample_conv(xs, tau, fs // 2)  # T_τ(x_s), = seg_learner.apply
        if not self.use_instance:
            return xs, torch.sigmoid(self.seg_net.decode(xm, f, None))
        xc = self.net.cls_features(f[16])
        sc = per_sample_conv(xc, kappa, self.net.inst_learner.filter_size // 2)  # (B, 1, h, w)
        logits = self.seg_net.decode(xm, f, sc if self.conditioning else None)
        return xs, xc, sc, torch.sigmoid(logits)


class LabelGraph(torch.nn.Module):
    """E_θ and W_θ: (mask at stride 4, x_s) -> (label encoding, weights)."""

    def __init__(self, seg_net) -> None:
        super().__init__()
        self.label_enc = seg_net.label_enc

    def forward(self, mask4: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.label_enc(mask4, xs)
