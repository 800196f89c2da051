"""Whose pixels are whose when several look-alike objects are tracked at once.

``semseg``, ``lmanet``, ``perframe`` and ``convlstm`` segment "the object" of a frame without
knowing which instance it is: next to a look-alike they mark both, and with several objects
every object's map holds all of them; RTS, LWL and SiamMask, which do learn their object, still
spill onto touching look-alikes. Tracked beside other objects, each of these trackers weights
its probabilities by a prior on the distance to its own previous mask, moved on by the mask's
last displacement (constant velocity), ``exp(-d / (scale * sqrt(area)))``, so that a
pixel shared by several maps goes to the object expected nearest there when the overlaps are
resolved (the objects' probabilities are compared normalised together,
:func:`segtrack.trackers.multi.soft_aggregate`). Alone, a tracker's probabilities are left as
they are.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass
class NearParams:
    """The distance prior's scale (:func:`near_prior`), used only beside other objects."""

    # 0 = off; each method's default was chosen on multi-object validation clips cut from the
    # training photographs (BENCHMARKS.md, "Several objects: whose pixels are whose")
    near_scale: float = 1.0


def near_prior(prob: np.ndarray, prev: np.ndarray | None, scale: float,
               shift: tuple[float, float] = (0.0, 0.0), floor: float = 1e-4) -> np.ndarray:
    """``prob`` (H, W) times ``exp(-d / (scale * sqrt(area)))``, ``d`` the distance in pixels to
    the previous mask ``prev`` (H, W bool) moved by ``shift`` (dx, dy) and ``area`` its pixel
    count; ``prob`` itself where ``prev`` is empty or ``scale`` is 0.

    Only the box where ``prob`` exceeds ``floor`` is weighted (a crop-based tracker's map is
    zero outside its search region): the distances are computed in that box, its copy moved
    back by ``shift`` and the previous mask's box together, where they are exact. A tracker
    that uses the weighted map only through its threshold can pass that threshold as ``floor``
    (the prior never raises a value)."""
    if scale <= 0 or prev is None or not prev.any():
        return prob
    prev = np.ascontiguousarray(prev, dtype=bool)
    h, w = prob.shape
    sx, sy, sw, sh = cv2.boundingRect((prob > floor).view(np.uint8))
    if sw == 0:
        return prob
    dx, dy = shift
    px, py, pw, ph = cv2.boundingRect(prev.view(np.uint8))
    out = (sy, sy + sh, sx, sx + sw)  # y0, y1, x0, x1
    y0 = max(min(out[0], out[0] - int(np.ceil(dy)), py) - 2, 0)
    y1 = min(max(out[1], out[1] - int(np.floor(dy)), py + ph) + 2, h)
    x0 = max(min(out[2], out[2] - int(np.ceil(dx)), px) - 2, 0)
    x1 = min(max(out[3], out[3] - int(np.floor(dx)), px + pw) + 2, w)
    d = cv2.distanceTransform((~prev[y0:y1, x0:x1]).astype(np.uint8), cv2.DIST_L2, 5)
    if dx or dy:
        big = float(np.hypot(h, w))
        d = cv2.warpAffine(d, np.float32([[1, 0, dx], [0, 1, dy]]), d.shape[::-1],
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=big)
    s = max(scale * float(np.sqrt(cv2.countNonZero(prev.view(np.uint8)))), 1.0)
    res = prob.astype(np.float32, copy=True)
    oy0, oy1, ox0, ox1 = out
    win = d[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0]
    res[oy0:oy1, ox0:ox1] *= np.exp(-win / s)
    return res


class NearPrior:
    """The object's last two non-empty masks, for :func:`near_prior` (their centroids, and so
    the displacement, are only computed when the prior is asked for)."""

    def __init__(self, mask: np.ndarray) -> None:
        self.masks: list[np.ndarray] = [mask.astype(bool)]
        self._before = list(self.masks)

    @property
    def prev(self) -> np.ndarray:
        return self.masks[-1]

    def update(self, mask: np.ndarray) -> None:
        """The frame's mask (nothing changes where it is empty: the object is hidden)."""
        self._before = list(self.masks)
        if mask.any():
            self.masks = [self.masks[-1], mask]

    def revise(self, mask: np.ndarray) -> None:
        """The same frame's mask after the overlaps were resolved, in place of :meth:`update`'s."""
        self.masks = self._before
        self.update(mask)

    @property
    def velocity(self) -> tuple[float, float]:
        """The last displacement of the mask's centroid, at most half its side (a mask that
        jumped is not a velocity)."""
        if len(self.masks) < 2:
            return (0.0, 0.0)
        (x0, y0), (x1, y1) = _centroid(self.masks[0]), _centroid(self.masks[1])
        v, n = (x1 - x0, y1 - y0), float(np.hypot(x1 - x0, y1 - y0))
        limit = 0.5 * float(np.sqrt(self.masks[1].sum()))
        return v if n <= limit else (v[0] * limit / n, v[1] * limit / n)

    def __call__(self, prob: np.ndarray, scale: float, floor: float = 1e-4) -> np.ndarray:
        return near_prior(prob, self.prev, scale, self.velocity, floor)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())
