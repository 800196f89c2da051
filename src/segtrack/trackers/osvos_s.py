"""``osvos-s``: OSVOS with an instance-level prior (seed 002, "OSVOS-S: Semantic propagation",
"Semantic Selection", "Observations").

OSVOS is a pure appearance model: a second camel or anything that looks like the object is
segmented too, and a part whose appearance changes is lost.  OSVOS-S adds instance proposals:

1. **Semantic selection** (first frame): the proposal made for the given object must match its
   mask (IoU >= ``select_iou``); then the object is an *instance* the prior can follow.  When it
   does not (stuff, a part of an object), ``osvos-s`` is plain ``osvos``.
2. **Semantic propagation** (later frames): of the regions OSVOS finds (connected components of
   its probability map above ``region_threshold``), only those consistent with the instance
   selected on the previous frame are kept: they overlap its mask grown by ``margin`` of the
   object's size.  The kept regions prompt a new proposal (their enclosing box); the proposal is
   the selected instance of this frame when it agrees with them (IoU >= ``agree_iou``).
3. **Fusion** (the "conditional classifier"): inside the selected instance (grown by
   ``support_px``) the output is ``appearance_weight`` x OSVOS + the rest x the proposal, so the
   proposal fills parts OSVOS misses and OSVOS keeps details the proposal misses; outside it
   OSVOS's probability is multiplied by ``outside`` (0: regions that are not the instance are
   dropped, the distractor case).

Departures from the paper (OSVOS-S uses Mask R-CNN's COCO instance proposals and their
categories): no registry package ships instance-segmentation weights, so the proposals are
class-agnostic, made by segtrack's own box-to-mask network (``clickseg``, trained on the
photographs) prompted with boxes, and "same category" becomes "consistent with the previous
instance" (overlap), which is also what separates two instances of one category.  The fusion is
a fixed rule, not a learned classifier; nothing new is trained (the OSVOS parent and the
box-to-mask network are the committed ones).  When the kept regions vanish (occlusion) the
output is empty and the search area grows each frame (``regrow``) until the object is found
again.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from segtrack.profiling import stage
from segtrack.trackers.oneshot import OSVOSParams, OSVOSTracker


@dataclasses.dataclass
class OSVOSSParams(OSVOSParams):
    select_iou: float = 0.5  # first-frame proposal vs the given mask: the prior is used above
    region_threshold: float = 0.5  # OSVOS probability of the candidate regions
    margin: float = 0.5  # the previous instance grown by this x its size: where it may be now
    regrow: float = 1.5  # per frame without the object, the margin grows by this factor
    agree_iou: float = 0.3  # a proposal is the instance when it agrees this well with the regions
    appearance_weight: float = 0.5  # fusion inside the instance: weight of OSVOS
    support_px: int = 8  # the instance grown by this many pixels (at the frame size)
    outside: float = 0.0  # OSVOS probability outside the instance is multiplied by this


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (0 when both are empty)."""
    u = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b)) / u if u else 0.0


def box_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) of a bool mask's pixels, or None when empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), \
        float(ys.max() - ys.min() + 1)


def grow(mask: np.ndarray, px: float) -> np.ndarray:
    """``mask`` dilated by ``px`` pixels (a disc)."""
    r = int(round(px))
    if r <= 0 or not mask.any():
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def select_first(proposal: np.ndarray, mask: np.ndarray, select_iou: float) -> bool:
    """Semantic selection: whether the first frame's proposal is the given object."""
    return mask_iou(proposal, mask) >= select_iou


def consistent_regions(prob: np.ndarray, previous: np.ndarray, threshold: float,
                       margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Semantic propagation: (kept, dropped) bool masks of the connected regions of ``prob >
    threshold``; a region is kept when it overlaps ``previous`` (the last selected instance)
    grown by ``margin`` x its size (sqrt of its area)."""
    fg = (prob > threshold).astype(np.uint8)
    if not fg.any():
        return np.zeros(prob.shape, bool), np.zeros(prob.shape, bool)
    n, lab = cv2.connectedComponents(fg, connectivity=8)
    size = float(np.sqrt(max(int(np.count_nonzero(previous)), 1)))
    region = grow(previous, margin * size)
    hit = np.unique(lab[region & (lab > 0)])
    kept = np.isin(lab, hit[hit > 0])
    return kept, fg.astype(bool) & ~kept


def fuse(prob: np.ndarray, proposal: np.ndarray | None, support: np.ndarray,
         appearance_weight: float, outside: float) -> np.ndarray:
    """The fused probability: inside ``support`` OSVOS and the proposal (when there is one)
    weighted by ``appearance_weight``, outside OSVOS x ``outside``."""
    inside = prob if proposal is None else (
        appearance_weight * prob + (1.0 - appearance_weight) * proposal)
    return np.where(support, inside, prob * outside).astype(np.float32)


class OSVOSSTracker(OSVOSTracker):
    """OSVOS + semantic selection, propagation and fusion with instance proposals."""

    name = "osvos-s"
    Params = OSVOSSParams
    default_weights = "osvos"

    def _segmenter(self):
        from segtrack.interactive.segmenter import Segmenter

        return Segmenter(device=self.device, edges=False)

    def _init(self, frame, mask, box) -> None:
        super()._init(frame, mask, box)
        p = self.params
        self.segmenter = self._segmenter()
        b = box_of(mask)
        first = self.segmenter.predict(frame, box=b) > 0.5 if b is not None else mask
        self.prior = bool(b is not None and select_first(first, mask, p.select_iou))
        self.selection_iou = mask_iou(first, mask)
        self.instance = mask.copy()  # the instance selected on the last frame it was seen
        self.margin_now = float(p.margin)
        self.proposal_calls = 0

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """Pixels given to another object leave this object's instance too."""
        super().feedback(mask, others)
        if getattr(self, "instance", None) is not None:
            kept = self.instance & ~(others > 0)
            if kept.any():
                self.instance = kept

    def _instance_step(self, prob: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Propagation and fusion on the frame-size OSVOS probability ``prob``."""
        p = self.params
        kept, _ = consistent_regions(prob, self.instance, p.region_threshold, self.margin_now)
        if not kept.any():  # not found near the last instance: nothing, and look wider next time
            self.margin_now *= float(p.regrow)
            return fuse(prob, None, np.zeros(prob.shape, bool), p.appearance_weight, p.outside)
        self.margin_now = float(p.margin)
        proposal = self.segmenter.predict(frame, box=box_of(kept))
        self.proposal_calls += 1
        selected = proposal > 0.5
        if mask_iou(selected, kept) < p.agree_iou:  # the proposal is something else
            proposal, selected = None, kept
        support = grow(selected | kept, p.support_px)
        out = fuse(prob, proposal, support, p.appearance_weight, p.outside)
        if (out > p.threshold).any():
            self.instance = out > p.threshold
        return out

    def _finish(self, logits, frame: np.ndarray):
        if not self.prior:
            return super()._finish(logits, frame)
        prob = self._full_prob(logits, frame)
        with stage("instances"):
            prob = self._instance_step(prob, frame)
        h, w = logits.shape[-2:]
        small = cv2.resize(prob, (w, h), interpolation=cv2.INTER_AREA) > self.params.threshold
        return self._prediction(prob, small)
