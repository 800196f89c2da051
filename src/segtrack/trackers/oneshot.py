"""``osvos``, ``onavos``, ``masktrack``, ``masktrack-flow``: the one-shot family (seeds 000, 002).

Seed 000 "OSVOS architecture", "Training", "OnAVOS", "MaskTrack", "LucidTrack"; seed 002
"OSVOS", "OnAVOS: Online Adaptation", "MaskTrack".

* ``osvos``: the parent network (:mod:`segtrack.models.oneshot`, trained offline with
  ``segtrack train osvos``) is fine-tuned on the first frame ("First-frame adaptation ... using
  fine-tuning"; augmented copies: random scale, rotation, shift, flip), then every frame is
  segmented independently ("Test time: each frame is processed independently").
* ``onavos``: OSVOS plus online adaptation (Voigtlaender & Leibe 2017, Alg. 1): on each frame the
  network's posteriors give positives (probability > ``pos_threshold``), pixels farther than
  ``neg_distance`` (fraction of the frame diagonal) from the last mask are negatives, the rest is
  ignored; ``online_steps`` update steps each mix that frame with a first-frame example (so the
  model follows appearance changes without drifting), then the frame is segmented again.
* ``masktrack``: the network also sees the previous frame's mask and refines it ("Mask as
  additional input channel"); fine-tuning on the first frame (``finetune``, default on) uses
  simulated previous masks.  ``masktrack-flow`` (its own method name, own weights): the previous
  mask is first warped to the current frame with DIS optical flow (as the ``flow`` tracker) and
  the flow magnitude is an extra input channel (seed 000 "LucidTrack: like MaskTrack + uses
  optical flow").
* ``lucid=true`` (``osvos``, ``onavos``, ``masktrack``, ``masktrack-flow``): LucidTrack data
  dreaming (:mod:`segtrack.data.lucid`) adds ``lucid_samples`` dreamed images (MaskTrack:
  dreamed consecutive-frame pairs with their previous masks) to the fine-tuning set.

CPU departures: the backbone stays frozen (only the head is fine-tuned, on backbone features of
the fine-tuning samples computed once); the network works at short side 256.  The fine-tuning
budget is ``ft_iters`` iterations (50 for OSVOS, 100 for MaskTrack, 200 for OnAVOS: the fewest
within one J&F point of 200 on held-out DAVIS), with an opt-in cap of ``ft_seconds`` of wall clock
counted from the start of ``init`` (off by default: a cut makes results depend on the load).
The fine-tuning seconds of every video are appended
to :data:`FINETUNE_LOG` (and kept in ``tracker.finetune_seconds``).
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np
import torch

from segtrack.models.shared import shared
from segtrack.profiling import stage
from segtrack.trackers.base import EdgeParams, Tracker, TrackerParams, make_prediction
from segtrack.types import Prediction

#: fine-tuning seconds of each initialised video (in order), for the benchmarks
FINETUNE_LOG: list[float] = []


@dataclasses.dataclass
class OSVOSParams(TrackerParams, EdgeParams):
    weights: str = ""  # "" = the committed weights/<method>.pt
    threshold: float = 0.5
    short_side: int = 0  # network input short side (0 = the weights' own, 256)
    finetune: bool = True  # first-frame fine-tuning
    # fine-tuning budget in iterations (deterministic): the fewest within 1 J&F point of 200
    # on held-out DAVIS fold 0 (BENCHMARKS.md): OSVOS 50, MaskTrack (+Flow) 100, OnAVOS 200
    ft_iters: int = 50
    ft_seconds: float = 0.0  # opt-in wall-clock cap of init + fine-tuning (0 = none)
    ft_lr: float = 1e-3
    ft_batch: int = 4
    ft_augment: int = 8  # augmented copies of the first frame
    aug_scale: float = 0.15  # +- relative scale change
    aug_rotate: float = 10.0  # +- degrees
    aug_shift: float = 0.1  # +- fraction of the frame size
    aug_flip: bool = True
    lucid: bool = False  # add Lucid data dreaming samples
    lucid_samples: int = 8
    runtime: str = "auto"  # frozen networks: auto (ONNX Runtime if installed) | onnx | torch
    # boundary refinement (cells = stride 2 of the network input): radius chosen on held-out
    # DAVIS fold 0 (BENCHMARKS.md, "One-shot family: boundary refinement")
    edge_radius: float = 4.0


@dataclasses.dataclass
class OnAVOSParams(OSVOSParams):
    ft_iters: int = 200  # 50 lost 3 J&F points: online adaptation needs the better start
    pos_threshold: float = 0.97  # positives: posterior above this
    neg_distance: float = 0.2  # negatives: farther than this x frame diagonal from the last mask
    online_steps: int = 2  # update steps per frame
    online_lr: float = 3e-5  # 5e-4 and 1e-4 drifted on car-turn (docs/oneshot.md)
    online_every: int = 1  # adapt on every k-th frame


@dataclasses.dataclass
class MaskTrackParams(OSVOSParams):
    ft_iters: int = 100


@dataclasses.dataclass
class MaskTrackFlowParams(MaskTrackParams):
    flow: str = "dis"  # the optical flow: dis | flownet | flownet-s | flownet-c


# ------------------------------------------------------------------------------------------
def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 p: OSVOSParams, motion: float = 0.0,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random affine (scale, rotation, shift, flip) copy of (image, mask) and, ``motion`` > 0,
    a second copy differing by a small extra transformation (``motion`` x the ranges): returns
    (image_a, mask_a, image_b, mask_b)."""
    h, w = mask.shape
    flip = p.aug_flip and rng.random() < 0.5

    def draw(k: float) -> np.ndarray:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-1, 1) * p.aug_rotate * k,
                                    1 + rng.uniform(-1, 1) * p.aug_scale * k)
        m[0, 2] += rng.uniform(-1, 1) * p.aug_shift * k * w
        m[1, 2] += rng.uniform(-1, 1) * p.aug_shift * k * h
        return m

    def apply(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        im = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
        mk = cv2.warpAffine(mask.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT) > 0
        if flip:
            im, mk = im[:, ::-1].copy(), mk[:, ::-1].copy()
        return im, mk

    m1 = draw(1.0)
    a = apply(m1)
    if motion <= 0:
        return a[0], a[1], a[0], a[1]
    d = np.vstack([draw(motion), [0, 0, 1]]) @ np.vstack([m1, [0, 0, 1]])
    b = apply(d[:2])
    return a[0], a[1], b[0], b[1]


class _Graphs:
    """The frozen backbone at one network input size and the head graph (parameters as
    inputs) of one parent network, on the chosen runtime."""

    def __init__(self, parent, size: tuple[int, int], runtime: str, device: str) -> None:
        from segtrack.models.oneshot import STRIDES, FeatureGraph, HeadGraph
        from segtrack.runtime import frozen

        h, w = size
        img = torch.zeros(1, h, w, 3, dtype=torch.uint8, device=device)
        batch = {0: {0: "batch"}}
        tag = f"{parent.cfg.backbone}-{h}x{w}"
        self.features = frozen(FeatureGraph(parent.backbone).eval(), f"oneshot-features-{tag}",
                               [img], ["image"], batch, runtime, device)
        self.head = None
        if runtime in ("onnx", "openvino"):
            graph = HeadGraph(parent.head).eval()
            with torch.no_grad():
                taps = list(FeatureGraph(parent.backbone)(img))
            extra = [torch.zeros(1, parent.cfg.extra, h // 2, w // 2)] if parent.cfg.extra else []
            params = graph.inputs_for(parent.head)
            ins = taps + extra + params
            names = ([f"f{s}" for s in STRIDES] + ["extra"] * len(extra)
                     + [f"p{i}" for i in range(len(params))])
            dyn = {i: {0: "batch"} for i in range(len(taps) + len(extra))}
            self.head = frozen(graph, f"oneshot-head-{parent.cfg.kind}-{tag}", ins, names, dyn,
                               runtime, device)
            self.head_inputs = graph.inputs_for


@dataclasses.dataclass
class _Sample:
    image: np.ndarray  # network size
    target: np.ndarray  # bool, stride 2
    prev: np.ndarray | None = None  # bool, stride 2 (None: simulate from target)
    flow: np.ndarray | None = None  # float, stride 2


class OSVOSTracker(Tracker):
    """First-frame fine-tuned parent network; frames segmented independently."""

    name = "osvos"
    Params = OSVOSParams
    learns = True
    default_weights = "osvos"
    #: extra input channels: 0 (OSVOS), 1 (mask), 2 (mask + flow)
    extra = 0

    # -- set-up -------------------------------------------------------------------------------
    def _load(self):
        from segtrack.models.oneshot import load_oneshot, resolve_weights

        path = resolve_weights(self.params.weights, self.default_weights)
        parent = load_oneshot(path, self.device)
        self._parent, self._parent_path = parent, path
        if parent.cfg.extra != self.extra:
            from segtrack.errors import InputError

            raise InputError(f"weights '{self.params.weights}' are a {parent.cfg.kind} network, "
                             f"not {self.name}")
        return parent.copy_with_head()

    def _samples(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 ) -> list[_Sample]:
        """Fine-tuning samples at network size: the frame, augmented copies, dreams."""
        from segtrack.models.oneshot import resize

        half = self.half
        p = self.params
        out = [_Sample(image, resize(mask, half), flow=self._zero_flow())]
        flow = self.extra == 2
        for _ in range(int(p.ft_augment)):
            ia, ma, ib, mb = augment_pair(image, mask, rng, p, motion=0.15 if flow else 0.0)
            s = _Sample(ib, resize(mb, half))
            if flow:
                s.prev, s.flow = self._flow_prev(ia, ma, ib)
            out.append(s)
        if p.lucid and p.lucid_samples > 0:
            from segtrack.data.lucid import dream_frame, dream_pair, inpaint_background

            bg = inpaint_background(image, mask)
            for _ in range(int(p.lucid_samples)):
                if self.extra == 0:
                    im, m = dream_frame(image, mask, rng, background=bg)
                    out.append(_Sample(im, resize(m, half)))
                else:
                    i1, m1, i2, m2 = dream_pair(image, mask, rng, background=bg)
                    s = _Sample(i2, resize(m2, half), prev=resize(m1, half))
                    if flow:
                        s.prev, s.flow = self._flow_prev(i1, m1, i2)
                    out.append(s)
        return out

    def _zero_flow(self) -> np.ndarray | None:
        return np.zeros(self.half, np.float32) if self.extra == 2 else None

    def _backward_flow(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """The flow from ``cur`` back to ``prev`` (DIS, as the parent networks were trained)."""
        from segtrack.models.oneshot import dis_flow

        return dis_flow(prev, cur)

    def _flow_prev(self, img_prev: np.ndarray, mask_prev: np.ndarray, img: np.ndarray,
                   flow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(previous mask warped to ``img`` at stride 2, flow magnitude at stride 2); ``flow``:
        the DIS flow from ``img_prev`` to ``img`` when already computed."""
        from segtrack.models.oneshot import flow_magnitude, resize
        from segtrack.trackers.flow import warp_backward

        fl = self._backward_flow(img_prev, img) if flow is None else flow
        warped = warp_backward(mask_prev.astype(np.float32), fl, cv2.INTER_LINEAR) > 0.5
        return resize(warped, self.half), resize(flow_magnitude(fl), self.half)

    def _extra_for(self, samples: list[_Sample], rng: np.random.Generator | None,
                   ) -> torch.Tensor | None:
        from segtrack.data.lucid import simulate_previous_mask
        from segtrack.models.oneshot import extra_tensor

        if self.extra == 0:
            return None
        prevs = []
        for s in samples:
            if rng is None:  # deterministic: the sample's own previous mask or its target
                prevs.append(s.prev if s.prev is not None else s.target)
            elif s.prev is not None and rng.random() < 0.5:
                prevs.append(s.prev)
            else:
                prevs.append(simulate_previous_mask(s.target, rng))
        flows = [s.flow if s.flow is not None else np.zeros(self.half, np.float32)
                 for s in samples] if self.extra == 2 else None
        return extra_tensor(prevs, flows)

    def _features(self, images: list[np.ndarray]) -> dict[int, torch.Tensor]:
        """Backbone taps of network-size uint8 images (4 at a time)."""
        from segtrack.models.oneshot import STRIDES

        parts = []
        for i in range(0, len(images), 4):
            x = torch.from_numpy(np.ascontiguousarray(np.stack(images[i:i + 4])))
            with torch.no_grad():
                parts.append(self.graphs.features(x.to(self.device)))
        if len(parts) == 1:  # one frame while tracking: no concatenation copy
            return dict(zip(STRIDES, parts[0]))
        return {s: torch.cat([q[k] for q in parts]) for k, s in enumerate(STRIDES)}

    def sample_loss(self, idx: list[int], rng: np.random.Generator | None = None,
                    flip: bool = False) -> torch.Tensor:
        """Balanced cross-entropy of the fine-tuning samples ``idx`` (0 = the first frame)."""
        from segtrack.models.oneshot import balanced_bce

        bt = torch.as_tensor(idx)
        f = {s: v[bt] for s, v in self.ft_feats.items()}
        y = torch.from_numpy(np.stack([self.ft_samples[i].target for i in idx]))[:, None]
        ex = self._extra_for([self.ft_samples[i] for i in idx], rng)
        if flip:
            f = {s: v.flip(-1) for s, v in f.items()}
            y = y.flip(-1)
            ex = ex.flip(-1) if ex is not None else None
        return balanced_bce(self.net.head(f, ex), y.float())

    def first_frame_loss(self) -> float:
        """Loss on the un-augmented first frame (MaskTrack: previous mask = its own mask)."""
        with torch.no_grad():
            return float(self.sample_loss([0]))

    def _finetune(self, rng: np.random.Generator, t0: float) -> None:
        """Adam on the head; stops after ``ft_iters`` or ``ft_seconds`` after ``t0``."""
        p = self.params
        head = self.net.head.train()
        opt = torch.optim.Adam(head.parameters(), lr=p.ft_lr)
        n = len(self.ft_samples)
        self.ft_iters_done = 0
        for _ in range(int(p.ft_iters)):
            if p.ft_seconds > 0 and time.perf_counter() - t0 > p.ft_seconds:
                break
            b = min(int(p.ft_batch), n)
            idx = [0] + rng.choice(np.arange(1, n), size=b - 1, replace=False).tolist() \
                if n > 1 and b > 1 else [0]
            loss = self.sample_loss(idx, rng, flip=bool(rng.random() < 0.5))
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.ft_iters_done += 1
        head.eval()

    def _init(self, frame, mask, box) -> None:
        from segtrack.models.oneshot import net_size, resize

        t0 = time.perf_counter()
        self.params.check_edges()
        rng = np.random.default_rng(self.params.seed)
        torch.manual_seed(self.params.seed)
        self.net = self._load()
        H, W = frame.shape[:2]
        self.size = net_size(H, W, int(self.params.short_side) or self.net.cfg.short_side)
        self.half = (self.size[0] // 2, self.size[1] // 2)
        from segtrack.runtime import resolve_runtime

        runtime = resolve_runtime(self.params.runtime, self.device)
        self._graph_key = ("oneshot-graphs", str(self._parent_path), self.size, runtime,
                           self.device)
        self.graphs = shared(self._graph_key, lambda: _Graphs(
            self._parent, self.size, runtime, self.device))
        small = resize(frame, self.size)
        small_mask = resize(mask, self.size)
        if not small_mask.any():  # a tiny object: keep its pixel nearest to the centroid
            ys, xs = np.nonzero(mask)
            small_mask[min(int(ys.mean() * self.size[0] / H), self.size[0] - 1),
                       min(int(xs.mean() * self.size[1] / W), self.size[1] - 1)] = True
        self.ft_samples = self._samples(small, small_mask, rng) if self.params.finetune else \
            [_Sample(small, resize(small_mask, self.half), flow=self._zero_flow())]
        self.ft_feats = self._features([s.image for s in self.ft_samples])
        self.loss_before = self.first_frame_loss()
        self.ft_iters_done = 0
        if self.params.finetune:
            self._finetune(rng, t0)
        self.loss_after = self.first_frame_loss()
        self.rng = rng
        self.prev_small = small
        self.prev_mask = resize(small_mask, self.half)
        self.finetune_seconds = time.perf_counter() - t0
        FINETUNE_LOG.append(self.finetune_seconds)

    # -- tracking -----------------------------------------------------------------------------
    @torch.no_grad()
    def _logits(self, feats, extra: torch.Tensor | None) -> torch.Tensor:
        if self.graphs.head is None:
            return self.net.head(feats, extra)[0, 0]
        from segtrack.models.oneshot import STRIDES

        ins = [feats[s] for s in STRIDES] + ([extra] if extra is not None else [])
        return self.graphs.head(*ins, *self.graphs.head_inputs(self.net.head))[0, 0]

    def _extra_now(self, small: np.ndarray, memo: dict) -> torch.Tensor | None:
        """Extra input channels for ``small`` (``memo``: per-frame values objects share)."""
        return None

    def _full_prob(self, logits: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        """The object probability at the frame size (boundaries refined)."""
        import torch.nn.functional as F

        H, W = self.frame_shape
        with stage("paste"):
            prob = torch.sigmoid(F.interpolate(logits[None, None], size=(H, W), mode="bilinear",
                                               align_corners=False))[0, 0].numpy()
        with stage("edges"):
            return self.params.refine(prob, frame, H / logits.shape[0])

    def _prediction(self, prob: np.ndarray, small: np.ndarray) -> Prediction:
        """The prediction of the frame-size probability ``prob``; ``small``: the mask at the
        network's stride 2 that becomes the previous mask (when not empty)."""
        mask = prob > self.params.threshold
        if small.any():
            self.prev_mask = small
        score = float(prob[mask].mean()) if mask.any() else 0.0
        return make_prediction(mask, score=score, scores=prob.astype(np.float32))

    def _finish(self, logits: torch.Tensor, frame: np.ndarray) -> Prediction:
        small = torch.sigmoid(logits).numpy() > self.params.threshold
        return self._prediction(self._full_prob(logits, frame), small)

    def batch_key(self):
        return (self._graph_key, self.name)

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """The previous mask (MaskTrack's guidance, OnAVOS's positives) loses the pixels that
        went to another object."""
        prev = getattr(self, "prev_mask", None)
        if prev is None:
            return
        h, w = prev.shape[:2]
        o = cv2.resize(others.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
        kept = prev & ~o
        if kept.any():
            self.prev_mask = kept

    def _track(self, frame) -> Prediction:
        return self._track_many([self], frame)[0]

    @classmethod
    def _track_many(cls, trackers: list[OSVOSTracker], frame) -> list[Prediction]:
        """Several objects on one frame: the frame's backbone features (and for MaskTrack+Flow
        its flow field) are computed once and shared by every object's head."""
        from segtrack.models.oneshot import resize

        first = trackers[0]
        with stage("crop"):
            small = resize(frame, first.size)
        with stage("backbone"):
            feats = first._features([small])
        shared_flow: dict = {}
        preds = []
        for t in trackers:
            with stage("flow"):
                extra = t._extra_now(small, shared_flow)
            with stage("heads"):
                logits = t._logits(feats, extra)
            with stage("finetune"):
                logits = t._adapt(feats, extra, logits)
            t.prev_small = small
            preds.append(t._finish(logits, frame))
        return preds

    def _adapt(self, feats, extra, logits: torch.Tensor) -> torch.Tensor:
        return logits


class OnAVOSTracker(OSVOSTracker):
    """OSVOS + online adaptation on confident positives and far negatives."""

    name = "onavos"
    Params = OnAVOSParams
    default_weights = "osvos"

    def _init(self, frame, mask, box) -> None:
        super()._init(frame, mask, box)
        p = self.params
        self.opt = torch.optim.Adam(self.net.head.parameters(), lr=p.online_lr)
        self.online_updates = 0

    def _adapt(self, feats, extra, logits: torch.Tensor) -> torch.Tensor:
        from segtrack.models.oneshot import balanced_bce

        p = self.params
        if p.online_steps <= 0 or self.frame_index % max(1, int(p.online_every)):
            return logits
        prob = torch.sigmoid(logits).numpy()
        pos = prob > p.pos_threshold
        h, w = prob.shape
        dist = cv2.distanceTransform((~self.prev_mask).astype(np.uint8), cv2.DIST_L2, 5)
        neg = dist > p.neg_distance * float(np.hypot(h, w))
        pos &= ~neg  # far from the last mask: negative even when confident
        if not pos.any() or not neg.any():
            return logits
        y = torch.from_numpy(pos)[None, None].float()
        valid = torch.from_numpy(pos | neg)[None, None].float()
        head = self.net.head.train()
        n = len(self.ft_samples)
        for _ in range(int(p.online_steps)):
            loss = balanced_bce(head(feats, extra), y, valid)
            j = int(self.rng.integers(0, n))  # a first-frame example against drift
            loss = loss + self.sample_loss([j], self.rng, flip=bool(self.rng.random() < 0.5))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        head.eval()
        self.online_updates += 1
        return self._logits(feats, extra)


class MaskTrackTracker(OSVOSTracker):
    """Refines the previous frame's mask (RGB + mask input)."""

    name = "masktrack"
    Params = MaskTrackParams
    default_weights = "masktrack"
    extra = 1

    def _extra_now(self, small: np.ndarray, memo: dict) -> torch.Tensor | None:
        from segtrack.models.oneshot import extra_tensor

        return extra_tensor([self.prev_mask])


class MaskTrackFlowTracker(MaskTrackTracker):
    """MaskTrack+Flow: flow-warped previous mask and flow magnitude as inputs."""

    name = "masktrack-flow"
    Params = MaskTrackFlowParams
    default_weights = "masktrack-flow"
    extra = 2

    def _backward_flow(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """DIS, or with ``flow=flownet`` the trained FlowNet (the parent saw DIS flow)."""
        if self.params.flow == "dis":
            return super()._backward_flow(prev, cur)
        if getattr(self, "_flownet", None) is None:
            from segtrack.video.optical_flow import make_flow_estimator

            self._flownet = make_flow_estimator(self.params.flow, device=self.device)
        return self._flownet.calc(cur, prev)

    def _extra_now(self, small: np.ndarray, memo: dict) -> torch.Tensor | None:
        from segtrack.models.oneshot import extra_tensor, resize

        prev_full = resize(self.prev_mask, self.size)
        if "flow" not in memo:  # one flow field for every object of the frame
            memo["flow"] = self._backward_flow(self.prev_small, small)
        warped, mag = self._flow_prev(self.prev_small, prev_full, small, memo["flow"])
        return extra_tensor([warped], [mag])
