"""Polygons: IoU of polygons / boxes and rasterisation of polygons to masks.

Implements the overlap measure used to score rotated boxes in the VOT benchmarks (seed document
004, section 4 "Evaluation for visual object tracking": VOT-2016/2018 are annotated with rotated
boxes and accuracy is the IoU of the predicted and ground-truth regions). As in the VOT toolkit,
``polygon_iou(..., bounds=(width, height))`` first restricts both regions to the image rectangle
``[0, width] x [0, height]``.

Coordinates are continuous pixels: pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``.

IoU computation (all exact up to floating point for simple polygons):

* both polygons convex: ``cv2.intersectConvexConvex`` (in a local frame to limit float32 error);
* otherwise the non-convex polygon(s) are ear-clipped into triangles and the intersection area is
  the sum over triangles of the area of the other polygon clipped (Sutherland-Hodgman) to the
  triangle; clipping an arbitrary simple polygon against a convex one gives the exact area;
* self-intersecting polygons (not simple, area ill-defined) fall back to an even-odd
  rasterisation at high resolution (about 2048 samples along the longer side of the union).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from segtrack.errors import InputError

__all__ = [
    "as_polygon",
    "polygon_area",
    "polygon_iou",
    "polygon_to_mask",
]

_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def as_polygon(region: Sequence[float] | np.ndarray, name: str = "polygon") -> np.ndarray:
    """Return ``region`` as an ``(N, 2)`` float64 vertex array.

    Accepted forms: a length-4 sequence ``(x, y, w, h)`` (axis box, converted to its 4 corners),
    an ``(N, 2)`` array of vertices, or a flat sequence ``x1, y1, x2, y2, ...`` of an even length
    >= 6 (the VOT region-file format). Raises :class:`InputError` naming ``name`` otherwise.
    """
    try:
        arr = np.asarray(region, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: not a numeric box or polygon ({exc})") from None
    if arr.ndim == 1:
        if arr.size == 4:
            x, y, w, h = arr
            arr = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
        elif arr.size >= 6 and arr.size % 2 == 0:
            arr = arr.reshape(-1, 2)
        else:
            raise InputError(
                f"{name}: expected (x, y, w, h), an (N, 2) vertex array or a flat x1,y1,x2,y2,... "
                f"list, got {arr.size} numbers"
            )
    elif arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{name}: expected an (N, 2) vertex array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite coordinates")
    return arr


def polygon_area(polygon: Sequence[float] | np.ndarray) -> float:
    """Absolute shoelace area of a polygon (or an ``(x, y, w, h)`` box with ``w, h >= 0``)."""
    return abs(_signed_area(as_polygon(polygon)))


def _nxt(a: np.ndarray) -> np.ndarray:
    """``np.roll(a, -1, axis=0)`` without its overhead."""
    return np.concatenate((a[1:], a[:1]))


def _prv(a: np.ndarray) -> np.ndarray:
    """``np.roll(a, 1, axis=0)`` without its overhead."""
    return np.concatenate((a[-1:], a[:-1]))


def _signed_area(p: np.ndarray) -> float:
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, _nxt(y)) - np.dot(y, _nxt(x)))


def _clean(p: np.ndarray) -> np.ndarray:
    """Remove repeated and collinear vertices (tolerance relative to the polygon's extent)."""
    if len(p) == 0:
        return p
    scale = max(float(np.abs(p - p.mean(axis=0)).max()), 1e-12)
    tol = 1e-12 * scale * scale
    while len(p) >= 3:
        d = p - _prv(p)
        dup = np.einsum("ij,ij->i", d, d) <= tol
        if dup.all():
            break
        if dup.any():
            p = p[~dup]
            continue
        e = _nxt(p) - p
        cross = d[:, 0] * e[:, 1] - d[:, 1] * e[:, 0]
        flat = np.abs(cross) <= 4 * tol
        if not flat.any():
            return p
        p = p[~flat]
    return np.zeros((0, 2))


def _is_convex(p: np.ndarray) -> bool:
    """True when the (cleaned) polygon is strictly convex and winds exactly once."""
    n = len(p)
    if n < 3:
        return False
    e = _nxt(p) - p
    en = _nxt(e)
    cross = e[:, 0] * en[:, 1] - e[:, 1] * en[:, 0]
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return False
    turn = np.arctan2(cross, np.sum(e * en, axis=1)).sum()
    return abs(abs(turn) - 2 * math.pi) < 1e-6


def _ccw(p: np.ndarray) -> np.ndarray:
    """Same polygon with positive shoelace orientation."""
    return p if _signed_area(p) >= 0 else p[::-1].copy()


# --------------------------------------------------------------------------------------------
# clipping, triangulation
# --------------------------------------------------------------------------------------------


def _clip(subject: np.ndarray, clip_ccw: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: clip any polygon against a convex, positively oriented polygon.

    For a non-convex subject the result may contain zero-width bridges, but its shoelace area is
    the exact area of the intersection.
    """
    out = subject
    m = len(clip_ccw)
    for i in range(m):
        if len(out) == 0:
            break
        a = clip_ccw[i]
        b = clip_ccw[(i + 1) % m]
        ex, ey = b[0] - a[0], b[1] - a[1]
        # side > 0: inside (left of a->b for positive orientation)
        side = ex * (out[:, 1] - a[1]) - ey * (out[:, 0] - a[0])
        nxt = _nxt(out)
        side_n = _nxt(side)
        inside = side >= 0
        inside_n = side_n >= 0
        res = []
        for j in range(len(out)):
            if inside[j]:
                res.append(out[j])
            if inside[j] != inside_n[j]:
                t = side[j] / (side[j] - side_n[j])
                res.append(out[j] + t * (nxt[j] - out[j]))
        out = np.array(res, dtype=np.float64).reshape(-1, 2)
    return out


def _triangulate(p: np.ndarray) -> list[np.ndarray] | None:
    """Ear-clip a simple polygon (cleaned, any orientation) into triangles; None if not simple."""
    p = _ccw(p)
    idx = list(range(len(p)))
    tris: list[np.ndarray] = []
    guard = 0
    while len(idx) > 3:
        guard += 1
        if guard > 4 * len(p) * len(p):
            return None
        n = len(idx)
        found = False
        for k in range(n):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % n]
            a, b, c = p[i0], p[i1], p[i2]
            cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            if cross <= 0:
                continue
            tri = np.array([a, b, c])
            others = [p[j] for j in idx if j not in (i0, i1, i2)]
            if others and _points_in_triangle(np.array(others), tri).any():
                continue
            tris.append(tri)
            del idx[k]
            found = True
            break
        if not found:
            return None
    if len(idx) == 3:
        tri = p[idx]
        if _signed_area(tri) <= 0:
            return None
        tris.append(tri)
    return tris


def _is_simple(p: np.ndarray) -> bool:
    """True when no two non-adjacent edges of the (cleaned) polygon intersect or touch."""
    n = len(p)
    if n < 4:
        return n == 3
    a = p
    b = _nxt(p)
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # edges n-1 and 0 are adjacent
    i, j = i[keep], j[keep]

    def orient(p1: np.ndarray, p2: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (p2[:, 0] - p1[:, 0]) * (q[:, 1] - p1[:, 1]) - (p2[:, 1] - p1[:, 1]) * (
            q[:, 0] - p1[:, 0]
        )

    a1, b1, a2, b2 = a[i], b[i], a[j], b[j]
    d1 = orient(a1, b1, a2)
    d2 = orient(a1, b1, b2)
    d3 = orient(a2, b2, a1)
    d4 = orient(a2, b2, b1)
    proper = (d1 * d2 < 0) & (d3 * d4 < 0)
    if proper.any():
        return False

    def on_seg(p1: np.ndarray, p2: np.ndarray, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        within = (
            (np.minimum(p1[:, 0], p2[:, 0]) <= q[:, 0])
            & (q[:, 0] <= np.maximum(p1[:, 0], p2[:, 0]))
            & (np.minimum(p1[:, 1], p2[:, 1]) <= q[:, 1])
            & (q[:, 1] <= np.maximum(p1[:, 1], p2[:, 1]))
        )
        return (d == 0) & within

    touch = on_seg(a1, b1, a2, d1) | on_seg(a1, b1, b2, d2) | on_seg(a2, b2, a1, d3)
    touch |= on_seg(a2, b2, b1, d4)
    return not touch.any()


def _points_in_triangle(q: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Points inside or on a positively oriented triangle."""
    res = np.ones(len(q), dtype=bool)
    for i in range(3):
        a, b = tri[i], tri[(i + 1) % 3]
        s = (b[0] - a[0]) * (q[:, 1] - a[1]) - (b[1] - a[1]) * (q[:, 0] - a[0])
        res &= s >= -1e-12
    return res


def _convex_intersection_area(a_ccw: np.ndarray, b_ccw: np.ndarray) -> float:
    """Area of the intersection of two convex polygons via cv2.intersectConvexConvex."""
    origin = np.minimum(a_ccw.min(axis=0), b_ccw.min(axis=0))
    pa = (a_ccw - origin).astype(np.float32)
    pb = (b_ccw - origin).astype(np.float32)
    area, _ = cv2.intersectConvexConvex(pa, pb, handleNested=True)
    return max(float(area), 0.0)


def _pieces(p: np.ndarray) -> list[np.ndarray] | None:
    """Convex, positively oriented pieces tiling the polygon; None if it is not simple."""
    if _is_convex(p):
        return [_ccw(p)]
    if not _is_simple(p):
        return None
    return _triangulate(p)


# --------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------


def polygon_iou(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    bounds: tuple[float, float] | None = None,
) -> float:
    """Intersection over union of two regions.

    Args:
        a, b: each an axis box ``(x, y, w, h)`` (length-4 sequence), an ``(N, 2)`` vertex array
            (convex or not, either orientation) or a flat VOT list ``x1, y1, x2, y2, ...``.
        bounds: optional ``(width, height)``; both regions are first clipped to the image
            rectangle ``[0, width] x [0, height]`` (VOT toolkit convention).

    Returns:
        IoU in ``[0, 1]``. Convention: if either region has zero area (degenerate box or polygon,
        fewer than 3 distinct vertices, or nothing left inside ``bounds``) the IoU is 0 - also
        when both are empty (a tracker reporting nothing never scores overlap).
    """
    pa = _clean(as_polygon(a, "a"))
    pb = _clean(as_polygon(b, "b"))
    rect = None
    if bounds is not None:
        try:
            bw, bh = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise InputError(f"bounds: expected (width, height), got {bounds!r}") from None
        if not (math.isfinite(bw) and math.isfinite(bh)):
            raise InputError(f"bounds: expected finite (width, height), got {bounds!r}")
        if bw <= 0 or bh <= 0:
            return 0.0
        rect = np.array([[0.0, 0.0], [bw, 0.0], [bw, bh], [0.0, bh]])
    if len(pa) < 3 or len(pb) < 3:
        return 0.0

    pieces_a = _pieces(pa)
    pieces_b = _pieces(pb)
    if pieces_a is None or pieces_b is None:
        return _raster_iou(pa, pb, rect)
    if rect is not None:
        pieces_a = [q for q in (_clip(x, rect) for x in pieces_a) if len(q) >= 3]
        pieces_b = [q for q in (_clip(x, rect) for x in pieces_b) if len(q) >= 3]
    area_a = sum(abs(_signed_area(q)) for q in pieces_a)
    area_b = sum(abs(_signed_area(q)) for q in pieces_b)
    if area_a <= _EPS or area_b <= _EPS:
        return 0.0
    pieces_a = [_ccw(q) for q in map(_clean, pieces_a) if len(q) >= 3]
    pieces_b = [_ccw(q) for q in map(_clean, pieces_b) if len(q) >= 3]
    inter = 0.0
    for qa in pieces_a:
        for qb in pieces_b:
            inter += _convex_intersection_area(qa, qb)
    union = area_a + area_b - inter
    if union <= _EPS:
        return 0.0
    return float(min(max(inter / union, 0.0), 1.0))


def _raster_iou(pa: np.ndarray, pb: np.ndarray, rect: np.ndarray | None) -> float:
    """Even-odd rasterised IoU at ~2048 samples along the longer side (non-simple polygons)."""
    allp = np.vstack([pa, pb])
    lo = allp.min(axis=0)
    hi = allp.max(axis=0)
    if rect is not None:
        lo = np.maximum(lo, 0.0)
        hi = np.minimum(hi, rect[2])
    size = hi - lo
    if np.any(size <= 0):
        return 0.0
    scale = 2048.0 / float(size.max())
    shape = (max(1, math.ceil(size[1] * scale)), max(1, math.ceil(size[0] * scale)))
    ma = _rasterize((pa - lo) * scale, shape)
    mb = _rasterize((pb - lo) * scale, shape)
    inter = np.count_nonzero(ma & mb)
    union = np.count_nonzero(ma | mb)
    if np.count_nonzero(ma) == 0 or np.count_nonzero(mb) == 0 or union == 0:
        return 0.0
    return inter / union


# --------------------------------------------------------------------------------------------
# rasterisation
# --------------------------------------------------------------------------------------------


def _spans(
    p: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0), convex: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Even-odd scanline spans of a polygon: pixels ``(r, c0 <= c < c1)`` whose centres are inside.

    Coordinates are relative to the window of ``shape = (h, w)`` whose top-left pixel is image
    pixel ``(y0, x0)`` for ``offset = (x0, y0)``; spans are clipped to the window and non-empty.
    A pixel centre ``(c + .5, r + .5)`` is inside when an odd number of edges cross the row
    centre line to its left (half-open rule: a centre exactly on a left/top edge is inside, on a
    right/bottom edge outside).
    """
    h, w = shape
    empty = (np.zeros(0, np.int64),) * 3
    if len(p) < 3 or h <= 0 or w <= 0:
        return empty
    x0, y0 = offset
    a = p - np.array([x0, y0], dtype=np.float64)
    b = _nxt(a)
    ymin = np.minimum(a[:, 1], b[:, 1])
    ymax = np.maximum(a[:, 1], b[:, 1])
    keep = ymax > ymin
    a, b, ymin, ymax = a[keep], b[keep], ymin[keep], ymax[keep]
    if len(a) == 0:
        return empty
    if convex:
        return _convex_spans(a, b, ymin, ymax, h, w)
    # rows whose centre y = r + 0.5 lies in [ymin, ymax)
    r0 = np.clip(np.ceil(ymin - 0.5).astype(np.int64), 0, h)
    r1 = np.clip(np.ceil(ymax - 0.5).astype(np.int64), 0, h)
    counts = np.maximum(r1 - r0, 0)
    total = int(counts.sum())
    if total == 0:
        return empty
    edge = np.repeat(np.arange(len(a)), counts)
    starts = np.repeat(r0 - np.cumsum(np.concatenate([[0], counts[:-1]])), counts)
    rows = np.arange(total) + starts
    ea, eb = a[edge], b[edge]
    t = (rows + 0.5 - ea[:, 1]) / (eb[:, 1] - ea[:, 1])
    xs = ea[:, 0] + t * (eb[:, 0] - ea[:, 0])
    order = np.lexsort((xs, rows))
    rows = rows[order]
    xs = xs[order]
    # crossings come in pairs per row (even-odd rule; every row has an even count)
    rows_in = rows[0::2]
    c0 = np.clip(np.ceil(xs[0::2] - 0.5), 0, w).astype(np.int64)
    c1 = np.clip(np.ceil(xs[1::2] - 0.5), 0, w).astype(np.int64)
    good = c1 > c0
    return rows_in[good], c0[good], c1[good]


def _convex_spans(
    a: np.ndarray, b: np.ndarray, ymin: np.ndarray, ymax: np.ndarray, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_spans` for a convex polygon (one span per row): min / max over edge crossings."""
    r0 = min(max(math.ceil(float(ymin.min()) - 0.5), 0), h)
    r1 = min(max(math.ceil(float(ymax.max()) - 0.5), 0), h)
    if r1 <= r0:
        return (np.zeros(0, np.int64),) * 3
    rows = np.arange(r0, r1)
    yc = rows + 0.5
    inside = (yc >= ymin[:, None]) & (yc < ymax[:, None])
    t = (yc - a[:, 1:2]) / (b[:, 1:2] - a[:, 1:2])  # same arithmetic as the general path
    xs = a[:, 0:1] + t * (b[:, 0:1] - a[:, 0:1])
    lo = np.where(inside, xs, np.inf).min(axis=0)
    hi = np.where(inside, xs, -np.inf).max(axis=0)
    c0 = np.minimum(np.maximum(np.ceil(lo - 0.5), 0), w).astype(np.int64)
    c1 = np.minimum(np.maximum(np.ceil(hi - 0.5), 0), w).astype(np.int64)
    good = c1 > c0
    return rows[good], c0[good], c1[good]


def _rasterize(
    p: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Bool window of ``shape`` with the pixels of :func:`_spans` set."""
    h, w = shape
    rows, c0, c1 = _spans(p, shape, offset)
    diff = np.zeros((h, w + 1), dtype=np.int8)  # spans of a row are disjoint: values in -1..1
    np.add.at(diff, (rows, c0), 1)
    np.add.at(diff, (rows, c1), -1)
    return np.cumsum(diff[:, :w], axis=1, dtype=np.int32) > 0


def _check_shape(shape: Sequence[int], name: str = "shape") -> tuple[int, int]:
    try:
        vals = tuple(int(v) for v in tuple(shape)[:2])
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected (height, width), got {shape!r}") from None
    if len(vals) != 2 or vals[0] < 0 or vals[1] < 0:
        raise InputError(f"{name}: expected non-negative (height, width), got {shape!r}")
    return vals


def polygon_to_mask(polygon: Sequence[float] | np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Rasterise a polygon (or ``(x, y, w, h)`` box) to a bool mask of ``shape = (H, W, ...)``.

    Convention: pixel ``(r, c)`` is set iff its centre ``(c + 0.5, r + 0.5)`` is inside the
    polygon (even-odd rule; a centre exactly on a left/top edge counts as inside, on a right/bottom
    edge as outside, so adjacent polygons tile without overlap). Hence a rectangle with integer
    corners ``(x, y, w, h)`` gives exactly the pixels ``y <= r < y+h, x <= c < x+w``.
    """
    h, w = _check_shape(shape)
    p = as_polygon(polygon, "polygon")
    out = np.zeros((h, w), dtype=bool)
    win = _window(p, (h, w))
    if win is None:
        return out
    x0, y0, x1, y1 = win
    out[y0:y1, x0:x1] = _rasterize(p, (y1 - y0, x1 - x0), (x0, y0))
    return out


def _window(p: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Pixel window ``(x0, y0, x1, y1)`` (exclusive ends) of the image that may hold centres
    inside polygon ``p``; None when it is empty."""
    h, w = shape
    if len(p) < 3:
        return None
    lo = p.min(axis=0)
    hi = p.max(axis=0)
    x0 = int(np.clip(math.floor(lo[0]), 0, w))
    y0 = int(np.clip(math.floor(lo[1]), 0, h))
    x1 = int(np.clip(math.ceil(hi[0]), 0, w))
    y1 = int(np.clip(math.ceil(hi[1]), 0, h))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1
