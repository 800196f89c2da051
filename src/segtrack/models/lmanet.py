"""LMANet: Local Memory Attention around an encoder-decoder segmenter (seed 001, ch. 4).

* Keys and values (§4.3.1): 1x1 convolutions of the encoder output (stride 8) give a (key, value)
  pair for the Memory and another for the Query; the Memory holds the pairs of the previous
  L-1 frames (``memory`` = L-1).
* Local key matching (Eq. 4.2-4.3, :func:`local_correlation`): a correlation layer of radius R:
  every query location (i, j) is compared with the memory keys at (i+k, j+l), |k|, |l| <= R.
  We write it from the query's side, C^t_kl(i, j) = K_Q(i, j)^T K_M^t(i+k, j+l) / sqrt(d_k), the
  form in which Eq. 4.5 reads the values (the thesis' Eq. 4.2 indexes the other map; the sets of
  compared pairs are the same).  Locations outside the map are excluded from the softmax.
* Softmax over space and time (Eq. 4.4) and the read (Eq. 4.5, :func:`local_read`):
  Ṽ_M(i, j) = sum_t sum_kl P^t_kl(i, j) V_M^t(i+k, j+l).
* Fusion (Eq. 4.6, :class:`Fusion`): F = σ(A_Q([V_Q, Ṽ_M])) · E_Q(V_Q) + σ(A_M([V_Q, Ṽ_M])) ·
  E_M(Ṽ_M), same size as the encoder output, fed to the (unchanged) decoder.
* Training in two steps (§4.3.5, :mod:`segtrack.training.lmanet`).

With an empty memory (first frame) the decoder sees the plain encoder output, i.e. the
single-frame baseline.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segtrack.errors import InputError
from segtrack.models.semseg import SemSeg, SemSegConfig, network_size, to_tensor


def local_correlation(q_key: torch.Tensor, m_key: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, C, H, W) query and memory keys -> (B, (2R+1)^2, H, W) scaled dot products.

    Displacement index n = (k + R) * (2R+1) + (l + R) for row offset k and column offset l;
    positions outside the map get -inf.
    """
    B, C, H, W = q_key.shape
    K = 2 * radius + 1
    cols = F.unfold(m_key, K, padding=radius).view(B, C, K * K, H, W)
    corr = (cols * q_key[:, :, None]).sum(1) / float(C) ** 0.5
    ones = torch.ones(1, 1, H, W, dtype=q_key.dtype, device=q_key.device)
    valid = F.unfold(ones, K, padding=radius).view(1, K * K, H, W) > 0
    return corr.masked_fill(~valid, float("-inf"))


def local_read(attn: torch.Tensor, m_val: torch.Tensor, radius: int) -> torch.Tensor:
    """Eq. 4.5: ``attn`` (B, T, (2R+1)^2, H, W), memory values (B, T, Cv, H, W) -> (B, Cv, H, W)."""
    B, T, Cv, H, W = m_val.shape
    K = 2 * radius + 1
    cols = F.unfold(m_val.reshape(B * T, Cv, H, W), K, padding=radius)
    cols = cols.view(B, T, Cv, K * K, H, W)
    return (cols * attn[:, :, None]).sum((1, 3))


def memory_attention(q_key: torch.Tensor, m_keys: torch.Tensor, radius: int) -> torch.Tensor:
    """Eq. 4.3-4.4: (B, Ck, H, W) and (B, T, Ck, H, W) -> P (B, T, (2R+1)^2, H, W), softmax over
    the T memory frames and the (2R+1)^2 displacements together."""
    B, T = m_keys.shape[:2]
    corr = torch.stack([local_correlation(q_key, m_keys[:, t], radius) for t in range(T)], 1)
    n = corr.shape[2]
    return torch.softmax(corr.flatten(1, 2), 1).view(B, T, n, *corr.shape[-2:])


class Fusion(nn.Module):
    """Eq. 4.6, the sigmoid-gated fusion of the query value and the memory read."""

    def __init__(self, cv: int, out: int) -> None:
        super().__init__()
        self.A_Q = nn.Conv2d(2 * cv, out, 3, padding=1)
        self.A_M = nn.Conv2d(2 * cv, out, 3, padding=1)
        self.E_Q = nn.Conv2d(cv, out, 3, padding=1)
        self.E_M = nn.Conv2d(cv, out, 3, padding=1)

    def gates(self, v_q: torch.Tensor, v_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cat = torch.cat([v_q, v_m], 1)
        return torch.sigmoid(self.A_Q(cat)), torch.sigmoid(self.A_M(cat))

    def forward(self, v_q: torch.Tensor, v_m: torch.Tensor) -> torch.Tensor:
        g_q, g_m = self.gates(v_q, v_m)
        return g_q * self.E_Q(v_q) + g_m * self.E_M(v_m)


@dataclass
class LMAConfig:
    memory: int = 3  # L-1 past frames
    radius: int = 3  # R, in stride-8 feature cells
    key_dim: int = 32
    value_dim: int = 64


class LMAModule(nn.Module):
    """Keys/values for memory and query, local memory read and fusion."""

    def __init__(self, enc_ch: int, cfg: LMAConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mem_key = nn.Conv2d(enc_ch, cfg.key_dim, 1)
        self.mem_val = nn.Conv2d(enc_ch, cfg.value_dim, 1)
        self.q_key = nn.Conv2d(enc_ch, cfg.key_dim, 1)
        self.q_val = nn.Conv2d(enc_ch, cfg.value_dim, 1)
        self.fusion = Fusion(cfg.value_dim, enc_ch)

    def memorize(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mem_key(enc), self.mem_val(enc)

    def forward(self, enc: torch.Tensor, m_keys: torch.Tensor, m_vals: torch.Tensor
                ) -> torch.Tensor:
        """enc (B, C, H, W); memory (B, T, ., H, W) -> fused (B, C, H, W)."""
        attn = memory_attention(self.q_key(enc), m_keys, self.cfg.radius)
        v_m = local_read(attn, m_vals, self.cfg.radius)
        return self.fusion(self.q_val(enc), v_m)


class LMANet(nn.Module):
    """A :class:`SemSeg` (frozen backbone, neck = encoder part, decoder) + :class:`LMAModule`."""

    def __init__(self, seg: SemSeg, cfg: LMAConfig) -> None:
        super().__init__()
        self.seg = seg
        self.cfg = cfg
        self.lma = LMAModule(seg.cfg.width, cfg)

    def decode_clip(self, encs: torch.Tensor, skips: torch.Tensor) -> torch.Tensor:
        """Training: encs (B, L, C, H, W), skips (B, L, Cs, 2H, 2W) -> logits of the last frame
        with the previous min(L-1, memory) frames in memory."""
        L = encs.shape[1]
        mem = encs[:, max(0, L - 1 - self.cfg.memory): L - 1]
        B, T = mem.shape[:2]
        q = encs[:, -1]
        if T == 0:
            return self.seg.head.decode(q, skips[:, -1])
        k, v = self.lma.memorize(mem.flatten(0, 1))
        fused = self.lma(q, k.view(B, T, *k.shape[1:]), v.view(B, T, *v.shape[1:]))
        return self.seg.head.decode(fused, skips[:, -1])


class LMAState:
    """Online inference: ``step(frame) -> (C, H, W)`` probabilities, memory of L-1 frames."""

    def __init__(self, model: LMANet, device: str = "cpu", memory: int | None = None) -> None:
        self.model = model
        self.device = device
        self.size = memory if memory is not None else model.cfg.memory
        self.mem: deque = deque(maxlen=max(1, self.size))

    @torch.no_grad()
    def step(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        seg = self.model.seg
        x = to_tensor(image, network_size(h, w, seg.cfg.input_multiple)).to(self.device)
        enc, skip = seg.head.encode(seg.features(x))
        if self.mem and self.size > 0:
            keys = torch.stack([k for k, _ in self.mem], 1)
            vals = torch.stack([v for _, v in self.mem], 1)
            dec_in = self.model.lma(enc, keys, vals)
        else:
            dec_in = enc
        logits = seg.head.decode(dec_in, skip)
        if self.size > 0:
            self.mem.append(self.model.lma.memorize(enc))
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return torch.softmax(logits, 1)[0].cpu().numpy()


def save_lmanet(path: str | os.PathLike, model: LMANet, **extra) -> None:
    torch.save({"config": asdict(model.seg.cfg), "lma_config": asdict(model.cfg),
                "head": {k: v.detach().cpu() for k, v in model.seg.head.state_dict().items()},
                "lma": {k: v.detach().cpu() for k, v in model.lma.state_dict().items()},
                **extra}, path)


_CACHE: dict[tuple[str, str], LMANet] = {}


def load_lmanet(path: str | os.PathLike, device: str = "cpu") -> LMANet:
    key = (str(Path(path).resolve()), device)
    if key in _CACHE:
        return _CACHE[key]
    try:
        doc = torch.load(path, map_location="cpu", weights_only=False)
        seg = SemSeg(SemSegConfig(**doc["config"]))
        seg.head.load_state_dict(doc["head"])
        model = LMANet(seg, LMAConfig(**doc["lma_config"]))
        model.lma.load_state_dict(doc["lma"])
    except (OSError, KeyError, RuntimeError, TypeError) as e:
        raise InputError(f"weights '{path}': not an lmanet weight file ({e})") from None
    model = model.to(device).eval()
    _CACHE[key] = model
    return model
