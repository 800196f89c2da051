"""Whose pixels are whose, for methods that segment every frame afresh.

``semseg``, ``lmanet``, ``perframe`` and ``convlstm`` segment "the object" of a frame without
knowing which instance it is: next to a look-alike they mark both, and with several objects
every object's map holds all of them. Tracked beside other objects, each of these trackers
weights its probabilities by a prior on the distance to its own previous mask, moved on by the
mask's last displacement (constant velocity), ``exp(-d / (scale * sqrt(area)))``, so that a
pixel shared by several maps goes to the object expected nearest there when the overlaps are
resolved (the objects' probabilities are compared normalised together,
:func:`segtrack.trackers.multi.soft_aggregate`). Alone, a tracker's probabilities are left as
they are.
"""

from __future__ import annotations

import cv2
import numpy as np


def near_prior(prob: np.ndarray, prev: np.ndarray | None, scale: float,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """``prob`` (H, W) times ``exp(-d / (scale * sqrt(area)))``, ``d`` the distance in pixels to
    the previous mask ``prev`` (H, W bool) moved by ``shift`` (dx, dy) and ``area`` its pixel
    count; ``prob`` itself where ``prev`` is empty or ``scale`` is 0."""
    if scale <= 0 or prev is None or not prev.any():
        return prob
    d = cv2.distanceTransform((~prev).astype(np.uint8), cv2.DIST_L2, 5)
    dx, dy = shift
    if dx or dy:
        big = float(np.hypot(*d.shape))
        d = cv2.warpAffine(d, np.float32([[1, 0, dx], [0, 1, dy]]), d.shape[::-1],
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=big)
    s = scale * float(np.sqrt(prev.sum()))
    return (prob * np.exp(-d / max(s, 1.0))).astype(np.float32)


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

    def __call__(self, prob: np.ndarray, scale: float) -> np.ndarray:
        return near_prior(prob, self.prev, scale, self.velocity)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())
