"""``rts`` and ``lwl``: Robust visual Tracking by Segmentation (seed 001, chapter 5) and its
segmentation branch alone (LWL, the baseline row of Table 5.1).

Online inference (§5.3.6, appendix 5.B):

* **Search region**: every frame is processed in a square patch centred on the last target
  estimate, ``max(4 sqrt(wh), 1.25 max(w, h))`` pixels wide (clamped to [64, max(H, W)]), resized
  to 288x288 (stride-16 features 18x18), so the cost does not depend on the frame size.  The
  thesis uses 6x the target size and 832x480-like inputs on a GPU.  The target state comes from
  the segmentation (min-max box of the mask); when the segmentation finds nothing but the
  instance branch does, the score-map peak moves the centre; when both fail the state is kept
  and the region grows by ``grow`` per frame (up to the frame size).
* **Memories** D_s (``seg_memory`` = 32 samples of x_s and the label encoding of the predicted
  mask) and D_c (``inst_memory`` = 50 samples of x_c and the target centre); the first-frame
  samples (the frame plus ``augment``: horizontal flip, translation, blur) are always kept, the
  oldest other sample is replaced when full.  Rules: (a) instance max > t_sc = 0.3 and at least
  one segmentation probability > t_ss = 0.5: update both; (b)/(d) otherwise no segmentation
  update; (c) only the instance branch localises: instance memory only, at the score peak.
  Memories are updated every frame for the first ``update_all_until`` = 100 frames, then every
  ``update_every`` = 20th; the learners re-run every ``learn_every`` = 20 frames when their memory
  changed (``seg_update_iters`` / ``inst_update_iters`` steps from the current model).
* **Output**: segmentation probability (decoder logits at stride 4, pasted back bilinearly)
  thresholded at 0.5; Prediction.box is the min-max box, rotated_box the MBR of the mask.
* **Box initialisation**: the box-to-mask network (:func:`segtrack.models.rts.infer.box_to_mask`)
  instead of STA.

``lwl`` = same pipeline with the instance branch removed (no conditioning, no memory control):
LWL's own inference settings: the memory takes every frame whose mask is not empty and the
learner is re-run every frame.  ``rts`` with ``conditioning=false`` is Table 5.1's middle row: RTS
inference (instance branch controls memories and the search region) with a segmentation branch
trained without conditioning (the ``lwl`` weights).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from segtrack.errors import InputError
from segtrack.models.shared import shared
from segtrack.trackers.base import Tracker, TrackerParams, make_prediction
from segtrack.types import Prediction


def _load_net(path: Path, device: str):
    from segtrack.models.rts import load_heads

    return shared(("rts-heads", str(path), device), lambda: load_heads(path, device))


def _load_backbone(name: str, device: str):
    def build():
        from segtrack.models.backbones import build_backbone
        from segtrack.models.rts.infer import fuse_batchnorm

        bb = build_backbone(name, pretrained=True, out_strides=(4, 8, 16), freeze_bn=True)
        return fuse_batchnorm(bb.eval()).to(device)

    return shared(("rts-backbone", name, device), build)


@dataclasses.dataclass
class RTSParams(TrackerParams):
    weights: str = ""  # heads file or committed name ("" = weights/rts.pt; "rts-fold0")
    seg_weights: str = ""  # segmentation branch ("" = weights; lwl.pt when not conditioning)
    conditioning: bool = True  # x_f = x_m + H(s_c) (False: Table 5.1 "RTS w/o conditioning")
    use_instance: bool = True  # instance branch controls memories / search region
    crop_size: int = 288  # search region resolution (pixels)
    search_factor: float = 4.0  # region side / sqrt(target area)
    grow: float = 1.1  # region growth per frame while the target is lost
    seg_memory: int = 32
    inst_memory: int = 50
    t_sc: float = 0.3  # instance score threshold
    t_ss: float = 0.5  # segmentation probability threshold for a valid mask
    threshold: float = 0.5  # output mask threshold
    update_all_until: int = 100  # update memories every frame up to this frame
    update_every: int = 20  # afterwards every N-th frame
    learn_every: int = 20  # re-run the learners every N frames (if their memory changed)
    seg_init_iters: int = 10
    seg_update_iters: int = 3
    inst_init_iters: int = 10
    inst_update_iters: int = 2
    augment: bool = True  # first-frame augmentation: flip, translation, blur


@dataclasses.dataclass
class LWLParams(RTSParams):
    conditioning: bool = False
    use_instance: bool = False
    update_all_until: int = 1_000_000_000
    learn_every: int = 1


class _Memory:
    """Fixed-capacity memory: the first ``keep`` samples are permanent, the oldest other one is
    replaced when full (§5.3.6)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.items: list = []
        self.keep = 0
        self._next = 0

    def add(self, item, permanent: bool = False) -> None:
        if permanent:
            self.items.insert(self.keep, item)
            self.keep += 1
            self.items = self.items[: max(self.capacity, self.keep)]
            return
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        free = self.capacity - self.keep
        if free <= 0:
            return
        self.items[self.keep + self._next % free] = item
        self._next += 1

    def __len__(self) -> int:
        return len(self.items)


class RTSTracker(Tracker):
    """RTS (seed 001 ch. 5) on a frozen EfficientNet-Lite0, heads trained on DAVIS-2016 train."""

    name = "rts"
    Params = RTSParams
    learns = True

    def __init__(self, params=None, device: str = "cpu", **kw) -> None:
        super().__init__(params, device, **kw)
        p = self.params
        if p.crop_size < 64 or p.crop_size % 16:
            raise InputError(
                f"parameter 'crop_size': {p.crop_size} must be a multiple of 16, >= 64"
            )
        if p.seg_memory < 1 or p.inst_memory < 1:
            raise InputError("parameters 'seg_memory' and 'inst_memory' must be >= 1")
        from segtrack.models.rts import default_weights, resolve_weights

        main = resolve_weights(p.weights) if p.weights else default_weights(self.name)
        self.net = _load_net(main, device)
        if p.seg_weights:
            seg = resolve_weights(p.seg_weights)
        elif self.name == "rts" and not p.conditioning:
            seg = default_weights("lwl")
        else:
            seg = main
        self.seg_net = _load_net(seg, device)
        self.backbone = _load_backbone(self.net.cfg.backbone, device)

    # -- helpers ---------------------------------------------------------------------------
    def _features(self, crop_img: np.ndarray) -> dict:
        from segtrack.models.rts.infer import to_tensor

        return self.backbone(to_tensor(crop_img, self.device))

    def box_to_init_mask(self, frame: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        from segtrack.models.rts.infer import box_to_mask

        p = self.params
        with torch.no_grad():
            return box_to_mask(
                self.net, self.backbone, frame, box, p.crop_size, p.search_factor, self.device
            )

    def _crop(self):
        from segtrack.models.rts.search import Crop, search_side

        cx, cy, w, h = self.state
        side = search_side(w, h, self.frame_shape, self.params.search_factor) * self.lost_scale
        side = min(side, max(self.frame_shape) * 1.0) if self.lost_scale > 1 else side
        return Crop(cx, cy, side, self.params.crop_size)

    def _add_sample(self, feats, xs, xc, mask4: torch.Tensor, center, permanent: bool) -> None:
        E, W = self.seg_net.label_enc(mask4, xs)
        self.seg_mem.add((xs[0], E[0], W[0]), permanent)
        if self.params.use_instance and xc is not None and center is not None:
            self.inst_mem.add((xc[0], center), permanent)

    def _learn_seg(self, iters: int) -> None:
        xs = torch.stack([s[0] for s in self.seg_mem.items])[None]
        E = torch.stack([s[1] for s in self.seg_mem.items])[None]
        W = torch.stack([s[2] for s in self.seg_mem.items])[None]
        self.tau = self.seg_net.seg_learner(
            xs, E, W, tau=self.tau, num_iter=iters, create_graph=False
        )

    def _learn_inst(self, iters: int, init_box=None) -> None:
        xc = torch.stack([s[0] for s in self.inst_mem.items])[None]
        c = torch.tensor([s[1] for s in self.inst_mem.items], dtype=xc.dtype, device=xc.device)
        its = self.net.inst_learner(
            xc, c[None], boxes=init_box, kappa=self.kappa, num_iter=iters, create_graph=False
        )
        self.kappa = its[-1]

    # -- Tracker API ------------------------------------------------------------------------
    @torch.no_grad()
    def _init(self, frame, mask, box) -> None:
        from segtrack.models.rts.search import crop_image, crop_mask

        p = self.params
        ys, xs_ = np.nonzero(mask)
        x0, y0, x1, y1 = xs_.min(), ys.min(), xs_.max() + 1, ys.max() + 1
        self.state = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, float(x1 - x0), float(y1 - y0))
        self.lost_scale = 1.0
        self.seg_mem = _Memory(p.seg_memory)
        self.inst_mem = _Memory(p.inst_memory)
        self.tau = None
        self.kappa = None
        self.seg_changed = self.inst_changed = False
        base = self._crop()
        n4 = p.crop_size // 4
        cell4 = n4 / (p.crop_size // 16)  # stride-4 pixels per stride-16 cell
        rng = np.random.default_rng(p.seed)
        variants = [("plain", base)]
        if p.augment:
            from segtrack.models.rts.search import Crop

            d = base.side * 0.08
            dx, dy = rng.choice([-1, 1], 2) * d
            variants += [
                ("flip", base),
                ("shift", Crop(base.cx + dx, base.cy + dy, base.side, base.size)),
                ("blur", base),
            ]
        first_box = None
        for kind, crop in variants:
            img = crop_image(frame, crop)
            m4 = crop_mask(mask, crop, n4)
            if kind == "flip":
                img = np.ascontiguousarray(img[:, ::-1])
                m4 = np.ascontiguousarray(m4[:, ::-1])
            elif kind == "blur":
                img = cv2.GaussianBlur(img, (0, 0), 2.0)
            feats = self._features(img)
            xs = self.seg_net.seg_features(feats[16])
            xc = self.net.cls_features(feats[16]) if p.use_instance else None
            center, cbox = self._center_from_mask(m4, cell4)
            if kind == "plain":
                first_box = cbox
            self._add_sample(feats, xs, xc, torch.from_numpy(m4).to(self.device)[None, None],
                             center, permanent=True)
        self._learn_seg(p.seg_init_iters)
        if p.use_instance:
            bx = torch.tensor([first_box], dtype=torch.float32, device=self.device)
            self._learn_inst(p.inst_init_iters, init_box=bx)

    @staticmethod
    def _center_from_mask(m4: np.ndarray, cell4: float):
        """Centre (cells) and box (x, y, w, h cells) of a stride-4 mask; ``cell4`` = stride-4
        pixels per cell."""
        ys, xs = np.nonzero(m4 > 0.5)
        if len(xs) == 0:
            return None, None
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        b = (x0 / cell4, y0 / cell4, (x1 - x0) / cell4, (y1 - y0) / cell4)
        return (b[0] + b[2] / 2, b[1] + b[3] / 2), b

    @torch.no_grad()
    def _track(self, frame) -> Prediction:
        from segtrack.models.rts.search import crop_image, paste_scores

        p = self.params
        t = self.frame_index
        crop = self._crop()
        feats = self._features(crop_image(frame, crop))
        xs = self.seg_net.seg_features(feats[16])
        xc = sc = None
        inst_ok = True
        peak = None
        smax = 1.0
        if p.use_instance:
            xc = self.net.cls_features(feats[16])
            sc = self.net.inst_learner.apply(self.kappa, xc[None])  # (1, 1, h, w)
            smax = float(sc.max())
            inst_ok = smax > p.t_sc
            idx = int(torch.argmax(sc))
            hh, ww = sc.shape[-2:]
            peak = ((idx % ww) + 0.5, (idx // ww) + 0.5)
        xm = self.seg_net.seg_learner.apply(self.tau, xs[None])[:, 0]
        logits = self.seg_net.decode(xm, feats, sc if p.conditioning else None)
        prob4 = torch.sigmoid(logits)  # (1, 1, n4, n4)
        prob_np = prob4[0, 0].cpu().numpy()
        seg_ok = bool((prob_np > p.t_ss).any())
        full = paste_scores(prob_np, crop, self.frame_shape)
        mask = full > p.threshold
        # memories (rules a-d)
        n4 = prob_np.shape[0]
        cell4 = n4 / (p.crop_size // 16)
        update = t <= p.update_all_until or t % max(p.update_every, 1) == 0
        if update:
            if p.use_instance:
                if inst_ok and seg_ok:
                    center, _ = self._center_from_mask(prob_np, cell4)
                    self._add_sample(feats, xs, xc, prob4, center, permanent=False)
                    self.seg_changed = self.inst_changed = True
                elif inst_ok:
                    self.inst_mem.add((xc[0], peak))
                    self.inst_changed = True
            elif seg_ok:
                self._add_sample(feats, xs, None, prob4, None, permanent=False)
                self.seg_changed = True
        if t % max(p.learn_every, 1) == 0:
            if self.seg_changed:
                self._learn_seg(p.seg_update_iters)
                self.seg_changed = False
            if p.use_instance and self.inst_changed:
                self._learn_inst(p.inst_update_iters)
                self.inst_changed = False
        # target state for the next search region
        if mask.any():
            ys, xs_ = np.nonzero(mask)
            x0, y0, x1, y1 = xs_.min(), ys.min(), xs_.max() + 1, ys.max() + 1
            self.state = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, float(x1 - x0), float(y1 - y0))
            self.lost_scale = 1.0
        elif p.use_instance and inst_ok:
            u = peak[0] * crop.size / (p.crop_size // 16)
            v = peak[1] * crop.size / (p.crop_size // 16)
            cx, cy = crop.point_to_frame(u, v)
            self.state = (cx, cy, self.state[2], self.state[3])
        else:
            self.lost_scale = min(self.lost_scale * p.grow, 4.0)
        score = min(max(smax, 0.0), 1.0) if p.use_instance else (
            float(full[mask].mean()) if mask.any() else 0.0
        )
        if not mask.any():
            score = 0.0 if not p.use_instance else min(score, 0.3)
        return make_prediction(mask, score=score, scores=full, instance_max=smax,
                               search_region=(crop.cx, crop.cy, crop.side))


class LWLTracker(RTSTracker):
    """LWL (the segmentation branch of RTS alone), heads trained on DAVIS-2016 train."""

    name = "lwl"
    Params = LWLParams
