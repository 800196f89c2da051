"""The tracker interface every method implements, with input validation done once for all.

A tracker follows ONE object online: ``init(frame, mask=..., box=...)`` on the first frame,
then ``track(frame) -> Prediction`` on each following frame, never looking ahead.
Subclasses implement ``_init`` (always given a non-empty bool mask in frame coordinates, plus the
user's box when there was one) and ``_track``; this base class checks the user's inputs and turns
bad ones into one-line :class:`~segtrack.errors.InputError` messages.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from segtrack.errors import InputError
from segtrack.params import apply_overrides, to_json_dict
from segtrack.types import Prediction


@dataclasses.dataclass
class TrackerParams:
    """Parameters shared by all methods."""

    seed: int = 0
    # how a box becomes the first mask: "segment" (the box- and click-to-mask network),
    # "own" (the method's own box-to-mask step, where it has one) or "box" (the filled box)
    box_init: str = "segment"


BOX_INIT = ("segment", "own", "box")


@dataclasses.dataclass
class EdgeParams:
    """Full-resolution boundary refinement of the methods that segment at a coarse stride
    (:mod:`segtrack.geometry.edges`)."""

    # defaults chosen on held-out DAVIS fold 0 (BENCHMARKS.md, "Boundary refinement")
    edges: bool = True  # re-snap the upsampled mask boundary to the image edges
    edge_radius: float = 1.5  # filter radius, in score cells (frame pixels per cell x this)
    edge_eps: float = 1e-4  # filter regularisation (larger: smoother, closer to bilinear)

    def refine(self, prob: np.ndarray, frame: np.ndarray, cell_px: float) -> np.ndarray:
        """``prob`` (frame-size probabilities pasted from cells of ``cell_px`` frame pixels)
        refined against ``frame`` when ``edges`` is on (in place: ``prob`` is the caller's)."""
        if not self.edges or cell_px <= 1.0:
            return prob
        from segtrack.geometry.edges import guided_refine

        return guided_refine(prob, frame, self.edge_radius * cell_px, self.edge_eps, inplace=True)

    def check_edges(self) -> None:
        if not self.edge_radius > 0:
            raise InputError(f"parameter 'edge_radius': {self.edge_radius} must be > 0")
        if not self.edge_eps > 0:
            raise InputError(f"parameter 'edge_eps': {self.edge_eps} must be > 0")


def check_frame(frame: Any, what: str = "frame") -> np.ndarray:
    """Validate an RGB uint8 ``(H, W, 3)`` frame."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{what} must be a numpy array (H, W, 3), got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 2 or frame.shape[1] < 2:
        raise InputError(f"{what} must have shape (H, W, 3), got {tuple(frame.shape)}")
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating) and frame.size and float(frame.max()) <= 1.0:
            frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
        else:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


def check_mask(mask: Any, frame_shape: tuple[int, int], what: str = "mask") -> np.ndarray:
    """Validate a mask against the frame size; returns a bool array."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] in (1, 3, 4):
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"{what} must be a 2-D array, got shape {tuple(mask.shape)}")
    if mask.shape != tuple(frame_shape):
        raise InputError(
            f"{what} is {mask.shape[1]}x{mask.shape[0]} but the frame is "
            f"{frame_shape[1]}x{frame_shape[0]} (width x height)"
        )
    mask = mask.astype(bool)
    if not mask.any():
        raise InputError(f"{what} is empty: it marks no pixel of the object")
    return mask


def check_box(box: Any, frame_shape: tuple[int, int], what: str = "box") -> tuple[float, ...]:
    """Validate an ``(x, y, w, h)`` box; clip it to the frame; reject boxes outside it."""
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be four numbers x,y,w,h, got {box!r}") from None
    if len(vals) != 4 or not all(np.isfinite(vals)):
        raise InputError(f"{what} must be four finite numbers x,y,w,h, got {box!r}")
    x, y, w, h = vals
    if w <= 0 or h <= 0:
        raise InputError(f"{what} {x:g},{y:g},{w:g},{h:g} has a non-positive width or height")
    H, W = frame_shape
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(W)), min(y + h, float(H))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise InputError(
            f"{what} {x:g},{y:g},{w:g},{h:g} lies outside the {W}x{H} frame"
        )
    return (x0, y0, x1 - x0, y1 - y0)


class Tracker(ABC):
    """One-object online tracker. Use :func:`segtrack.load_tracker` to build one."""

    name: ClassVar[str] = "base"
    Params: ClassVar[type] = TrackerParams
    #: whether the method has learned weights (trained with ``segtrack train``)
    learns: ClassVar[bool] = False

    def __init__(self, params: Any = None, device: str = "cpu", **overrides: Any) -> None:
        self.params = apply_overrides(params if params is not None else self.Params(), overrides,
                                     what=f"method '{self.name}'")
        self.device = device
        self.frame_shape: tuple[int, int] | None = None
        self.frame_index = -1
        how = getattr(self.params, "box_init", "segment")
        if how not in BOX_INIT:
            raise InputError(f"parameter 'box_init': '{how}' is not one of {', '.join(BOX_INIT)}")
        if how == "own" and type(self).own_box_to_mask is Tracker.own_box_to_mask:
            raise InputError(f"parameter 'box_init': method '{self.name}' has no box-to-mask "
                             "step of its own (use segment or box)")

    def params_dict(self) -> dict[str, Any]:
        return {"method": self.name, "device": self.device, **to_json_dict(self.params)}

    # -- public API ---------------------------------------------------------------------------
    def init(self, frame: np.ndarray, mask: Any = None, box: Any = None) -> Prediction:
        """Start tracking the object given by ``mask`` (preferred) or ``box`` in ``frame``."""
        frame = check_frame(frame)
        shape = frame.shape[:2]
        if mask is None and box is None:
            raise InputError("init needs a mask or a box of the object")
        ubox = None
        if box is not None:
            ubox = check_box(box, shape)
        if mask is not None:
            m = check_mask(mask, shape)
        else:
            m = self.box_to_init_mask(frame, ubox)
        self.frame_shape = shape
        self.frame_index = 0
        self._init(frame, m, ubox)
        from segtrack.geometry import mask_to_box, mask_to_rotated_box

        return Prediction(mask=m, box=mask_to_box(m), rotated_box=mask_to_rotated_box(m), score=1.0)

    def track(self, frame: np.ndarray) -> Prediction:
        """Segment the object in the next frame."""
        frame = check_frame(frame)
        self._begin(frame)
        return self._track(frame)

    def _begin(self, frame: np.ndarray) -> None:
        if self.frame_shape is None:
            raise InputError("track() called before init()")
        if frame.shape[:2] != self.frame_shape:
            raise InputError(
                f"frame {self.frame_index + 1} is {frame.shape[1]}x{frame.shape[0]} but the "
                f"first frame was {self.frame_shape[1]}x{self.frame_shape[0]}"
            )
        self.frame_index += 1

    # set by the multi-object runner while other objects are tracked beside this one
    accompanied: bool = False

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """The object's final mask on the frame just tracked, after several objects' overlaps
        were resolved, and ``others``: the pixels the other objects hold there.

        Called by the multi-object runner only where the objects' masks touched (otherwise the
        final mask is the tracker's own). Methods that carry state from frame to frame (the
        previous mask, online memories) take it from the final mask, with the other objects'
        pixels as background, so that an object does not keep learning or propagating pixels
        that went to a neighbour. Default: nothing.
        """
        return None

    @staticmethod
    def track_many(trackers: list[Tracker], frame: np.ndarray) -> list[Prediction]:
        """Track several objects on one frame.  Trackers with equal :meth:`batch_key` share
        their per-frame work (one backbone pass for all their objects, one flow field);
        the predictions are each tracker's own, in order."""
        frame = check_frame(frame)
        for t in trackers:
            t._begin(frame)
        groups: dict[Any, list[int]] = {}
        for i, t in enumerate(trackers):
            groups.setdefault(t.batch_key(), []).append(i)
        out: list[Prediction | None] = [None] * len(trackers)
        for idx in groups.values():
            members = [trackers[i] for i in idx]
            preds = type(members[0])._track_many(members, frame) if len(members) > 1 else \
                [members[0]._track(frame)]
            for i, pr in zip(idx, preds):
                out[i] = pr
        return out  # type: ignore[return-value]

    def batch_key(self) -> Any:
        """Trackers with equal keys can be stepped together by :meth:`_track_many`; the default
        key is the tracker itself (no sharing)."""
        return id(self)

    @classmethod
    def _track_many(cls, trackers: list[Tracker], frame: np.ndarray) -> list[Prediction]:
        """Predictions of several trackers of one batch key on a validated frame."""
        return [t._track(frame) for t in trackers]

    def box_to_init_mask(self, frame: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        """Turn the user's box into the first mask, as ``box_init`` says; the filled box when
        the segmentation finds nothing inside it."""
        from segtrack.geometry import box_to_mask

        how = getattr(self.params, "box_init", "segment")
        m = None
        if how == "own":
            m = self.own_box_to_mask(frame, box)
        elif how == "segment":
            m = segment_box(frame, box, self.device)
        if m is None or not m.any():
            m = box_to_mask(box, frame.shape[:2])
        if not m.any():
            raise InputError(f"box {box} covers no pixel centre of the frame")
        return m

    def own_box_to_mask(self, frame: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        """The method's own box-to-mask step (``box_init=own``); methods that have one
        override this."""
        raise InputError(f"method '{self.name}' has no box-to-mask step of its own")

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _init(self, frame: np.ndarray, mask: np.ndarray, box: tuple[float, ...] | None) -> None:
        """Initialise on a validated frame and non-empty mask."""

    @abstractmethod
    def _track(self, frame: np.ndarray) -> Prediction:
        """Return the prediction for a validated frame."""


def segment_box(frame: np.ndarray, box: tuple[float, ...], device: str = "cpu"
                ) -> np.ndarray | None:
    """The box- and click-to-mask network's mask of the object in ``box``; None (with a
    warning) when its weights are not installed."""
    from segtrack.interactive.segmenter import Segmenter, default_weights

    if not default_weights().is_file():
        import warnings

        warnings.warn("box initialisation: the click-to-mask weights are not installed; "
                      "starting from the filled box", stacklevel=3)
        return None
    return Segmenter(device=device).segment(frame, box=box)


def make_prediction(
    mask: np.ndarray, score: float = 1.0, scores: np.ndarray | None = None, **extra: Any
) -> Prediction:
    """Build a :class:`Prediction` from a mask, deriving the min-max box and the MBR."""
    from segtrack.geometry import mask_to_box, mask_to_rotated_box

    mask = mask.astype(bool, copy=False)
    return Prediction(
        mask=mask,
        box=mask_to_box(mask),
        rotated_box=mask_to_rotated_box(mask),
        score=float(score),
        scores=scores,
        extra=dict(extra),
    )
