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
* **Runtime**: everything frozen that runs on a tracked frame (backbone, x_s / x_c, the target
  models applied with τ and κ as inputs, H_θ, decoder) is one exported graph, and the label
  encoder another (:mod:`segtrack.runtime`); the learners stay in torch.  Several objects'
  crops go through the graph as one batch (:meth:`RTSTracker._track_many`), and each weights
  its probabilities by the distance prior of :mod:`segtrack.trackers.nearness` (a departure).
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
from segtrack.profiling import stage
from segtrack.trackers.base import EdgeParams, Tracker, TrackerParams, make_prediction
from segtrack.trackers.nearness import NearParams, NearPrior
from segtrack.types import Prediction


def _load_net(path: Path, device: str):
    from segtrack.models.rts import load_heads

    return shared(("rts-heads", str(path), device), lambda: load_heads(path, device))


def _load_backbone(net, weights: Path, device: str):
    """The frozen backbone of ``net`` (its own stride-16 stage when it was trained with one)."""
    tuned = bool(net.cfg.tuned_stride16)

    def build():
        from segtrack.models.rts.infer import fuse_batchnorm

        return fuse_batchnorm(net.build_backbone((4, 8, 16))).to(device)

    key = str(weights) if tuned else ""
    return shared(("rts-backbone", net.cfg.backbone, key, device), build)


class _Graphs:
    """The frozen networks of one RTS / LWL configuration, on the chosen runtime: crop features
    (init, box init), the per-frame graph (:class:`~segtrack.models.rts.infer.FrameGraph`) and
    the label encoder."""

    def __init__(self, main: Path, seg: Path, use_instance: bool, conditioning: bool,
                 crop_size: int, runtime: str, device: str) -> None:
        from segtrack.models.rts.infer import FeatureGraph, FrameGraph, LabelGraph
        from segtrack.runtime import frozen

        self.net = _load_net(main, device)
        self.seg_net = _load_net(seg, device)
        backbone = _load_backbone(self.net, main, device)
        tag = f"{main.stem}-{seg.stem}-{'i' if use_instance else ''}{'c' if conditioning else ''}"
        n = crop_size
        img = torch.zeros(1, n, n, 3, dtype=torch.uint8, device=device)
        c = self.net.cfg
        tau = torch.zeros(1, c.enc_dim, c.feat_dim, c.seg_filter, c.seg_filter, device=device)
        kappa = torch.zeros(1, 1, c.feat_dim, c.inst_filter, c.inst_filter, device=device)
        batch = {0: "batch"}
        self.features = frozen(
            FeatureGraph(backbone, self.seg_net, self.net, use_instance).eval(),
            f"rts-features-{tag}-{n}", [img], ["image"], {0: batch}, runtime, device)
        ins = [img, tau, kappa] if use_instance else [img, tau]
        self.frame = frozen(
            FrameGraph(backbone, self.seg_net, self.net, use_instance, conditioning).eval(),
            f"rts-frame-{tag}-{n}", ins, ["image", "tau", "kappa"][: len(ins)],
            {i: batch for i in range(len(ins))}, runtime, device)
        n4, n16 = n // 4, n // 16
        self.label = frozen(
            LabelGraph(self.seg_net).eval(), f"rts-label-{seg.stem}-{n}",
            [torch.zeros(1, 1, n4, n4, device=device),
             torch.zeros(1, c.feat_dim, n16, n16, device=device)],
            ["mask4", "xs"], {0: batch, 1: batch}, runtime, device)


@dataclasses.dataclass
class RTSParams(TrackerParams, EdgeParams, NearParams):
    # its own box-to-mask network: held-out fold 0 J&F 0.7541 against 0.7452 with the
    # click-to-mask network's first mask (BENCHMARKS.md, "Box initialisation of every method")
    box_init: str = "own"
    weights: str = ""  # heads file or committed name ("" = weights/rts.pt; "rts-fold0")
    seg_weights: str = ""  # segmentation branch ("" = weights; lwl.pt when not conditioning)
    conditioning: bool = True  # x_f = x_m + H(s_c) (False: Table 5.1 "RTS w/o conditioning")
    use_instance: bool = True  # instance branch controls memories / search region
    crop_size: int = 288  # search region resolution (pixels)
    search_factor: float = 4.0  # region side / sqrt(target area)
    grow: float = 1.1  # region growth per frame while the target is lost
    # the next search region boxes the mask (with other objects beside, only its piece under
    # the instance peak: pieces=auto|all|near|peak), its size changed by at most this factor
    # per frame (0: the min-max box of the whole mask, unclamped)
    max_resize: float = 1.25
    pieces: str = "auto"
    max_lost_scale: float = 4.0  # the search region grows at most this much while lost
    # the target size of the next search region: "box" (of the mask's pieces) or "moments"
    # (sqrt(12 variance) of their pixels, the thesis' appendix 5.B; less moved by a thin
    # spurious piece)
    state_size: str = "box"
    # while both branches miss the target: "grow" the region by `grow` per frame, or size it
    # from the largest of the last 60 sizes found ("history", appendix 5.B)
    lost_size: str = "grow"
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
    runtime: str = "auto"  # frozen networks: auto (ONNX Runtime if installed) | onnx | torch


@dataclasses.dataclass
class LWLParams(RTSParams):
    box_init: str = "segment"  # held-out fold 0: 0.6908 against its own network's 0.6901
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
        p.check_edges()
        if p.pieces not in ("auto", "all", "near", "peak"):
            raise InputError(f"parameter 'pieces': {p.pieces!r} must be auto, all, near or "
                             "peak")
        if p.state_size not in ("box", "moments"):
            raise InputError(f"parameter 'state_size': {p.state_size!r} must be box or moments")
        if p.lost_size not in ("grow", "history"):
            raise InputError(f"parameter 'lost_size': {p.lost_size!r} must be grow or history")
        if not p.max_lost_scale >= 1:
            raise InputError(f"parameter 'max_lost_scale': {p.max_lost_scale} must be >= 1")
        if p.max_resize < 0 or 0 < p.max_resize < 1:
            raise InputError(f"parameter 'max_resize': {p.max_resize} must be 0 or >= 1")
        from segtrack.models.rts import default_weights, resolve_weights
        from segtrack.runtime import resolve_runtime

        main = resolve_weights(p.weights) if p.weights else default_weights(self.name)
        if p.seg_weights:
            seg = resolve_weights(p.seg_weights)
        elif self.name == "rts" and not p.conditioning:
            seg = default_weights("lwl")
        else:
            seg = main
        runtime = resolve_runtime(p.runtime, device)
        self._graph_key = ("rts-graphs", str(main), str(seg), p.use_instance, p.conditioning,
                           p.crop_size, runtime, device)
        self.graphs = shared(self._graph_key, lambda: _Graphs(
            main, seg, p.use_instance, p.conditioning, p.crop_size, runtime, device))
        self.net = self.graphs.net
        self.seg_net = self.graphs.seg_net

    # -- helpers ---------------------------------------------------------------------------
    def _crop_features(self, crops: np.ndarray) -> tuple[dict, torch.Tensor, torch.Tensor | None]:
        """uint8 crops (B, n, n, 3) -> (backbone feature dict, x_s, x_c or None)."""
        out = self.graphs.features(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device))
        feats = {4: out[0], 8: out[1], 16: out[2]}
        return feats, out[3], (out[4] if len(out) > 4 else None)

    def own_box_to_mask(self, frame: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        from segtrack.models.rts.infer import box_to_mask

        p = self.params
        with torch.no_grad():
            return box_to_mask(
                self.net, lambda img: self._crop_features(img[None])[0], frame, box,
                p.crop_size, p.search_factor, self.device,
            )

    def _crop(self):
        from segtrack.models.rts.search import Crop, search_side

        cx, cy, w, h = self.state
        side = search_side(w, h, self.frame_shape, self.params.search_factor) * self.lost_scale
        side = min(side, max(self.frame_shape) * 1.0) if self.lost_scale > 1 else side
        return Crop(cx, cy, side, self.params.crop_size)

    def _add_sample(self, xs, xc, mask4: torch.Tensor, center, permanent: bool) -> None:
        E, W = self.graphs.label(mask4, xs)
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
        self.near = NearPrior(mask)
        from collections import deque

        self.sizes: deque = deque([self.state[2:]], maxlen=60)  # the last sizes found
        self.seg_mem = _Memory(p.seg_memory)
        self.inst_mem = _Memory(p.inst_memory)
        self.tau = None
        self.kappa = None
        self.seg_changed = self.inst_changed = False
        self._pending = None  # the last frame's memory update, applied before the next frame
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
        imgs, masks = [], []
        for kind, crop in variants:
            img = crop_image(frame, crop)
            m4 = crop_mask(mask, crop, n4)
            if kind == "flip":
                img = np.ascontiguousarray(img[:, ::-1])
                m4 = np.ascontiguousarray(m4[:, ::-1])
            elif kind == "blur":
                img = cv2.GaussianBlur(img, (0, 0), 2.0)
            imgs.append(img)
            masks.append(m4)
        _, xs, xc = self._crop_features(np.stack(imgs))  # all variants in one pass
        first_box = None
        for k, m4 in enumerate(masks):
            center, cbox = self._center_from_mask(m4, cell4)
            if k == 0:
                first_box = cbox
            self._add_sample(xs[k:k + 1], xc[k:k + 1] if xc is not None else None,
                             torch.from_numpy(m4).to(self.device)[None, None], center,
                             permanent=True)
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

    def batch_key(self):
        return self._graph_key

    def _track(self, frame) -> Prediction:
        return self._track_many([self], frame)[0]

    @classmethod
    @torch.no_grad()
    def _track_many(cls, trackers: list[RTSTracker], frame: np.ndarray) -> list[Prediction]:
        """One frame for several objects: their crops go through the frozen networks as one
        batch; each object keeps its own target models, memories and search region."""
        from segtrack.models.rts.search import crop_image

        first = trackers[0]
        for t in trackers:  # the previous frame's memory updates (final masks by now)
            t._flush()
        with stage("crop"):
            crops = [t._crop() for t in trackers]
            imgs = torch.from_numpy(np.stack([crop_image(frame, c) for c in crops]))
        with stage("backbone"):
            tau = torch.cat([t.tau for t in trackers])
            ins = [imgs.to(first.device), tau]
            if first.params.use_instance:
                ins.append(torch.cat([t.kappa for t in trackers]))
            out = first.graphs.frame(*ins)
        preds = []
        for k, (t, crop) in enumerate(zip(trackers, crops)):
            row = [o[k:k + 1] for o in out]
            if t.params.use_instance:
                xs, xc, sc, prob4 = row
            else:
                (xs, prob4), xc, sc = row, None, None
            preds.append(t._after_frame(frame, crop, xs, xc, sc, prob4))
        return preds

    def _after_frame(self, frame, crop, xs, xc, sc, prob4) -> Prediction:
        from segtrack.models.rts.search import paste_scores

        p = self.params
        t = self.frame_index
        with stage("heads"):
            peak = None
            smax = 1.0
            inst_ok = True
            if p.use_instance:
                smax = float(sc.max())
                inst_ok = smax > p.t_sc
                idx = int(torch.argmax(sc))
                ww = sc.shape[-1]
                peak = ((idx % ww) + 0.5, (idx // ww) + 0.5)
            prob_np = prob4[0, 0].cpu().numpy()
        with stage("paste"):
            seg_ok = bool((prob_np > p.t_ss).any())
            full = paste_scores(prob_np, crop, self.frame_shape)
        with stage("edges"):
            full = p.refine(full, frame, crop.side / prob_np.shape[0])
            if self.accompanied and p.near_scale > 0:
                full = self.near(full, p.near_scale, floor=p.threshold)
            mask = full > p.threshold
        # memories (rules a-d): applied before the next frame, so that with several objects the
        # sample is the final mask (:meth:`feedback`), not pixels that went to a neighbour
        self._pending = [t, xs, xc, prob4, prob_np, inst_ok, seg_ok, peak, crop,
                         self.state, self.lost_scale]
        with stage("post"):
            return self._finish(mask, full, crop, peak, inst_ok, smax)

    def _flush(self) -> None:
        if self._pending is not None:
            t, xs, xc, prob4, prob_np, inst_ok, seg_ok, peak = self._pending[:8]
            self._pending = None
            with stage("learn"):
                self._update_memories(t, xs, xc, prob4, prob_np, inst_ok, seg_ok, peak)

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """The other objects' pixels become background in this frame's memory sample (hard
        negatives), and the next search region follows the final mask. Where the instance
        peak lies on another object, the frame teaches the instance branch nothing (it would
        learn the neighbour's place as the target's); where every pixel went to others, the
        object is taken as hidden behind them: its search region stays where it was (grown)
        instead of moving onto them."""
        from segtrack.models.rts.search import crop_mask

        p = self.params
        self.near.revise(mask)
        if self._pending is not None:
            prob4, prob_np, crop = self._pending[3], self._pending[4], self._pending[8]
            keep = 1.0 - crop_mask(others, crop, size=prob_np.shape[0])
            prob_np = (prob_np * keep).astype(np.float32)
            prob4 = prob4 * torch.from_numpy(keep).to(prob4.device, prob4.dtype)[None, None]
            self._pending[3], self._pending[4] = prob4, prob_np
            self._pending[6] = bool((prob_np > p.t_ss).any())
            peak_xy = self._peak_xy(crop, self._pending[7])
            if peak_xy is not None and _value_at(others, peak_xy):
                self._pending[5] = False
        if mask.any():
            if p.max_resize > 0 and self._pending is not None:
                # from the state the frame was tracked from
                self.state = self._state_from(mask, peak_xy if self._pending[5] else None,
                                              self._pending[9])
            else:
                ys, xs_ = np.nonzero(mask)
                x0, y0, x1, y1 = xs_.min(), ys.min(), xs_.max() + 1, ys.max() + 1
                self.state = ((x0 + x1) / 2.0, (y0 + y1) / 2.0, float(x1 - x0),
                              float(y1 - y0))
        elif self._pending is not None:
            self.state = self._pending[9]
            self.lost_scale = self._pending[10]
            self._lost()

    def _update_memories(self, t, xs, xc, prob4, prob_np, inst_ok, seg_ok, peak) -> None:
        p = self.params
        n4 = prob_np.shape[0]
        cell4 = n4 / (p.crop_size // 16)
        update = t <= p.update_all_until or t % max(p.update_every, 1) == 0
        if update:
            if p.use_instance:
                if inst_ok and seg_ok:
                    center, _ = self._center_from_mask(prob_np, cell4)
                    self._add_sample(xs, xc, prob4, center, permanent=False)
                    self.seg_changed = self.inst_changed = True
                elif inst_ok:
                    self.inst_mem.add((xc[0], peak))
                    self.inst_changed = True
            elif seg_ok:
                self._add_sample(xs, None, prob4, None, permanent=False)
                self.seg_changed = True
        if t % max(p.learn_every, 1) == 0:
            if self.seg_changed:
                self._learn_seg(p.seg_update_iters)
                self.seg_changed = False
            if p.use_instance and self.inst_changed:
                self._learn_inst(p.inst_update_iters)
                self.inst_changed = False

    def _peak_xy(self, crop, peak) -> tuple[float, float] | None:
        """The instance peak (stride-16 cells of ``crop``) in frame pixels."""
        if peak is None:
            return None
        cells = self.params.crop_size // 16
        return crop.point_to_frame(peak[0] * crop.size / cells, peak[1] * crop.size / cells)

    def _state_from(self, mask: np.ndarray, peak_xy, prev) -> tuple[float, float, float, float]:
        """The target state (centre, size) for the next search region from ``mask``, its size
        changed by at most ``max_resize`` from the last state ``prev``. Which of the mask's
        pieces it boxes (``pieces``): "all"; "near", those that meet the last state's box
        grown by a quarter of its size; "peak", only the piece under the instance peak;
        "auto", "peak" while other objects are tracked beside this one (a second piece is then
        most often a look-alike another tracker follows), else "all"; with no piece picked,
        the largest.
        A mask that also covers a look-alike further away would otherwise widen the box, and
        with it the search region, until any similar object can take the target's place."""
        import cv2

        p = self.params
        cx0, cy0, pw, ph = prev
        # the pieces are labelled inside the mask's min-max box only (the same labels, a
        # fraction of the frame's pixels)
        from segtrack.geometry import mask_to_box

        ox, oy, bw_, bh_ = (int(v) for v in mask_to_box(mask))
        sub = mask[oy:oy + bh_, ox:ox + bw_]
        n, lab, stats, _ = cv2.connectedComponentsWithStats(sub.astype(np.uint8), connectivity=8)
        x0, y0 = stats[1:, 0] + ox, stats[1:, 1] + oy
        x1, y1 = x0 + stats[1:, 2], y0 + stats[1:, 3]
        mode = p.pieces if p.pieces != "auto" else ("peak" if self.accompanied else "all")
        if mode == "all":
            pick = np.ones(n - 1, bool)
        elif mode == "near":
            m = 0.25 * max(pw, ph)
            pick = ((x1 >= cx0 - pw / 2 - m) & (x0 <= cx0 + pw / 2 + m)
                    & (y1 >= cy0 - ph / 2 - m) & (y0 <= cy0 + ph / 2 + m))
        else:
            pick = np.zeros(n - 1, bool)
            k = 0
            if peak_xy is not None:  # the peak clamped into the frame, then looked up
                iy = min(max(int(peak_xy[1]), 0), mask.shape[0] - 1) - oy
                ix = min(max(int(peak_xy[0]), 0), mask.shape[1] - 1) - ox
                if 0 <= iy < lab.shape[0] and 0 <= ix < lab.shape[1]:
                    k = int(lab[iy, ix])
            if k > 0:
                pick[k - 1] = True
        if not pick.any():
            pick[int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
        bx0, by0 = float(x0[pick].min()), float(y0[pick].min())
        bx1, by1 = float(x1[pick].max()), float(y1[pick].max())
        cx, cy, bw, bh = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0, bx1 - bx0, by1 - by0
        if p.state_size == "moments":
            ys, xs = np.nonzero(pick[np.maximum(lab - 1, 0)] & (lab > 0))
            cx, cy = float(xs.mean()) + 0.5 + ox, float(ys.mean()) + 0.5 + oy
            bw = float(np.sqrt(12.0 * xs.var() + 1.0))  # a uniform w-wide box: var = w^2/12
            bh = float(np.sqrt(12.0 * ys.var() + 1.0))
        r = p.max_resize
        w = min(max(bw, pw / r), pw * r)
        h = min(max(bh, ph / r), ph * r)
        return (cx, cy, w, h)

    def _finish(self, mask, full, crop, peak, inst_ok, smax) -> Prediction:
        p = self.params
        found = bool(mask.any())
        score = min(max(smax, 0.0), 1.0) if p.use_instance else (
            float(full[mask].mean()) if found else 0.0
        )
        if not found:
            score = 0.0 if not p.use_instance else min(score, 0.3)
        pred = make_prediction(mask, score=score, scores=full, instance_max=smax,
                               search_region=(crop.cx, crop.cy, crop.side))
        self.near.update(mask)
        # target state for the next search region
        if found:
            if p.max_resize > 0:
                self.state = self._state_from(mask, self._peak_xy(crop, peak) if inst_ok
                                              else None, self.state)
            else:
                x, y, w, h = pred.box  # the min-max box of the mask
                self.state = (x + w / 2.0, y + h / 2.0, float(w), float(h))
            self.lost_scale = 1.0
        elif p.use_instance and inst_ok:
            cx, cy = self._peak_xy(crop, peak)
            self.state = (cx, cy, self.state[2], self.state[3])
        else:
            self._lost()
        if found:
            self.sizes.append(self.state[2:])
        return pred

    def _lost(self) -> None:
        """Both branches missed the target: the state stays, the search region grows
        (``lost_size``)."""
        p = self.params
        if p.lost_size == "history":
            cx, cy = self.state[:2]
            self.state = (cx, cy, max(w for w, _ in self.sizes), max(h for _, h in self.sizes))
        else:
            self.lost_scale = min(self.lost_scale * p.grow, p.max_lost_scale)


def _value_at(arr: np.ndarray, xy: tuple[float, float]):
    """``arr`` at the frame point ``(x, y)``, clamped into the array."""
    iy = min(max(int(xy[1]), 0), arr.shape[0] - 1)
    ix = min(max(int(xy[0]), 0), arr.shape[1] - 1)
    return arr[iy, ix]


class LWLTracker(RTSTracker):
    """LWL (the segmentation branch of RTS alone), heads trained on DAVIS-2016 train."""

    name = "lwl"
    Params = LWLParams
