"""RTS heads on a frozen EfficientNet-Lite0 (seed 001 §5.3, appendix 5.A).

Modules (names as in the thesis):

* F_θ (``feat_s``) and G_θ (``feat_c``): segmentation / classification features x_s and x_c
  from the stride-16 backbone features (x_c L2-normalised per sample as DiMP).
* E_θ and W_θ (``label_enc``): label generator and weight predictor, from the mask (at stride 4)
  and x_s, giving the K = 16 channel label encoding and its per-location weights at stride 16.
  Both are bounded (3 tanh(./3) and 2 sigmoid) - a departure from LWL: with unbounded outputs
  the first training runs here blew the scale of Eq. 5.1 up to float overflow.
* A_θ (``seg_learner``) and P_θ (``inst_learner``): see :mod:`segtrack.models.rts.learners`.
* H_θ (``score_enc``): conv 3x3 (1->64), max-pool 3x3 with stride 1, two residual blocks
  (64 channels), conv 3x3 (64->16), all stride 1 (appendix 5.A, Fig. 5.4).
* D_θ (``decoder``): a U-Net-like decoder over the stride 16, 8 and 4 backbone features, fed the
  combined encoding x_f = x_m + H_θ(s_c) at every level (LWL's decoder structure, slimmed:
  48/32/24 channels instead of LWL's 64-256, no stride-32 level).  Output: segmentation logits
  at stride 4, upsampled bilinearly to the crop.
* :class:`BoxToMask`: the box-to-mask network replacing STA (issue deliverable 6): the box as a
  soft map is encoded with the stride-16 features into a 16-channel encoding that a decoder of
  the same structure turns into a mask.

Departures from the thesis: frozen ImageNet EfficientNet-Lite0 instead of ResNet-50 with
Mask R-CNN weights; the instance branch works on stride-16 features (18x18 at a 288 px search
region) instead of stride 32; 64-channel x_s / x_c instead of 512; all heads trained from
scratch on DAVIS-2016 train (no LWL initialisation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segtrack.models.rts.learners import InstanceLearner, SegmentationLearner


@dataclass
class RTSConfig:
    """Architecture hyper-parameters (saved with the weights)."""

    backbone: str = "efficientnet-lite0"
    crop_size: int = 288
    feat_dim: int = 64
    enc_dim: int = 16
    seg_filter: int = 3
    inst_filter: int = 5
    channels4: int = 24
    channels8: int = 40
    channels16: int = 112
    conditioning: bool = True
    # the backbone's stride-16 stage is part of these weights (fine-tuned in training on the
    # cached stride-8 features) instead of the frozen ImageNet one
    tuned_stride16: bool = False


def conv(cin: int, cout: int, k: int = 3, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.c2(F.relu(self.c1(x))))


class ScoreEncoder(nn.Module):
    """H_θ of appendix 5.A."""

    def __init__(self, out_dim: int = 16, mid: int = 64) -> None:
        super().__init__()
        self.conv_in = conv(1, mid)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.res = nn.Sequential(ResBlock(mid), ResBlock(mid))
        self.conv_out = nn.Conv2d(mid, out_dim, 3, padding=1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.res(self.pool(self.conv_in(s))))


class LabelEncoder(nn.Module):
    """E_θ and W_θ: mask (stride 4) + x_s -> label encoding and weights at stride 16."""

    def __init__(self, feat_dim: int = 64, enc_dim: int = 16) -> None:
        super().__init__()
        self.mask_net = nn.Sequential(
            conv(1, 16), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.fuse = nn.Sequential(conv(32 + feat_dim, 64), ResBlock(64))
        self.enc = nn.Conv2d(64, enc_dim, 3, padding=1)
        self.weight = nn.Conv2d(64, enc_dim, 3, padding=1)
        nn.init.zeros_(self.weight.weight)
        nn.init.constant_(self.weight.bias, 0.0)  # 2 sigmoid(0) = 1

    def forward(self, mask4: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask_net(mask4)
        if m.shape[-2:] != xs.shape[-2:]:
            m = F.interpolate(m, size=xs.shape[-2:], mode="bilinear", align_corners=False)
        h = self.fuse(torch.cat([m, xs], 1))
        # bounded encodings and weights: unbounded ones let the scale of Eq. 5.1 run away
        return 3.0 * torch.tanh(self.enc(h) / 3.0), 2.0 * torch.sigmoid(self.weight(h))


class Decoder(nn.Module):
    """D_θ: encoding at stride 16 + backbone features (16, 8, 4) -> logits at stride 4."""

    def __init__(self, enc_dim: int, c16: int, c8: int, c4: int) -> None:
        super().__init__()
        self.p16 = conv(c16, 48, 1)
        self.p8 = conv(c8, 32, 1)
        self.p4 = conv(c4, 16, 1)
        self.b16 = nn.Sequential(conv(48 + enc_dim, 48), ResBlock(48))
        self.b8 = nn.Sequential(conv(48 + 32 + enc_dim, 32), ResBlock(32))
        self.b4 = nn.Sequential(conv(32 + 16 + enc_dim, 24), conv(24, 24))
        self.out = nn.Conv2d(24, 1, 3, padding=1)

    def forward(self, enc: torch.Tensor, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        f8, f4 = feats[8], feats[4]
        h = self.b16(torch.cat([self.p16(feats[16]), enc], 1))
        up = F.interpolate(h, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        e8 = F.interpolate(enc, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        h = self.b8(torch.cat([up, self.p8(f8), e8], 1))
        up = F.interpolate(h, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        e4 = F.interpolate(enc, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        h = self.b4(torch.cat([up, self.p4(f4), e4], 1))
        return self.out(h)


class BoxToMask(nn.Module):
    """Box-to-mask network (replaces STA): box map + backbone features -> mask logits."""

    def __init__(self, cfg: RTSConfig) -> None:
        super().__init__()
        self.box_net = nn.Sequential(
            conv(1, 16), nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.enc = nn.Sequential(
            conv(16 + cfg.channels16, 64), ResBlock(64), nn.Conv2d(64, cfg.enc_dim, 3, padding=1)
        )
        self.decoder = Decoder(cfg.enc_dim + 1, cfg.channels16, cfg.channels8, cfg.channels4)

    def forward(self, feats: dict[int, torch.Tensor], box4: torch.Tensor) -> torch.Tensor:
        """box4: (B, 1, H4, W4) soft box map at stride 4 -> logits at stride 4."""
        b = self.box_net(box4)
        f16 = feats[16]
        if b.shape[-2:] != f16.shape[-2:]:
            b = F.interpolate(b, size=f16.shape[-2:], mode="bilinear", align_corners=False)
        box16 = F.adaptive_avg_pool2d(box4, f16.shape[-2:])
        enc = torch.cat([self.enc(torch.cat([b, f16], 1)), box16], 1)
        return self.decoder(enc, feats)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    """DiMP's InstanceL2Norm: every sample scaled to mean square 1 / C."""
    C = x.shape[1]
    ms = (x * x).mean(dim=(1, 2, 3), keepdim=True)
    return x / torch.sqrt(ms * C + 1e-6)


def _stage16(backbone: str, pretrained: bool) -> nn.Sequential:
    """The stride-16 blocks of ``backbone`` (ImageNet weights when ``pretrained``)."""
    from segtrack.models.backbones import build_backbone

    bb = build_backbone(backbone, pretrained=pretrained, out_strides=(16,))
    return nn.Sequential(*[bb.blocks[i] for i in bb.stage_blocks(16)])


class RTSNet(nn.Module):
    """All learned heads of RTS (and LWL, which uses the segmentation branch only)."""

    def __init__(self, cfg: RTSConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or RTSConfig()
        c = self.cfg
        self.feat_s = nn.Sequential(conv(c.channels16, 96), nn.Conv2d(96, c.feat_dim, 3, padding=1))
        self.feat_c = nn.Sequential(conv(c.channels16, 96), nn.Conv2d(96, c.feat_dim, 3, padding=1))
        self.label_enc = LabelEncoder(c.feat_dim, c.enc_dim)
        self.seg_learner = SegmentationLearner(c.feat_dim, c.enc_dim, c.seg_filter)
        self.inst_learner = InstanceLearner(c.feat_dim, c.inst_filter)
        self.score_enc = ScoreEncoder(c.enc_dim)
        self.decoder = Decoder(c.enc_dim, c.channels16, c.channels8, c.channels4)
        self.b2m = BoxToMask(c)
        if c.tuned_stride16:
            self.stage16 = _stage16(c.backbone, pretrained=False)

    def train(self, mode: bool = True) -> RTSNet:
        super().train(mode)
        if hasattr(self, "stage16"):  # batch statistics stay ImageNet's
            from segtrack.models.backbones.efficientnet_lite import set_bn_eval

            set_bn_eval(self.stage16)
        return self

    def load_pretrained_stage16(self) -> None:
        """Start the tuned stride-16 stage from the ImageNet weights of the backbone."""
        self.stage16.load_state_dict(_stage16(self.cfg.backbone, pretrained=True).state_dict())

    def build_backbone(self, out_strides: tuple[int, ...] = (4, 8, 16)) -> nn.Module:
        """The backbone these heads were trained on, BatchNorm frozen: the ImageNet one, with
        this network's own stride-16 stage when it was tuned."""
        from segtrack.models.backbones import build_backbone

        bb = build_backbone(self.cfg.backbone, pretrained=True, out_strides=out_strides,
                            freeze_bn=True)
        if self.cfg.tuned_stride16:
            for i, block in zip(bb.stage_blocks(16), self.stage16, strict=True):
                bb.blocks[i].load_state_dict(block.state_dict())
        return bb.eval()

    def seg_features(self, f16: torch.Tensor) -> torch.Tensor:
        return self.feat_s(f16)

    def cls_features(self, f16: torch.Tensor) -> torch.Tensor:
        return l2_normalise(self.feat_c(f16))

    def decode(
        self, xm: torch.Tensor, feats: dict[int, torch.Tensor], sc: torch.Tensor | None
    ) -> torch.Tensor:
        """x_f = x_m + H_θ(s_c) (when conditioning) -> D_θ -> logits at stride 4."""
        xf = xm
        if sc is not None and self.cfg.conditioning:
            h = self.score_enc(sc)
            if h.shape[-2:] != xm.shape[-2:]:
                h = F.interpolate(h, size=xm.shape[-2:], mode="bilinear", align_corners=False)
            xf = xm + h
        return self.decoder(xf, feats)

    def config_dict(self) -> dict:
        return asdict(self.cfg)
