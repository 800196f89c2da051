"""VOT short-term "baseline" experiment: reset-based runs, accuracy, robustness and EAO.

Implements the VOT-2016 ... VOT-2019 supervised protocol used for SiamMask (seed document 004,
VOT-2016 / VOT-2018 tables: EAO, accuracy, robustness) following the VOT toolkit
(``vot-toolkit-python``: ``vot/experiment/multirun.py`` ``SupervisedExperiment`` and
``vot/analysis/supervised.py`` / ``eao.py``):

* **run** (:func:`vot_baseline`): initialise on frame 0; on every later frame the overlap of the
  prediction with the ground truth (polygon IoU clipped to the image) is computed; overlap
  ``<= 0`` is a failure, the tracker is re-initialised ``skip = 5`` frames later. The raw result
  list holds per frame ``1`` (initialisation), ``2`` (failure), ``0`` (skipped) or the region.
* **accuracy** (:func:`accuracy_robustness`): mean overlap over the frames that are neither a
  marker nor within ``burnin = 10`` frames of an initialisation (the toolkit masks frames
  ``i .. i + burnin - 1`` for an initialisation at ``i``, so the init frame and the next 9).
* **robustness**: the number of failures. :func:`evaluate_vot` reports VOT-2018's definition,
  failures per 100 frames (``100 * total failures / total frames``, the ``R`` of the VOT-2018
  tables and pysot), plus the total and the VOT-2016 mean per sequence.
* **EAO** (:func:`eao_curve`, :func:`eao`): every run from an initialisation to the next
  failure (exclusive) or to the end of the sequence is one segment. For a length ``Ns`` the
  segment's average overlap is ``mean(o[1 .. Ns])`` (``o[0]``, the init frame, is left out, as in
  the toolkit); a segment that ended in a failure counts for every ``Ns`` with zeros after the
  failure, a segment that reached the end of the sequence only for ``Ns < len(segment)``.
  ``Φ(Ns)`` is the mean over the counting segments and EAO the mean of ``Φ`` over
  ``Ns in [low, high]`` (inclusive, toolkit indexing).

Simplifications relative to the toolkit: one run per sequence (VOT repeats stochastic trackers
and averages the repetitions), all segments weigh 1, float64 instead of float32, and ``Φ(Ns)``
is also defined beyond the longest segment (there only failed segments count; where no segment
counts it is NaN and left out of the EAO mean, like pysot does).

Choosing the EAO interval: VOT takes the range around the mode of a kernel density estimate of
the dataset's sequence lengths that holds half of the density (VOT-2015/2016: ``[108, 371]``,
VOT-2017/2018: ``[100, 356]``, VOT-2019: ``[46, 291]``). For another dataset use
:func:`suggest_eao_interval` on its sequence lengths; ``high`` should stay below the typical
sequence length. (pysot, which replicates the MATLAB toolkit, averages ``Φ`` over
``[low - 1, high - 1]`` in this indexing; the python toolkit and this module use
``[low, high]``.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segtrack.errors import InputError

__all__ = [
    "INIT",
    "FAILURE",
    "SKIPPED",
    "vot_baseline",
    "write_vot_results",
    "read_vot_results",
    "frame_overlaps",
    "accuracy_robustness",
    "eao_segments",
    "eao_curve",
    "eao",
    "suggest_eao_interval",
    "evaluate_vot",
]

INIT = 1
FAILURE = 2
SKIPPED = 0

#: one entry of a VOT raw result list: a marker (1, 2, 0) or a flat region array
#: (4 values x, y, w, h or 2N values x1, y1, x2, y2, ... of a polygon)
VotEntry = int | np.ndarray
OverlapFn = Callable[..., float]


# ------------------------------------------------------------------------------- regions


def _to_region(r: Any, name: str = "region") -> np.ndarray | None:
    """Normalise a region to a flat float array; ``None`` for an empty / missing region.

    Accepts ``(x, y, w, h)``, an ``(N, 2)`` polygon, a flat ``2N`` polygon (N >= 3), or an object
    with a ``rotated_box`` attribute (a :class:`segtrack.types.Prediction`; empty -> ``None``).
    """
    if r is None:
        return None
    if hasattr(r, "rotated_box"):
        if getattr(r, "empty", False) or r.rotated_box is None:
            return None
        r = r.rotated_box
    try:
        a = np.asarray(r, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: not a box or polygon") from None
    if a.ndim == 2 and a.shape[1] == 2 and a.shape[0] >= 3:
        return a.reshape(-1)
    a = a.reshape(-1)
    if a.size == 4 or (a.size >= 6 and a.size % 2 == 0):
        if not np.isfinite(a).all():
            return None
        return a
    if a.size == 0:
        return None
    raise InputError(f"{name}: expected 4 values (x, y, w, h) or a polygon, got {a.size} values")


def _geom(region: np.ndarray) -> np.ndarray:
    """Flat region -> form for ``polygon_iou``: ``(4,)`` xywh box or ``(N, 2)`` polygon."""
    return region if region.size == 4 else region.reshape(-1, 2)


def _default_overlap() -> OverlapFn:
    from segtrack.geometry import polygon_iou  # lazy: written by another module

    return polygon_iou


def _overlap(
    pred: np.ndarray | None,
    gt: np.ndarray | None,
    bounds: tuple[float, float] | None,
    fn: OverlapFn,
) -> float:
    if pred is None or gt is None:
        return 0.0
    if pred.size == 4 and (pred[2] <= 0 or pred[3] <= 0):
        return 0.0
    v = float(fn(_geom(pred), _geom(gt), bounds=bounds))
    return v if np.isfinite(v) else 0.0


def _is_marker(e: Any) -> bool:
    return isinstance(e, (int, np.integer))


def _gt_list(gt_regions: Any, name: str = "gt_regions") -> list[np.ndarray | None]:
    return [_to_region(g, f"{name}[{i}]") for i, g in enumerate(gt_regions)]


# ----------------------------------------------------------------------------------- run


def vot_baseline(
    track_fn: Callable[[Any], Any],
    init_fn: Callable[[Any, np.ndarray], Any],
    frames: Iterable[Any],
    gt_regions: Sequence[Any],
    image_size: tuple[int, int] | None = None,
    *,
    skip: int = 5,
    failure_overlap: float = 0.0,
    overlap_fn: OverlapFn | None = None,
) -> list[VotEntry]:
    """Run a tracker through the VOT baseline (reset) experiment on one sequence.

    Args:
        track_fn: ``track_fn(frame) -> region`` (xywh, polygon, a ``Prediction`` or ``None``).
        init_fn: ``init_fn(frame, gt_region)`` (re)initialises the tracker; the region is an
            ``(x, y, w, h)`` array or an ``(N, 2)`` polygon, as given in ``gt_regions``.
        frames: the frames, consumed once in order (a generator is fine); frames during the
            skip after a failure are read but not given to the tracker.
        gt_regions: one ground-truth region per frame.
        image_size: ``(width, height)``: overlaps are computed inside the image (VOT bounds).
        skip: re-initialise this many frames after a failure (VOT: 5).
        failure_overlap: a frame with overlap ``<=`` this is a failure (VOT: 0).
        overlap_fn: ``overlap_fn(a, b, bounds=...) -> float``; default
            ``segtrack.geometry.polygon_iou``.

    Returns:
        The VOT raw result list: per frame ``1`` / ``2`` / ``0`` or the predicted region (flat
        float array).
    """
    if skip < 1:
        raise InputError(f"skip must be >= 1, got {skip}")
    gts = _gt_list(gt_regions)
    n = len(gts)
    fn = overlap_fn or _default_overlap()
    results: list[VotEntry] = [SKIPPED] * n
    tracking = False
    next_init = 0
    count = 0
    for i, frame in enumerate(frames):
        if i >= n:
            break
        count = i + 1
        if not tracking:
            if i >= next_init and gts[i] is not None:
                init_fn(frame, _geom(gts[i]))
                results[i] = INIT
                tracking = True
            continue
        region = _to_region(track_fn(frame), f"tracker output at frame {i}")
        if _overlap(region, gts[i], image_size, fn) <= failure_overlap:
            results[i] = FAILURE
            tracking = False
            next_init = i + skip
        else:
            assert region is not None
            results[i] = region
    if count < n:
        raise InputError(f"frames: got {count} frames but gt_regions has {n}")
    return results


# --------------------------------------------------------------------------------- files


def _fmt(v: float) -> str:
    s = f"{v:.4f}"
    return "0.0000" if s == "-0.0000" else s


def write_vot_results(path: str | Path, results: Sequence[VotEntry]) -> None:
    """Write a raw result list in the VOT text format (one line per frame).

    Markers as ``1`` / ``2`` / ``0``; regions as comma-separated values with 4 decimals
    (``x,y,w,h`` or ``x1,y1,...,x4,y4``).
    """
    lines = []
    for i, e in enumerate(results):
        if _is_marker(e):
            if int(e) not in (INIT, FAILURE, SKIPPED):
                raise InputError(f"results[{i}]: marker must be 0, 1 or 2, got {e}")
            lines.append(str(int(e)))
        else:
            r = _to_region(e, f"results[{i}]")
            if r is None:
                raise InputError(f"results[{i}]: empty region (use a failure marker instead)")
            lines.append(",".join(_fmt(v) for v in r))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n")


def read_vot_results(path: str | Path) -> list[VotEntry]:
    """Read a VOT raw result file written by :func:`write_vot_results` or the VOT toolkit."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"VOT result file '{p}' does not exist")
    out: list[VotEntry] = []
    for ln, line in enumerate(p.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = [t for t in re.split(r"[,\s]+", line) if t]
        try:
            vals = [float(t) for t in parts]
        except ValueError:
            raise InputError(f"'{p}' line {ln}: not a number list: '{line}'") from None
        if len(vals) == 1:
            v = vals[0]
            if v not in (0.0, 1.0, 2.0):
                raise InputError(f"'{p}' line {ln}: marker must be 0, 1 or 2, got '{line}'")
            out.append(int(v))
        elif len(vals) == 4 or (len(vals) >= 6 and len(vals) % 2 == 0):
            out.append(np.array(vals, dtype=np.float64))
        else:
            raise InputError(f"'{p}' line {ln}: expected 1, 4 or 2N values, got {len(vals)}")
    return out


# ------------------------------------------------------------------------------ measures


def frame_overlaps(
    results: Sequence[VotEntry],
    gt_regions: Sequence[Any],
    image_size: tuple[int, int] | None = None,
    overlap_fn: OverlapFn | None = None,
) -> np.ndarray:
    """Per-frame overlap of a raw result list with the ground truth (0 on marker frames)."""
    gts = _gt_list(gt_regions)
    if len(results) != len(gts):
        raise InputError(f"results has {len(results)} frames but gt_regions has {len(gts)}")
    fn = overlap_fn or _default_overlap()
    out = np.zeros(len(gts), dtype=np.float64)
    for i, (e, g) in enumerate(zip(results, gts)):
        if not _is_marker(e):
            out[i] = _overlap(_to_region(e, f"results[{i}]"), g, image_size, fn)
    return out


def _accuracy(results: Sequence[VotEntry], ov: np.ndarray, burnin: int) -> tuple[float, int]:
    mask = np.ones(len(results), dtype=bool)
    for i, e in enumerate(results):
        if _is_marker(e):
            mask[i] = False
            if int(e) == INIT:
                mask[i : i + burnin] = False
    valid = int(mask.sum())
    return (float(ov[mask].mean()) if valid else 0.0), valid


def accuracy_robustness(
    results: Sequence[VotEntry],
    gt_regions: Sequence[Any],
    image_size: tuple[int, int] | None = None,
    burnin: int = 10,
    overlap_fn: OverlapFn | None = None,
) -> tuple[float, int]:
    """VOT accuracy and failure count of one sequence run.

    Accuracy is the mean overlap over the frames that are not markers (init, failure, skipped)
    and not within ``burnin`` frames from an initialisation (init frame included, toolkit
    ``compute_accuracy``); 0 when no frame is left (as the toolkit). Failures: number of ``2``s.
    """
    ov = frame_overlaps(results, gt_regions, image_size, overlap_fn)
    acc, _ = _accuracy(results, ov, burnin)
    failures = sum(1 for e in results if _is_marker(e) and int(e) == FAILURE)
    return acc, failures


def eao_segments(
    results: Sequence[VotEntry],
    gt_regions: Sequence[Any],
    image_size: tuple[int, int] | None = None,
    overlap_fn: OverlapFn | None = None,
) -> list[tuple[np.ndarray, bool]]:
    """The EAO segments of one run: ``(overlaps from the init frame, ended_in_failure)``."""
    return _segments(results, frame_overlaps(results, gt_regions, image_size, overlap_fn))


def _segments(results: Sequence[VotEntry], ov: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    fails = [i for i, e in enumerate(results) if _is_marker(e) and int(e) == FAILURE]
    inits = [i for i, e in enumerate(results) if _is_marker(e) and int(e) == INIT]
    if not fails:
        return [(ov, False)]
    segs = [(ov[inits[k] : fails[k]], True) for k in range(min(len(fails), len(inits)))]
    if len(inits) > len(fails):
        segs.append((ov[inits[-1] :], False))
    return segs


def _as_pairs(
    sequences_results: Any, gt: Any, image_sizes: Any
) -> list[tuple[str, Sequence[VotEntry], Sequence[Any], tuple[int, int] | None]]:
    if isinstance(sequences_results, dict):
        if not isinstance(gt, dict):
            raise InputError("gt: must be a dict keyed like sequences_results")
        out = []
        for name, res in sequences_results.items():
            if name not in gt:
                raise InputError(f"gt: no ground truth for sequence '{name}'")
            size = None if image_sizes is None else image_sizes.get(name)
            out.append((str(name), res, gt[name], size))
        return out
    res_l = list(sequences_results)
    gt_l = list(gt)
    if len(res_l) != len(gt_l):
        raise InputError(f"{len(res_l)} result lists but {len(gt_l)} ground-truth sequences")
    sizes = [None] * len(res_l) if image_sizes is None else list(image_sizes)
    return [(str(i), r, g, s) for i, (r, g, s) in enumerate(zip(res_l, gt_l, sizes))]


def _curve(segs: list[tuple[np.ndarray, bool]], length: int | None) -> np.ndarray:
    if not segs:
        raise InputError("eao: no sequences given")
    max_len = max(len(o) for o, _ in segs)
    n = max(max_len, int(length) if length is not None else 0, 1)
    ov = np.zeros((len(segs), n), dtype=np.float64)
    active = np.zeros((len(segs), n), dtype=bool)
    for k, (o, failed) in enumerate(segs):
        ov[k, : len(o)] = o
        active[k] = True if failed else np.arange(n) < len(o)
    avg = ov.copy()  # Φ(0): the init frame's value, as in the toolkit
    avg[:, 1:] = np.cumsum(ov[:, 1:], axis=1) / np.arange(1, n)[None, :]
    cnt = active.sum(axis=0)
    return np.where(cnt > 0, (avg * active).sum(axis=0) / np.maximum(cnt, 1), np.nan)


def _all_segments(pairs: list, overlap_fn: OverlapFn | None) -> list[tuple[np.ndarray, bool]]:
    segs: list[tuple[np.ndarray, bool]] = []
    for _, res, g, size in pairs:
        segs.extend(eao_segments(res, g, size, overlap_fn))
    return segs


def _check_interval(interval: tuple[int, int]) -> tuple[int, int]:
    try:
        low, high = int(interval[0]), int(interval[1])
    except (TypeError, ValueError, IndexError):
        raise InputError(f"interval must be (low, high), got {interval!r}") from None
    if not 0 <= low <= high:
        raise InputError(f"interval must be (low, high) with 0 <= low <= high, got {interval}")
    return low, high


def _mean_over(curve: np.ndarray, low: int, high: int) -> float:
    part = curve[low : high + 1]
    part = part[~np.isnan(part)]
    return float(part.mean()) if part.size else float("nan")


def eao_curve(
    sequences_results: Any,
    gt: Any,
    image_sizes: Any = None,
    overlap_fn: OverlapFn | None = None,
    length: int | None = None,
) -> np.ndarray:
    """Expected average overlap curve ``Φ(Ns)`` for ``Ns = 0 .. length - 1``.

    ``sequences_results`` / ``gt`` / ``image_sizes``: dicts keyed by sequence name (or parallel
    lists). ``length`` defaults to the longest segment. NaN where no segment counts.
    """
    pairs = _as_pairs(sequences_results, gt, image_sizes)
    return _curve(_all_segments(pairs, overlap_fn), length)


def eao(
    sequences_results: Any,
    gt: Any,
    image_sizes: Any = None,
    interval: tuple[int, int] = (100, 356),
    overlap_fn: OverlapFn | None = None,
) -> float:
    """Expected average overlap: mean of ``Φ(Ns)`` for ``Ns`` in ``[low, high]`` (inclusive).

    ``interval`` defaults to VOT-2017/2018's ``(100, 356)``; VOT-2016 used ``(108, 371)``.
    """
    low, high = _check_interval(interval)
    curve = eao_curve(sequences_results, gt, image_sizes, overlap_fn, length=high + 1)
    return _mean_over(curve, low, high)


def suggest_eao_interval(sequence_lengths: Sequence[int]) -> tuple[int, int]:
    """EAO interval from sequence lengths, after VOT's rule (a simplification of it).

    A Gaussian kernel density estimate of the lengths is evaluated at every length; starting at
    its mode the interval grows towards the denser side until it holds half of the density.
    """
    lengths = np.asarray(sequence_lengths, dtype=np.float64).ravel()
    if lengths.size == 0 or (lengths < 1).any():
        raise InputError("sequence_lengths: need positive sequence lengths")
    top = int(lengths.max())
    if lengths.size < 2 or np.ptp(lengths) == 0:
        m = int(np.median(lengths))
        return m, m
    from scipy.stats import gaussian_kde

    grid = np.arange(1, top + 1, dtype=np.float64)
    dens = gaussian_kde(lengths)(grid)
    dens = dens / dens.sum()
    lo = hi = int(np.argmax(dens))
    mass = dens[lo]
    while mass < 0.5 and (lo > 0 or hi < len(grid) - 1):
        left = dens[lo - 1] if lo > 0 else -1.0
        right = dens[hi + 1] if hi < len(grid) - 1 else -1.0
        if right >= left:
            hi += 1
            mass += dens[hi]
        else:
            lo -= 1
            mass += dens[lo]
    return int(grid[lo]), int(grid[hi])


def evaluate_vot(
    results_by_seq: dict[str, Sequence[VotEntry]],
    gt_by_seq: dict[str, Sequence[Any]],
    sizes: dict[str, tuple[int, int]] | None = None,
    interval: tuple[int, int] = (100, 356),
    burnin: int = 10,
    overlap_fn: OverlapFn | None = None,
) -> dict[str, Any]:
    """VOT baseline scores of raw result lists.

    Returns ``accuracy`` (per-sequence accuracies weighted by sequence length, as the toolkit's
    average AR analysis), ``robustness`` (VOT-2018: failures per 100 frames), ``failures``
    (total), ``failures_per_sequence`` (VOT-2016 robustness), ``EAO``, ``eao_curve`` (list up to
    ``interval[1]``), ``frames`` and ``sequences`` (per-sequence accuracy / failures / frames).
    """
    if not results_by_seq:
        raise InputError("results_by_seq: no sequences given")
    low, high = _check_interval(interval)
    pairs = _as_pairs(results_by_seq, gt_by_seq, sizes)
    per_seq: dict[str, dict[str, Any]] = {}
    segs: list[tuple[np.ndarray, bool]] = []
    acc_w = 0.0
    frames = 0
    failures = 0
    for name, res, g, size in pairs:
        ov = frame_overlaps(res, g, size, overlap_fn)
        acc, valid = _accuracy(res, ov, burnin)
        f = sum(1 for e in res if _is_marker(e) and int(e) == FAILURE)
        per_seq[name] = {"accuracy": acc, "failures": f, "frames": len(res), "valid_frames": valid}
        acc_w += acc * len(res)
        frames += len(res)
        failures += f
        segs.extend(_segments(res, ov))
    curve = _curve(segs, high + 1)
    return {
        "accuracy": acc_w / frames if frames else 0.0,
        "robustness": 100.0 * failures / frames if frames else 0.0,
        "failures": failures,
        "failures_per_sequence": failures / len(pairs),
        "EAO": _mean_over(curve, low, high),
        "eao_curve": [None if np.isnan(v) else float(v) for v in curve[: high + 1]],
        "frames": frames,
        "sequences": per_seq,
    }
