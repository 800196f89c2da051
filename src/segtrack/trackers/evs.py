"""``evs``: the EVS pipeline (seed 001, ch. 3, Table 3.2 operating points D, S, W, R) wrapped around
ANY registered tracking method used as the keyframe segmenter.

The base method (``base``, with its own parameters in ``base_params`` = ``"k=v;k=v"``) is
initialised on the first frame downscaled by D and afterwards only sees every S-th frame (the
keyframes), at the same downscale; its per-pixel object probability (``Prediction.scores``, or
its mask) becomes the two-class map ``[1 - p, p]`` that :class:`segtrack.video.evs.EVSPipeline`
propagates with DIS flow in between (W), refined by the Refiner + IAM (R, needs
``refiner_weights``, default ``weights/evs-refiner-davis.pt``).  The propagated probability is
resized to the frame and thresholded at ``threshold``.  ``segtrack track --evs D,S,W,R`` builds
this wrapper around ``--method``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from segtrack.errors import InputError
from segtrack.trackers.base import Tracker, TrackerParams, make_prediction
from segtrack.types import Prediction
from segtrack.video.evs import EVSConfig, EVSPipeline, resize_to


@dataclasses.dataclass
class EVSParams(TrackerParams):
    base: str = "semseg"  # the keyframe segmenter: any registered method
    base_params: str = ""  # its parameters, "key=value;key=value"
    D: float = 0.5
    S: int = 5
    W: bool = True
    R: bool = False
    refiner_weights: str = ""  # "" = weights/evs-refiner-davis.pt
    threshold: float = 0.5
    preset: str = "ultrafast"
    flow: str = "dis"  # the optical flow: dis | flownet | flownet-s | flownet-c


def parse_base_params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in [p for p in str(text or "").split(";") if p.strip()]:
        if "=" not in part:
            raise InputError(f"parameter 'base_params': '{part}' is not key=value")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class EVSTracker(Tracker):
    """Keyframe segmentation by ``base`` at downscale D every S frames, DIS propagation between."""

    name = "evs"
    Params = EVSParams
    learns = True  # the Refiner (``segtrack train evs``)

    def __init__(self, params: EVSParams | None = None, device: str = "cpu", **kw) -> None:
        super().__init__(params, device, **kw)
        p = self.params
        if str(p.base).strip().lower() == "evs":
            raise InputError("parameter 'base': evs cannot wrap itself")
        from segtrack.trackers.registry import load_tracker

        self._base_kw = parse_base_params(p.base_params)
        self.cfg = EVSConfig(D=float(p.D), S=int(p.S), W=bool(p.W), R=bool(p.R),
                             preset=p.preset, flow=p.flow).check()
        load_tracker(p.base, device=device, **self._base_kw)  # fail early on bad base / params
        self.base: Tracker | None = None
        self.pipeline: EVSPipeline | None = None

    @property
    def base_calls(self) -> int:
        """How many times the base method segmented a frame (keyframes after the first)."""
        return 0 if self.pipeline is None else self.pipeline.segment_calls

    def _segment(self, small: np.ndarray) -> np.ndarray:
        pred = self.base.track(small)
        p = pred.scores if pred.scores is not None else pred.mask.astype(np.float32)
        p = np.clip(np.asarray(p, np.float32), 0.0, 1.0)
        return np.stack([1.0 - p, p], -1)

    def _init(self, frame, mask, box) -> None:
        from segtrack.trackers.registry import load_tracker

        p = self.params
        refiner = None
        if self.cfg.R:
            from segtrack.models.refiner import load_refiner
            from segtrack.models.semseg import resolve_weights

            refiner = load_refiner(resolve_weights(p.refiner_weights, "evs-refiner-davis"),
                                   self.device)
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = EVSPipeline(self._segment, self.cfg, refiner)
        small_size = self.pipeline.small_shape(*frame.shape[:2])
        small = resize_to(frame, small_size)
        m = cv2.resize(mask.astype(np.float32), (small_size[1], small_size[0]),
                       interpolation=cv2.INTER_AREA)
        small_mask = m >= 0.5
        if not small_mask.any():  # a tiny object: keep its most covered pixel
            small_mask = m >= m.max()
        self.base = load_tracker(p.base, device=self.device, **self._base_kw)
        self.base.init(small, mask=small_mask)
        self.pipeline.start(frame, np.stack([1.0 - m, m], -1).astype(np.float32))

    def _track(self, frame) -> Prediction:
        probs = self.pipeline.step(frame)
        H, W = self.frame_shape
        full = cv2.resize(probs[..., 1], (W, H), interpolation=cv2.INTER_LINEAR)
        mask = full > self.params.threshold
        score = float(1.0 - self.pipeline.last_unreliable) if mask.any() else 0.0
        return make_prediction(mask, score=score, scores=full,
                               keyframe=self.pipeline.index % self.cfg.S == 0)
