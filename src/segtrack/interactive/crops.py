"""Square crops and guidance maps of the click-to-mask network, shared by inference and
training so that both see exactly the same geometry.

A region is a square ``(x0, y0, side)`` of whole frame pixels (it may extend past the frame;
the outside is filled with grey).  Frame pixel centre (x, y) maps to crop coordinates
``((x + .5 - x0) * S / side - .5, ...)`` for a crop of S x S pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Region", "region_around", "whole_image", "crop", "paste", "guide_maps"]

FILL = 114  # grey outside the frame


@dataclass(frozen=True)
class Region:
    x0: int
    y0: int
    side: int

    def to_crop(self, x: float, y: float, S: int) -> tuple[float, float]:
        s = S / self.side
        return (x + 0.5 - self.x0) * s - 0.5, (y + 0.5 - self.y0) * s - 0.5

    def cell_px(self, S: int) -> float:
        """Frame pixels per crop pixel."""
        return self.side / S


def region_around(x0: float, y0: float, x1: float, y1: float, expand: float,
                  min_side: int = 32) -> Region:
    """The square of side ``expand`` x the longer side of the box [x0, x1) x [y0, y1), centred
    on it (at least ``min_side`` pixels)."""
    side = max(int(math.ceil(max(x1 - x0, y1 - y0) * expand)), int(min_side))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return Region(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side)


def whole_image(shape: Sequence[int]) -> Region:
    """The square around the whole frame (its longer side)."""
    H, W = int(shape[0]), int(shape[1])
    side = max(H, W)
    return Region((W - side) // 2, (H - side) // 2, side)


def _window(r: Region, H: int, W: int) -> tuple[int, int, int, int]:
    """The part of the region inside the frame: frame x0, y0, x1, y1."""
    return max(r.x0, 0), max(r.y0, 0), min(r.x0 + r.side, W), min(r.y0 + r.side, H)


def crop(img: np.ndarray, r: Region, S: int, fill: float | None = FILL,
         interp: int | None = None) -> np.ndarray:
    """The region of ``img`` ((H, W) or (H, W, C); a bool mask comes back as float32
    coverage) resized to S x S; area interpolation when shrinking, bilinear when enlarging (or
    ``interp``); outside the frame ``fill``."""
    H, W = img.shape[:2]
    fx0, fy0, fx1, fy1 = _window(r, H, W)
    sq = np.empty((r.side, r.side) + img.shape[2:], img.dtype)
    sq[...] = fill if fill is not None else 0
    if fx1 > fx0 and fy1 > fy0:
        sq[fy0 - r.y0:fy1 - r.y0, fx0 - r.x0:fx1 - r.x0] = img[fy0:fy1, fx0:fx1]
    if interp is None:
        interp = cv2.INTER_AREA if r.side > S else cv2.INTER_LINEAR
    return cv2.resize(sq.astype(np.float32) if sq.dtype == bool else sq, (S, S),
                      interpolation=interp)


def paste(prob: np.ndarray, r: Region, shape: Sequence[int]) -> np.ndarray:
    """Crop probabilities (S, S) float32 back into a frame of ``shape`` (zeros outside the
    region), bilinearly."""
    H, W = int(shape[0]), int(shape[1])
    out = np.zeros((H, W), np.float32)
    fx0, fy0, fx1, fy1 = _window(r, H, W)
    if fx1 <= fx0 or fy1 <= fy0:
        return out
    S = prob.shape[0]
    # map only the inside window: frame pixel centre x -> crop coordinate (x+.5-x0)*S/side-.5
    s = S / r.side
    xs = (np.arange(fx0, fx1, dtype=np.float32) + 0.5 - r.x0) * s - 0.5
    ys = (np.arange(fy0, fy1, dtype=np.float32) + 0.5 - r.y0) * s - 0.5
    mx = np.broadcast_to(xs[None, :], (fy1 - fy0, fx1 - fx0))
    my = np.broadcast_to(ys[:, None], (fy1 - fy0, fx1 - fx0))
    out[fy0:fy1, fx0:fx1] = cv2.remap(prob.astype(np.float32), np.ascontiguousarray(mx),
                                      np.ascontiguousarray(my), cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
    return out


def guide_maps(S: int, clicks: Sequence[tuple[float, float, bool]], radius: float,
               prev: np.ndarray | None = None,
               box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """The four guidance maps (4, S, S) float32 in crop coordinates: positive-click disks,
    negative-click disks, the previous mask (probabilities, zeros without one) and the box
    (x0, y0, x1, y1 in crop pixels, filled; zeros without one)."""
    g = np.zeros((4, S, S), np.float32)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    r2 = float(radius) ** 2
    for x, y, positive in clicks:
        x0, x1 = max(int(x - radius - 1), 0), min(int(x + radius + 2), S)
        y0, y1 = max(int(y - radius - 1), 0), min(int(y + radius + 2), S)
        if x1 <= x0 or y1 <= y0:
            continue
        d = (xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2 <= r2
        g[0 if positive else 1, y0:y1, x0:x1][d] = 1.0
    if prev is not None:
        g[2] = prev
    if box is not None:
        bx0, by0, bx1, by1 = box
        c0, c1 = int(np.clip(math.ceil(bx0 - 0.5), 0, S)), int(np.clip(math.ceil(bx1 - 0.5), 0, S))
        r0, r1 = int(np.clip(math.ceil(by0 - 0.5), 0, S)), int(np.clip(math.ceil(by1 - 0.5), 0, S))
        g[3, r0:r1, c0:c1] = 1.0
    return g
