"""Box and clicks to a mask: the online part of click-to-segment (:mod:`segtrack.models.clickseg`
is the network).

One interaction = one call of :meth:`Segmenter.predict` with everything the user has given so
far (box, clicks, the current mask being corrected).  The crop the network sees:

* with a box: the square of 1.4 x the box's longer side around it;
* with a mask to correct: the square of 1.4 x the mask's box (RITM's "zoom-in");
* with clicks only: the whole frame, then - zoom-in - once more on the square around that
  first mask, with the first mask as the previous mask (two network passes);

always grown to contain every click.  The crop's probabilities are pasted back into the frame
and their boundary re-snapped to the frame's edges at full resolution (guided filter,
:mod:`segtrack.geometry.edges`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segtrack.errors import InputError
from segtrack.interactive.crops import Region, crop, guide_maps, paste, region_around, whole_image
from segtrack.params import apply_overrides
from segtrack.trackers.base import EdgeParams, check_box, check_frame

__all__ = ["SegmentParams", "Segmenter", "segment", "check_points", "default_weights"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = "clickseg"


def default_weights() -> Path:
    return WEIGHTS_DIR / f"{DEFAULT_WEIGHTS}.pt"


@dataclasses.dataclass
class SegmentParams(EdgeParams):
    """Options of box/click-to-mask segmentation."""

    weights: str = ""  # weight file or committed name; empty: the committed default
    zoom_in: bool = True  # clicks only: a second pass zoomed on the first mask
    threshold: float = 0.5  # probability above which a pixel is the object
    edge_radius: float = 1.5  # in stride-4 cells of the crop (as RTS)
    runtime: str = "auto"  # the network: auto (ONNX Runtime if installed) | onnx | torch


def check_points(points: Any, labels: Any, shape: Sequence[int],
                 what: str = "point") -> list[tuple[float, float, bool]]:
    """Validate clicks ``points`` [(x, y), ...] with ``labels`` (1 object, 0 background;
    default all 1) inside a frame of ``shape``; returns [(x, y, positive)]."""
    if points is None:
        return []
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return []
    if pts.ndim == 1:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise InputError(f"{what}s must be pairs of numbers x,y, got {points!r}")
    labs = np.ones(len(pts), int) if labels is None else np.asarray(labels).reshape(-1)
    if len(labs) != len(pts):
        raise InputError(f"{len(pts)} {what}s but {len(labs)} labels: give one label per {what}")
    H, W = int(shape[0]), int(shape[1])
    out = []
    for (x, y), lab in zip(pts, labs, strict=True):
        if not (0 <= x < W and 0 <= y < H):
            raise InputError(f"{what} {x:g},{y:g} lies outside the {W}x{H} image")
        if int(lab) not in (0, 1):
            raise InputError(f"{what} {x:g},{y:g}: label {lab} must be 1 (object) or 0 "
                             "(background)")
        out.append((float(x), float(y), bool(int(lab))))
    return out


def _resolve(weights: str) -> Path:
    if not weights:
        p = default_weights()
    else:
        p = Path(weights)
        named = WEIGHTS_DIR / f"{weights.removesuffix('.pt')}.pt"
        if not p.is_file() and "/" not in weights and named.is_file():
            p = named
    if not p.is_file():
        raise InputError(f"segmentation weights '{p}' not found (train them with "
                         "`segtrack train clickseg`, see docs/segment.md)")
    return p


class Segmenter:
    """Box / clicks / mask to a mask with the click-to-mask network (loaded once per process
    and device)."""

    def __init__(self, params: SegmentParams | None = None, device: str = "cpu",
                 **overrides: Any) -> None:
        self.params = apply_overrides(params or SegmentParams(), overrides, what="the segmenter")
        self.params.check_edges()
        if not 0.0 < self.params.threshold < 1.0:
            raise InputError(f"parameter 'threshold': {self.params.threshold} must be in (0, 1)")
        import torch

        from segtrack.models.clickseg import ClickSegGraph, load_clickseg
        from segtrack.models.shared import shared
        from segtrack.runtime import frozen, resolve_runtime

        path = _resolve(self.params.weights)
        self.device = device
        self.net = shared(("clickseg", str(path.resolve()), device),
                          lambda: load_clickseg(path, device))
        self.size = S = int(self.net.cfg.size)
        rt = resolve_runtime(self.params.runtime, device)
        self.graph = shared(
            ("clickseg-graph", str(path.resolve()), device, rt),
            lambda: frozen(ClickSegGraph(self.net).eval(), f"clickseg-{S}",
                           [torch.zeros(1, S, S, 3, dtype=torch.uint8),
                            torch.zeros(1, 4, S, S)], ["image", "guide"], runtime=rt,
                           device=device))

    # -- one pass ------------------------------------------------------------------------------
    def _run(self, image: np.ndarray, r: Region, clicks, prev: np.ndarray | None,
             box: tuple[float, ...] | None) -> np.ndarray:
        import torch

        S, cfg = self.size, self.net.cfg
        img = crop(image, r, S)
        cl = [(*r.to_crop(x, y, S), pos) for x, y, pos in clicks]
        pc = crop(prev.astype(np.float32), r, S, fill=0.0) if prev is not None else None
        cb = None
        if box is not None:
            s = S / r.side
            x, y, w, h = box
            cb = ((x - r.x0) * s, (y - r.y0) * s, (x + w - r.x0) * s, (y + h - r.y0) * s)
        g = guide_maps(S, cl, cfg.disk_radius, pc, cb)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(img))[None].to(self.device)
            prob = self.graph(x, torch.from_numpy(g)[None].to(self.device))
            prob = prob[0].float().cpu().numpy()
        return paste(prob, r, image.shape[:2])

    # -- one interaction -----------------------------------------------------------------------
    def predict(self, image: Any, box: Any = None, points: Any = None, labels: Any = None,
                mask: Any = None) -> np.ndarray:
        """Object probabilities (H, W) float32 of ``image`` given a box ``(x, y, w, h)``,
        clicks ``points`` [(x, y)] with ``labels`` (1 object, 0 background) and/or the current
        ``mask`` (bool or probabilities) to correct."""
        image = check_frame(image, "image")
        H, W = image.shape[:2]
        clicks = check_points(points, labels, (H, W))
        ubox = check_box(box, (H, W), what="box") if box is not None else None
        prev = None
        if mask is not None:
            prev = np.asarray(mask)
            if prev.ndim != 2:
                raise InputError(f"mask must be a 2-D array, got shape {prev.shape}")
            if prev.shape != (H, W):
                raise InputError(f"mask is {prev.shape[1]}x{prev.shape[0]} but the image is "
                                 f"{W}x{H}")
            prev = prev.astype(np.float32)
            if prev.max(initial=0) > 1:
                prev = (prev > 0).astype(np.float32)
            if not (prev > 0.5).any():
                prev = None
        if ubox is None and not clicks and prev is None:
            raise InputError("nothing to segment: give a box, a click or a mask")
        cfg = self.net.cfg
        if ubox is not None:
            x, y, w, h = ubox
            r = region_around(x, y, x + w, y + h, cfg.box_expand)
        elif prev is not None:
            r = self._zoom(prev > 0.5, clicks)
        else:
            r = whole_image((H, W))
        r = _contain(r, clicks)
        prob = self._run(image, r, clicks, prev, ubox)
        if ubox is None and prev is None and self.params.zoom_in:
            fg = prob > self.params.threshold
            if fg.any():
                r2 = _contain(self._zoom(fg, clicks), clicks)
                if r2.side < 0.8 * r.side:
                    prob = self._run(image, r2, clicks, prob, None)
                    r = r2
        cell = 4.0 * r.cell_px(self.size)
        return self.params.refine(prob, image, cell)

    def segment(self, image: Any, box: Any = None, points: Any = None, labels: Any = None,
                mask: Any = None) -> np.ndarray:
        """The object's bool mask (H, W); see :meth:`predict`."""
        return self.predict(image, box, points, labels, mask) > self.params.threshold

    def _zoom(self, fg: np.ndarray, clicks) -> Region:
        ys, xs = np.nonzero(fg)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1.0, ys.min(), ys.max() + 1.0
        for x, y, _ in clicks:
            x0, x1, y0, y1 = min(x0, x), max(x1, x + 1), min(y0, y), max(y1, y + 1)
        return region_around(x0, y0, x1, y1, self.net.cfg.zoom_expand)


def _contain(r: Region, clicks, margin: int = 8) -> Region:
    """``r`` grown (about its centre) until every click lies ``margin`` pixels inside it."""
    if not clicks:
        return r
    cx, cy = r.x0 + r.side / 2.0, r.y0 + r.side / 2.0
    half = r.side / 2.0
    for x, y, _ in clicks:
        half = max(half, abs(x + 0.5 - cx) + margin, abs(y + 0.5 - cy) + margin)
    side = int(np.ceil(2 * half))
    if side == r.side:
        return r
    return Region(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side)


def segment(image: Any, box: Any = None, points: Any = None, labels: Any = None,
            mask: Any = None, *, device: str = "cpu",
            weights: str | os.PathLike = "", **params: Any) -> np.ndarray:
    """The bool mask (H, W) of the object in ``image`` (RGB uint8 (H, W, 3)) given a box
    ``(x, y, w, h)``, clicks ``points`` [(x, y), ...] with ``labels`` (1 on the object, 0 on
    the background; default all 1) and/or the current ``mask`` to correct.

    Example::

        mask = segtrack.segment(frame, box=(120, 40, 200, 310))
        mask = segtrack.segment(frame, points=[(210, 180), (260, 90)], labels=[1, 0])
    """
    seg = Segmenter(device=device, weights=str(weights), **params)
    return seg.segment(image, box, points, labels, mask)
