"""Evaluation of box- and click-to-mask segmentation: the standard protocol.

* **Box -> mask**: the tight box of the ground-truth mask is given; mean IoU of the result.
* **NoC@85 / NoC@90**: clicks from the automatic clicker (:mod:`segtrack.interactive.clicker`)
  one at a time, each interaction given every click so far and the previous result; the
  number of clicks needed to reach that IoU, 20 when never reached (Xu et al. 2016; RITM).
* Baselines in the same run: the filled box itself, and OpenCV's GrabCut from the same box
  (5 iterations).

:func:`heldout_photos` is the split of ``static-masks`` that the click-to-mask network never
trains on (:func:`segtrack.data.static.split_static`, shared with the multi-object clips of
:mod:`segtrack.data.multi`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from segtrack.data.static import HOLDOUT_EVERY, split_static
from segtrack.errors import InputError
from segtrack.interactive.clicker import iou, next_click

__all__ = ["heldout_photos", "grabcut_box", "filled_box", "box_of", "noc_curve",
           "evaluate_box", "evaluate_clicks", "EvalSample"]


def heldout_photos(samples: Sequence, every: int = HOLDOUT_EVERY) -> tuple[list, list]:
    """(train, held-out) photographs: :func:`segtrack.data.static.split_static` (within each
    (set, kind) group, in file-name order, every ``every``-th photograph is held out)."""
    return split_static(samples, every)


@dataclass
class EvalSample:
    name: str
    image: np.ndarray  # RGB uint8
    gt: np.ndarray  # bool


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The tight (x, y, w, h) box of a bool mask."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), \
        float(ys.max() - ys.min() + 1)


def filled_box(image: np.ndarray, box) -> np.ndarray:
    from segtrack.geometry import box_to_mask

    return box_to_mask(box, image.shape[:2])


def grabcut_box(image: np.ndarray, box, iters: int = 5) -> np.ndarray:
    """OpenCV GrabCut initialised with the box (``GC_INIT_WITH_RECT``), ``iters`` iterations;
    the filled box when GrabCut cannot model the colours (box covering the whole image)."""
    H, W = image.shape[:2]
    x, y, w, h = (int(round(v)) for v in box)
    x, y = max(x, 0), max(y, 0)
    w, h = max(1, min(w, W - x)), max(1, min(h, H - y))
    mask = np.zeros((H, W), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, (x, y, w, h), bgd, fgd,
                    int(iters), cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return filled_box(image, box)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


@dataclass
class BoxResult:
    ious: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)


def evaluate_box(samples: Sequence[EvalSample],
                 methods: dict[str, Callable[[np.ndarray, tuple], np.ndarray]],
                 progress: bool = False) -> dict:
    """Box -> mask: per method, mean IoU and mean seconds per image over ``samples``."""
    from tqdm import tqdm

    res = BoxResult()
    for s in tqdm(samples, desc="box", disable=not progress):
        b = box_of(s.gt)
        for name, fn in methods.items():
            t0 = time.perf_counter()
            m = fn(s.image, b)
            res.seconds.setdefault(name, []).append(time.perf_counter() - t0)
            res.ious.setdefault(name, []).append(iou(m, s.gt))
    return {name: {"mIoU": float(np.mean(v)), "ms": 1000 * float(np.mean(res.seconds[name])),
                   "images": len(v)} for name, v in res.ious.items()}


def noc_curve(sample: EvalSample, predict: Callable, max_clicks: int = 20,
              stop_iou: float = 0.90) -> tuple[list[float], list[float]]:
    """IoU after each click (up to ``max_clicks``, stopping once ``stop_iou`` is reached) and
    the seconds of each interaction.  ``predict(image, points, labels, prev_prob)`` returns
    probabilities."""
    pts: list[tuple[float, float]] = []
    labs: list[int] = []
    prev = None
    pred = np.zeros_like(sample.gt)
    ious, secs = [], []
    for _ in range(max_clicks):
        c = next_click(sample.gt, pred)
        if c is None:
            ious.append(1.0)
            secs.append(0.0)
            break
        pts.append((c.x, c.y))
        labs.append(int(c.positive))
        t0 = time.perf_counter()
        prev = predict(sample.image, pts, labs, prev)
        secs.append(time.perf_counter() - t0)
        pred = prev > 0.5
        ious.append(iou(pred, sample.gt))
        if ious[-1] >= stop_iou:
            break
    return ious, secs


def _noc(ious: list[float], thr: float, max_clicks: int) -> int:
    for i, v in enumerate(ious):
        if v >= thr:
            return i + 1
    return max_clicks


def evaluate_clicks(samples: Sequence[EvalSample], predict: Callable, max_clicks: int = 20,
                    thresholds: Sequence[float] = (0.85, 0.90), progress: bool = False) -> dict:
    """NoC@t for each threshold, the share of images that never reach 90 % (NoF), mean IoU
    after 1, 3 and 5 clicks, and mean milliseconds per interaction."""
    from tqdm import tqdm

    curves, secs = [], []
    for s in tqdm(samples, desc="clicks", disable=not progress):
        c, t = noc_curve(s, predict, max_clicks, max(thresholds))
        curves.append(c)
        secs.extend(t)
    out: dict = {"images": len(samples)}
    for thr in thresholds:
        nocs = [_noc(c, thr, max_clicks) for c in curves]
        out[f"NoC@{round(thr * 100)}"] = float(np.mean(nocs))
        out[f"NoF@{round(thr * 100)}"] = int(sum(1 for c in curves if max(c) < thr))
    for k in (1, 3, 5):  # a curve that stopped early keeps its last IoU
        out[f"mIoU@{k}"] = float(np.mean([c[min(k, len(c)) - 1] for c in curves]))
    out["ms_per_click"] = 1000 * float(np.mean([t for t in secs if t > 0] or [0.0]))
    return out


# ------------------------------------------------------------------------------------------
# the benchmark behind ``segtrack bench-segment``
METHODS = ("clickseg", "grabcut", "box", "rts")


def load_samples(static_dirs: Sequence[str], davis: str | None, sequences: Sequence[str],
                 limit: int = 0, davis_step: int = 0) -> dict[str, list[EvalSample]]:
    """{"photos": the held-out photographs (``limit`` of them spread over the list; 0 = all),
    "davis": frames 0, ``davis_step``, 2 ``davis_step`` ... (0: the first only) of each of
    ``sequences`` (854x480) where the object is visible}."""
    out: dict[str, list[EvalSample]] = {}
    if static_dirs:
        from segtrack.data.static import load_static_sets, read_static

        _, held = heldout_photos(load_static_sets(static_dirs))
        if limit:
            held = held[:: max(1, len(held) // limit)][:limit]
        out["photos"] = [EvalSample(f"{s.source}/{s.image.stem}", *read_static(s)) for s in held]
    if davis:
        from segtrack.eval.datasets import load_davis
        from segtrack.io.sources import read_image

        seqs = {s.name: s for s in load_davis(davis)}
        missing = [n for n in sequences if n not in seqs]
        if missing:
            raise InputError(f"--sequences: {', '.join(missing)} not in '{davis}'")
        out["davis"] = []
        for n in sequences or sorted(seqs):
            seq = seqs[n]
            for f in range(0, len(seq.frames), davis_step) if davis_step else [0]:
                lab = seq.read_labels(f)
                if lab is not None and (lab > 0).sum() >= 16:
                    out["davis"].append(EvalSample(f"{n}/{f:05d}", read_image(seq.frames[f]),
                                                   lab > 0))
    return out


def run_benchmark(static_dirs: Sequence[str], davis: str | None, sequences: Sequence[str],
                  methods: Sequence[str] = METHODS, limit: int = 0, max_clicks: int = 20,
                  quiet: bool = True, device: str = "cpu", weights: str = "",
                  params: dict | None = None, davis_step: int = 0,
                  rts_weights: str = "") -> dict:
    """Box -> mask mIoU of each method and, for ``clickseg``, NoC@85/90, on each sample set.
    ``rts`` is RTS's own box-to-mask network (``rts_weights``: its heads file)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"--methods: unknown {', '.join(unknown)} (use {', '.join(METHODS)})")
    sets = load_samples(static_dirs, davis, sequences, limit, davis_step)
    fns: dict[str, Callable] = {}
    seg = None
    if "clickseg" in methods:
        from segtrack.interactive import Segmenter

        seg = Segmenter(device=device, weights=weights, **dict(params or {}))
        fns["clickseg"] = lambda img, b: seg.segment(img, box=b)
    if "grabcut" in methods:
        fns["grabcut"] = grabcut_box
    if "box" in methods:
        fns["box"] = filled_box
    if "rts" in methods:
        from segtrack.trackers.registry import load_tracker

        rts = load_tracker("rts", device=device, box_init="own",
                           **({"weights": rts_weights} if rts_weights else {}))
        fns["rts"] = rts.own_box_to_mask
    result: dict = {}
    for name, samples in sets.items():
        r: dict = {"box_to_mask": evaluate_box(samples, fns, progress=not quiet)}
        if seg is not None:
            r["clicks"] = evaluate_clicks(
                samples, lambda img, p, lab, prev: seg.predict(img, points=p, labels=lab,
                                                               mask=prev),
                max_clicks=max_clicks, progress=not quiet)
        result[name] = r
    return result
