"""DAVIS region (J) and boundary (F) measures, matching the official davis2017-evaluation code.

Implements the evaluation protocol of the DAVIS benchmark (seed documents 000 "Tracking by
Segmentation" and 002 "Video Object Segmentation": region similarity J, contour accuracy F,
their mean / recall / decay statistics). Numerically this reproduces
``davis2017-evaluation`` (``davis2017/metrics.py``, ``davis2017/utils.py``,
``davis2017/evaluation.py``):

* ``J`` = |A ∩ B| / |A ∪ B| over the non-void pixels, 1 when the union is empty;
* ``F``: one-pixel boundaries by ``_seg2bmap``, each dilated with ``skimage.morphology.disk``
  of radius ``ceil(0.008 * ||(H, W)||)`` through ``cv2.dilate``; precision / recall of the
  matched boundary pixels, F = 2PR / (P + R);
* statistics per object: mean, recall (fraction of frames > 0.5) and decay (mean of the first
  quarter minus mean of the last quarter of the frames, official binning);
* semi-supervised protocol: the first and the last annotated frame are left out;
* the global numbers are means over all objects of all sequences; J&F = (J_M + F_M) / 2.

Two details of the official code worth knowing: its ``DAVIS`` loader turns label 255 into
background (so in the official DAVIS-2017 run no pixel is ever void), and the objects of a
sequence are the ids ``1..max(first annotated frame)``. Here void pixels are only those given
explicitly (``void=`` argument), and 255 in a label map is background, as in the official code.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from segtrack.errors import InputError

__all__ = [
    "db_eval_iou",
    "seg2bmap",
    "db_eval_boundary",
    "f_measure",
    "db_statistics",
    "evaluate_sequence",
    "SequenceEvaluator",
    "summarize",
    "format_table",
]

_VOID_LABEL = 255


def _as_bool(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object:
        raise InputError(f"{name}: expected a numeric array, got dtype object")
    return arr.astype(bool)


def _check_same_shape(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{nb} has shape {b.shape} but {na} has shape {a.shape}")


# --------------------------------------------------------------------------- region measure J


def db_eval_iou(
    annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None
) -> float | np.ndarray:
    """Region similarity J (Jaccard index) of binary masks.

    Args:
        annotation: ``(H, W)`` or ``(T, H, W)`` ground-truth mask (anything non-zero is object).
        segmentation: predicted mask, same shape.
        void_pixels: optional mask of pixels to ignore, same shape.

    Returns:
        ``float`` for one frame, ``(T,)`` float array for a stack. An empty union gives 1.
    """
    gt = _as_bool(annotation, "annotation")
    seg = _as_bool(segmentation, "segmentation")
    _check_same_shape(gt, seg, "annotation", "segmentation")
    if gt.ndim not in (2, 3):
        raise InputError(f"annotation: expected (H, W) or (T, H, W), got shape {gt.shape}")
    if void_pixels is not None:
        void = _as_bool(void_pixels, "void_pixels")
        _check_same_shape(gt, void, "annotation", "void_pixels")
        keep = ~void
        inters = np.sum((seg & gt) & keep, axis=(-2, -1))
        union = np.sum((seg | gt) & keep, axis=(-2, -1))
    else:
        inters = np.sum(seg & gt, axis=(-2, -1))
        union = np.sum(seg | gt, axis=(-2, -1))
    if gt.ndim == 2:
        return 1.0 if union == 0 else float(inters / union)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inters / union.astype(np.float64)
    j[union == 0] = 1.0
    return j


# ------------------------------------------------------------------------- boundary measure F


def seg2bmap(seg: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask (official ``_seg2bmap``, D. Martin 2003).

    A pixel is on the boundary when it differs from its east, south or south-east neighbour
    (the boundary is offset by half a pixel towards the origin). Special cases, exactly as the
    official code: in the last row only the east neighbour counts, in the last column only the
    south neighbour, and the bottom-right pixel is never a boundary.

    ``width`` / ``height`` must equal the mask size (the official rescaling branch is not
    supported).
    """
    seg = _as_bool(seg, "seg")
    if seg.ndim != 2:
        raise InputError(f"seg: expected an (H, W) mask, got shape {seg.shape}")
    h, w = seg.shape
    if (width is not None and width != w) or (height is not None and height != h):
        raise InputError(
            f"seg2bmap: a {w}x{h} mask cannot be mapped to a {width}x{height} boundary map "
            "(only the native size is supported)"
        )
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


@lru_cache(maxsize=32)
def _disk_kernel(radius: float) -> np.ndarray:
    from skimage.morphology import disk

    # The official code passes the (float) radius straight to skimage's disk.
    return disk(radius).astype(np.uint8)


def _bound_pix(bound_th: float, shape: tuple[int, ...]) -> float:
    return bound_th if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm(shape)))


def f_measure(
    foreground_mask: np.ndarray,
    gt_mask: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = 0.008,
) -> float:
    """Boundary F-measure of one frame (official ``f_measure``; note: prediction first).

    ``bound_th >= 1`` is a tolerance in pixels, otherwise a fraction of the image diagonal
    (rounded up). Empty boundaries: both empty -> P = R = 1; prediction empty -> P = 1, R = 0;
    ground truth empty -> P = 0, R = 1. F = 0 when P + R = 0.
    """
    fg = _as_bool(foreground_mask, "segmentation")
    gt = _as_bool(gt_mask, "annotation")
    _check_same_shape(gt, fg, "annotation", "segmentation")
    if fg.ndim != 2:
        raise InputError(f"f_measure: expected (H, W) masks, got shape {fg.shape}")
    if void_pixels is not None:
        void = _as_bool(void_pixels, "void_pixels")
        _check_same_shape(gt, void, "annotation", "void_pixels")
        fg = fg & ~void
        gt = gt & ~void

    fg_boundary = seg2bmap(fg)
    gt_boundary = seg2bmap(gt)
    n_fg = int(np.count_nonzero(fg_boundary))
    n_gt = int(np.count_nonzero(gt_boundary))

    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        kernel = _disk_kernel(_bound_pix(bound_th, fg.shape))
        fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), kernel).astype(bool)
        gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
        precision = np.count_nonzero(fg_boundary & gt_dil) / float(n_fg)
        recall = np.count_nonzero(gt_boundary & fg_dil) / float(n_gt)

    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = 0.008,
) -> float | np.ndarray:
    """Boundary measure F for one ``(H, W)`` frame (float) or per frame of ``(T, H, W)``."""
    gt = np.asarray(annotation)
    seg = np.asarray(segmentation)
    _check_same_shape(gt, seg, "annotation", "segmentation")
    if void_pixels is not None:
        _check_same_shape(gt, np.asarray(void_pixels), "annotation", "void_pixels")
    if gt.ndim == 2:
        return f_measure(seg, gt, void_pixels, bound_th=bound_th)
    if gt.ndim == 3:
        out = np.zeros(gt.shape[0])
        for t in range(gt.shape[0]):
            v = None if void_pixels is None else np.asarray(void_pixels)[t]
            out[t] = f_measure(seg[t], gt[t], v, bound_th=bound_th)
        return out
    raise InputError(f"annotation: expected (H, W) or (T, H, W), got shape {gt.shape}")


# -------------------------------------------------------------------------------- statistics


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """Mean M, recall O (fraction > 0.5) and decay D of per-frame values (official rule).

    Decay: ``ids = round(linspace(1, N, 5) + 1e-10) - 1``; bins ``X[ids[i]:ids[i+1]+1]`` for
    i = 0..3; D = nanmean(bin 0) - nanmean(bin 3). NaNs are ignored everywhere.
    """
    x = np.asarray(per_frame_values, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        m = float(np.nanmean(x))
        # NaN > 0.5 is False, exactly as in the official code
        o = float(np.nanmean(x > 0.5))
        # The official code casts ids to uint8, which wraps around for sequences longer than
        # 255 frames; int64 gives the intended bins (identical results up to 255 frames).
        ids = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)
        bins = [x[ids[i] : ids[i + 1] + 1] for i in range(4)]
        d = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return m, o, d


# --------------------------------------------------------------------------- per sequence


def _object_result(j: np.ndarray, f: np.ndarray) -> dict[str, Any]:
    jm, jo, jd = db_statistics(j)
    fm, fo, fd = db_statistics(f)
    return {
        "J": np.asarray(j, dtype=np.float64),
        "F": np.asarray(f, dtype=np.float64),
        "J_M": jm,
        "J_O": jo,
        "J_D": jd,
        "F_M": fm,
        "F_O": fo,
        "F_D": fd,
    }


def _default_objects(first_gt: np.ndarray, later_ids: set[int] | None = None) -> list[int]:
    """Official rule: ids 1..max label of the first annotated frame (255 = background)."""
    labels = np.asarray(first_gt)
    labels = labels[labels != _VOID_LABEL]
    top = int(labels.max()) if labels.size else 0
    ids = set(range(1, top + 1))
    if later_ids:
        ids |= {k for k in later_ids if k not in (0, _VOID_LABEL)}
    return sorted(ids)


class SequenceEvaluator:
    """Streaming DAVIS evaluation of one sequence: feed frames one at a time.

    ``add(gt, pred, void)`` computes J and F of every object on that frame right away and keeps
    only these scalars, so a whole video never has to be held in memory. ``result()`` drops the
    first and last added frame in the semi-supervised protocol (official
    ``all_gt_masks[:, 1:-1]``) and returns the same structure as :func:`evaluate_sequence`.

    Objects: ``object_ids`` if given; otherwise the official rule (ids ``1..max`` of the first
    added ground truth) plus any id that appears in later ground-truth frames (objects that
    enter late, YouTube-VOS style; the official DAVIS code would ignore those). For a frame where
    an object is in neither the ground truth nor the prediction, J = F = 1 (both empty), which
    is what the official code computes for it.
    """

    def __init__(self, object_ids: list[int] | None = None, bound_th: float = 0.008) -> None:
        self._fixed_ids = None if object_ids is None else [int(k) for k in object_ids]
        self.bound_th = bound_th
        self._j: list[dict[int, float]] = []
        self._f: list[dict[int, float]] = []
        self._first_gt_ids: list[int] | None = None
        self._gt_ids: set[int] = set()
        self.shape: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self._j)

    def add(
        self, gt_label_map: np.ndarray, pred_label_map: np.ndarray, void: np.ndarray | None = None
    ) -> None:
        """Score one frame. ``gt_label_map`` / ``pred_label_map``: ``(H, W)`` integer label maps."""
        gt = np.asarray(gt_label_map)
        pred = np.asarray(pred_label_map)
        if gt.ndim != 2:
            raise InputError(f"ground truth label map must be (H, W), got shape {gt.shape}")
        if pred.shape != gt.shape:
            raise InputError(
                f"prediction label map has shape {pred.shape} but the ground truth has {gt.shape}"
            )
        if void is not None:
            void = _as_bool(void, "void")
            if void.shape != gt.shape:
                raise InputError(
                    f"void mask has shape {void.shape} but the ground truth has {gt.shape}"
                )
            if not void.any():
                void = None
        if self.shape is None:
            self.shape = gt.shape  # type: ignore[assignment]
        gt_ids = {int(k) for k in np.unique(gt)} - {0, _VOID_LABEL}
        if self._first_gt_ids is None:
            self._first_gt_ids = _default_objects(gt)
        self._gt_ids |= gt_ids
        ids = gt_ids | ({int(k) for k in np.unique(pred)} - {0, _VOID_LABEL})
        if self._fixed_ids is not None:
            ids &= set(self._fixed_ids)
        js: dict[int, float] = {}
        fs: dict[int, float] = {}
        for k in sorted(ids):
            g = gt == k
            p = pred == k
            js[k] = float(db_eval_iou(g, p, void))
            fs[k] = f_measure(p, g, void, bound_th=self.bound_th)
        self._j.append(js)
        self._f.append(fs)

    def object_ids(self) -> list[int]:
        if self._fixed_ids is not None:
            return list(self._fixed_ids)
        if self._first_gt_ids is None:
            return []
        return sorted(set(self._first_gt_ids) | self._gt_ids)

    def result(self, semi_supervised: bool = True) -> dict[str, Any]:
        """``{"objects": {k: {"J", "F", "J_M", "J_O", "J_D", "F_M", "F_O", "F_D"}}}``."""
        frames = slice(1, -1) if semi_supervised else slice(None)
        js = self._j[frames]
        fs = self._f[frames]
        objects = {}
        for k in self.object_ids():
            j = np.array([d.get(k, 1.0) for d in js], dtype=np.float64)
            f = np.array([d.get(k, 1.0) for d in fs], dtype=np.float64)
            objects[k] = _object_result(j, f)
        return {"objects": objects, "frames": len(js)}


def evaluate_sequence(
    gt_labels: np.ndarray,
    pred_labels: np.ndarray,
    object_ids: list[int] | None = None,
    void: np.ndarray | None = None,
    semi_supervised: bool = True,
    bound_th: float = 0.008,
) -> dict[str, Any]:
    """Per-object J and F of a whole sequence of ``(T, H, W)`` label maps (value k = object k).

    ``object_ids`` defaults to the official rule (see :class:`SequenceEvaluator`). ``void`` is an
    optional ``(T, H, W)`` mask of ignored pixels. In the semi-supervised protocol the first and
    last frames are dropped. Returns ``{"objects": {k: {"J": (T',), "F": (T',), "J_M", ...}}}``.
    """
    gt = np.asarray(gt_labels)
    pred = np.asarray(pred_labels)
    if gt.ndim != 3:
        raise InputError(f"gt_labels: expected (T, H, W) label maps, got shape {gt.shape}")
    if pred.shape != gt.shape:
        raise InputError(f"pred_labels has shape {pred.shape} but gt_labels has {gt.shape}")
    if void is not None and np.asarray(void).shape != gt.shape:
        raise InputError(f"void has shape {np.asarray(void).shape} but gt_labels has {gt.shape}")
    ev = SequenceEvaluator(object_ids=object_ids, bound_th=bound_th)
    for t in range(gt.shape[0]):
        ev.add(gt[t], pred[t], None if void is None else np.asarray(void)[t])
    return ev.result(semi_supervised=semi_supervised)


# ------------------------------------------------------------------------------- summaries

_KEYS = ("J_M", "J_O", "J_D", "F_M", "F_O", "F_D")


def summarize(per_sequence: dict[str, dict]) -> dict[str, Any]:
    """Global DAVIS numbers: means over all objects of all sequences (official code).

    ``per_sequence`` maps a sequence name to an :func:`evaluate_sequence` result. Returns
    ``J_M, J_O, J_D, F_M, F_O, F_D, JF`` (fractions; JF = (J_M + F_M) / 2), ``objects`` (count)
    and ``sequences``: ``{"<seq>_<k>": {"sequence", "object", J_M ... F_D, "JF"}}``.
    """
    rows: dict[str, dict[str, Any]] = {}
    cols: dict[str, list[float]] = {k: [] for k in _KEYS}
    for seq, res in per_sequence.items():
        objs = res.get("objects") if isinstance(res, dict) else None
        if objs is None:
            raise InputError(f"per_sequence['{seq}'] is not an evaluate_sequence() result")
        for k, o in objs.items():
            row: dict[str, Any] = {"sequence": seq, "object": int(k)}
            for key in _KEYS:
                row[key] = float(o[key])
                cols[key].append(float(o[key]))
            row["JF"] = (row["J_M"] + row["F_M"]) / 2.0
            rows[f"{seq}_{k}"] = row
    out: dict[str, Any] = {}
    for key in _KEYS:
        out[key] = float(np.mean(cols[key])) if cols[key] else math.nan
    out["JF"] = (out["J_M"] + out["F_M"]) / 2.0
    out["objects"] = len(rows)
    out["sequences"] = rows
    return out


def format_table(summary: dict[str, Any]) -> str:
    """Text tables in the style of the official ``evaluation_method.py`` output."""

    def f(v: Any) -> str:
        return f"{float(v):.3f}"

    head = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    vals = [summary[k] for k in ("JF", "J_M", "J_O", "J_D", "F_M", "F_O", "F_D")]
    widths = [max(len(h), 8) for h in head]
    lines = ["--------------------------- Global results ---------------------------"]
    lines.append(" ".join(h.rjust(w) for h, w in zip(head, widths)))
    lines.append(" ".join(f(v).rjust(w) for v, w in zip(vals, widths)))
    lines.append("")
    lines.append("---------------------- Per sequence results ----------------------")
    rows = summary.get("sequences", {})
    name_w = max([len("Sequence")] + [len(n) for n in rows])
    lines.append(f"{'Sequence'.ljust(name_w)} {'J-Mean':>8} {'F-Mean':>8}")
    for name, row in rows.items():
        lines.append(f"{name.ljust(name_w)} {f(row['J_M']):>8} {f(row['F_M']):>8}")
    return "\n".join(lines)
