"""Multi-object tracking: one single-object tracker per object, overlaps resolved jointly.

Objects of one method share the per-frame work their trackers allow (``Tracker.track_many``:
one batched backbone pass for crop-based methods, one feature / flow computation for the
methods that look at the whole frame).

Objects may start on any frame (``add``). After every frame each pixel claimed by several
objects goes to the object with the highest soft score there (the per-pixel probability where
the method has one, else its frame score; the probabilities are compared normalised together
with the background, :func:`soft_aggregate`), so the label map gives every pixel one label.
Each tracker is then told its final mask and the pixels the others hold
(:meth:`MultiObjectTracker.feedback`), so that what it carries to the next frame (previous mask,
online memories) excludes its neighbours: an object that disappears behind another is not
continued on the other's pixels.
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
        for t in self.trackers.values():
            t.accompanied = len(self.trackers) > 1
        preds = Tracker.track_many([self.trackers[k] for k in ids], frame)
        return dict(zip(ids, preds))

    def feedback(self, own: dict[int, Prediction], final: dict[int, Prediction],
                 labels: np.ndarray) -> None:
        """Tell each tracker its final mask (after :func:`resolve_overlaps`) where it changed:
        ``own`` are the trackers' predictions, ``final`` and ``labels`` the resolved ones."""
        with stage("feedback"):
            for k, p in own.items():
                f = final.get(k)
                if f is None or k not in self.trackers or f is p:
                    continue
                others = (labels != 0) & (labels != k)
                self.trackers[k].feedback(f.mask, others)

    def resolve(self, tracked: dict[int, Prediction], preds: dict[int, Prediction],
                shape: tuple[int, int]) -> tuple[dict[int, Prediction], np.ndarray]:
        """The frame's final masks: :func:`resolve_overlaps` over ``preds`` (``tracked`` plus
        the objects started on this frame); each tracked object's tracker is told its final
        mask (:meth:`feedback`)."""
        final, labels = resolve_overlaps(preds, shape)
        self.feedback(tracked, final, labels)
        return final, labels

    def step(self, frame: np.ndarray, skip: set[int] | None = None
             ) -> tuple[dict[int, Prediction], np.ndarray]:
        """:meth:`track` and :meth:`resolve` in one call."""
        own = self.track(frame, skip=skip)
        return self.resolve(own, own, frame.shape[:2])


def soft_aggregate(probs: list[np.ndarray]) -> np.ndarray:
    """Background and K objects' probabilities normalised together (LWL / STM soft aggregation).

    ``probs`` are the objects' own foreground probabilities (each independent of the others);
    returns ``(K + 1, H, W)`` float32, background first, summing to one at every pixel:
    ``P_k = o_k / (1 + sum_j o_j)`` with the odds ``o_k = p_k / (1 - p_k)``. The order of the
    objects at a pixel is that of their own probabilities, so an object never loses a pixel to
    one with a lower probability there.
    """
    eps = 1e-6
    p = np.clip(np.stack([np.asarray(q, np.float32) for q in probs]), eps, 1.0 - eps)
    odds = p / (1.0 - p)
    total = 1.0 + odds.sum(axis=0)
    return np.concatenate([(1.0 / total)[None], odds / total[None]]).astype(np.float32)


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
    # the objects' probabilities normalised together with the background; a pixel claimed by
    # several masks goes to the claimant with the highest joint probability there (methods
    # without per-pixel probabilities count with their frame score)
    own = [preds[k].scores if preds[k].scores is not None
           else np.full(shape, preds[k].score, np.float32) for k in ids]
    joint = soft_aggregate(own)
    best = np.full(shape, -np.inf, np.float32)
    for i, k in enumerate(ids):
        p = preds[k]
        s = np.where(p.mask, joint[i + 1] + 1e-6 * p.score, -np.inf)
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
