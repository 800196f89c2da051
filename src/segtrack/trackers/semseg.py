"""``semseg`` and ``lmanet``: object tracking with a per-frame semantic segmenter (seed 001,
§3.3.2 / ch. 4), the keyframe segmenter EVS wraps.

The segmenter (:mod:`segtrack.models.semseg`) knows classes, not instances: on the first frame the
tracked object's class is the non-background class with the highest mean probability inside the
given mask (class 1 for the 2-class DAVIS foreground model); on every later frame the object is
that class's probability map thresholded at 0.5, optionally restricted to the connected
components that touch the previous mask dilated by ``keep_near`` pixels (0 = off). Beside other
objects, each object's map is weighted by the distance prior of
:mod:`segtrack.trackers.nearness` (a departure: the seed tracks one object), and the objects
share one segmenter pass per frame.
``lmanet`` is the same with the Local Memory Attention modules of ch. 4
(:mod:`segtrack.models.lmanet`): the memory holds the encoder keys/values of the previous L-1
frames.  Defaults: ``weights/semseg-davis.pt`` (DAVIS foreground) and ``weights/lmanet-davis.pt``
(its LMANet, trained on DAVIS without fold 0; ``weights=lmanet-synth`` is the multi-class model
of the synthetic videos).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from segtrack.models.shared import shared
from segtrack.profiling import stage
from segtrack.trackers.base import Tracker, TrackerParams, make_prediction
from segtrack.trackers.nearness import NearParams, NearPrior
from segtrack.types import Prediction


@dataclasses.dataclass
class SemSegParams(TrackerParams, NearParams):
    weights: str = ""  # "" = weights/semseg-davis.pt (lmanet: weights/lmanet-davis.pt)
    threshold: float = 0.5
    keep_near: int = 0  # keep components within this many pixels of the previous mask (0 = off)
    runtime: str = "auto"  # frozen networks: auto (ONNX Runtime if installed) | onnx | torch


class SemSegTracker(Tracker):
    """Per-frame semantic segmentation, class of the initial mask."""

    name = "semseg"
    Params = SemSegParams
    learns = True
    default_weights = "semseg-davis"

    def _load(self):
        from segtrack.models.semseg import load_semseg, resolve_weights

        return load_semseg(resolve_weights(self.params.weights, self.default_weights),
                           self.device)

    def _probs(self, frame: np.ndarray) -> np.ndarray:
        from segtrack.models.semseg import predict_probs

        with stage("backbone"):
            return predict_probs(self.model, frame, self.device, net=self.graph)

    def _init(self, frame, mask, box) -> None:
        from segtrack.models.semseg import SemSegGraph
        from segtrack.runtime import LazyFrozen

        self.model = self._load()
        w = self.params.weights or self.default_weights
        self.graph = shared(("semseg-graph", w, self.params.runtime, self.device),
                            lambda: LazyFrozen(SemSegGraph(self.model), f"semseg-{Path(w).stem}",
                                               ["image"], self.params.runtime, self.device))
        probs = self._probs(frame)
        if probs.shape[0] == 2:
            self.cls = 1
        else:
            means = [float(probs[c][mask].mean()) for c in range(1, probs.shape[0])]
            self.cls = 1 + int(np.argmax(means))
        self.near = NearPrior(mask)  # also the previous mask of keep_near

    def batch_key(self):
        """Objects of one segmenter share the frame's probabilities (one network pass)."""
        return ("semseg", self.params.weights or self.default_weights, self.params.runtime,
                self.device)

    @classmethod
    def _track_many(cls, trackers: list[SemSegTracker], frame) -> list[Prediction]:
        probs = trackers[0]._probs(frame)
        return [t._track(frame, probs) for t in trackers]

    def _track(self, frame, probs: np.ndarray | None = None) -> Prediction:
        p = (self._probs(frame) if probs is None else probs)[self.cls]
        if self.accompanied:
            p = self.near(p, self.params.near_scale)
        mask = p > self.params.threshold
        k = int(self.params.keep_near)
        if k > 0 and mask.any() and self.near.prev.any():
            near = cv2.dilate(self.near.prev.astype(np.uint8),
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2))
            n, lab = cv2.connectedComponents(mask.astype(np.uint8))
            keep = np.unique(lab[(near > 0) & mask])
            mask = np.isin(lab, keep[keep > 0])
        self.near.update(mask)
        score = float(p[mask].mean()) if mask.any() else 0.0
        return make_prediction(mask, score=score, scores=p.astype(np.float32))

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """The next frame's distance prior starts from the mask left after the overlaps."""
        self.near.revise(mask)


class LMANetTracker(SemSegTracker):
    """``semseg`` with the LMANet memory (seed 001, ch. 4)."""

    name = "lmanet"
    default_weights = "lmanet-davis"

    def _load(self):
        from segtrack.models.lmanet import load_lmanet
        from segtrack.models.semseg import resolve_weights

        return load_lmanet(resolve_weights(self.params.weights, self.default_weights),
                           self.device)

    def _init(self, frame, mask, box) -> None:
        from segtrack.models.lmanet import LMAState

        self.model = self._load()
        self.state = LMAState(self.model, self.device)
        super_probs = self.state.step(frame)
        self.cls = 1 if super_probs.shape[0] == 2 else 1 + int(np.argmax(
            [float(super_probs[c][mask].mean()) for c in range(1, super_probs.shape[0])]))
        self.near = NearPrior(mask)  # also the previous mask of keep_near

    def _probs(self, frame: np.ndarray) -> np.ndarray:
        return self.state.step(frame)

    def batch_key(self):
        """Each object's memory holds the frames since it started: no sharing."""
        return id(self)
