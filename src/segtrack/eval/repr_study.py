"""Seed 004 (SiamMask) §4.1 evaluations on DAVIS-style data where no VOT data is at hand.

* :func:`davis_rotated_gt` / :func:`vot_on_davis`: the VOT baseline (reset) experiment
  (accuracy, robustness, EAO; :mod:`segtrack.eval.vot`) on DAVIS sequences whose rotated-box
  ground truth is the MBR of each annotated mask (frames with an empty mask keep the previous
  frame's box, as VOT annotates every frame).  Trackers are (re)initialised with the min-max box
  of the rotated ground truth and report the MBR of their mask (``Prediction.rotated_box``; the
  ``state_box`` of SiamMask when the mask is empty).
* :func:`representation_study`: Table 1 ("How much does the object representation matter?"):
  frames sampled at random, search crops jittered by up to ±16 pixels and 2^±0.25 in scale
  around the ground truth, the exemplar from the sequence's first frame; IoU of the Min-max,
  MBR and Opt boxes of SiamMask's mask (and, 3b, of its box branch's axis-aligned box: the
  SiamRPN representation) with the rotated ground truth, against three oracles: fixed aspect
  ratio (ground-truth centre and area, first-frame aspect ratio, axis-aligned), Min-max (of the
  rotated ground truth) and MBR (= the ground truth here, so 100 by construction).  Because the
  rotated ground truth is itself derived from the mask, the same boxes are also scored against
  the ground-truth **mask** (``vs_mask``), where the oracles are informative.
  mAP@t = fraction of samples with IoU >= t, as the seed.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np

from segtrack.errors import InputError


def davis_rotated_gt(seq) -> list[np.ndarray]:
    """Per-frame ``(4, 2)`` MBR of the sequence's object mask (all objects merged); frames
    without a mask reuse the previous box (the next one at the start)."""
    from segtrack.geometry import mask_to_rotated_box

    out: list[np.ndarray | None] = []
    for f in range(len(seq.frames)):
        lab = seq.read_labels(f)
        m = lab > 0 if lab is not None else None
        out.append(mask_to_rotated_box(m) if m is not None and m.any() else None)
    known = [i for i, r in enumerate(out) if r is not None]
    if not known:
        raise InputError(f"sequence '{seq.name}': no annotated object")
    last = out[known[0]]
    for i in range(len(out)):
        if out[i] is None:
            out[i] = last
        last = out[i]
    return out  # type: ignore[return-value]


def polygon_minmax(poly: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned ``(x, y, w, h)`` enclosing a polygon."""
    p = np.asarray(poly, float).reshape(-1, 2)
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def vot_on_davis(
    root: str | Path,
    method: str,
    sequences: Seq[str] | None = None,
    params: dict[str, Any] | None = None,
    skip: int = 5,
    quiet: bool = True,
) -> dict[str, Any]:
    """VOT baseline experiment of ``method`` on DAVIS sequences with MBR ground truth."""
    from segtrack.eval.datasets import load_davis
    from segtrack.eval.vot import evaluate_vot, suggest_eao_interval, vot_baseline
    from segtrack.io.sources import read_image
    from segtrack.trackers.registry import load_tracker

    seqs = load_davis(root, sequences=sequences)
    if not seqs:
        raise InputError(f"no sequences found under '{root}'")
    results, gts, sizes = {}, {}, {}
    for seq in seqs:
        gt = davis_rotated_gt(seq)
        tr = load_tracker(method, **(params or {}))

        def init_fn(frame, region, tr=tr):
            tr.init(frame, box=polygon_minmax(region))

        def track_fn(frame, tr=tr):
            pred = tr.track(frame)
            if not pred.empty:
                return pred.rotated_box
            return pred.extra.get("state_box")

        frames = (read_image(p) for p in seq.frames)
        h, w = read_image(seq.frames[0]).shape[:2]
        results[seq.name] = vot_baseline(track_fn, init_fn, frames, gt, (w, h), skip=skip)
        gts[seq.name] = gt
        sizes[seq.name] = (w, h)
        if not quiet:
            print(seq.name, sum(1 for e in results[seq.name] if isinstance(e, int) and e == 2),
                  "failures", flush=True)
    interval = suggest_eao_interval([len(g) for g in gts.values()])
    out = evaluate_vot(results, gts, sizes, interval=interval)
    out["eao_interval"] = list(interval)
    out.pop("eao_curve", None)
    out["method"] = method
    return out


def fixed_aspect_oracle(center: tuple[float, float], area: float, aspect: float
                        ) -> tuple[float, float, float, float]:
    """Axis-aligned box with the given centre and area and width/height ratio ``aspect``."""
    w = float(np.sqrt(area * aspect))
    h = float(np.sqrt(area / aspect))
    return center[0] - w / 2, center[1] - h / 2, w, h


def _summ(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, float)
    return {"mIoU": 100 * float(a.mean()), "mAP@0.5": 100 * float((a >= 0.5).mean()),
            "mAP@0.7": 100 * float((a >= 0.7).mean())}


def representation_study(
    root: str | Path,
    method: str = "siammask",
    sequences: Seq[str] | None = None,
    samples_per_sequence: int = 20,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    shift: float = 16.0,
    log2_scale: float = 0.25,
) -> dict[str, Any]:
    """Table 1 of seed 004 on DAVIS sequences (see the module docstring)."""
    from segtrack.eval.datasets import load_davis
    from segtrack.geometry import (
        box_to_polygon,
        mask_polygon_iou,
        mask_to_box,
        mask_to_rotated_box,
        polygon_area,
        polygon_iou,
    )
    from segtrack.io.sources import read_image
    from segtrack.models.siammask import SEARCH, context_sides
    from segtrack.trackers.registry import load_tracker

    rng = np.random.default_rng(seed)
    seqs = load_davis(root, sequences=sequences)
    if not seqs:
        raise InputError(f"no sequences found under '{root}'")
    tr = load_tracker(method, **{"opt_box": True, **(params or {})})
    rows: dict[str, dict[str, list[float]]] = {"vs_rotated_gt": {}, "vs_mask": {}}
    n = 0
    for seq in seqs:
        lab0 = seq.read_labels(0)
        m0 = lab0 > 0
        b0 = mask_to_box(m0)
        img0 = read_image(seq.frames[0])
        aspect0 = b0[2] / b0[3]
        frames = [f for f in range(1, len(seq.frames))
                  if (lab := seq.read_labels(f)) is not None and (lab > 0).any()]
        for f in rng.choice(frames, size=min(samples_per_sequence, len(frames)), replace=False):
            gt_mask = seq.read_labels(int(f)) > 0
            img = read_image(seq.frames[int(f)])
            H, W = gt_mask.shape
            gt_rot = mask_to_rotated_box(gt_mask)
            x, y, w, h = mask_to_box(gt_mask)
            tr.init(img0, box=b0)
            # jittered search crop: centre shifted by up to `shift` crop pixels, size 2^±s
            sz = np.array([w, h]) * 2.0 ** rng.uniform(-log2_scale, log2_scale)
            per = context_sides(*sz)[1] / SEARCH
            tr.center = np.array([x + w / 2, y + h / 2]) + rng.uniform(-shift, shift, 2) * per
            tr.size = sz
            pred = tr.track(img)
            boxes: dict[str, np.ndarray | None] = {
                "SiamMask Min-max": box_to_polygon(pred.box) if not pred.empty else None,
                "SiamMask MBR": pred.rotated_box if not pred.empty else None,
                "SiamMask Opt": pred.extra.get("opt_box"),
            }
            if "rpn_box" in pred.extra:
                boxes["box branch (SiamRPN-like)"] = box_to_polygon(pred.extra["rpn_box"])
            gx, gy, gw, gh = polygon_minmax(gt_rot)
            cx, cy = gx + gw / 2, gy + gh / 2
            boxes["oracle fixed aspect ratio"] = box_to_polygon(
                fixed_aspect_oracle((cx, cy), polygon_area(gt_rot), aspect0))
            boxes["oracle Min-max"] = box_to_polygon(polygon_minmax(gt_rot))
            boxes["oracle MBR"] = gt_rot
            for name, poly in boxes.items():
                a = 0.0 if poly is None else float(polygon_iou(poly, gt_rot, bounds=(W, H)))
                b = 0.0 if poly is None else float(mask_polygon_iou(gt_mask, poly))
                rows["vs_rotated_gt"].setdefault(name, []).append(a)
                rows["vs_mask"].setdefault(name, []).append(b)
            n += 1
    return {"method": method, "samples": n, "seed": seed,
            "sequences": [s.name for s in seqs],
            **{k: {name: _summ(v) for name, v in t.items()} for k, t in rows.items()}}


def format_table(study: dict[str, Any], key: str = "vs_rotated_gt") -> str:
    """Markdown table of one part of :func:`representation_study`."""
    lines = ["| representation | mIoU (%) | mAP@0.5 | mAP@0.7 |", "|---|---|---|---|"]
    for name, r in study[key].items():
        lines.append(f"| {name} | {r['mIoU']:.1f} | {r['mAP@0.5']:.1f} | {r['mAP@0.7']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m segtrack.eval.repr_study vot|table1 --root R --methods M1,M2 [--sequences S]``:
    the VOT-style experiment on rotated DAVIS ground truth, or the Table 1 study."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m segtrack.eval.repr_study",
                                description="SiamMask VOT-on-DAVIS and Table 1 studies (seed 004)")
    p.add_argument("study", choices=["vot", "table1"])
    p.add_argument("--root", required=True, help="DAVIS-style root")
    p.add_argument("--methods", default="siammask", help="comma-separated method names")
    p.add_argument("--sequences", help="comma-separated names (default: all)")
    p.add_argument("--samples", type=int, default=20, help="table1: samples per sequence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args(argv)
    seqs = [s for s in args.sequences.split(",") if s] if args.sequences else None
    out: dict[str, Any] = {}
    for m in [m for m in args.methods.split(",") if m]:
        if args.study == "vot":
            r = vot_on_davis(args.root, m, seqs)
            keys = ("accuracy", "robustness", "failures", "EAO")
            print(m, json.dumps({k: r[k] for k in keys if k in r}), flush=True)
        else:
            r = representation_study(args.root, m, seqs, samples_per_sequence=args.samples,
                                     seed=args.seed)
            print(f"{m}: against the rotated ground truth\n{format_table(r)}\n"
                  f"{m}: against the mask\n{format_table(r, 'vs_mask')}", flush=True)
        out[m] = r
    if args.json:
        from segtrack.io.writers import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(out, indent=1, default=float).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
