"""``flow``: label propagation with DIS optical flow (seed 001, §3.3.3, Eq. 3.1-3.3).

The previous frame's object probability is carried to the current frame by *backward warping*:
DIS flow is computed from the current frame I_t to the previous one I_{t-1}, so every pixel x of
I_t looks up ``P_{t-1}(x + F^{t->t-1}(x))`` (Eq. 3.2; nearest-neighbour in the seed, bilinear
here as an option). A forward-backward consistency check (the label test of Eq. 3.3) marks the
pixels where the flow is unreliable: the propagated labels L_F are warped back to I_{t-1} with the
forward flow and forward again; where the result L_BF differs from L_F the pixel is unreliable.
Unreliable pixels are exposed in ``Prediction.extra["unreliable"]`` and lower the score; with
``smooth_unreliable`` they take the majority label of their neighbourhood (a median filter), a
cheap stand-in for the seed's Refiner (which belongs to the EVS issue).

Departures from the seed: flow is computed at ``scale`` of the frame (default 1.0; 0.5 doubles
the speed at some accuracy cost, see BENCHMARKS.md); the DIS operating point is OpenCV's
ULTRAFAST preset (the seed uses a similar fast point: no variational refinement, patch 8,
12 iterations); ``flow=flownet`` replaces DIS by the trained FlowNet of seed 002
(:mod:`segtrack.video.optical_flow`).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from segtrack.profiling import stage
from segtrack.trackers.base import Tracker, TrackerParams, make_prediction
from segtrack.types import Prediction


@dataclasses.dataclass
class FlowParams(TrackerParams):
    scale: float = 1.0  # resolution at which flow is computed, relative to the frame
    flow: str = "dis"  # the optical flow: dis | flownet | flownet-s | flownet-c
    flow_weights: str = ""  # FlowNet weights ("" = the committed ones)
    preset: str = "ultrafast"  # DIS operating point: ultrafast | fast | medium
    interpolation: str = "linear"  # warping of the soft mask: nearest (seed Eq. 3.2) | linear
    fb_check: bool = True  # forward-backward consistency check (Eq. 3.3)
    smooth_unreliable: bool = False  # median-filter labels on unreliable pixels (measured worse)
    smooth_ksize: int = 5
    threshold: float = 0.5  # probability above which a pixel is object
    # DIS overrides on top of the preset (-1 = keep the preset's value)
    finest_scale: int = -1
    patch_size: int = -1
    patch_stride: int = -1
    grad_iters: int = -1
    var_iters: int = -1  # variational refinement iterations (0 = off)


def warp_backward(values: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
    """Sample ``values`` (of the source frame) at ``x + flow(x)`` for every target pixel x."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = gx + flow[..., 0]
    map_y = gy + flow[..., 1]
    return cv2.remap(values, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


class FlowTracker(Tracker):
    """Propagates the first mask frame to frame with DIS optical flow."""

    name = "flow"
    Params = FlowParams

    def __init__(self, params: FlowParams | None = None, device: str = "cpu", **kw) -> None:
        super().__init__(params, device, **kw)
        p = self.params
        from segtrack.errors import InputError

        if p.interpolation not in ("nearest", "linear"):
            raise InputError(f"--param interpolation={p.interpolation}: expected nearest or "
                             "linear")
        from segtrack.video.optical_flow import make_flow_estimator, needs_colour

        self._colour = needs_colour(p.flow)
        self._est = make_flow_estimator(
            p.flow, p.preset, p.flow_weights, device, finest_scale=p.finest_scale,
            patch_size=p.patch_size, patch_stride=p.patch_stride, grad_iters=p.grad_iters,
            var_iters=p.var_iters)
        self._interp = cv2.INTER_NEAREST if p.interpolation == "nearest" else cv2.INTER_LINEAR
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """Pixels that went to another object are not carried to the next frame."""
        if getattr(self, "_prob", None) is None:
            return
        h, w = self._prob.shape[:2]
        o = cv2.resize(others.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        self._prob = np.where(o, 0.0, self._prob).astype(np.float32)

    def _small(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the flow estimator sees it: at ``scale``, grey for DIS."""
        img = frame if self._colour else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self._small_size != (img.shape[1], img.shape[0]):
            img = cv2.resize(img, self._small_size, interpolation=cv2.INTER_AREA)
        return img

    def _init(self, frame, mask, box) -> None:
        h, w = frame.shape[:2]
        s = float(self.params.scale)
        self._small_size = (max(8, round(w * s)), max(8, round(h * s)))
        self._prev = self._small(frame)
        self._prob = cv2.resize(
            mask.astype(np.float32), self._small_size, interpolation=cv2.INTER_AREA
        )
        sw, sh = self._small_size
        gx, gy = np.meshgrid(np.arange(sw, dtype=np.float32), np.arange(sh, dtype=np.float32))
        self._grid = (gx, gy)

    def _remap(self, values: np.ndarray, flow: np.ndarray, interp: int) -> np.ndarray:
        gx, gy = self._grid
        return cv2.remap(
            values, gx + flow[..., 0], gy + flow[..., 1], interp, borderMode=cv2.BORDER_REPLICATE
        )

    def batch_key(self):
        # every tracked object's previous frame is the previous frame of the video, so objects
        # with the same settings share the flow fields
        return ("flow", dataclasses.astuple(self.params), self._small_size)

    def _flows(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(backward flow, forward flow or None) between the previous frame and ``gray``."""
        # backward flow: for each pixel of the current frame, where it was in the previous one
        back = self._est.calc(gray, self._prev)
        fwd = self._est.calc(self._prev, gray) if self.params.fb_check else None
        return back, fwd

    @classmethod
    def _track_many(cls, trackers: list[FlowTracker], frame) -> list[Prediction]:
        """One flow computation for every object (they share the previous frame)."""
        first = trackers[0]
        gray = first._small(frame)
        with stage("flow"):
            flows = first._flows(gray)
        return [t._propagate(frame, gray, flows) for t in trackers]

    def _track(self, frame) -> Prediction:
        gray = self._small(frame)
        with stage("flow"):
            flows = self._flows(gray)
        return self._propagate(frame, gray, flows)

    def _propagate(self, frame, gray: np.ndarray, flows) -> Prediction:
        p = self.params
        flow_back, flow_fwd = flows
        prob = self._remap(self._prob, flow_back, self._interp)
        labels = (prob > p.threshold).astype(np.uint8)
        unreliable = None
        frac_unreliable = 0.0
        if p.fb_check:
            back = self._remap(labels, flow_fwd, cv2.INTER_NEAREST)  # L_F warped to t-1
            labels_bf = self._remap(back, flow_back, cv2.INTER_NEAREST)  # and forward again
            unreliable = labels_bf != labels  # Eq. 3.3
            n_obj = max(int(labels.sum()), 1)
            frac_unreliable = float(unreliable.sum()) / n_obj
            if p.smooth_unreliable and unreliable.any():
                k = int(p.smooth_ksize) | 1
                smooth = cv2.medianBlur(labels * 255, k) > 127
                labels = np.where(unreliable, smooth, labels.astype(bool)).astype(np.uint8)
                prob = np.where(unreliable, labels.astype(np.float32), prob)
        self._prev = gray
        self._prob = prob.astype(np.float32)
        H, W = self.frame_shape
        full = cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR)
        mask = full > p.threshold
        score = float(np.clip(1.0 - frac_unreliable, 0.0, 1.0)) if mask.any() else 0.0
        extra = {}
        if unreliable is not None:
            extra["unreliable"] = unreliable
        return make_prediction(mask, score=score, scores=full, **extra)
