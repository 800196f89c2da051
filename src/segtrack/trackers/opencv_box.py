"""``csrt`` and ``kcf``: OpenCV's correlation-filter box trackers, as baselines of box tracking.

They are not seed systems: they are the box trackers a user can already run (CSRT, Lukezic et
al. 2017; KCF, Henriques et al. 2015, both in OpenCV's contrib modules), measured in the same
``segtrack bench --dataset ope`` run as the methods that segment.  They follow a box only: the
mask they report is the filled box and the rotated box its four corners.  A mask or clicks
become their min-max box.  When OpenCV reports a failure the last box is kept and the score is
0, so ``boxes.json`` marks the frame as lost.

They need the OpenCV build with the contrib modules (``opencv-contrib-python-headless``, which
replaces ``opencv-python-headless``); without it, choosing them is a one-line error.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from segtrack.errors import InputError
from segtrack.trackers.base import Tracker, TrackerParams
from segtrack.types import Prediction

CONTRIB_HINT = ("it needs OpenCV's contrib modules: pip uninstall -y opencv-python-headless && "
                "pip install opencv-contrib-python-headless")


def _factory(kind: str) -> Any:
    import cv2

    make = getattr(cv2, f"Tracker{kind}_create", None)
    if make is None and hasattr(cv2, "legacy"):
        make = getattr(cv2.legacy, f"Tracker{kind}_create", None)
    return make


def box_prediction(box: tuple[float, float, float, float], shape: tuple[int, int],
                   score: float) -> Prediction:
    """A box tracker's prediction: the box, its corners as the rotated box, the filled box as
    the mask."""
    from segtrack.geometry import box_to_mask

    x, y, w, h = (float(v) for v in box)
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    return Prediction(mask=box_to_mask((x, y, w, h), shape), box=(x, y, w, h),
                      rotated_box=corners, score=float(score))


@dataclasses.dataclass
class OpenCVBoxParams(TrackerParams):
    box_init: str = "box"  # a box tracker starts from the box itself


class OpenCVBoxTracker(Tracker):
    """One of OpenCV's box trackers (``kind`` = ``CSRT`` or ``KCF``)."""

    kind: ClassVar[str] = "CSRT"
    Params = OpenCVBoxParams

    def __init__(self, params: Any = None, device: str = "cpu", **overrides: Any) -> None:
        super().__init__(params, device, **overrides)
        if _factory(self.kind) is None:
            raise InputError(f"method '{self.name}': {CONTRIB_HINT}")

    def box_to_init_mask(self, frame: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        from segtrack.geometry import box_to_mask

        m = box_to_mask(box, frame.shape[:2])
        if not m.any():
            raise InputError(f"box {box} covers no pixel centre of the frame")
        return m

    def _init(self, frame: np.ndarray, mask: np.ndarray, box: tuple[float, ...] | None) -> None:
        import cv2

        from segtrack.geometry import mask_to_box

        x, y, w, h = box if box is not None else mask_to_box(mask)
        self._box = (float(x), float(y), float(w), float(h))
        self._cv = _factory(self.kind)()
        r = (int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h))))
        self._cv.init(np.ascontiguousarray(frame[..., ::-1]), r)
        cv2.setRNGSeed(int(self.params.seed))

    def _track(self, frame: np.ndarray) -> Prediction:
        ok, r = self._cv.update(np.ascontiguousarray(frame[..., ::-1]))
        score = 0.0
        if ok and r[2] > 0 and r[3] > 0:
            self._box = tuple(float(v) for v in r)
            score = 1.0
        return box_prediction(self._box, frame.shape[:2], score)


class CSRTTracker(OpenCVBoxTracker):
    """OpenCV's CSRT (discriminative correlation filter with channel and spatial reliability)."""

    name = "csrt"
    kind = "CSRT"


class KCFTracker(OpenCVBoxTracker):
    """OpenCV's KCF (kernelized correlation filter)."""

    name = "kcf"
    kind = "KCF"
