"""Search region of RTS (seed 001, appendix 5.B "Search region selection").

The backbone never sees the full frame: a square patch centred on the current target estimate is
resampled to ``out_size`` x ``out_size`` pixels (default 288, i.e. 18x18 features at stride 16).
The thesis uses a patch 6x the target size; here the side is
``max(factor * sqrt(w * h), 1.25 * max(w, h))`` with ``factor = 4`` (DAVIS targets are large),
clamped to ``[min_side, max_side_frac * max(H, W)]``.  Pixels outside the frame replicate the
border.  :func:`paste_scores` maps crop-resolution scores back into the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Crop:
    """A square search region: centre ``(cx, cy)`` and side ``side`` in frame pixels, resampled
    to ``size`` x ``size``."""

    cx: float
    cy: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel."""
        return self.size / self.side

    def matrix(self) -> np.ndarray:
        """2x3 affine frame -> crop (pixel-centre convention of cv2)."""
        s = self.scale
        x0 = self.cx - self.side / 2.0
        y0 = self.cy - self.side / 2.0
        # continuous coords: u = (x - x0) * s; cv2 pixel centres at integer + 0.5 offsets
        tx = -x0 * s + 0.5 * s - 0.5
        ty = -y0 * s + 0.5 * s - 0.5
        return np.array([[s, 0.0, tx], [0.0, s, ty]], np.float64)

    def box_to_crop(self, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        """Map an ``(x, y, w, h)`` frame box to crop pixel coordinates."""
        s = self.scale
        x0 = self.cx - self.side / 2.0
        y0 = self.cy - self.side / 2.0
        x, y, w, h = box
        return ((x - x0) * s, (y - y0) * s, w * s, h * s)

    def point_to_frame(self, u: float, v: float) -> tuple[float, float]:
        """Continuous crop coordinates -> frame coordinates."""
        x0 = self.cx - self.side / 2.0
        y0 = self.cy - self.side / 2.0
        return x0 + u / self.scale, y0 + v / self.scale


def search_side(
    w: float,
    h: float,
    frame_hw: tuple[int, int],
    factor: float = 4.0,
    min_side: float = 64.0,
    max_side_frac: float = 1.0,
) -> float:
    """Side of the square search region for a ``w`` x ``h`` target in a frame of ``frame_hw``."""
    side = max(factor * math.sqrt(max(w, 1.0) * max(h, 1.0)), 1.25 * max(w, h))
    hi = max(max_side_frac * max(frame_hw), min_side)
    return float(min(max(side, min_side), hi))


def crop_image(image: np.ndarray, crop: Crop, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resample ``image`` (H, W[, C]) into the crop (``size`` x ``size``), border replicated."""
    if crop.scale < 0.5 and interp == cv2.INTER_LINEAR:  # strong downscale: pre-blur by area
        f = crop.scale * 1.5
        # only the part of the frame the crop samples (plus a margin for the filters) is
        # resized: the same pixels at a third of the cost for a region smaller than the frame
        H, W = image.shape[:2]
        margin = 2.0 / f + 2.0
        half = crop.side / 2.0
        ix0 = max(int(math.floor(crop.cx - half - margin)), 0)
        iy0 = max(int(math.floor(crop.cy - half - margin)), 0)
        ix1 = min(int(math.ceil(crop.cx + half + margin)), W)
        iy1 = min(int(math.ceil(crop.cy + half + margin)), H)
        if ix1 - ix0 < 2 or iy1 - iy0 < 2:  # the region lies outside the frame
            ix0, iy0, ix1, iy1 = 0, 0, W, H
        small = cv2.resize(image[iy0:iy1, ix0:ix1], None, fx=f, fy=f,
                           interpolation=cv2.INTER_AREA)
        sub = Crop((crop.cx - ix0) * f, (crop.cy - iy0) * f, crop.side * f, crop.size)
        return cv2.warpAffine(
            small, sub.matrix(), (crop.size, crop.size), flags=interp,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return cv2.warpAffine(
        image, crop.matrix(), (crop.size, crop.size), flags=interp,
        borderMode=cv2.BORDER_REPLICATE,
    )


def crop_mask(mask: np.ndarray, crop: Crop, size: int | None = None) -> np.ndarray:
    """Fraction of object in each crop pixel (float32), at ``size`` (default ``crop.size``)."""
    n = crop.size if size is None else int(size)
    c = Crop(crop.cx, crop.cy, crop.side, n)
    m = mask.astype(np.float32)
    if c.scale < 0.5:
        f = c.scale * 1.5
        m = cv2.resize(m, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        c = Crop(c.cx * f, c.cy * f, c.side * f, n)
    return cv2.warpAffine(
        m, c.matrix(), (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )


def paste_scores(
    scores: np.ndarray, crop: Crop, frame_hw: tuple[int, int], outside: float = 0.0
) -> np.ndarray:
    """Map crop-resolution scores (any square size) back to a frame-size float32 map."""
    n = scores.shape[0]
    c = Crop(crop.cx, crop.cy, crop.side, n)
    H, W = frame_hw
    return cv2.warpAffine(
        scores.astype(np.float32), c.matrix(), (W, H),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(outside),
    )


def box_map(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Soft (size, size) float32 map of an ``(x, y, w, h)`` box in crop pixels (area coverage)."""
    x, y, w, h = box
    xs = np.arange(size, dtype=np.float32)
    cov_x = np.clip(np.minimum(xs + 1, x + w) - np.maximum(xs, x), 0, 1)
    cov_y = np.clip(np.minimum(xs + 1, y + h) - np.maximum(xs, y), 0, 1)
    return (cov_y[:, None] * cov_x[None, :]).astype(np.float32)
