"""The automatic clicker of interactive-segmentation evaluation and training.

The standard protocol (Xu et al. 2016, used by RITM and SAM): each click goes at the point of
the current largest error region that is farthest from that region's boundary - positive when
the region is a missed part of the object (false negative), negative when it is a wrongly
included part of the background (false positive).  With an empty prediction the first click is
the object's interior point farthest from its boundary.  Training draws clicks the same way,
optionally a little randomised (:func:`next_click` with ``rng``), as RITM's iterative sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Click", "next_click", "iou"]


@dataclass(frozen=True)
class Click:
    """A click at pixel (x, y) (column, row, pixel centres at integers); ``positive``: on the
    object."""

    x: float
    y: float
    positive: bool


def _inner_distance(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of ``region`` to its boundary; the image border counts as
    boundary too (a region touching the border is not deep there)."""
    padded = np.pad(region, 1).astype(np.uint8)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def next_click(gt: np.ndarray, pred: np.ndarray | None = None,
               rng: np.random.Generator | None = None, spread: float = 0.0) -> Click | None:
    """The next click for ground truth ``gt`` given the current prediction ``pred`` (bool
    arrays of one shape; ``None``: nothing predicted yet), or None when ``pred`` is exact.

    Deterministic without ``rng`` (the first point of maximal distance, in row-major order).
    With ``rng`` and ``spread`` s in (0, 1], the click is drawn uniformly among the points of the
    chosen region whose distance is at least (1 - s) times the maximum (training)."""
    gt = np.asarray(gt, bool)
    pred = np.zeros_like(gt) if pred is None else np.asarray(pred, bool)
    fn_d = _inner_distance(gt & ~pred)
    fp_d = _inner_distance(~gt & pred)
    fn_max, fp_max = float(fn_d.max(initial=0.0)), float(fp_d.max(initial=0.0))
    if fn_max <= 0.0 and fp_max <= 0.0:
        return None
    positive = fn_max >= fp_max
    d, dmax = (fn_d, fn_max) if positive else (fp_d, fp_max)
    if rng is not None and spread > 0.0:
        ys, xs = np.nonzero(d >= (1.0 - spread) * dmax)
        i = int(rng.integers(len(ys)))
        return Click(float(xs[i]), float(ys[i]), positive)
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    return Click(float(x), float(y), positive)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(inter) / float(union)
