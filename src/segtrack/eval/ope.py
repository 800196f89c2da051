"""One-pass evaluation (OPE) of box trackers: OTB / LaSOT / GOT-10k conventions.

The box measures the thesis (seed document 001, ch. 5 RTS) reports on LaSOT, GOT-10k, UAV123,
NFS and TrackingNet. Conventions, checked against the OTB / LaSOT MATLAB toolkits
(``LaSOT_Evaluation_Toolkit/utils``), pytracking (``analysis/extract_results.py``) and the
GOT-10k toolkit (``got10k/experiments``):

* boxes are ``(x, y, w, h)``; a box covers the continuous interval ``[x, x + w) x [y, y + h)``
  (the OTB ``+1 / -1`` pixel arithmetic is algebraically the same);
* success: fraction of frames with IoU **strictly greater** than the threshold, thresholds
  ``0:0.05:1`` (21 values, OTB / LaSOT / pytracking; GOT-10k plots 101) and AUC = mean of the
  curve (OTB "success score");
* precision: fraction of frames whose centre distance is ``<=`` the threshold in pixels;
  Precision@20 (OTB / LaSOT "precision score");
* normalised precision (LaSOT): centre coordinates divided by the ground-truth width / height,
  thresholds ``0:0.01:0.5`` (51 values); the score is the value at 0.2 (LaSOT toolkit
  ``rank_idx = 21``, pytracking); the mean of the curve is reported too (``NormPrecisionAUC``);
* GOT-10k: AO = mean IoU, SR_t = fraction of frames with IoU > t (t = 0.5, 0.75).

Frames and special cases in :func:`evaluate_ope` (per sequence):

* the first frame is the initialisation: for AUC / precision its prediction is replaced by the
  ground truth (OTB, LaSOT and pytracking all do this); GOT-10k AO / SR leave it out;
* an invalid prediction (NaN, width or height <= 0) is replaced by the previous frame's
  prediction (``calc_seq_err_robust``, LaSOT / OTB / pytracking);
* absent targets (ground truth with NaN or zero width / height, or ``visible=False``):
  for AUC / precision they never count as successes but stay in the denominator (the LaSOT
  toolkit divides by all frames of the sequence, as does pytracking by default); for AO / SR
  they are left out altogether, as GOT-10k does (``cover > 0``);
* aggregation: success / precision curves are averaged over sequences (each sequence weighs the
  same); AO / SR pool the frames of all sequences (GOT-10k concatenates the IoUs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segtrack.errors import InputError

__all__ = [
    "SUCCESS_THRESHOLDS",
    "PRECISION_THRESHOLDS",
    "NORM_PRECISION_THRESHOLDS",
    "valid_boxes",
    "overlaps",
    "success_curve",
    "auc",
    "center_errors",
    "precision_curve",
    "precision_at",
    "normalized_center_errors",
    "normalized_precision_curve",
    "normalized_precision",
    "ao",
    "sr",
    "evaluate_ope",
]

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0


def _boxes(a: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: boxes must be numbers (an (N, 4) x, y, w, h array)") from None
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"{name}: expected an (N, 4) array of x, y, w, h boxes, got {arr.shape}")
    return arr


def _pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _boxes(pred, "pred")
    g = _boxes(gt, "gt")
    if p.shape != g.shape:
        raise InputError(f"pred has {len(p)} boxes but gt has {len(g)}")
    return p, g


def valid_boxes(boxes: Any) -> np.ndarray:
    """``(N,)`` bool: finite values and positive width and height."""
    b = _boxes(boxes, "boxes")
    return np.isfinite(b).all(axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)


def _clip(b: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """Clip boxes to the image ``(width, height)`` exactly as the GOT-10k toolkit's ``rect_iou``.

    x, y are clamped into the image, then w, h are clamped so the box ends inside it. Like the
    toolkit, a box that starts left of / above the image is moved, not shortened.
    """
    b = b.copy()
    b[:, 0] = np.clip(b[:, 0], 0, bound[0])
    b[:, 1] = np.clip(b[:, 1], 0, bound[1])
    b[:, 2] = np.clip(b[:, 2], 0, bound[0] - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, bound[1] - b[:, 1])
    return b


def overlaps(pred: Any, gt: Any, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Per-frame IoU of axis boxes (continuous ``[x, x+w)`` intervals).

    NaN where the ground truth is absent (NaN or non-positive size); 0 where the prediction is
    invalid. ``bound = (width, height)`` clips both boxes to the image first, as the GOT-10k
    toolkit does (see :func:`_clip` for its exact rule).
    """
    p, g = _pair(pred, gt)
    gt_ok = valid_boxes(g)
    pred_ok = valid_boxes(p)
    if bound is not None:
        p = _clip(np.where(pred_ok[:, None], p, 0.0), bound)
        g = _clip(np.where(gt_ok[:, None], g, 0.0), bound)
    iw = np.minimum(p[:, 0] + p[:, 2], g[:, 0] + g[:, 2]) - np.maximum(p[:, 0], g[:, 0])
    ih = np.minimum(p[:, 1] + p[:, 3], g[:, 1] + g[:, 3]) - np.maximum(p[:, 1], g[:, 1])
    with np.errstate(invalid="ignore"):
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        union = p[:, 2] * p[:, 3] + g[:, 2] * g[:, 3] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    iou = np.clip(np.nan_to_num(iou, nan=0.0), 0.0, 1.0)
    iou[~pred_ok] = 0.0
    iou[~gt_ok] = np.nan
    return iou


def success_curve(
    ious: Any, thresholds: Any = SUCCESS_THRESHOLDS, ignore_nan: bool = False
) -> np.ndarray:
    """Fraction of frames with IoU ``>`` each threshold (OTB / LaSOT / pytracking / GOT-10k).

    NaN IoUs (absent targets) are never a success; they count in the denominator unless
    ``ignore_nan`` (then they are left out, GOT-10k style).
    """
    x = np.asarray(ious, dtype=np.float64).ravel()
    if ignore_nan:
        x = x[~np.isnan(x)]
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    if x.size == 0:
        return np.full(thr.shape, np.nan)
    with np.errstate(invalid="ignore"):
        return (x[:, None] > thr[None, :]).mean(axis=0)


def auc(curve: Any) -> float:
    """Area under a success curve as the OTB toolkit computes it: the mean of the curve."""
    return float(np.mean(np.asarray(curve, dtype=np.float64)))


def _centers(b: np.ndarray) -> np.ndarray:
    return b[:, :2] + b[:, 2:] / 2.0


def center_errors(pred: Any, gt: Any) -> np.ndarray:
    """Euclidean distance of box centres in pixels; NaN where the ground truth is absent."""
    p, g = _pair(pred, gt)
    err = np.sqrt(((_centers(p) - _centers(g)) ** 2).sum(axis=1))
    err[~valid_boxes(g)] = np.nan
    err[~np.isfinite(err)] = np.nan
    return err


def normalized_center_errors(pred: Any, gt: Any) -> np.ndarray:
    """Centre distance with x divided by the gt width and y by the gt height (LaSOT)."""
    p, g = _pair(pred, gt)
    ok = valid_boxes(g)
    scale = np.where(ok[:, None], g[:, 2:], 1.0)
    err = np.sqrt((((_centers(p) - _centers(g)) / scale) ** 2).sum(axis=1))
    err[~ok] = np.nan
    err[~np.isfinite(err)] = np.nan
    return err


def precision_curve(errors: Any, thresholds: Any = PRECISION_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error ``<=`` each threshold (NaN frames never count)."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    if e.size == 0:
        return np.full(thr.shape, np.nan)
    with np.errstate(invalid="ignore"):
        return (e[:, None] <= thr[None, :]).mean(axis=0)


def precision_at(pred: Any, gt: Any, threshold: float = 20.0) -> float:
    """OTB precision: fraction of all frames with centre error <= ``threshold`` pixels."""
    return float(precision_curve(center_errors(pred, gt), [threshold])[0])


def normalized_precision_curve(
    pred: Any, gt: Any, thresholds: Any = NORM_PRECISION_THRESHOLDS
) -> np.ndarray:
    """LaSOT normalised precision curve over ``0:0.01:0.5``."""
    return precision_curve(normalized_center_errors(pred, gt), thresholds)


def normalized_precision(pred: Any, gt: Any, threshold: float = 0.2) -> float:
    """LaSOT normalised precision at ``threshold`` (0.2 as reported by LaSOT / pytracking)."""
    return float(precision_curve(normalized_center_errors(pred, gt), [threshold])[0])


def ao(ious: Any) -> float:
    """GOT-10k average overlap: mean IoU over the frames where the target is present."""
    x = np.asarray(ious, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def sr(ious: Any, threshold: float = 0.5) -> float:
    """GOT-10k success rate: fraction of present-target frames with IoU > ``threshold``."""
    x = np.asarray(ious, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    return float((x > threshold).mean()) if x.size else float("nan")


def _clean_predictions(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """First frame := ground truth; invalid boxes carried forward from the previous frame."""
    p = p.copy()
    p[0] = g[0]
    ok = valid_boxes(p)
    for i in range(1, len(p)):
        if not ok[i]:
            p[i] = p[i - 1]
    return p


def evaluate_ope(
    pred_by_seq: dict[str, Any],
    gt_by_seq: dict[str, Any],
    visible_by_seq: dict[str, Any] | None = None,
    image_sizes: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """OPE scores of a tracker over sequences (see the module docstring for the conventions).

    Args:
        pred_by_seq: sequence name -> ``(N, 4)`` predicted boxes (frame 0 = the init frame).
        gt_by_seq: sequence name -> ``(N, 4)`` ground truth (NaN / zero size = absent).
        visible_by_seq: optional name -> ``(N,)`` bool, False = target absent (LaSOT full
            occlusion / out of view, GOT-10k ``cover == 0``).
        image_sizes: optional name -> ``(width, height)``; boxes are clipped to the image for
            AO / SR as the GOT-10k toolkit does.

    Returns:
        ``AUC, Precision@20, NormPrecision, NormPrecisionAUC, AO, SR0.5, SR0.75`` (fractions),
        ``success_curve``, ``precision_curve``, ``norm_precision_curve`` (lists) and
        ``sequences``: per-sequence values of the same scores.
    """
    if not gt_by_seq:
        raise InputError("gt_by_seq: no sequences given")
    missing = [s for s in gt_by_seq if s not in pred_by_seq]
    if missing:
        raise InputError(f"pred_by_seq: no predictions for sequence(s) {', '.join(missing)}")
    succ, prec, nprec = [], [], []
    pooled: list[np.ndarray] = []
    per_seq: dict[str, dict[str, float]] = {}
    for name, gt in gt_by_seq.items():
        g = _boxes(gt, f"gt_by_seq['{name}']")
        p = _boxes(pred_by_seq[name], f"pred_by_seq['{name}']")
        if len(p) > len(g):  # LaSOT toolkit cuts over-long results (monkey-17)
            p = p[: len(g)]
        if len(p) != len(g) or len(g) == 0:
            raise InputError(
                f"pred_by_seq['{name}'] has {len(p)} boxes but the sequence has {len(g)} frames"
            )
        g = g.copy()
        if visible_by_seq is not None and name in visible_by_seq:
            vis = np.asarray(visible_by_seq[name]).astype(bool).ravel()
            if vis.shape != (len(g),):
                raise InputError(
                    f"visible_by_seq['{name}'] has {vis.size} flags for {len(g)} frames"
                )
            g[~vis] = np.nan
        p = _clean_predictions(p, g)
        ious = overlaps(p, g)
        s_curve = success_curve(ious)
        p_curve = precision_curve(center_errors(p, g))
        n_curve = precision_curve(normalized_center_errors(p, g), NORM_PRECISION_THRESHOLDS)
        bound = None if image_sizes is None or name not in image_sizes else image_sizes[name]
        got_ious = overlaps(p[1:], g[1:], bound=bound)
        got_ious = got_ious[~np.isnan(got_ious)]
        pooled.append(got_ious)
        succ.append(s_curve)
        prec.append(p_curve)
        nprec.append(n_curve)
        per_seq[name] = {
            "AUC": auc(s_curve),
            "Precision@20": float(p_curve[20]),
            "NormPrecision": float(n_curve[20]),
            "NormPrecisionAUC": auc(n_curve),
            "AO": ao(got_ious),
            "SR0.5": sr(got_ious, 0.5),
            "SR0.75": sr(got_ious, 0.75),
            "frames": int(len(g)),
        }
    s_mean = np.mean(succ, axis=0)
    p_mean = np.mean(prec, axis=0)
    n_mean = np.mean(nprec, axis=0)
    all_ious = np.concatenate(pooled) if pooled else np.zeros(0)
    return {
        "AUC": auc(s_mean),
        "Precision@20": float(p_mean[20]),
        "NormPrecision": float(n_mean[20]),
        "NormPrecisionAUC": auc(n_mean),
        "AO": ao(all_ious),
        "SR0.5": sr(all_ious, 0.5),
        "SR0.75": sr(all_ious, 0.75),
        "success_curve": s_mean.tolist(),
        "precision_curve": p_mean.tolist(),
        "norm_precision_curve": n_mean.tolist(),
        "sequences": per_seq,
    }
