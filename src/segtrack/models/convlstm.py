"""Pixel-wise ConvLSTM tracker networks (seed 003: Song, Li & Wang, "Pixel-wise object tracking").

* :class:`ConvLSTMCell` - Eq. 1, a convolutional LSTM *with the peephole Hadamard terms*
  ``W_ci o C_{t-1}``, ``W_cf o C_{t-1}``, ``W_co o C_t`` (per-channel, per-position weights; the
  reason the cell is not translation equivariant, §3.1).
* :class:`LocalModel` - §3, Fig. 2, Table 1: frozen pretrained features of the ROI (here the
  stride-16 stage of EfficientNet-Lite0, standing in for VGG pool4, also stride 16), F-CNN (two
  3x3 convs, ReLU then tanh), two ConvLSTM layers, a four-layer 5x5 stride-2 deconvolution
  decoder (leaky ReLU, sigmoid), and M-CNN (§3.2): two 3x3 convs (ReLU, tanh) regressing the
  initial ``(h, c)`` of both ConvLSTM layers from the first-frame ROI features concatenated with
  the features of the same ROI whose backbone activations were multiplied by the dilated object
  mask right after the first stride-2 layer (the stem; VGG: "before pool1").
* :class:`PerFrameModel` - the independent per-frame segmenter baseline of Tables 2-3 (same
  backbone and decoder, F-CNN followed by two plain convolutions instead of ConvLSTMs).
* :class:`GlobalModel` - §4, Table 1: conv/pool stack over the past segmentation map, two
  ConvLSTMs, FC, the video's aspect ratio concatenated before the last FC, which outputs
  ``theta = (scale, tx, ty)``: a square ROI in normalised image coordinates.
* :func:`stn_crop` - the spatial transformer: bilinear sampling of a ROI given by theta
  (``torch.nn.functional.affine_grid``/``grid_sample``); :func:`render_anchor` - ``T(theta)(Z_A)``
  of Eq. 4, a differentiable soft square (the anchor is the central half of the ROI, so a ROI
  whose anchor covers the object is twice the object's size, as the local model's training ROIs).

Channel widths are smaller than Table 1 (CPU budget), see docs/convlstm.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: nominal backbone stride whose features replace VGG pool4 (both stride 16)
FEATURE_STRIDE = 16
#: ROI side limits in pixels (§3.3 step 2)
MIN_SIDE, MAX_SIDE = 56.0, 672.0


@dataclass
class ConvLSTMConfig:
    """Sizes of the networks (Table 1 values in comments)."""

    backbone: str = "efficientnet-lite0"
    feat_channels: int = 112  # backbone stride-16 channels (VGG pool4: 512)
    roi: int = 128  # ROI side in pixels fed to the backbone (paper: 224)
    fcnn: int = 64  # F-CNN channels (512)
    lstm: int = 64  # ConvLSTM channels (256)
    mcnn: int = 128  # M-CNN hidden channels (1024)
    decoder: tuple[int, ...] = (32, 16, 8)  # deconv channels before the last 1 (128, 64, 32)
    map_size: int = 64  # global model input map side (224)
    global_convs: tuple[int, ...] = (8, 16, 32, 64)  # Table 1 layers 1-4 (x2 each)
    global_lstm: int = 64  # (64)
    global_fc: int = 256  # (1024)

    @property
    def feat_size(self) -> int:
        return self.roi // FEATURE_STRIDE

    @property
    def global_grid(self) -> int:
        return self.map_size // (2 ** len(self.global_convs))


# ---------------------------------------------------------------------------------------------
# Eq. 1


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM of Eq. 1 with peephole Hadamard products.

    ``i = s(Wxi*X + Whi*H + Wci o C_prev + bi)``, ``f = s(Wxf*X + Whf*H + Wcf o C_prev + bf)``,
    ``C = f o C_prev + i o tanh(Wxc*X + Whc*H + bc)``, ``o = s(Wxo*X + Who*H + Wco o C + bo)``,
    ``H = o o tanh(C)``.  ``*`` is a ``k x k`` convolution (one conv over ``[X, H]`` computing
    the four gates, order i, f, c, o), ``o`` an element-wise product with weights of shape
    ``(hidden, size, size)``.
    """

    def __init__(self, in_ch: int, hidden: int, size: int, k: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.size = size
        self.conv = nn.Conv2d(in_ch + hidden, 4 * hidden, k, padding=k // 2)
        self.w_ci = nn.Parameter(torch.zeros(1, hidden, size, size))
        self.w_cf = nn.Parameter(torch.zeros(1, hidden, size, size))
        self.w_co = nn.Parameter(torch.zeros(1, hidden, size, size))
        with torch.no_grad():  # forget-gate bias 1: remember by default
            self.conv.bias.zero_()
            self.conv.bias[hidden : 2 * hidden].fill_(1.0)

    def zero_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
        return z, z.clone()

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = self.conv(torch.cat([x, h], 1))
        gi, gf, gc, go = torch.split(gates, self.hidden, 1)
        i = torch.sigmoid(gi + self.w_ci * c)
        f = torch.sigmoid(gf + self.w_cf * c)
        c_new = f * c + i * torch.tanh(gc)
        o = torch.sigmoid(go + self.w_co * c_new)
        h_new = o * torch.tanh(c_new)
        return h_new, c_new


# ---------------------------------------------------------------------------------------------
# local model


def _decoder(cin: int, chans: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in chans:
        layers += [nn.ConvTranspose2d(cin, c, 5, 2, padding=2, output_padding=1),
                   nn.LeakyReLU(0.2)]
        cin = c
    layers.append(nn.ConvTranspose2d(cin, 1, 5, 2, padding=2, output_padding=1))
    return nn.Sequential(*layers)  # logits; the sigmoid is applied by the caller / loss


def _fcnn(cin: int, c: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.Tanh()
    )


State = list[tuple[torch.Tensor, torch.Tensor]]


class LocalModel(nn.Module):
    """§3 local segmentation network (F-CNN, 2 ConvLSTMs, decoder, M-CNN)."""

    def __init__(self, cfg: ConvLSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        s = cfg.feat_size
        self.fcnn = _fcnn(cfg.feat_channels, cfg.fcnn)
        self.lstm1 = ConvLSTMCell(cfg.fcnn, cfg.lstm, s)
        self.lstm2 = ConvLSTMCell(cfg.lstm, cfg.lstm, s)
        self.mcnn = nn.Sequential(
            nn.Conv2d(2 * cfg.feat_channels, cfg.mcnn, 3, padding=1), nn.ReLU(),
            nn.Conv2d(cfg.mcnn, 4 * cfg.lstm, 3, padding=1), nn.Tanh(),
        )
        self.decoder = _decoder(cfg.lstm, cfg.decoder)

    def init_state(self, feat0: torch.Tensor, masked_feat0: torch.Tensor) -> State:
        """M-CNN: initial ``[(h1, c1), (h2, c2)]`` from first-frame and masked features."""
        h1, c1, h2, c2 = torch.split(self.mcnn(torch.cat([feat0, masked_feat0], 1)),
                                     self.cfg.lstm, 1)
        return [(h1, c1), (h2, c2)]

    def step(self, feat: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One frame: features (B, C, s, s) -> ROI logits (B, 1, roi, roi) and the new state."""
        x = self.fcnn(feat)
        s1 = self.lstm1(x, state[0])
        s2 = self.lstm2(s1[0], state[1])
        return self.decoder(s2[0]), [s1, s2]

    def forward(
        self, feat0: torch.Tensor, masked_feat0: torch.Tensor, feats: torch.Tensor
    ) -> torch.Tensor:
        """``feats`` (B, T, C, s, s) of frames 1..T -> logits (B, T, roi, roi)."""
        state = self.init_state(feat0, masked_feat0)
        outs = []
        for t in range(feats.shape[1]):
            y, state = self.step(feats[:, t], state)
            outs.append(y[:, 0])
        return torch.stack(outs, 1)


class PerFrameModel(nn.Module):
    """Independent per-frame ROI segmenter (Tables 2-3 baseline): no memory, no first frame."""

    def __init__(self, cfg: ConvLSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fcnn = _fcnn(cfg.feat_channels, cfg.fcnn)
        self.body = nn.Sequential(
            nn.Conv2d(cfg.fcnn, cfg.lstm, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(cfg.lstm, cfg.lstm, 3, padding=1), nn.Tanh(),
        )
        self.decoder = _decoder(cfg.lstm, cfg.decoder)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, C, s, s) -> logits (B, 1, roi, roi)."""
        return self.decoder(self.body(self.fcnn(feat)))


# ---------------------------------------------------------------------------------------------
# global model and spatial transformer

#: scale = ROI side / frame width, kept in this range by a sigmoid
SCALE_RANGE = (0.02, 1.6)


class GlobalModel(nn.Module):
    """§4 global attention network: past map (B, 1, S, S) -> theta (B, 3) = (scale, tx, ty)."""

    def __init__(self, cfg: ConvLSTMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin = 1
        for c in cfg.global_convs:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            cin = c
        self.convs = nn.Sequential(*layers)
        g = cfg.global_grid
        self.lstm1 = ConvLSTMCell(cin, cfg.global_lstm, g)
        self.lstm2 = ConvLSTMCell(cfg.global_lstm, cfg.global_lstm, g)
        self.fc1 = nn.Linear(cfg.global_lstm * g * g, cfg.global_fc)
        self.fc2 = nn.Linear(cfg.global_fc + 1, 3)  # + aspect ratio gamma (Table 1: 1024 + 1)
        with torch.no_grad():
            self.fc2.weight.mul_(0.1)
            self.fc2.bias.zero_()

    def step(
        self, zmap: torch.Tensor, gamma: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State]:
        x = self.convs(zmap)
        if state is None:
            state = [self.lstm1.zero_state(x), self.lstm2.zero_state(x)]
        s1 = self.lstm1(x, state[0])
        s2 = self.lstm2(s1[0], state[1])
        f = F.relu(self.fc1(s2[0].flatten(1)))
        raw = self.fc2(torch.cat([f, gamma.view(-1, 1).to(f)], 1))
        lo, hi = SCALE_RANGE
        scale = lo + (hi - lo) * torch.sigmoid(raw[:, 0] - 1.0)
        return torch.stack([scale, raw[:, 1], raw[:, 2]], 1), [s1, s2]

    def forward(self, zmaps: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """``zmaps`` (B, T, S, S) -> theta (B, T, 3), theta[:, t] predicted after map t."""
        state = None
        out = []
        for t in range(zmaps.shape[1]):
            th, state = self.step(zmaps[:, t : t + 1], gamma, state)
            out.append(th)
        return torch.stack(out, 1)


def theta_matrix(theta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """(B, 3) ``(scale, tx, ty)`` and aspect ``gamma = W / H`` -> (B, 2, 3) affine matrices.

    The ROI is the square of side ``scale * W`` pixels centred at normalised ``(tx, ty)``
    (``align_corners=False`` convention: -1 and 1 are the outer edges of the frame).
    """
    s, tx, ty = theta[:, 0], theta[:, 1], theta[:, 2]
    z = torch.zeros_like(s)
    g = gamma.to(theta).expand_as(s)
    return torch.stack([torch.stack([s, z, tx], 1), torch.stack([z, s * g, ty], 1)], 1)


def stn_crop(images: torch.Tensor, theta: torch.Tensor, out: int) -> torch.Tensor:
    """Spatial transformer crop: (B, C, H, W) -> (B, C, out, out) ROIs given by ``theta``."""
    B, _, H, W = images.shape
    gamma = torch.full((B,), W / H, dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta_matrix(theta.to(images), gamma), [B, 1, out, out],
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def render_anchor(theta: torch.Tensor, gamma: torch.Tensor, size: int,
                  sharpness: float | None = None) -> torch.Tensor:
    """``T(theta)(Z_A)`` of Eq. 4: the anchor (central half of the ROI) as a soft square map.

    Returns (B, size, size) in [0, 1]; ``gamma`` (B,) aspect ratios W / H of the videos.
    """
    k = sharpness if sharpness is not None else size / 2.0  # about one map pixel wide edge
    c = (torch.arange(size, dtype=theta.dtype, device=theta.device) + 0.5) / size * 2 - 1
    s, tx, ty = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    hx = 0.5 * s
    hy = 0.5 * s * gamma.to(theta).view(-1, 1)
    wx = torch.sigmoid(k * (hx - (c.view(1, -1) - tx).abs()))
    wy = torch.sigmoid(k * (hy - (c.view(1, -1) - ty).abs()))
    return wy[:, :, None] * wx[:, None, :]


# ---------------------------------------------------------------------------------------------
# ROI geometry (pixels <-> theta) and numpy helpers shared by the tracker and the trainer


def roi_from_mask(mask: np.ndarray, factor: float = 2.0) -> tuple[float, float, float] | None:
    """Square ROI ``(cx, cy, side)`` around a mask: side = factor x the longer box side,
    clipped to [56, 672] (§3.3 step 2); None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1.0, ys.min(), ys.max() + 1.0
    side = float(np.clip(factor * max(x1 - x0, y1 - y0), MIN_SIDE, MAX_SIDE))
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0, side


def roi_to_theta(roi: tuple[float, float, float], hw: tuple[int, int]) -> np.ndarray:
    cx, cy, side = roi
    H, W = hw
    return np.array([side / W, 2 * cx / W - 1, 2 * cy / H - 1], np.float32)


def theta_to_roi(theta: np.ndarray, hw: tuple[int, int]) -> tuple[float, float, float]:
    H, W = hw
    s, tx, ty = (float(v) for v in theta)
    return (tx + 1) * W / 2, (ty + 1) * H / 2, s * W


def clamp_roi(roi: tuple[float, float, float], hw: tuple[int, int]) -> tuple[float, float, float]:
    """Keep the side in [56, min(672, 2 max(H, W))] and the centre inside the frame."""
    H, W = hw
    cx, cy, side = roi
    side = float(np.clip(side, MIN_SIDE, min(MAX_SIDE, 2.0 * max(H, W))))
    return float(np.clip(cx, 0, W)), float(np.clip(cy, 0, H)), side


def crop_roi(image: np.ndarray, roi: tuple[float, float, float], out: int) -> np.ndarray:
    """Crop ``roi`` of an (H, W) or (H, W, C) array to (out, out[, C]) float32 with
    :func:`stn_crop`; the image is first area-downscaled when the ROI is much larger than
    ``out`` (anti-aliasing; theta is resolution-independent)."""
    H, W = image.shape[:2]
    img = image.astype(np.float32, copy=False)
    f = roi[2] / out
    if f > 1.5:
        img = cv2.resize(img, (max(2, round(W / f)), max(2, round(H / f))),
                         interpolation=cv2.INTER_AREA)
    t = torch.from_numpy(np.ascontiguousarray(img))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    theta = torch.from_numpy(roi_to_theta(roi, (H, W)))[None]
    y = stn_crop(t, theta, out)[0]
    return (y[0] if image.ndim == 2 else y.permute(1, 2, 0)).numpy()


def paste_roi(prob: np.ndarray, roi: tuple[float, float, float], hw: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`crop_roi`: a (out, out) ROI map back into an (H, W) frame map
    (zero outside the ROI, §2)."""
    H, W = hw
    out = prob.shape[0]
    cx, cy, side = roi
    a = out / side
    b = (0.5 - cx + side / 2.0) * a - 0.5  # frame pixel x -> ROI index a*x + b
    by = (0.5 - cy + side / 2.0) * a - 0.5
    M = np.array([[a, 0, b], [0, a, by]], np.float64)
    return cv2.warpAffine(prob.astype(np.float32), M, (W, H),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def frame_map(mask: np.ndarray, size: int) -> np.ndarray:
    """Full-frame mask/probability -> (size, size) float32 map for the global model (area)."""
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


# ---------------------------------------------------------------------------------------------
# backbone


class FeatureExtractor(nn.Module):
    """Frozen backbone returning stride-16 features; optionally masked after the stem (M-CNN)."""

    def __init__(self, name: str = "efficientnet-lite0", pretrained: bool = True) -> None:
        super().__init__()
        from segtrack.models.backbones import build_backbone

        self.name = name
        self.net = build_backbone(name, pretrained=pretrained, freeze_bn=True,
                                  out_strides=(FEATURE_STRIDE,))
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, 3, r, r) RGB in [0, 1]; ``mask`` (B, 1, r, r) multiplies the stem output."""
        net = self.net
        if mask is None:
            return net(x)[FEATURE_STRIDE]
        y = net._stem(x)
        y = y * F.interpolate(mask.to(y), size=y.shape[-2:], mode="area")
        tap = net._tap[FEATURE_STRIDE]
        for i in range(tap + 1):
            y = net.blocks[i](y)
        return y


def to_tensor_rgb(crops: np.ndarray) -> torch.Tensor:
    """(N, r, r, 3) float 0..255 -> (N, 3, r, r) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)


# ---------------------------------------------------------------------------------------------
# weight files


def default_weights(name: str = "convlstm") -> Path:
    """A committed weight file: ``convlstm`` (with photographs, the default of ``convlstm`` and
    ``convlstm-1stage``) or ``perframe`` (without, the default of ``perframe``)."""
    return Path(__file__).resolve().parents[1] / "weights" / f"{name}.pt"


def save_weights(path: str | Path, cfg: ConvLSTMConfig, local: LocalModel, glob: GlobalModel,
                 perframe: PerFrameModel | None, **meta) -> Path:
    def half(m: nn.Module) -> dict:
        return {k: v.detach().half().clone() for k, v in m.state_dict().items()}

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"config": asdict(cfg), "local": half(local), "global": half(glob), "meta": meta}
    if perframe is not None:
        doc["perframe"] = half(perframe)
    torch.save(doc, p)
    return p


def load_weights(path: str | Path, device: str = "cpu"):
    """-> (cfg, LocalModel, GlobalModel, PerFrameModel | None), in eval mode on ``device``."""
    from segtrack.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"weights '{path}': file not found (train with `segtrack train convlstm`)")
    try:
        doc = torch.load(p, map_location="cpu", weights_only=False)
        c = dict(doc["config"])
        for k in ("decoder", "global_convs"):
            c[k] = tuple(c[k])
        cfg = ConvLSTMConfig(**c)
        local, glob = LocalModel(cfg), GlobalModel(cfg)
        local.load_state_dict({k: v.float() for k, v in doc["local"].items()})
        glob.load_state_dict({k: v.float() for k, v in doc["global"].items()})
        pf = None
        if "perframe" in doc:
            pf = PerFrameModel(cfg)
            pf.load_state_dict({k: v.float() for k, v in doc["perframe"].items()})
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise InputError(f"weights '{path}': not a convlstm weight file ({e})") from None
    mods = [m.to(device).eval() for m in (local, glob)]
    return cfg, mods[0], mods[1], (pf.to(device).eval() if pf is not None else None)


def count_params(m: nn.Module) -> int:
    return int(sum(math.prod(p.shape) for p in m.parameters()))
