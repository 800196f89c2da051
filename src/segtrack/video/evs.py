"""EVS: Efficient Video Segmentation around any per-frame segmenter (seed 001, ch. 3, §3.3).

Operating point ``(D, S, W, R)`` (Table 3.2):

* **D** - downscale factor of the frames given to the segmenter (and of the propagated maps);
* **S** - the segmenter runs on every S-th frame only (keyframes);
* **W** - in between, the class probabilities P and the low-level features are *warped* with
  DIS optical flow (Eq. 3.1-3.2, backward warping, :func:`warp_probs`); without W the last
  keyframe's prediction is simply held (Table 3.2's W = ✗ rows).  The flow is computed on a
  worker thread (OpenCV releases the GIL), overlapping with the torch work of the main thread;
* **R** - the Refiner (:mod:`segtrack.models.refiner`: a shallow network reusing the warped
  low-level features) and the Inconsistencies Attention Module: the forward-backward label
  inconsistency map M_i (Eq. 3.3, :func:`inconsistency_map`), dilated and smoothed
  (:func:`iam_attention`), blends refiner and warped probabilities (Eq. 3.4, :func:`blend_iam`).

:class:`EVSPipeline` is the online engine on class-probability maps: ``step(frame)`` returns the
(h, w, C) probabilities of a frame at the D resolution.  The object-tracking wrapper around any
registered method is :class:`segtrack.trackers.evs.EVSTracker`.

Departures from the thesis (see docs/evs_lmanet.md): the flow is computed at the D resolution
(the resolution of the propagated maps) rather than at full resolution; warping is bilinear on
probabilities (nearest on labels, as Eq. 3.2, for the IAM); in the online API the worker thread
overlaps flow with the Refiner's image branch (the thesis also overlaps the flows of the next
frames with the keyframe network, which needs look-ahead the online tracker does not have).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from segtrack.errors import InputError
from segtrack.trackers.flow import warp_backward
from segtrack.video.optical_flow import DIS_PRESETS, check_flow, make_flow_estimator


@dataclasses.dataclass
class EVSConfig:
    D: float = 1.0  # downscale factor of the segmenter input
    S: int = 1  # keyframe interval
    W: bool = True  # warp with optical flow between keyframes (else hold)
    R: bool = False  # Refiner + IAM on non-keyframes
    preset: str = "ultrafast"  # DIS operating point
    flow: str = "dis"  # the optical flow: dis | flownet | flownet-s | flownet-c
    iam_dilate: int = 5  # IAM dilation kernel (pixels at the D resolution)
    iam_blur: int = 9  # IAM Gaussian smoothing kernel (odd)

    def check(self) -> EVSConfig:
        if not 0.05 <= float(self.D) <= 1.0:
            raise InputError(f"EVS D={self.D}: the downscale factor must be in [0.05, 1]")
        if int(self.S) < 1:
            raise InputError(f"EVS S={self.S}: the keyframe interval must be >= 1")
        if self.preset not in DIS_PRESETS:
            raise InputError(f"EVS preset '{self.preset}': use one of {', '.join(DIS_PRESETS)}")
        self.flow = check_flow(self.flow)
        return self


def parse_evs_spec(text: str) -> dict[str, Any]:
    """``"D,S,W,R"`` (e.g. ``"0.5,10,1,0"``) -> ``{"D": 0.5, "S": 10, "W": True, "R": False}``."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise InputError(f"--evs '{text}': expected four values D,S,W,R (e.g. 0.5,10,1,0)")
    try:
        D, S = float(parts[0]), int(parts[1])
        flags = []
        for p in parts[2:]:
            low = p.lower()
            if low not in ("0", "1", "true", "false", "yes", "no", "y", "n"):
                raise ValueError(p)
            flags.append(low in ("1", "true", "yes", "y"))
    except ValueError:
        raise InputError(f"--evs '{text}': D must be a number, S an integer, W and R 0 or 1") \
            from None
    EVSConfig(D=D, S=S).check()
    return {"D": D, "S": S, "W": flags[0], "R": flags[1]}


# ---------------------------------------------------------------------------------------------
# Eq. 3.1-3.4


def warp_probs(values: np.ndarray, flow_back: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Backward-warp ``values`` (h, w[, C]) of the previous frame to the current one.

    ``flow_back`` is the flow from the current frame to the previous one: the current pixel x
    takes the previous value at ``x + flow_back(x)`` (Eq. 3.1-3.2).
    """
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    if values.ndim == 3 and values.shape[2] > 4:  # remap handles any channel count, but in chunks
        return np.concatenate(
            [warp_backward(values[..., i: i + 4], flow_back, interp).reshape(
                *flow_back.shape[:2], -1) for i in range(0, values.shape[2], 4)], axis=2)
    return warp_backward(values, flow_back, interp)


def inconsistency_map(labels_f: np.ndarray, flow_fwd: np.ndarray,
                      flow_back: np.ndarray) -> np.ndarray:
    """M_i of Eq. 3.3: 1.0 where L_F differs from L_BF, else 0.0 (float32, shape of labels).

    ``labels_f`` (L_F) are the current frame's labels obtained by warping forward; they are warped
    back to the previous frame with ``flow_fwd`` (previous -> current) and forward again with
    ``flow_back`` (current -> previous), giving L_BF (nearest-neighbour, Eq. 3.2).
    """
    lab = np.ascontiguousarray(labels_f.astype(np.uint8))
    back = warp_probs(lab, flow_fwd, nearest=True)
    labels_bf = warp_probs(back, flow_back, nearest=True)
    return (labels_bf != lab).astype(np.float32)


def iam_attention(m: np.ndarray, dilate: int = 5, blur: int = 9) -> np.ndarray:
    """The IAM's second step: dilate and smooth the binary map M_i; stays 1 on M_i's pixels."""
    out = m.astype(np.float32)
    if not out.any():
        return out
    if dilate > 1:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(dilate), int(dilate)))
        out = cv2.dilate(out, k)
    if blur > 1:
        b = int(blur) | 1
        out = cv2.GaussianBlur(out, (b, b), 0)
    return np.clip(np.maximum(out, m.astype(np.float32)), 0.0, 1.0)


def blend_iam(m: np.ndarray, p_refiner: np.ndarray, p_warped: np.ndarray) -> np.ndarray:
    """Eq. 3.4: P_refined = M_i o P_refiner + (1 - M_i) o P_warped (``m`` (h, w), P (h, w, C))."""
    mm = m[..., None] if p_refiner.ndim == 3 else m
    return mm * p_refiner + (1.0 - mm) * p_warped


# ---------------------------------------------------------------------------------------------
# the online engine


def resize_to(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize to ``size`` = (h, w) (INTER_AREA when shrinking, nearest for labels)."""
    if image.shape[:2] == tuple(size):
        return image
    interp = cv2.INTER_NEAREST if nearest else (
        cv2.INTER_AREA if size[0] < image.shape[0] else cv2.INTER_LINEAR)
    return cv2.resize(image, (size[1], size[0]), interpolation=interp)


class EVSPipeline:
    """Keyframe segmentation + flow propagation (+ Refiner/IAM) on class probabilities.

    Args:
        segment: ``segment(frame_small) -> (h, w, C) float32 probabilities`` of an RGB frame at
            the D resolution (the per-frame segmenter; called on keyframes only).
        config: the operating point.
        refiner: with ``R``, a :class:`segtrack.models.refiner.RefinerRunner`.
    """

    def __init__(self, segment: Callable[[np.ndarray], np.ndarray], config: EVSConfig,
                 refiner: Any = None) -> None:
        self.cfg = config.check()
        if self.cfg.R and refiner is None:
            raise InputError("EVS with R=1 needs Refiner weights (see docs/evs_lmanet.md)")
        self.segment = segment
        self.refiner = refiner if self.cfg.R else None
        self._flow = make_flow_estimator(self.cfg.flow, self.cfg.preset)
        self._pool = ThreadPoolExecutor(max_workers=1) if self.cfg.W else None
        self.small_size: tuple[int, int] | None = None
        self.index = -1
        self.segment_calls = 0
        self.last_unreliable = 0.0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def small_shape(self, h: int, w: int) -> tuple[int, int]:
        D = float(self.cfg.D)
        return max(8, int(round(h * D))), max(8, int(round(w * D)))

    def start(self, frame: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
        """Frame 0: segment it (or take the given (h, w, C) ``probs`` at the D resolution)."""
        self.small_size = self.small_shape(*frame.shape[:2])
        small = resize_to(frame, self.small_size)
        self.index = 0
        if probs is None:
            probs = self._segment(small)
        self._after_keyframe(small, probs)
        return self.probs

    def _segment(self, small: np.ndarray) -> np.ndarray:
        self.segment_calls += 1
        p = np.asarray(self.segment(small), np.float32)
        if p.shape[:2] != self.small_size:
            p = resize_to(p, self.small_size)
            if p.ndim == 2:
                p = p[..., None]
        return p

    def _after_keyframe(self, small: np.ndarray, probs: np.ndarray) -> None:
        self.probs = np.ascontiguousarray(probs, np.float32)
        self.prev_gray = self._flow_input(small)
        self.feats = self.refiner.lowlevel(small) if self.refiner is not None else None

    def _flow_input(self, small: np.ndarray) -> np.ndarray:
        """What the flow estimator is given: grey for DIS, colour for FlowNet."""
        return small if self.cfg.flow != "dis" else cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def _flows(self, gray: np.ndarray, both: bool) -> tuple[np.ndarray, np.ndarray | None]:
        back = self._flow.calc(gray, self.prev_gray)
        fwd = self._flow.calc(self.prev_gray, gray) if both else None
        return back, fwd

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Probabilities (h, w, C) at the D resolution for the next frame."""
        if self.small_size is None:
            raise InputError("EVSPipeline.step() called before start()")
        self.index += 1
        small = resize_to(frame, self.small_size)
        cfg = self.cfg
        if self.index % int(cfg.S) == 0:  # keyframe: the segmenter, from scratch
            self._after_keyframe(small, self._segment(small))
            self.last_unreliable = 0.0
            return self.probs
        if not cfg.W:  # hold the last prediction (Table 3.2, W = ✗)
            return self.probs
        gray = self._flow_input(small)
        fut = self._pool.submit(self._flows, gray, cfg.R)
        img_feats = self.refiner.image_branch(small) if cfg.R else None  # overlaps with the flow
        flow_back, flow_fwd = fut.result()
        p_w = warp_probs(self.probs, flow_back)
        if p_w.ndim == 2:
            p_w = p_w[..., None]
        if cfg.R:
            labels_f = p_w.argmax(2).astype(np.uint8)
            m = inconsistency_map(labels_f, flow_fwd, flow_back)
            self.last_unreliable = float(m.mean())
            feats_w = self.refiner.warp_features(self.feats, flow_back)
            if m.any():
                att = iam_attention(m, cfg.iam_dilate, cfg.iam_blur)
                p_ref = self.refiner.refine(img_feats, feats_w, p_w, att)
                p_w = blend_iam(att, p_ref, p_w)
            self.feats = feats_w
        self.probs = np.ascontiguousarray(p_w, np.float32)
        self.prev_gray = gray
        return self.probs
