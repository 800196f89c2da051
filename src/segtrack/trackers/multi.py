"""Multi-object tracking: one single-object tracker per object, overlaps resolved by score.

Objects of one method share the per-frame work their trackers allow (``Tracker.track_many``:
one batched backbone pass for crop-based methods, one feature / flow computation for the
methods that look at the whole frame).

Objects may start on any frame (``add``). After every frame each pixel claimed by several
objects goes to the object with the highest soft score there (the per-pixel probability where the
method has one, else its frame score), so the label map gives every pixel one label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from segtrack.errors import InputError
from segtrack.profiling import stage
from segtrack.trackers.base import Tracker, make_prediction
from segtrack.types import Prediction


class MultiObjectTracker:
    """Runs one tracker per object id; ``step(frame)`` returns predictions and a label map."""

    def __init__(self, factory: Callable[[], Tracker]) -> None:
        self._factory = factory
        self.trackers: dict[int, Tracker] = {}

    def add(self, obj_id: int, frame: np.ndarray, mask: Any = None, box: Any = None) -> Prediction:
        """Start tracking object ``obj_id`` (1..255) from ``frame``."""
        if not 1 <= int(obj_id) <= 255:
            raise InputError(f"object id {obj_id} must be in 1..255")
        if obj_id in self.trackers:
            raise InputError(f"object id {obj_id} is already tracked")
        tracker = self._factory()
        pred = tracker.init(frame, mask=mask, box=box)
        self.trackers[int(obj_id)] = tracker
        return pred

    def track(self, frame: np.ndarray, skip: set[int] | None = None) -> dict[int, Prediction]:
        """Track every object not in ``skip`` (objects just added on this frame)."""
        skip = skip or set()
        ids = [k for k in self.trackers if k not in skip]
        if not ids:
            return {}
        preds = Tracker.track_many([self.trackers[k] for k in ids], frame)
        return dict(zip(ids, preds))


def resolve_overlaps(
    preds: dict[int, Prediction], shape: tuple[int, int]
) -> tuple[dict[int, Prediction], np.ndarray]:
    """Give every pixel at most one object: the one with the highest score there.

    Returns the updated predictions (masks, boxes recomputed where they changed) and the uint8
    label map (0 = background, k = object k).
    """
    with stage("overlap"):
        return _resolve(preds, shape)


def _resolve(preds: dict[int, Prediction], shape: tuple[int, int],
             ) -> tuple[dict[int, Prediction], np.ndarray]:
    labels = np.zeros(shape, np.uint8)
    if not preds:
        return preds, labels
    ids = sorted(preds)
    if len(ids) == 1:
        k = ids[0]
        labels[preds[k].mask] = k
        return preds, labels
    best = np.full(shape, -np.inf, np.float32)
    for k in ids:
        p = preds[k]
        s = p.scores if p.scores is not None else np.full(shape, p.score, np.float32)
        s = np.where(p.mask, s.astype(np.float32) + 1e-6 * p.score, -np.inf)
        win = s > best
        labels[win] = k
        best = np.where(win, s, best)
    out: dict[int, Prediction] = {}
    for k in ids:
        p = preds[k]
        m = labels == k
        if np.array_equal(m, p.mask):
            out[k] = p
        else:
            out[k] = make_prediction(m, score=p.score, scores=p.scores, **p.extra)
    return out, labels
