"""Boxes from masks and back: Min-max and MBR boxes, box <-> polygon, box and mask IoU.

Seed document 004 (SiamMask), section 3 "Box generation" (Figure 3, Table 1): strategy (1)
axis-aligned bounding rectangle "Min-max" (:func:`mask_to_box`) and (2) rotated minimum bounding
rectangle "MBR" (:func:`mask_to_rotated_box`). Strategy (3) "Opt" is in
:mod:`segtrack.geometry.opt_box`.

Conventions (see :mod:`segtrack.types`): pixel ``(r, c)`` covers the unit square
``[c, c+1) x [r, r+1)``; an axis box is ``(x, y, w, h)``; a rotated box is a ``(4, 2)`` array of
corners ``(x, y)`` in order around the rectangle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from segtrack.errors import InputError
from segtrack.geometry.polygons import _check_shape

__all__ = [
    "as_mask",
    "box_iou",
    "box_to_mask",
    "box_to_polygon",
    "mask_iou",
    "mask_pixel_corners",
    "mask_to_box",
    "mask_to_rotated_box",
    "rotated_box_from_params",
    "rotated_box_params",
]


def as_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Validate a 2-D mask and return it as bool (non-zero = foreground)."""
    try:
        arr = np.asarray(mask)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputError(f"{name}: not an array ({exc})") from None
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D (H, W) mask, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.number)):
        raise InputError(f"{name}: expected a bool or numeric mask, got dtype {arr.dtype}")
    return arr != 0


def _as_box(box: Sequence[float] | np.ndarray, name: str = "box") -> tuple[float, ...]:
    try:
        arr = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected (x, y, w, h) numbers, got {box!r}") from None
    if arr.size != 4:
        raise InputError(f"{name}: expected (x, y, w, h), got {arr.size} numbers")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return tuple(float(v) for v in arr)


# --------------------------------------------------------------------------------------------
# mask -> box
# --------------------------------------------------------------------------------------------


def mask_to_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Min-max box ``(x, y, w, h)`` covering every mask pixel square; ``(0, 0, 0, 0)`` if empty.

    A single pixel at ``(r, c)`` gives ``(c, r, 1, 1)``.
    """
    m = as_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    cols = np.flatnonzero(m[rows[0] : rows[-1] + 1].any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def piece_box(mask: np.ndarray, point: tuple[float, float]) -> tuple[float, float, float, float]:
    """Min-max box of the mask's connected piece (8-connected) under ``point`` ``(x, y)``, or of
    the piece whose box centre lies nearest to it when no piece covers it; ``(0, 0, 0, 0)`` if
    the mask is empty.  Labelling runs inside the mask's own box only."""
    m = as_mask(mask)
    x, y, w, h = (int(v) for v in mask_to_box(m))
    if w == 0:
        return (0.0, 0.0, 0.0, 0.0)
    sub = np.ascontiguousarray(m[y:y + h, x:x + w], dtype=np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
    px, py = int(np.floor(point[0])) - x, int(np.floor(point[1])) - y
    k = int(lab[py, px]) if 0 <= py < h and 0 <= px < w else 0
    if k == 0:
        centres = stats[1:, :2] + stats[1:, 2:4] / 2.0
        k = 1 + int(np.argmin(((centres - [px + 0.5, py + 0.5]) ** 2).sum(1)))
    bx, by, bw, bh = (int(v) for v in stats[k, :4])
    return (float(bx + x), float(by + y), float(bw), float(bh))


_CORNER_OFFSETS = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.int32)


def mask_pixel_corners(mask: np.ndarray) -> np.ndarray:
    """Corner points of the outer-boundary pixels of a mask, ``(K, 2)`` int32 ``(x, y)``.

    The convex hull of these points equals the convex hull of all mask pixel squares: the
    external contours of ``cv2.findContours`` (``CHAIN_APPROX_SIMPLE``) keep the end pixels of
    every straight horizontal / vertical / diagonal run, and the squares of the dropped pixels
    in between are translates lying in the hull of the end squares.
    """
    m = as_mask(mask)
    x, y, w, h = (int(v) for v in mask_to_box(m))
    if w == 0:
        return np.zeros((0, 2), dtype=np.int32)
    crop = np.ascontiguousarray(m[y : y + h, x : x + w], dtype=np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours], axis=0)
    pts = pts + np.array([x, y], dtype=np.int32)
    corners = (pts[:, None, :] + _CORNER_OFFSETS[None, :, :]).reshape(-1, 2)
    return corners.astype(np.int32)


def mask_to_rotated_box(mask: np.ndarray) -> np.ndarray:
    """MBR: minimum-area rotated rectangle covering every mask pixel square.

    Computed with ``cv2.minAreaRect`` on the corner points of the mask's outer-boundary pixels
    (see :func:`mask_pixel_corners`), so the rectangle covers whole pixels: e.g. for an
    axis-aligned rectangle mask it is exactly the min-max box. Returns a ``(4, 2)`` float64
    corner array (cv2.boxPoints order, cyclic around the rectangle); ``zeros((4, 2))`` for an
    empty mask.
    """
    corners = mask_pixel_corners(mask)
    if len(corners) == 0:
        return np.zeros((4, 2), dtype=np.float64)
    rect = cv2.minAreaRect(corners.astype(np.float32))
    pts = cv2.boxPoints(rect).astype(np.float64)
    # minAreaRect works in float32: an axis-aligned result (all corners within float noise of
    # integers) is snapped to the exact pixel grid
    snapped = np.round(pts)
    if np.all(np.abs(pts - snapped) < 1e-3):
        pts = snapped
    return pts


# --------------------------------------------------------------------------------------------
# box <-> polygon, rotated-box parameters
# --------------------------------------------------------------------------------------------


def box_to_polygon(box: Sequence[float] | np.ndarray) -> np.ndarray:
    """Corners of an ``(x, y, w, h)`` box: top-left, top-right, bottom-right, bottom-left."""
    x, y, w, h = _as_box(box)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def rotated_box_from_params(
    cx: float, cy: float, w: float, h: float, angle_deg: float
) -> np.ndarray:
    """Corners of the rectangle with centre ``(cx, cy)``, side lengths ``w, h`` and rotation.

    ``angle_deg`` is the direction of the first edge (corner 0 -> corner 1, of length ``w``)
    measured from the +x axis towards +y (image coordinates, y down: positive angles turn
    clockwise on screen). With angle 0 the corners are top-left, top-right, bottom-right,
    bottom-left, as :func:`box_to_polygon`.
    """
    vals = np.array([cx, cy, w, h, angle_deg], dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise InputError(f"rotated box parameters: non-finite value in {tuple(vals)}")
    a = math.radians(float(angle_deg))
    e1 = np.array([math.cos(a), math.sin(a)])
    e2 = np.array([-math.sin(a), math.cos(a)])
    c = np.array([cx, cy], dtype=np.float64)
    hw, hh = 0.5 * float(w), 0.5 * float(h)
    return np.array(
        [
            c - hw * e1 - hh * e2,
            c + hw * e1 - hh * e2,
            c + hw * e1 + hh * e2,
            c - hw * e1 + hh * e2,
        ]
    )


def rotated_box_params(poly: np.ndarray) -> tuple[float, float, float, float, float]:
    """Inverse of :func:`rotated_box_from_params`: ``(cx, cy, w, h, angle_deg)`` of 4 corners.

    ``w`` is the mean length of edges 0-1 and 3-2, ``h`` of edges 1-2 and 0-3 (both >= 0), the
    centre the mean of the corners and ``angle_deg`` (in ``(-180, 180]``) the direction of the
    summed edge vectors 0->1 and 3->2, so a slightly non-rectangular quadrilateral (e.g. a VOT
    annotation) gets a best-fit rectangle. For corners in :func:`rotated_box_from_params` order
    the round trip is exact up to rounding (up to the angle's wrap to ``(-180, 180]``).
    """
    p = np.asarray(poly, dtype=np.float64)
    if p.shape != (4, 2):
        raise InputError(f"rotated box: expected a (4, 2) corner array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InputError("rotated box: contains NaN or infinite coordinates")
    c = p.mean(axis=0)
    d1 = (p[1] - p[0]) + (p[2] - p[3])
    w = 0.5 * (np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[3]))
    h = 0.5 * (np.linalg.norm(p[2] - p[1]) + np.linalg.norm(p[3] - p[0]))
    if np.linalg.norm(d1) > 0:
        angle = math.degrees(math.atan2(d1[1], d1[0]))
    else:
        angle = 0.0
    if angle <= -180.0:
        angle += 360.0
    return float(c[0]), float(c[1]), float(w), float(h), float(angle)


# --------------------------------------------------------------------------------------------
# box -> mask, IoUs
# --------------------------------------------------------------------------------------------


def box_to_mask(box: Sequence[float] | np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Bool mask of ``shape`` (``(H, W, ...)``) with the pixels whose centres lie in the box.

    The box is half-open, ``[x, x+w) x [y, y+h)``, so a pixel centre ``(c+.5, r+.5)`` is in when
    ``x <= c + .5 < x + w`` and likewise for rows; this equals :func:`polygon_to_mask` of
    :func:`box_to_polygon` and ``box_to_mask(mask_to_box(m), m.shape)`` is exactly the min-max
    rectangle of ``m`` (so it covers ``m``). A box with ``w <= 0`` or ``h <= 0`` gives an empty
    mask.
    """
    x, y, w, h = _as_box(box)
    hh, ww = _check_shape(shape)
    out = np.zeros((hh, ww), dtype=bool)
    if w <= 0 or h <= 0:
        return out
    c0 = int(np.clip(math.ceil(x - 0.5), 0, ww))
    c1 = int(np.clip(math.ceil(x + w - 0.5), 0, ww))
    r0 = int(np.clip(math.ceil(y - 0.5), 0, hh))
    r1 = int(np.clip(math.ceil(y + h - 0.5), 0, hh))
    out[r0:r1, c0:c1] = True
    return out


def box_iou(a: np.ndarray | Sequence, b: np.ndarray | Sequence) -> np.ndarray:
    """Element-wise IoU of axis boxes ``(..., 4)`` xywh in continuous coordinates.

    ``a`` and ``b`` broadcast against each other (e.g. ``(N, 4)`` vs ``(N, 4)`` or ``(N, 4)`` vs
    ``(4,)``); the result has the broadcast shape without the last axis. Boxes with non-positive
    width or height have zero area; a zero union gives IoU 0.
    """
    try:
        aa = np.asarray(a, dtype=np.float64)
        bb = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("box_iou: boxes must be numeric (..., 4) arrays") from None
    for name, arr in (("a", aa), ("b", bb)):
        if arr.ndim == 0 or arr.shape[-1] != 4:
            raise InputError(f"box_iou: {name} must have shape (..., 4), got {arr.shape}")
    try:
        np.broadcast_shapes(aa.shape, bb.shape)
    except ValueError:
        raise InputError(f"box_iou: shapes {aa.shape} and {bb.shape} do not broadcast") from None
    aw = np.maximum(aa[..., 2], 0.0)
    ah = np.maximum(aa[..., 3], 0.0)
    bw = np.maximum(bb[..., 2], 0.0)
    bh = np.maximum(bb[..., 3], 0.0)
    ix = np.minimum(aa[..., 0] + aw, bb[..., 0] + bw) - np.maximum(aa[..., 0], bb[..., 0])
    iy = np.minimum(aa[..., 1] + ah, bb[..., 1] + bh) - np.maximum(aa[..., 1], bb[..., 1])
    inter = np.maximum(ix, 0.0) * np.maximum(iy, 0.0)
    union = aw * ah + bw * bh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.clip(iou, 0.0, 1.0)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU (Jaccard index) of two masks of the same shape; 1.0 when both are empty."""
    ma = as_mask(a, "a")
    mb = as_mask(b, "b")
    if ma.shape != mb.shape:
        raise InputError(f"mask_iou: mask shapes differ, {ma.shape} vs {mb.shape}")
    union = np.count_nonzero(ma | mb)
    if union == 0:
        return 1.0
    return np.count_nonzero(ma & mb) / union
