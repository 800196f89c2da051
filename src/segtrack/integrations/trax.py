"""TraX server: run any segtrack method as an external tracker of the VOT toolkit (issue 9).

``segtrack trax --method flow`` speaks the TraX protocol (Čehovin, "TraX: The visual Tracking
eXchange Protocol and Library", Neurocomputing 2017; the ``vot-trax`` library that the
``vot-toolkit`` uses) over stdin/stdout, or over the TCP port in ``TRAX_SOCKET`` when the client
asks for a socket. The message handling is libtrax's own (the ``trax`` Python package of
``vot-trax``, ``trax.Server``); this module maps the requests to a segtrack tracker:

* hello: regions ``rectangle``, ``polygon`` and ``mask``, images as ``path``, channel ``color``,
  multi-object sessions allowed (VOTS);
* ``initialize``: one tracker per object, from its mask (a mask region, or the polygon
  rasterised) or its rectangle;
* ``frame``: every object tracked, overlaps resolved as in ``segtrack track``; each object's
  state is its mask (``--region mask``), rotated box as a 4-point polygon (``polygon``), or
  axis-aligned box (``rectangle``); ``auto`` (default) answers in the type the object was
  given in;
* ``quit``: the process exits.

Register it in a VOT workspace's ``trackers.ini``::

    [segtrack_flow]
    label = segtrack flow
    protocol = trax
    command = segtrack trax --method flow
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from segtrack.errors import InputError

__all__ = ["TraxSession", "polygon_to_mask", "run_trax_server"]

REGION_TYPES = ("rectangle", "polygon", "mask")


def polygon_to_mask(points: Any, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of the pixels whose centre lies inside the polygon (even-odd rule)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), bool)
    if pts.shape[0] < 3 or not np.isfinite(pts).all():
        return out
    lo = np.clip(np.floor(pts.min(0) - 0.5).astype(int), 0, [w, h])
    hi = np.clip(np.ceil(pts.max(0) + 0.5).astype(int), 0, [w, h])
    if hi[0] <= lo[0] or hi[1] <= lo[1]:
        return out
    # pixel (r, c) has its centre at (c + 0.5, r + 0.5)
    cx = np.arange(lo[0], hi[0]) + 0.5
    cy = (np.arange(lo[1], hi[1]) + 0.5)[:, None]
    inside = np.zeros((cy.size, cx.size), bool)
    x1, y1 = pts[:, 0], pts[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    for a, b, c, d in zip(x1, y1, x2, y2):
        if b == d:
            continue
        crosses = (b > cy) != (d > cy)
        xint = a + (cy - b) * (c - a) / (d - b)
        inside ^= crosses & (cx < xint)
    out[lo[1]:hi[1], lo[0]:hi[0]] = inside
    return out


class TraxSession:
    """The tracking side of a TraX session, in plain numpy (no protocol).

    Regions are ``("rectangle", (x, y, w, h))``, ``("polygon", (K, 2) corners)`` or
    ``("mask", (H, W) bool)``.
    """

    def __init__(self, method: str = "flow", params: Mapping[str, Any] | None = None,
                 device: str = "cpu", region: str = "auto") -> None:
        from segtrack.trackers.registry import load_tracker

        if region not in REGION_TYPES + ("auto",):
            raise InputError(f"--region must be one of {', '.join(REGION_TYPES)} or auto")
        self.method, self.params, self.device, self.region = method, dict(params or {}), device, \
            region
        load_tracker(method, device=device, **self.params)  # fail early on bad method / params
        self.multi = None
        self.kinds: dict[int, str] = {}

    def _factory(self):
        from segtrack.trackers.registry import load_tracker

        return load_tracker(self.method, device=self.device, **self.params)

    def initialize(self, image: np.ndarray, objects: list[tuple[str, Any]]) -> list[tuple]:
        """(Re)start on ``image`` with the given objects; returns their states."""
        from segtrack.trackers.multi import MultiObjectTracker

        if not objects:
            raise InputError("TraX initialize without objects")
        self.multi = MultiObjectTracker(self._factory)
        self.kinds = {}
        h, w = image.shape[:2]
        preds = {}
        for i, (kind, value) in enumerate(objects, start=1):
            self.kinds[i] = kind
            if kind == "rectangle":
                preds[i] = self.multi.add(i, image, box=tuple(float(v) for v in value))
            elif kind == "polygon":
                m = polygon_to_mask(value, (h, w))
                if m.any():
                    preds[i] = self.multi.add(i, image, mask=m)
                else:  # degenerate polygon: fall back to its bounds
                    p = np.asarray(value, float).reshape(-1, 2)
                    lo, hi = p.min(0), p.max(0)
                    preds[i] = self.multi.add(i, image, box=(lo[0], lo[1], max(hi[0] - lo[0], 1),
                                                            max(hi[1] - lo[1], 1)))
            elif kind == "mask":
                preds[i] = self.multi.add(i, image, mask=np.asarray(value, bool))
            else:
                raise InputError(f"unsupported TraX region type '{kind}'")
        return self._states(preds, image.shape[:2])

    def frame(self, image: np.ndarray) -> list[tuple]:
        """Track every object into ``image``; returns their states (object order)."""
        if self.multi is None:
            raise InputError("TraX frame before initialize")
        preds, _ = self.multi.step(image)
        return self._states(preds, image.shape[:2])

    def _states(self, preds: dict, shape: tuple[int, int]) -> list[tuple]:
        out = []
        for i in sorted(self.kinds):
            kind = self.region if self.region != "auto" else self.kinds[i]
            p = preds.get(i)
            empty = p is None or p.empty
            if kind == "mask":
                out.append(("mask", np.zeros(shape, bool) if empty else np.asarray(p.mask, bool)))
            elif kind == "polygon":
                rb = None if empty else np.asarray(p.rotated_box, float).reshape(-1, 2)
                if rb is None or not np.isfinite(rb).all():
                    out.append(("rectangle", (0.0, 0.0, 0.0, 0.0)))
                else:
                    out.append(("polygon", rb))
            else:
                box = (0.0, 0.0, 0.0, 0.0) if empty else tuple(float(v) for v in p.box)
                out.append(("rectangle", box))
        return out


def _to_trax(state: tuple, trax_mod: Any) -> Any:
    from trax.region import Mask, Polygon, Rectangle

    kind, v = state
    if kind == "rectangle":
        return Rectangle.create(*[float(x) for x in v])
    if kind == "polygon":
        return Polygon.create([(float(x), float(y)) for x, y in v])
    m = np.asarray(v, bool)
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if rows.size == 0:
        return Mask.create(np.zeros((1, 1), np.uint8), 0, 0)
    crop = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Mask.create(np.ascontiguousarray(crop, dtype=np.uint8), int(cols[0]), int(rows[0]))


def _from_trax(region: Any, shape: tuple[int, int]) -> tuple[str, Any]:
    from trax.region import Region

    if region.type == Region.RECTANGLE:
        return "rectangle", tuple(region.bounds())
    if region.type == Region.POLYGON:
        return "polygon", np.asarray(list(region), float)
    if region.type == Region.MASK:
        patch = region.array() > 0
        x0, y0 = region.offset()
        h, w = shape
        full = np.zeros((h, w), bool)
        ph, pw = patch.shape
        ys, xs, ye, xe = max(0, y0), max(0, x0), min(h, y0 + ph), min(w, x0 + pw)
        if ye > ys and xe > xs:
            full[ys:ye, xs:xe] = patch[ys - y0:ye - y0, xs - x0:xe - x0]
        return "mask", full
    raise InputError(f"unsupported TraX region type {region.type!r}")


def _image(request_image: Mapping) -> np.ndarray:
    from segtrack.io.sources import read_image

    img = request_image.get("color") if isinstance(request_image, Mapping) else None
    if img is None:
        raise InputError("TraX request without a color image")
    return read_image(img.path())


def run_trax_server(
    method: str = "flow",
    *,
    params: Mapping[str, Any] | None = None,
    device: str = "cpu",
    region: str = "auto",
    log: str | None = None,
) -> int:
    """Serve ``method`` over TraX until the client quits; returns the exit code (0)."""
    try:
        import trax
        from trax.image import Image
        from trax.region import Region
    except ImportError:
        raise InputError("segtrack trax needs the TraX library: pip install vot-trax") from None
    session = TraxSession(method, params, device, region)
    server = trax.Server([Region.RECTANGLE, Region.POLYGON, Region.MASK], [Image.PATH],
                         ["color"], tracker_name=f"segtrack-{method}",
                         tracker_description="segtrack tracking by segmentation",
                         tracker_family="segtrack", log=log or False, multiobject=True)
    try:
        while True:
            req = server.wait()
            if req.type == trax.TraxStatus.QUIT:
                break
            image = _image(req.image)
            if req.type == trax.TraxStatus.INITIALIZE:
                objs = [_from_trax(r, image.shape[:2]) for r, _props in req.objects]
                states = session.initialize(image, objs)
            else:
                states = session.frame(image)
            server.status([(_to_trax(s, trax), {}) for s in states])
    finally:
        import contextlib

        with contextlib.suppress(Exception):
            server.quit()
    return 0
