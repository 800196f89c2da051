"""``convlstm``: pixel-wise tracking with a global attention model and a local ConvLSTM
segmenter (seed 003, Algorithm 1; networks in :mod:`segtrack.models.convlstm`).

Algorithm 1 (``mode="2stage"``, method ``convlstm``): the first ROI ``theta_0`` is the square of
twice the longer side of the first mask's box around its centre; M-CNN initialises the local
ConvLSTM memory from that ROI and the dilated mask. For each new frame the global model reads
the previous full-frame segmentation map (resized to a square map), predicts ``theta_t``, which
is smoothed ``theta_est = beta theta_t + (1 - beta) theta_old``; the ROI given by ``theta_est`` is
cropped by the spatial transformer, segmented by the local model, and pasted back into the frame
(zero outside the ROI).

``mode="1stage"`` (method ``convlstm-1stage``): the ROI centre is the probability-weighted
centroid of the previous frame's segmentation (Eq. 5), its size fixed to the first ROI's.
Method ``perframe`` is the independent per-frame segmenter baseline of Tables 2-3: the same
backbone and decoder without recurrence or first-frame memory, with the 1-stage ROI rule.

Departures (docs/convlstm.md): the global model is warmed up with ``warmup`` copies of the
first map (it was trained that way; the paper only says the LSTM needs a burn-in), when the
segmentation becomes empty the ROI stays where it was, and beside other objects the map is
weighted by the distance prior of :mod:`segtrack.trackers.nearness`.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import torch

from segtrack.errors import InputError
from segtrack.models import convlstm as M
from segtrack.trackers.base import Tracker, TrackerParams, make_prediction
from segtrack.trackers.nearness import NearParams, NearPrior
from segtrack.types import Prediction


@dataclasses.dataclass
class ConvLSTMParams(TrackerParams, NearParams):
    # the filled box measured 0.005 J&F better than the box-to-mask network on held-out fold 0
    # (0.304 against 0.299; per-frame baseline equal): this family re-segments every frame
    box_init: str = "box"
    weights: str = ""  # weight file ("" = the committed convlstm.pt; perframe: perframe.pt)
    mode: str = "2stage"  # "2stage" (Algorithm 1) | "1stage" (Eq. 5 centroid, fixed size)
    beta: float = 0.5  # theta smoothing of Algorithm 1 step 5 (1 = no smoothing)
    threshold: float = 0.5  # probability above which a pixel is object
    mask_dilation: int = 5  # dilation radius (ROI pixels) of the M-CNN mask (§3.2)
    warmup: int = 4  # copies of the first map fed to the global model before frame 1
    roi_factor: float = 2.0  # first ROI side / longer side of the mask's box (§3.3)
    threads: int = 0  # torch threads while tracking (0 = leave torch's setting)
    runtime: str = "auto"  # frozen backbone: auto (ONNX Runtime if installed) | onnx | torch
    near_scale: float = 2.0  # chosen on the multi-object validation clips


_CACHE: dict = {}
_LOCK = threading.Lock()


def _load(weights: str, default: str, backbone_name: str | None, device: str):
    """Weights (``default``: the committed file's name when ``weights`` is "") and the frozen
    backbone, cached per (file, device)."""
    path = str(Path(weights) if weights else M.default_weights(default))
    with _LOCK:
        key = (path, device)
        if key not in _CACHE:
            cfg, local, glob, pf = M.load_weights(path, device)
            fx = M.FeatureExtractor(backbone_name or cfg.backbone).to(device).eval()
            _CACHE[key] = (cfg, local, glob, pf, fx)
        return _CACHE[key]


class ConvLSTMTracker(Tracker):
    """Two-stage ConvLSTM tracker (Algorithm 1)."""

    name = "convlstm"
    Params = ConvLSTMParams
    learns = True
    default_mode = "2stage"
    # trained with photographs (+10 J&F on held-out fold 0 for the ConvLSTM tracker, -11 for
    # the per-frame segmenter, which keeps the photograph-free file)
    default_weights = "convlstm"

    def __init__(self, params: ConvLSTMParams | None = None, device: str = "cpu", **kw) -> None:
        if params is None and "mode" not in kw:
            kw["mode"] = self.default_mode
        super().__init__(params, device, **kw)
        p = self.params
        if p.mode not in ("2stage", "1stage", "perframe"):
            raise InputError(
                f"parameter 'mode': must be 2stage, 1stage or perframe, got {p.mode!r}"
            )
        if not 0.0 < p.beta <= 1.0:
            raise InputError(f"parameter 'beta': must be in (0, 1], got {p.beta}")
        self._models = None

    # models can be injected (training uses the tracker for Algorithm 1 on training videos)
    def set_models(self, cfg, local, glob, perframe, extractor) -> None:
        self._models = (cfg, local, glob, perframe, extractor)

    def _get_models(self):
        if self._models is None:
            self._models = _load(self.params.weights, self.default_weights, None, self.device)
        return self._models

    # -- helpers --------------------------------------------------------------------------
    def _features(self, image: np.ndarray, roi, mask: np.ndarray | None = None):
        cfg, *_, fx = self._get_models()
        crop = M.crop_roi(image, roi, cfg.roi)
        x = M.to_tensor_rgb(crop[None]).to(self.device)
        if mask is None:
            from segtrack.models.shared import shared
            from segtrack.runtime import LazyFrozen

            net = shared(("convlstm-features", id(fx), self.params.runtime, self.device),
                         lambda: LazyFrozen(fx, f"convlstm-features-{fx.name}", ["image"],
                                            self.params.runtime, self.device))
            return net(x)
        mc = M.crop_roi(mask.astype(np.float32), roi, cfg.roi)
        mt = torch.from_numpy(mc)[None, None].to(self.device)
        return fx(x), fx(x, mt)

    def _init(self, frame: np.ndarray, mask: np.ndarray, box) -> None:
        cfg, local, glob, pf, fx = self._get_models()
        p = self.params
        if p.mode == "perframe" and pf is None:
            raise InputError("the weight file has no per-frame model")
        self.hw = frame.shape[:2]
        H, W = self.hw
        roi = M.clamp_roi(M.roi_from_mask(mask, p.roi_factor), self.hw)
        self.roi = roi
        self.side0 = roi[2]
        self.gamma = torch.tensor([W / H], dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            if p.mode != "perframe":
                dil = M.dilate(mask, max(0, round(p.mask_dilation * roi[2] / cfg.roi)))
                f0, mf0 = self._features(frame, roi, dil)
                self.state = local.init_state(f0, mf0)
            self.theta_old = torch.from_numpy(M.roi_to_theta(roi, self.hw))[None].to(self.device)
            self.gstate = None
            if p.mode == "2stage":
                z0 = self._map(mask.astype(np.float32))
                for _ in range(max(0, p.warmup)):
                    _, self.gstate = glob.step(z0, self.gamma, self.gstate)
                self.last_map = z0
            self.prev_prob = mask.astype(np.float32)
            self.near = NearPrior(mask)

    def _map(self, prob: np.ndarray) -> torch.Tensor:
        cfg = self._get_models()[0]
        return torch.from_numpy(M.frame_map(prob, cfg.map_size))[None, None].to(self.device)

    def _next_roi(self):
        p = self.params
        cfg, local, glob, pf, fx = self._get_models()
        if p.mode == "2stage":
            theta, self.gstate = glob.step(self.last_map, self.gamma, self.gstate)
            theta = p.beta * theta + (1 - p.beta) * self.theta_old
            self.theta_old = theta
            roi = M.theta_to_roi(theta[0].cpu().numpy(), self.hw)
            return M.clamp_roi(roi, self.hw)
        # 1-stage (Eq. 5): probability-weighted centroid of the previous map, fixed size
        prob = self.prev_prob
        tot = float(prob.sum())
        if tot < 1e-3:
            return self.roi
        ys, xs = np.indices(prob.shape, dtype=np.float64)
        cx = float((prob * (xs + 0.5)).sum() / tot)
        cy = float((prob * (ys + 0.5)).sum() / tot)
        return M.clamp_roi((cx, cy, self.side0), self.hw)

    def _segment(self, frame: np.ndarray):
        """The frame's probability map (H, W) inside the next ROI, and that ROI."""
        cfg, local, glob, pf, fx = self._get_models()
        p = self.params
        threads = torch.get_num_threads()
        if p.threads > 0:
            torch.set_num_threads(p.threads)
        try:
            with torch.inference_mode():
                roi = self._next_roi()
                feat = self._features(frame, roi)
                if p.mode == "perframe":
                    logits = pf(feat)
                else:
                    logits, self.state = local.step(feat, self.state)
                prob_roi = torch.sigmoid(logits)[0, 0].float().cpu().numpy()
        finally:
            if p.threads > 0:
                torch.set_num_threads(threads)
        return M.paste_roi(prob_roi, roi, self.hw), roi

    def _track(self, frame: np.ndarray) -> Prediction:
        p = self.params
        prob, roi = self._segment(frame)
        if self.accompanied:
            prob = self.near(prob, p.near_scale)
        mask = prob > p.threshold
        if mask.any():  # an empty segmentation keeps the last map / ROI
            self.roi = roi
            if p.mode == "2stage":
                with torch.inference_mode():
                    self.last_map = self._map(mask.astype(np.float32))
            self.prev_prob = prob
        self.near.update(mask)
        score = float(prob[mask].mean()) if mask.any() else 0.0
        return make_prediction(mask, score, prob.astype(np.float32), roi=roi)

    def feedback(self, mask: np.ndarray, others: np.ndarray) -> None:
        """The next region and distance prior start from the mask left after the overlaps."""
        self.near.revise(mask)
        if mask.any():
            self.prev_prob = np.where(others, 0.0, self.prev_prob).astype(np.float32)


class ConvLSTM1StageTracker(ConvLSTMTracker):
    """1-stage variant: ROI centre from the Eq. 5 centroid, fixed ROI size."""

    name = "convlstm-1stage"
    default_mode = "1stage"


class PerFrameTracker(ConvLSTMTracker):
    """Independent per-frame ROI segmenter (Tables 2-3 baseline), 1-stage ROI rule."""

    name = "perframe"
    default_mode = "perframe"
    default_weights = "perframe"
