"""Image pairs with exact optical flow, FlyingChairs-style (seed 002, "FlowNet: training data").

FlowNet was trained on *Flying Chairs*: photographs as backgrounds, chairs pasted on them, and
both moved by random affine transforms, so that the flow of every pixel is known exactly.  Here
the backgrounds are DAVIS-2016-train frames and the flying objects are the photographs of
``static-masks`` cut out along their masks; every layer (the background and 1-4 objects) has
its own affine motion between the two frames (translation, rotation, scale), objects occlude
the background and each other, and the second frame gets a small change of illumination and
sensor noise.

The flow is the one segtrack's trackers use: *backward*, from the current frame to the previous
one.  For a pixel x of ``cur``, ``flow(x)`` is the displacement such that ``cur(x)`` shows the
point that ``prev`` shows at ``x + flow(x)`` (exact for the top layer at x in ``cur``; where
that point is hidden in ``prev``, the flow still says where it went, as in Flying Chairs).

Departures: no chair renderings (photograph cut-outs instead), smaller images (192x256 for
training), and smaller motions than Flying Chairs, matched to DAVIS at half resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from segtrack.data.static import StaticSample, cut_object, read_static

__all__ = ["FlowPair", "FlowPairMaker", "PairParams", "affine", "layer_flow"]


@dataclass
class PairParams:
    size: tuple[int, int] = (192, 256)  # (H, W) of the pair
    objects: tuple[int, int] = (1, 4)  # objects per pair (min, max)
    object_size: tuple[float, float] = (0.15, 0.6)  # object size / min(H, W)
    bg_shift: float = 5.0  # std of the background translation (pixels)
    bg_rotate: float = 2.0  # max background rotation (degrees)
    bg_zoom: float = 0.04  # max log scale change of the background
    obj_shift: float = 9.0  # std of an object's translation (pixels)
    obj_fast: float = 0.15  # share of objects with a fast motion (3x the shift)
    obj_rotate: float = 8.0  # max object rotation (degrees)
    obj_zoom: float = 0.1  # max log scale change of an object
    gain: float = 0.1  # max illumination gain change of the second frame
    noise: float = 4.0  # max std of the second frame's noise (grey levels)


@dataclass
class FlowPair:
    prev: np.ndarray  # (H, W, 3) uint8, the earlier frame
    cur: np.ndarray  # (H, W, 3) uint8, the later frame
    flow: np.ndarray  # (H, W, 2) float32, cur -> prev (x, y)


def affine(tx: float = 0.0, ty: float = 0.0, angle: float = 0.0, scale: float = 1.0,
           centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 matrix: scale and rotate (degrees, counter-clockwise on screen) about ``centre``,
    then translate by (tx, ty)."""
    a = np.deg2rad(angle)
    c, s = np.cos(a) * scale, np.sin(a) * scale
    cx, cy = centre
    return np.array([[c, s, tx + cx - c * cx - s * cy],
                     [-s, c, ty + cy + s * cx - c * cy],
                     [0.0, 0.0, 1.0]])


def layer_flow(a_prev: np.ndarray, a_cur: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) backward flow of a layer drawn with source->canvas matrices ``a_prev`` in the
    earlier frame and ``a_cur`` in the later one: ``a_prev @ inv(a_cur) @ x - x``."""
    H, W = size
    m = a_prev @ np.linalg.inv(a_cur)
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    fx = m[0, 0] * gx + m[0, 1] * gy + m[0, 2] - gx
    fy = m[1, 0] * gx + m[1, 1] * gy + m[1, 2] - gy
    return np.stack([fx, fy], axis=2).astype(np.float32)


def _warp(img: np.ndarray, a: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    H, W = size
    return cv2.warpAffine(img, a[:2], (W, H), flags=interp, borderMode=cv2.BORDER_REFLECT)


class FlowPairMaker:
    """Pair ``i`` of seed ``seed`` is a pure function of (backgrounds, objects, params, seed, i).

    Args:
        backgrounds: image files (DAVIS frames) the backgrounds are taken from.
        objects: photographs with masks (:func:`segtrack.data.static.load_static_sets`).
    """

    def __init__(self, backgrounds: Sequence[str | Path], objects: Sequence[StaticSample],
                 params: PairParams | None = None) -> None:
        if not backgrounds:
            raise ValueError("no background images")
        if not objects:
            raise ValueError("no object photographs")
        self.backgrounds = [str(b) for b in backgrounds]
        self.objects = list(objects)
        self.p = params or PairParams()
        self._cut = lru_cache(maxsize=4096)(self._cut_uncached)

    def _cut_uncached(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cut-out of object ``k`` (RGB, float mask), its longest side at most 256 pixels."""
        rgb, m = read_static(self.objects[k])
        if not m.any():
            return np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32)
        crop, cm = cut_object(rgb, m, margin=0.02)
        s = min(1.0, 256.0 / max(cm.shape))
        if s < 1.0:
            wh = (max(2, round(cm.shape[1] * s)), max(2, round(cm.shape[0] * s)))
            crop = cv2.resize(crop, wh, interpolation=cv2.INTER_AREA)
            cm = cv2.resize(cm.astype(np.float32), wh, interpolation=cv2.INTER_AREA)
        return crop, cm.astype(np.float32)

    def pair(self, i: int, seed: int) -> FlowPair:
        p = self.p
        rng = np.random.default_rng([int(seed), int(i)])
        H, W = p.size
        bgr = cv2.imread(self.backgrounds[int(rng.integers(len(self.backgrounds)))],
                         cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("unreadable background image")
        bg = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if rng.random() < 0.5:
            bg = bg[:, ::-1].copy()
        # background: covers the canvas with a margin in both frames
        s0 = 1.25 * max(H / bg.shape[0], W / bg.shape[1]) * float(np.exp(rng.uniform(0, 0.3)))
        tx = -rng.uniform(0.1, 0.9) * (bg.shape[1] * s0 - W)
        ty = -rng.uniform(0.1, 0.9) * (bg.shape[0] * s0 - H)
        a_prev = affine(tx, ty, scale=s0)
        move = affine(*np.clip(rng.normal(0, p.bg_shift, 2), -3 * p.bg_shift, 3 * p.bg_shift),
                      angle=rng.uniform(-p.bg_rotate, p.bg_rotate),
                      scale=float(np.exp(rng.uniform(-p.bg_zoom, p.bg_zoom))),
                      centre=(W / 2, H / 2))
        a_cur = move @ a_prev
        prev = _warp(bg, a_prev, (H, W), cv2.INTER_LINEAR).astype(np.float32)
        cur = _warp(bg, a_cur, (H, W), cv2.INTER_LINEAR).astype(np.float32)
        flow = layer_flow(a_prev, a_cur, (H, W))
        for _ in range(int(rng.integers(p.objects[0], p.objects[1] + 1))):
            crop, cm = self._cut(int(rng.integers(len(self.objects))))
            if cm.max() <= 0:
                continue
            h, w = cm.shape
            size = rng.uniform(*p.object_size) * min(H, W)
            sc = size / max(h, w)
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            a1 = affine(cx - w / 2, cy - h / 2, angle=rng.uniform(-20, 20), scale=sc,
                        centre=(w / 2, h / 2))
            shift = p.obj_shift * (3.0 if rng.random() < p.obj_fast else 1.0)
            m = affine(*rng.normal(0, shift, 2), angle=rng.uniform(-p.obj_rotate, p.obj_rotate),
                       scale=float(np.exp(rng.uniform(-p.obj_zoom, p.obj_zoom))),
                       centre=(cx, cy))
            a2 = m @ a1
            for a, img in ((a1, prev), (a2, cur)):
                rgb = cv2.warpAffine(crop, a[:2], (W, H), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT).astype(np.float32)
                al = cv2.warpAffine(cm, a[:2], (W, H), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT)[..., None]
                img *= 1.0 - al
                img += al * rgb
                if img is cur:
                    top = al[..., 0] > 0.5
                    flow[top] = layer_flow(a1, a2, (H, W))[top]
        gain = float(np.exp(rng.uniform(-p.gain, p.gain)))
        cur = cur * gain + rng.normal(0, rng.uniform(0, p.noise), cur.shape)
        return FlowPair(np.clip(prev, 0, 255).astype(np.uint8),
                        np.clip(cur, 0, 255).astype(np.uint8), flow)

    def batch(self, indices: Sequence[int], seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
        """(prev (B, H, W, 3) uint8, cur (B, H, W, 3) uint8, flow (B, H, W, 2) float32)."""
        pairs = [self.pair(i, seed) for i in indices]
        return (np.stack([q.prev for q in pairs]), np.stack([q.cur for q in pairs]),
                np.stack([q.flow for q in pairs]))
