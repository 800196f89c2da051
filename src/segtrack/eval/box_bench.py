"""``segtrack bench --dataset ope``: box tracking, one-pass evaluation (OPE) from the first box.

Every sequence of an OTB, LaSOT or GOT-10k folder, of a set written by ``segtrack make-clips
box``, or of a DAVIS folder read as box sequences (each object's min-max box of its mask per
frame, absent where its mask is empty), is tracked online from the first box and scored with
:mod:`segtrack.eval.ope` (success AUC, precision@20, normalised precision), its tracking speed
timed (tracker time only) and broken down by attribute:

* from the ground-truth boxes, for any dataset (the UAV123 / OTB definitions): ``small`` (a
  present box of fewer than 400 pixels), ``fast`` (the centre moves more than 20 pixels between
  two frames), ``scale_change`` (a box whose sqrt(area) is outside 0.5x-2x the first one's),
  ``absent`` (frames without the target);
* from the generator's ``meta.json`` of a ``make-clips box`` set: ``occlusion``,
  ``full_occlusion``, ``out_of_view``, ``distractor`` (a look-alike crosses the target),
  ``blur``, ``rotation``.

Coordinates: OTB boxes are 1-based pixel indices (the OTB toolkit's MATLAB convention, also
written by ``make-clips box``); they are shifted by one pixel to the 0-based frame coordinates
the trackers work in and back for the results.  The other layouts are taken as 0-based.

Lost-target signal: the trackers' scores (``Prediction.score``, also in ``boxes.json``) are
compared with the target's presence: ``score_present`` / ``score_absent`` (mean score on frames
with / without the target) and ``absent_auc`` (the probability that a frame without the target
scores lower than one with it; 0.5 is chance).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from segtrack.errors import InputError

__all__ = ["load_ope_sequences", "box_attributes", "bench_box_sequence", "bench_ope",
           "format_ope"]

#: UAV123 / OTB attribute thresholds
SMALL_AREA = 400.0  # pixels ("low resolution": fewer than 400 pixels in a frame)
FAST_PX = 20.0  # centre motion between two frames ("fast motion")
SCALE_RANGE = (0.5, 2.0)  # sqrt-area ratio to the first box ("scale variation")


def _davis_box_sequences(root: Path, sequences: Seq[str] | None) -> list:
    """DAVIS sequences as box sequences: one per object, named ``<seq>`` (DAVIS-2016) or
    ``<seq>-<k>``, boxes = min-max boxes of the masks, absent where the mask is empty."""
    from dataclasses import replace

    from segtrack.eval.datasets import load_davis
    from segtrack.geometry import mask_to_box

    out = []
    for seq in load_davis(root):
        ids = seq.object_ids
        boxes = {k: np.full((len(seq), 4), np.nan) for k in ids}
        for i in range(len(seq)):
            lab = seq.read_labels(i)
            if lab is None:
                continue
            for k in ids:
                m = lab == k
                if m.any():
                    boxes[k][i] = mask_to_box(m)
        for k in ids:
            name = seq.name if len(ids) == 1 else f"{seq.name}-{k}"
            b = boxes[k]
            present = ~np.isnan(b[:, 0])
            if not present.any():
                continue
            f0 = int(np.argmax(present))
            out.append(replace(seq, name=name, frames=seq.frames[f0:], masks=None,
                               boxes=b[f0:], object_ids=[1], first_frames={1: 0},
                               style="davis-box", absent=~present[f0:],
                               meta={"object": int(k), "first_frame": f0}))
    if sequences:
        by = {s.name: s for s in out}
        missing = [n for n in sequences if n not in by]
        if missing:
            raise InputError(f"unknown sequence(s): {', '.join(missing)}")
        out = [by[n] for n in sequences]
    return out


def load_ope_sequences(root: str | Path, sequences: Seq[str] | None = None) -> list:
    """The box sequences of ``root``: OTB (also ``make-clips box`` sets), LaSOT, GOT-10k, or a
    DAVIS folder read as box sequences."""
    from segtrack.eval.runner import load_box_dataset

    r = Path(root)
    if (r / "JPEGImages").is_dir() and (r / "Annotations").is_dir():
        return _davis_box_sequences(r, sequences)
    return load_box_dataset(r, sequences)


def _present(boxes: np.ndarray, absent: np.ndarray | None) -> np.ndarray:
    from segtrack.eval.ope import valid_boxes

    ok = valid_boxes(boxes)
    if absent is not None:
        ok &= ~np.asarray(absent, bool)
    return ok


def box_attributes(boxes: np.ndarray, absent: np.ndarray | None = None) -> list[str]:
    """The attributes a sequence's ground-truth boxes show (see the module doc)."""
    b = np.asarray(boxes, float)
    ok = _present(b, absent)
    out = []
    if not ok.any():
        return out
    area = b[ok, 2] * b[ok, 3]
    if (area < SMALL_AREA).any():
        out.append("small")
    c = b[:, :2] + b[:, 2:] / 2
    both = ok[1:] & ok[:-1]
    if both.any() and (np.hypot(*(c[1:] - c[:-1])[both].T) > FAST_PX).any():
        out.append("fast")
    r = np.sqrt(area / area[0])
    if ((r < SCALE_RANGE[0]) | (r > SCALE_RANGE[1])).any():
        out.append("scale_change")
    if (~ok).any():
        out.append("absent")
    return out


def _origin(seq: Any) -> float:
    return 1.0 if seq.style == "otb" else 0.0


def bench_box_sequence(seq: Any, method: str, *, device: str = "cpu",
                       params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Track one box sequence from its first box; ``{"boxes" (N, 4) in the dataset's
    coordinates, "scores" (N,), "frames", "seconds", "fps", "init_seconds"}``."""
    from segtrack.trackers.registry import load_tracker

    gt = np.asarray(seq.boxes, float)
    ok = _present(gt, seq.absent)
    if not ok[0]:
        raise InputError(f"sequence '{seq.name}': the target is absent from its first frame")
    o = _origin(seq)
    tracker = load_tracker(method, device=device, **(params or {}))
    boxes = np.full((len(seq), 4), np.nan)
    scores = np.full(len(seq), np.nan)
    frame = seq.read_image(0)
    x, y, w, h = gt[0]
    t0 = time.perf_counter()
    tracker.init(frame, box=(x - o, y - o, w, h))
    init_s = time.perf_counter() - t0
    boxes[0], scores[0] = gt[0], 1.0
    last = gt[0].copy()
    seconds = 0.0
    for i in range(1, len(seq)):
        frame = seq.read_image(i)
        t0 = time.perf_counter()
        pred = tracker.track(frame)
        seconds += time.perf_counter() - t0
        bx = np.asarray(pred.box, float)
        if np.isfinite(bx).all() and bx[2] > 0 and bx[3] > 0:
            last = bx + np.array([o, o, 0.0, 0.0])
        boxes[i] = last  # an empty mask keeps the last box (its score says it is lost)
        scores[i] = float(pred.score) if pred.score is not None else np.nan
    n = len(seq) - 1
    return {"boxes": boxes, "scores": scores, "frames": n, "seconds": seconds,
            "fps": n / max(seconds, 1e-9), "init_seconds": init_s}


def _rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + P(pos == neg) / 2."""
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    i = 0
    while i < len(sv):  # average ranks of ties
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    rp = ranks[: len(pos)].sum()
    return float((rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def lost_signal(scores: dict[str, np.ndarray], present: dict[str, np.ndarray]) -> dict[str, Any]:
    """How well the scores mark the frames without the target (frames 1.. of every sequence,
    pooled)."""
    sp, sa = [], []
    for name, s in scores.items():
        s = np.asarray(s, float)[1:]
        p = np.asarray(present[name], bool)[1:]
        keep = np.isfinite(s)
        sp.append(s[keep & p])
        sa.append(s[keep & ~p])
    pos, neg = np.concatenate(sp), np.concatenate(sa)
    out: dict[str, Any] = {"score_present": float(pos.mean()) if len(pos) else None,
                           "score_absent": float(neg.mean()) if len(neg) else None,
                           "absent_frames": int(len(neg))}
    out["absent_auc"] = _rank_auc(pos, neg) if len(pos) and len(neg) else None
    return out


def _generator_attributes(root: Path) -> dict[str, list[str]]:
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    vids = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(vids, dict):
        return {}
    return {str(k): list(v.get("attributes", [])) for k, v in vids.items()
            if isinstance(v, dict)}


def _write_results(out: Path, name: str, boxes: np.ndarray, scores: np.ndarray) -> None:
    from segtrack.io import atomic_write_bytes

    rows = "\n".join(",".join(f"{v:.2f}" for v in b) for b in boxes) + "\n"
    atomic_write_bytes(out / f"{name}.txt", rows.encode())
    atomic_write_bytes(out / f"{name}.scores.txt",
                       ("\n".join(f"{s:.4f}" for s in scores) + "\n").encode())


def bench_ope(root: str | Path, method: str, *, sequences: Seq[str] | None = None,
              device: str = "cpu", params: dict[str, Any] | None = None,
              out_dir: str | Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Track and score box sequences (see the module doc); returns the summary: ``AUC``,
    ``Precision@20``, ``NormPrecision``, ... of :func:`~segtrack.eval.ope.evaluate_ope`,
    ``fps``, ``attributes`` (attribute -> {AUC, sequences}), the lost-target signal and
    ``sequences`` (per sequence: the scores, fps, frames, attributes)."""
    from segtrack.eval.ope import evaluate_ope

    seqs = load_ope_sequences(root, sequences)
    if not seqs:
        raise InputError(f"no sequences found under '{root}'")
    out = Path(out_dir) if out_dir else None
    if out is not None:
        from segtrack.io import guard_output

        guard_output(out, [Path(root)], is_dir=True)
        out.mkdir(parents=True, exist_ok=True)
    gen_attrs = _generator_attributes(Path(root))
    pred, gt, vis, scores, timing, attrs = {}, {}, {}, {}, {}, {}
    t_wall = time.perf_counter()
    bar = tqdm(seqs, desc=f"bench {method}", unit="seq", disable=quiet)
    for seq in bar:
        bar.set_postfix_str(seq.name)
        r = bench_box_sequence(seq, method, device=device, params=params)
        g = np.asarray(seq.boxes, float)
        pred[seq.name], gt[seq.name], scores[seq.name] = r["boxes"], g, r["scores"]
        vis[seq.name] = _present(g, seq.absent)
        timing[seq.name] = {k: r[k] for k in ("frames", "seconds", "fps", "init_seconds")}
        a = box_attributes(g, seq.absent)
        attrs[seq.name] = sorted(set(a) | set(gen_attrs.get(seq.name, [])))
        if out is not None:
            _write_results(out, seq.name, r["boxes"], r["scores"])
    summary = evaluate_ope(pred, gt, visible_by_seq=vis)
    frames = sum(t["frames"] for t in timing.values())
    seconds = sum(t["seconds"] for t in timing.values())
    summary["fps"] = frames / max(seconds, 1e-9)
    summary["frames"] = frames
    summary["track_seconds"] = seconds
    summary.update(lost_signal(scores, vis))
    by_attr: dict[str, list[str]] = {}
    for name, a in attrs.items():
        for k in a:
            by_attr.setdefault(k, []).append(name)
        summary["sequences"][name].update(timing[name])
        summary["sequences"][name]["attributes"] = a
    summary["attributes"] = {
        k: {"AUC": float(np.mean([summary["sequences"][n]["AUC"] for n in names])),
            "sequences": len(names)} for k, names in sorted(by_attr.items())}
    summary["wall_seconds"] = time.perf_counter() - t_wall
    summary["method"] = method
    summary["params"] = dict(params or {})
    return summary


def format_ope(summary: dict[str, Any]) -> str:
    """Per-sequence table, attribute breakdown and overall line."""
    lines = [f"{'sequence':<24s} {'frames':>6s} {'AUC':>6s} {'P@20':>6s} {'NormP':>6s} "
             f"{'fps':>6s}  attributes"]
    for name, s in summary["sequences"].items():
        lines.append(f"{name:<24s} {s['frames']:>6d} {s['AUC']:6.3f} {s['Precision@20']:6.3f} "
                     f"{s['NormPrecision']:6.3f} {s['fps']:6.1f}  {','.join(s['attributes'])}")
    if summary.get("attributes"):
        lines.append("by attribute: " + "  ".join(
            f"{k} {v['AUC']:.3f} ({v['sequences']})" for k, v in summary["attributes"].items()))
    lost = ""
    if summary.get("absent_auc") is not None:
        lost = (f"  lost-target score: {summary['score_absent']:.2f} without the target, "
                f"{summary['score_present']:.2f} with it (separation {summary['absent_auc']:.2f})")
    lines.append(f"method {summary['method']}: AUC {summary['AUC']:.4f}  P@20 "
                 f"{summary['Precision@20']:.4f}  NormP {summary['NormPrecision']:.4f}  "
                 f"tracking {summary['fps']:.1f} fps over {summary['frames']} frames" + lost)
    return "\n".join(lines)
