"""``siammask`` / ``siammask-2b``: SiamMask, three- / two-branch, box-initialised (seed 004).

Inference of seed 004 §3.3 (network in :mod:`segtrack.models.siammask`).

Online, without any adaptation: the exemplar (127x127 SiamFC crop of the initial box, context
``p = (w + h) / 2``) is encoded once; every frame a 255x255 search crop around the last target
state is correlated with it, giving 17x17 RoWs.

* **Score**: 3b: RPN anchor probabilities, re-weighted by SiamRPN's scale / aspect-ratio change
  penalty ``exp(-(r_c s_c - 1) penalty_k)`` and mixed with a cosine (Hanning) window
  (``window_influence``); 2b: the SiamFC logistic score mixed with the same cosine window (with
  no box per RoW there is no scale / aspect penalty).
* **Mask**: the mask branch is run on the RoW of the best score only; sigmoid, pasted back into
  the frame (bilinear), threshold 0.5.
* **Next search region**: 3b: the best anchor's regressed box (size smoothed with the learning
  rate ``lr x penalty x score``, as SiamRPN) or, a departure from the seed (``state_from``,
  default "stable"), the box of the output mask's piece under it where that box's size is
  nearer the last state's: on long box-tracking clips the regressed box often spans the target
  and a neighbour, and the mask sometimes shrinks to a part, and following whichever of the two
  changes less gained 0.003-0.04 success AUC on four box-tracking sets; on the short DAVIS
  folds 1 and 2 it changed J&F by -0.001 (BENCHMARKS.md); 2b: the min-max box of the output mask
  (when the mask is empty: the best RoW's centre, size kept).
* The frozen networks run in ONNX Runtime (:mod:`segtrack.runtime`) on every core (it does
  not busy-wait); what stays in torch runs with ``threads`` = 1 torch thread by default (more
  threads on a loaded machine were 10x slower here).  The depth-wise correlation is written as
  one matrix product with the exemplar kernel turned into Toeplitz matrices once per object.
  Several objects' search crops share one backbone pass.
* **Outputs**: ``Prediction.box`` = min-max box of the mask, ``Prediction.rotated_box`` = its MBR
  (what SiamMask reports on VOT), ``extra["opt_box"]`` = the VOT-2016 Opt box when ``opt_box``
  is set (slow), ``extra["rpn_box"]`` (3b) = the box branch's axis-aligned box,
  ``extra["state_box"]`` = the box the next search region is cropped from.

Initialisation is the user's box (a mask's min-max box when given a mask); the init prediction
is the base class's (the filled box).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from segtrack.errors import InputError
from segtrack.models.rts.search import crop_image
from segtrack.models.shared import shared
from segtrack.profiling import stage
from segtrack.trackers.base import EdgeParams, Tracker, TrackerParams, make_prediction
from segtrack.trackers.nearness import NearParams, NearPrior
from segtrack.types import Prediction


def _load_net(path: Path, device: str):
    from segtrack.models.siammask import load_siammask

    return shared(("siammask-heads", str(path), device), lambda: load_siammask(path, device))


def _load_backbone(name: str, device: str):
    def build():
        from segtrack.models.rts.infer import fuse_batchnorm
        from segtrack.models.siammask import build_siammask_backbone

        return fuse_batchnorm(build_siammask_backbone(name)).to(device)

    return shared(("siammask-backbone", name, device), build)


class _Graphs:
    """The frozen networks of one SiamMask configuration on the chosen runtime."""

    def __init__(self, net, backbone, tag: str, search: int, runtime: str, device: str) -> None:
        from segtrack.models.siammask import (
            EXEMPLAR,
            FEAT_CH,
            BackboneGraph,
            RefineGraph,
            SearchGraph,
            TemplateGraph,
            toeplitz_kernel,
        )
        from segtrack.runtime import frozen

        def img(n: int) -> torch.Tensor:
            return torch.zeros(1, n, n, 3, dtype=torch.uint8, device=device)

        # ONNX Runtime uses every core (it does not busy-wait, so it shares the CPU well);
        # ``threads`` caps torch's own threads
        kw = {"runtime": runtime, "device": device}
        self.template = frozen(TemplateGraph(backbone, net).eval(), f"siammask-template-{tag}",
                               [img(EXEMPLAR)], ["image"], None, **kw)
        self.backbone = frozen(BackboneGraph(backbone).eval(), f"siammask-backbone-{search}",
                               [img(search)], ["image"], {0: {0: "batch"}}, **kw)
        with torch.no_grad():
            kernel = self.template(img(EXEMPLAR))
            f4, f8, f16 = BackboneGraph(backbone)(img(search))
        self.width = int(f16.shape[-1])
        T = toeplitz_kernel(kernel, self.width)
        self.search = frozen(SearchGraph(net, int(kernel.shape[-1])).eval(),
                             f"siammask-search-{tag}-{search}", [f16, T], ["f16", "kernel"],
                             None, **kw)
        self.refine = None
        if net.refine is not None:
            C = net.cfg.channels
            self.refine = frozen(
                RefineGraph(net).eval(), f"siammask-refine-{tag}",
                [torch.zeros(1, C), torch.zeros(1, FEAT_CH[16], 16, 16),
                 torch.zeros(1, FEAT_CH[8], 16, 16), torch.zeros(1, FEAT_CH[4], 32, 32)],
                ["row", "f16", "f8", "f4"], None, **kw)


@dataclasses.dataclass
class SiamMaskParams(TrackerParams, EdgeParams, NearParams):
    weights: str = ""  # file, or committed name ("" = weights/<method>.pt; "siammask-fold0")
    penalty_k: float = 0.04  # scale / aspect change penalty (3b)
    window_influence: float = 0.42  # cosine window weight
    lr: float = 0.25  # target size update rate (3b)
    threshold: float = 0.5  # mask threshold on the sigmoid
    opt_box: bool = False  # also compute the (slow) Opt box into extra["opt_box"]
    min_size: float = 8.0  # smallest target side kept in the state (pixels)
    # search crop side: the seed's 255 (17x17 RoWs) runs at 23.3 fps on this idle 2-core CPU;
    # 191 (9x9 RoWs) at 41.5 fps with the same held-out DAVIS J&F, but it loses fast-moving
    # objects (synthetic test video: mean IoU 0.41 vs > 0.5), so 255 stays the default.
    search_size: int = 255
    threads: int = 1  # torch threads while tracking (0 = leave torch's setting); the CPU is shared
    runtime: str = "auto"  # frozen networks: auto (ONNX Runtime if installed) | onnx | torch
    edge_radius: float = 2.5  # boundary filter radius in mask cells (best on fold 0)
    # what the next search region follows (3b): "box", the box branch's box (the seed's);
    # "mask", the min-max box of the output mask; "stable" (default), of those two the one whose
    # size is nearer the last state's: a box-branch box spanning two objects, or a mask that
    # shrinks to a part of the target, each moves it further.  With pieces=peak the mask's box
    # is that of its piece under the box branch's centre only (pieces=all: the whole mask).
    # Chosen on box-tracking clips (BENCHMARKS.md, "SiamMask: what the search region follows")
    state_from: str = "stable"
    pieces: str = "peak"


def _to_tensor(img: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].float(
    ) / 255


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _size_change(w: float, h: float, size: np.ndarray) -> float:
    """How far a ``w`` x ``h`` box is from the state's ``size``: |log w ratio| + |log h ratio|."""
    return abs(float(np.log(max(w, 1.0) / size[0]))) + abs(float(np.log(max(h, 1.0) / size[1])))


def _sz(w: np.ndarray | float, h: np.ndarray | float) -> np.ndarray:
    p = (w + h) * 0.5
    return np.sqrt((w + p) * (h + p))


class SiamMaskTracker(Tracker):
    """SiamMask, three-branch variant (score + box + mask), seed 004."""

    name = "siammask"
    Params = SiamMaskParams
    learns = True
    variant = "3b"

    def __init__(self, params=None, device: str = "cpu", **kw) -> None:
        super().__init__(params, device, **kw)
        from segtrack.models.siammask import default_weights, make_anchors, response_size

        p = self.params
        if not 135 <= int(p.search_size) <= 511:
            raise InputError(f"parameter 'search_size': {p.search_size} not in [135, 511]")
        self.n = response_size(int(p.search_size))
        if not 0.0 <= p.window_influence <= 1.0:
            raise InputError(f"parameter 'window_influence': {p.window_influence} not in [0, 1]")
        if not 0.0 < p.threshold < 1.0:
            raise InputError(f"parameter 'threshold': {p.threshold} not in (0, 1)")
        if p.state_from not in ("box", "mask", "stable"):
            raise InputError(f"parameter 'state_from': {p.state_from!r} is not box, mask or "
                             "stable")
        if p.pieces not in ("all", "peak"):
            raise InputError(f"parameter 'pieces': {p.pieces!r} is not all or peak")
        p.check_edges()
        path = Path(p.weights) if p.weights else default_weights(self.name)
        if p.weights and not path.is_file() and default_weights(p.weights.removesuffix(".pt")
                                                                ).is_file():
            path = default_weights(p.weights.removesuffix(".pt"))  # a committed name
        self.net = _load_net(path, device)
        if self.net.cfg.variant != self.variant:
            raise InputError(f"weights '{path}' are a {self.net.cfg.variant} SiamMask, "
                             f"method '{self.name}' needs {self.variant}")
        self.backbone = _load_backbone(self.net.cfg.backbone, device)
        from segtrack.runtime import resolve_runtime

        runtime = resolve_runtime(p.runtime, device)
        self._graph_key = ("siammask-graphs", str(path), int(p.search_size), runtime, device)
        self.graphs = shared(self._graph_key, lambda: _Graphs(
            self.net, self.backbone, path.stem, int(p.search_size), runtime, device))
        self.anchors = make_anchors(self.net.cfg, self.n)
        han = np.hanning(self.n)
        self.window = np.outer(han, han)[None]

    # -- Tracker API ------------------------------------------------------------------------
    def _threaded(self, fn, *args):
        old = torch.get_num_threads()
        if self.params.threads > 0:
            torch.set_num_threads(int(self.params.threads))
        try:
            return fn(*args)
        finally:
            if self.params.threads > 0:
                torch.set_num_threads(old)

    def _init(self, frame, mask, box) -> None:
        self._threaded(self._init_impl, frame, mask, box)

    def _track(self, frame: np.ndarray) -> Prediction:
        return self._threaded(self._track_impl, frame)

    @torch.no_grad()
    def _init_impl(self, frame, mask, box) -> None:
        from segtrack.geometry import mask_to_box
        from segtrack.models.rts.search import Crop, crop_image
        from segtrack.models.siammask import EXEMPLAR, context_sides

        x, y, w, h = box if box is not None else mask_to_box(mask)
        self.center = np.array([x + w / 2.0, y + h / 2.0])
        self.size = np.array([float(w), float(h)])
        s_z, _ = context_sides(w, h)
        z = crop_image(frame, Crop(self.center[0], self.center[1], s_z, EXEMPLAR))
        from segtrack.models.siammask import toeplitz_kernel

        kernel = self.graphs.template(torch.from_numpy(z)[None].to(self.device))
        self.kernel = toeplitz_kernel(kernel, self.graphs.width)  # once per object
        self.near = NearPrior(mask)

    def batch_key(self):
        return self._graph_key

    @classmethod
    def _track_many(cls, trackers: list[SiamMaskTracker], frame: np.ndarray) -> list[Prediction]:
        """Several objects: their search crops go through the backbone as one batch."""
        first = trackers[0]
        return first._threaded(cls._track_many_impl, trackers, frame)

    @classmethod
    @torch.no_grad()
    def _track_many_impl(cls, trackers, frame) -> list[Prediction]:
        with stage("crop"):
            crops = [t._search_crop(frame) for t in trackers]
            imgs = torch.from_numpy(np.stack([crop_image(frame, c) for c in crops]))
        with stage("backbone"):
            f4, f8, f16 = trackers[0].graphs.backbone(imgs.to(trackers[0].device))
        return [t._after_backbone(frame, c, {4: f4[k:k + 1], 8: f8[k:k + 1], 16: f16[k:k + 1]})
                for k, (t, c) in enumerate(zip(trackers, crops))]

    def _search_crop(self, frame: np.ndarray):
        from segtrack.models.rts.search import Crop
        from segtrack.models.siammask import context_sides

        S = int(self.params.search_size)
        _, s_x = context_sides(*self.size, search=S)
        return Crop(float(self.center[0]), float(self.center[1]), s_x, S)

    def _track_impl(self, frame: np.ndarray) -> Prediction:
        return self._track_many_impl([self], frame)[0]

    def _after_backbone(self, frame: np.ndarray, crop, feats: dict) -> Prediction:
        from segtrack.models.rts.search import Crop, paste_scores
        from segtrack.models.siammask import STRIDE, WINDOW, decode_boxes

        p = self.params
        H, W = frame.shape[:2]
        with stage("heads"):
            out = self.graphs.search(feats[16], self.kernel)
        corr, score_t = out[0], out[1]
        box_t = out[2] if len(out) > 2 else None
        prob = torch.sigmoid(score_t[0]).numpy().astype(np.float64)  # (k, n, n)
        scale = crop.scale
        tw, th = self.size * scale
        if box_t is not None:
            deltas = box_t[0].permute(0, 2, 3, 1).numpy().astype(np.float64)  # (k, n, n, 4)
            boxes = decode_boxes(self.anchors, deltas)
            s_c = _change(_sz(boxes[..., 2], boxes[..., 3]) / _sz(tw, th))
            r_c = _change((tw / th) / (boxes[..., 2] / boxes[..., 3]))
            penalty = np.exp(-(r_c * s_c - 1.0) * p.penalty_k)
        else:
            boxes = None
            penalty = np.ones_like(prob)
        pscore = penalty * prob * (1 - p.window_influence) + self.window * p.window_influence
        a, i, j = np.unravel_index(int(np.argmax(pscore)), pscore.shape)
        best = float(prob[a, i, j])
        # mask of the best RoW, pasted back into the frame
        with stage("heads"):
            logits = self._mask_logits(corr, feats, int(i), int(j))
        mprob = torch.sigmoid(logits[0]).numpy()
        wx, wy = crop.point_to_frame(STRIDE * j + WINDOW / 2, STRIDE * i + WINDOW / 2)
        wcrop = Crop(wx, wy, WINDOW / scale, mprob.shape[0])
        with stage("paste"):
            scores = paste_scores(mprob, wcrop, (H, W))
        with stage("edges"):
            scores = p.refine(scores, frame, wcrop.side / mprob.shape[0])
            if self.accompanied and p.near_scale > 0:
                scores = self.near(scores, p.near_scale, floor=p.threshold)
            mask = scores > p.threshold
        self.near.update(mask)
        extra: dict = {}
        if boxes is not None:
            bcx, bcy = crop.point_to_frame(boxes[a, i, j, 0], boxes[a, i, j, 1])
            bw, bh = boxes[a, i, j, 2] / scale, boxes[a, i, j, 3] / scale
            extra["rpn_box"] = (bcx - bw / 2, bcy - bh / 2, bw, bh)
            lr = penalty[a, i, j] * best * p.lr
            if p.state_from != "box" and mask.any():
                from segtrack.geometry import mask_to_box, piece_box

                mx, my, mw, mh = (piece_box(mask, (bcx, bcy)) if p.pieces == "peak"
                                  else mask_to_box(mask))
                use_mask = True
                if p.state_from == "stable":
                    use_mask = _size_change(mw, mh, self.size) < _size_change(bw, bh, self.size)
                if use_mask:
                    bcx, bcy, bw, bh = mx + mw / 2.0, my + mh / 2.0, float(mw), float(mh)
            self.center = np.array([bcx, bcy])
            self.size = self.size * (1 - lr) + np.array([bw, bh]) * lr
        elif mask.any():
            from segtrack.geometry import mask_to_box

            x, y, w, h = mask_to_box(mask)
            self.center = np.array([x + w / 2.0, y + h / 2.0])
            self.size = np.array([w, h], float)
        else:
            self.center = np.array([wx, wy])
        self.center = np.clip(self.center, 0, [W, H])
        self.size = np.clip(self.size, p.min_size, [W, H])
        extra["state_box"] = tuple(float(v) for v in (*(self.center - self.size / 2), *self.size))
        if p.opt_box and mask.any():
            from segtrack.geometry import mask_to_opt_box

            extra["opt_box"] = mask_to_opt_box(mask)
        return make_prediction(mask, score=best, scores=scores, **extra)


    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """The next frame's distance prior starts from the mask left after the overlaps."""
        self.near.revise(mask)

    def _mask_logits(self, corr, feats, i: int, j: int) -> torch.Tensor:
        """Mask logits (1, S, S) of the RoW (i, j)."""
        if self.graphs.refine is None:
            return self.net.masks(corr, feats, torch.tensor([0]), torch.tensor([i]),
                                  torch.tensor([j]))
        return self.graphs.refine(corr[:, :, i, j], feats[16][:, :, i:i + 16, j:j + 16],
                                  feats[8][:, :, i:i + 16, j:j + 16],
                                  feats[4][:, :, 2 * i:2 * i + 32, 2 * j:2 * j + 32])


class SiamMask2BTracker(SiamMaskTracker):
    """SiamMask, two-branch variant (SiamFC score + mask), seed 004."""

    name = "siammask-2b"
    variant = "2b"
