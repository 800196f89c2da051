"""The "Opt" rotated box of a mask: the rectangle that best agrees with the mask.

Seed document 004 (SiamMask), section 3 "Box generation", strategy (3) and Table 1: "the
optimisation strategy used for the automatic bounding box generation proposed in VOT-2016"
(Opt). The VOT-2016 ground-truth boxes were fitted to segmentation masks by optimising a
rectangle so that it covers as many object pixels and as few background pixels as possible; here
that criterion is the IoU between the rectangle and the mask.

What is optimised, exactly:

* parameters ``(cx, cy, w, h, angle)`` of a rotated rectangle ``R`` (see
  :func:`segtrack.geometry.rotated_box_from_params`), internally as
  ``(cx, cy, log w, log h, angle)``;
* objective: ``IoU(R, M) = |R n M| / (|M| + w h - |R n M|)`` where ``M`` is the union of the
  mask's pixel squares. ``|R n M|`` is computed area-correctly on a grid of ``s x s``-pixel cells
  over the mask's bounding box: each cell carries its exact mask occupancy ``f`` (block mean), and
  the rectangle's coverage of a cell is approximated by the product of its two "slab" coverages
  (the overlap of the cell's projection on each rectangle axis with the rectangle's extent,
  exact for cells crossed by a single edge), so the objective is continuous in the parameters;
* search: Nelder-Mead (``scipy.optimize.minimize``) run from each of three seeds - the MBR,
  the Min-max box and the moment box (the rectangle with the mask's area centroid and second
  moments) - on a coarse grid (object bounding box at most ``coarse_cells`` cells on its longer
  side); the best result is refined by Nelder-Mead on a finer grid (at most ``fine_cells`` cells,
  full resolution for small objects) and finally polished by a compass search directly on the
  pixel-centre IoU below (sub-pixel steps);
* final choice: among the optimised rectangle, the MBR and the Min-max box, the one with the
  highest :func:`mask_polygon_iou` (IoU of the mask with the pixels whose centres lie inside the
  polygon, on the unbounded pixel grid: polygon pixels outside the image count as background) is
  returned, so the Opt box is never worse than the MBR and the Min-max box under that measure.
  When the returned rectangle's pixels stay inside the image this equals
  ``mask_iou(mask, polygon_to_mask(box, mask.shape))``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.optimize import minimize

from segtrack.errors import InputError
from segtrack.geometry.boxes import (
    as_mask,
    box_to_polygon,
    mask_to_box,
    mask_to_rotated_box,
    rotated_box_from_params,
    rotated_box_params,
)
from segtrack.geometry.polygons import _spans, as_polygon

__all__ = ["mask_polygon_iou", "mask_to_opt_box"]


def mask_polygon_iou(mask: np.ndarray, polygon: np.ndarray, clip_to_image: bool = False) -> float:
    """IoU of a mask with a polygon / ``(x, y, w, h)`` box rasterised at pixel centres.

    The polygon covers the pixels whose centres lie inside it (:func:`polygon_to_mask`
    convention) on the unbounded pixel grid: pixels of the polygon outside the image count as
    background, so a box cannot gain by leaving the image. With ``clip_to_image=True`` the
    polygon is restricted to the image first, which equals
    ``mask_iou(mask, polygon_to_mask(polygon, mask.shape))``; both agree when the polygon's
    pixels are inside the image. 1.0 when mask and polygon are both empty.
    """
    p = as_polygon(polygon, "polygon")
    return _MaskCounter(as_mask(mask)).iou(p, clip_to_image=clip_to_image)


class _MaskCounter:
    """Fast pixel-centre IoU of polygons against one mask, from per-row prefix sums."""

    def __init__(self, m: np.ndarray) -> None:
        self.shape = m.shape
        self.area = int(np.count_nonzero(m))
        bx, by, bw, bh = (int(v) for v in mask_to_box(m))
        self.bx, self.by, self.bw, self.bh = bx, by, bw, bh
        self.prefix = np.zeros((bh, bw + 1), dtype=np.int64)
        if bw:
            np.cumsum(m[by : by + bh, bx : bx + bw], axis=1, out=self.prefix[:, 1:])

    def iou(self, p: np.ndarray, convex: bool = False, clip_to_image: bool = False) -> float:
        if clip_to_image:
            ox, oy = 0, 0
            shape = self.shape
        elif len(p) >= 3:
            lo = np.floor(p.min(axis=0))
            hi = np.ceil(p.max(axis=0))
            ox, oy = int(lo[0]), int(lo[1])
            shape = (int(hi[1]) - oy + 1, int(hi[0]) - ox + 1)
        else:
            ox, oy, shape = 0, 0, (0, 0)
        rows, c0, c1 = _spans(p, shape, (ox, oy), convex=convex)
        raster = int((c1 - c0).sum())
        inter = 0
        if self.bw and len(rows):
            rows = rows + (oy - self.by)
            sel = (rows >= 0) & (rows < self.bh)
            shift = ox - self.bx
            a = np.minimum(np.maximum(c0[sel] + shift, 0), self.bw)
            b = np.minimum(np.maximum(c1[sel] + shift, 0), self.bw)
            inter = int((self.prefix[rows[sel], b] - self.prefix[rows[sel], a]).sum())
        union = self.area + raster - inter
        if union == 0:
            return 1.0
        return inter / union


class _Grid:
    """Mask occupancy on ``s x s`` cells over the mask bounding box (non-empty cells only)."""

    def __init__(self, crop: np.ndarray, x0: int, y0: int, s: int) -> None:
        h, w = crop.shape
        gh, gw = -(-h // s), -(-w // s)
        if s == 1:
            f = crop.astype(np.float64)
        else:
            pad = np.zeros((gh * s, gw * s), dtype=np.float64)
            pad[:h, :w] = crop
            f = pad.reshape(gh, s, gw, s).mean(axis=(1, 3))
        iy, ix = np.nonzero(f)
        self.f = f[iy, ix]
        self.px = x0 + s * (ix + 0.5)
        self.py = y0 + s * (iy + 0.5)
        self.s = float(s)
        self.cell_area = float(s * s)


def _soft_iou(z: np.ndarray, g: _Grid, area_m: float) -> float:
    cx, cy, lw, lh, a = z
    w = math.exp(min(lw, 30.0))
    h = math.exp(min(lh, 30.0))
    ca, sa = math.cos(a), math.sin(a)
    dx = g.px - cx
    dy = g.py - cy
    u = dx * ca + dy * sa
    v = dy * ca - dx * sa
    k = 0.5 * g.s * (abs(ca) + abs(sa))
    hw, hh = 0.5 * w, 0.5 * h
    cu = np.minimum(u + k, hw) - np.maximum(u - k, -hw)
    cv = np.minimum(v + k, hh) - np.maximum(v - k, -hh)
    np.maximum(cu, 0.0, out=cu)
    np.maximum(cv, 0.0, out=cv)
    inter = float(np.dot(g.f, cu * cv)) * g.cell_area / (4.0 * k * k)
    union = area_m + w * h - inter
    return inter / union if union > 0 else 0.0


def _to_z(params: tuple[float, float, float, float, float]) -> np.ndarray:
    cx, cy, w, h, ang = params
    return np.array([cx, cy, math.log(max(w, 1e-3)), math.log(max(h, 1e-3)), math.radians(ang)])


def _moment_params(crop: np.ndarray, x0: int, y0: int) -> tuple[float, float, float, float, float]:
    """Rectangle with the mask's area centroid and second moments (a uniform bar of length w has
    variance w^2 / 12; the pixel squares add 1/12 to each axis)."""
    mo = cv2.moments(crop.astype(np.uint8), binaryImage=True)
    area = mo["m00"]
    cx = x0 + mo["m10"] / area + 0.5
    cy = y0 + mo["m01"] / area + 0.5
    cov = np.array([[mo["mu20"], mo["mu11"]], [mo["mu11"], mo["mu02"]]]) / area + np.eye(2) / 12
    evals, evecs = np.linalg.eigh(cov)
    w = math.sqrt(12.0 * max(evals[1], 1e-6))
    h = math.sqrt(12.0 * max(evals[0], 1e-6))
    ang = math.degrees(math.atan2(evecs[1, 1], evecs[0, 1]))
    return float(cx), float(cy), w, h, ang


def _nelder_mead(z0: np.ndarray, g: _Grid, area_m: float, maxfev: int) -> np.ndarray:
    """Nelder-Mead on the soft IoU in variables scaled so that one unit moves the rectangle's
    boundary by about one grid cell; initial simplex steps of 2 cells, tolerance 0.05 cell."""
    w, h = math.exp(min(z0[2], 30.0)), math.exp(min(z0[3], 30.0))
    half_diag = 0.5 * math.hypot(w, h)
    scale = np.array(
        [g.s, g.s, 2.0 * g.s / max(w, 1e-3), 2.0 * g.s / max(h, 1e-3), g.s / max(half_diag, 1e-3)]
    )
    y0 = z0 / scale
    simplex = np.vstack([y0] + [y0 + 2.0 * np.eye(5)[i] for i in range(5)])
    res = minimize(
        lambda y: -_soft_iou(y * scale, g, area_m),
        y0,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxfev": maxfev, "xatol": 0.05, "fatol": 1e-5},
    )
    return res.x * scale


def _polish(z: np.ndarray, counter: _MaskCounter) -> np.ndarray:
    """Compass search on the exact pixel-centre IoU (centre +-1/2 px, sides +-1 px, angle
    +-1/2 degree, steps halved twice). Returns the corners."""
    cx, cy, lw, lh, a = (float(v) for v in z)
    x = np.array([cx, cy, math.exp(min(lw, 30.0)), math.exp(min(lh, 30.0)), math.degrees(a)])

    def score(v: np.ndarray) -> float:
        if v[2] <= 0 or v[3] <= 0:
            return -1.0
        return counter.iou(rotated_box_from_params(*v), convex=True)

    best = score(x)
    steps = np.array([0.5, 0.5, 1.0, 1.0, 0.5])
    for _ in range(3):
        improved = True
        rounds = 0
        while improved and rounds < 4:
            improved = False
            rounds += 1
            for i in range(5):
                for sign in (1.0, -1.0):
                    y = x.copy()
                    y[i] += sign * steps[i]
                    val = score(y)
                    if val > best:
                        x, best, improved = y, val, True
                        break
        steps = steps / 2
    return rotated_box_from_params(*x)


def mask_to_opt_box(
    mask: np.ndarray,
    coarse_cells: int = 40,
    fine_cells: int = 120,
    max_evals: int = 150,
) -> np.ndarray:
    """VOT-2016 "Opt" box: the rotated rectangle maximising its IoU with the mask.

    See the module docstring for the exact objective and search. Args:
        mask: ``(H, W)`` bool mask.
        coarse_cells: longer side (in cells) of the coarse optimisation grid.
        fine_cells: longer side (in cells) of the refinement grid.
        max_evals: objective evaluations per Nelder-Mead run (3 coarse runs, 1 fine run).

    Returns:
        ``(4, 2)`` float64 corners in cyclic order, never with a lower
        :func:`mask_polygon_iou` than the MBR and the Min-max box; ``zeros((4, 2))`` for an empty
        mask.
    """
    m = as_mask(mask)
    for name, val in (("coarse_cells", coarse_cells), ("fine_cells", fine_cells)):
        if int(val) < 2:
            raise InputError(f"{name}: must be an integer >= 2, got {val!r}")
    if int(max_evals) < 1:
        raise InputError(f"max_evals: must be a positive integer, got {max_evals!r}")
    bx, by, bw, bh = (int(v) for v in mask_to_box(m))
    if bw == 0:
        return np.zeros((4, 2), dtype=np.float64)
    area_m = int(np.count_nonzero(m))
    crop = m[by : by + bh, bx : bx + bw]

    mbr = mask_to_rotated_box(m)
    minmax = box_to_polygon((bx, by, bw, bh))
    seeds = [
        rotated_box_params(mbr),
        (bx + bw / 2.0, by + bh / 2.0, float(bw), float(bh), 0.0),
        _moment_params(crop, bx, by),
    ]

    longer = max(bw, bh)
    s1 = max(1, math.ceil(longer / coarse_cells))
    s2 = max(1, math.ceil(longer / fine_cells))
    g1 = _Grid(crop, bx, by, s1)
    # coarse: Nelder-Mead from every seed, keep the best
    best_z, best_val = None, -1.0
    for p in seeds:
        z = _nelder_mead(_to_z(p), g1, area_m, maxfev=max_evals)
        val = _soft_iou(z, g1, area_m)
        if val > best_val:
            best_z, best_val = z, val
    z = best_z
    if s2 < s1:
        g2 = _Grid(crop, bx, by, s2)
        z = _nelder_mead(z, g2, area_m, maxfev=max_evals)
    counter = _MaskCounter(m)
    opt = _polish(z, counter)
    best, best_iou = opt, counter.iou(opt)
    for cand in (mbr, minmax):
        iou = counter.iou(cand)
        if iou > best_iou:
            best, best_iou = cand, iou
    return np.asarray(best, dtype=np.float64)
