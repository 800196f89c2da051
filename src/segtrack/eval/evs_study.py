"""The EVS / LMANet study (seed 001, Table 3.2 and Table 4.5 analogues), measured on this CPU.

``python -m segtrack.eval.evs_study --davis ROOT`` prints

1. EVS operating points (D, S, W, R) on held-out DAVIS-2016-train sequences (object tracking,
   J&F of the DAVIS protocol, fps at 480p of the ``evs`` tracker wrapped around ``--base``);
2. EVS operating points on held-out multi-class synthetic videos (mIoU, flicker, fps) with the
   ``semseg-synth`` segmenter;
3. LMANet against the same segmenter without memory (mIoU per class, flicker, ms per frame).

**Flicker** (temporal stability, lower is better): for consecutive frames t-1, t, the fraction of
the pixels whose *ground-truth* label does not change but whose *predicted* label does, averaged
over all frame pairs of all videos (in %).  It counts label flips the video does not justify.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: operating points (D, S, W, R) on the synthetic videos (320x240; the segmenter's training
#: resolution is D = 1), as Table 3.2 (R rows only with refiner weights)
SYNTH_POINTS: tuple[tuple[float, int, bool, bool], ...] = (
    (1.0, 1, True, False),
    (1.0, 2, True, False),
    (1.0, 3, True, False),
    (1.0, 3, True, True),
    (1.0, 5, True, False),
    (1.0, 5, True, True),
    (1.0, 5, False, False),
    (0.5, 5, True, False),
    (0.5, 10, True, False),
    (0.5, 10, False, False),
)
#: operating points on DAVIS 480p (854x480; semseg-davis is trained at 448x256, i.e. D = 0.5)
DAVIS_POINTS: tuple[tuple[float, int, bool, bool], ...] = (
    (0.5, 1, True, False),
    (0.5, 2, True, False),
    (0.5, 3, True, False),
    (0.5, 3, True, True),
    (0.5, 5, True, False),
    (0.5, 5, True, True),
    (0.5, 5, False, False),
    (0.5, 10, True, False),
    (0.5, 10, False, False),
    (0.25, 10, True, False),
    (0.25, 20, True, False),
)


def flicker(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> tuple[float, int]:
    """(sum of per-pair flicker fractions, number of pairs) of one video (see module doc)."""
    total, n = 0.0, 0
    for t in range(1, len(preds)):
        stable = gts[t] == gts[t - 1]
        if stable.any():
            total += float((preds[t] != preds[t - 1])[stable].mean())
            n += 1
    return total, n


def _summary(conf: np.ndarray, fl: float, nfl: int, seconds: float, frames: int,
             names: list[str] | None = None) -> dict[str, Any]:
    from segtrack.training.semseg import iou_from_confusion

    iou = iou_from_confusion(conf)
    out = {"mIoU": float(np.nanmean(iou)),
           "per_class_IoU": [None if np.isnan(v) else float(v) for v in iou],
           "flicker": 100.0 * fl / max(nfl, 1), "fps": frames / max(seconds, 1e-9),
           "ms_per_frame": 1000.0 * seconds / max(frames, 1), "frames": frames}
    if names:
        out["class_names"] = names
    return out


def evaluate_video_model(model: Any, videos: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
                         memory: bool) -> dict[str, Any]:
    """mIoU / flicker / speed of a SemSeg (``memory=False``) or an LMANet (``memory=True``)."""
    from segtrack.models.lmanet import LMAState
    from segtrack.models.semseg import predict_probs
    from segtrack.training.semseg import confusion

    seg = model.seg if memory else model
    C = seg.cfg.num_classes
    conf = np.zeros((C, C), np.int64)
    fl, nfl, secs, frames = 0.0, 0, 0.0, 0
    for video in videos:
        state = LMAState(model) if memory else None
        preds = []
        for im, lab in video:
            t = time.perf_counter()
            p = state.step(im) if memory else predict_probs(model, im)
            pred = p.argmax(0).astype(np.uint8)
            secs += time.perf_counter() - t
            frames += 1
            conf += confusion(pred, lab, C)
            preds.append(pred)
        a, b = flicker(preds, [lab for _, lab in video])
        fl, nfl = fl + a, nfl + b
    return _summary(conf, fl, nfl, secs, frames, list(seg.cfg.class_names))


def evs_semantic(model: Any, videos, D: float, S: int, W: bool, R: bool,
                 refiner: Any = None) -> dict[str, Any]:
    """EVS around the semantic segmenter ``model`` on multi-class videos."""
    import cv2

    from segtrack.models.semseg import predict_probs
    from segtrack.training.semseg import confusion
    from segtrack.video.evs import EVSConfig, EVSPipeline

    C = model.cfg.num_classes
    conf = np.zeros((C, C), np.int64)
    fl, nfl, secs, frames, calls = 0.0, 0, 0.0, 0, 0
    for video in videos:
        pipe = EVSPipeline(lambda small: predict_probs(model, small).transpose(1, 2, 0),
                           EVSConfig(D=D, S=S, W=W, R=R), refiner)
        preds = []
        for t, (im, lab) in enumerate(video):
            t0 = time.perf_counter()
            probs = pipe.start(im) if t == 0 else pipe.step(im)
            small = probs.argmax(2).astype(np.uint8)
            pred = cv2.resize(small, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_NEAREST)
            secs += time.perf_counter() - t0
            frames += 1
            conf += confusion(pred, lab, C)
            preds.append(pred)
        calls += pipe.segment_calls
        pipe.close()
        a, b = flicker(preds, [lab for _, lab in video])
        fl, nfl = fl + a, nfl + b
    out = _summary(conf, fl, nfl, secs, frames)
    out["segment_calls"] = calls
    return out


def evs_davis(root: str, sequences: Sequence[str], base: str, base_params: str,
              D: float, S: int, W: bool, R: bool, refiner_weights: str = "") -> dict[str, Any]:
    """J&F and fps of ``evs`` around ``base`` (or ``base`` itself for D=1, S=1, W=1, R=0)."""
    from segtrack.eval.runner import bench_davis
    from segtrack.trackers.evs import parse_base_params

    if (D, S, R) == (1.0, 1, False):
        return bench_davis(root, base, sequences=list(sequences), quiet=True,
                           params=parse_base_params(base_params))
    params = {"base": base, "base_params": base_params, "D": D, "S": S, "W": W, "R": R}
    if refiner_weights:
        params["refiner_weights"] = refiner_weights
    return bench_davis(root, "evs", sequences=list(sequences), quiet=True, params=params)


def _fmt_point(D, S, W, R) -> str:
    return f"{D:<5g} {S:>3d}  {'✓' if W else '✗'}  {'✓' if R else '✗'}"


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    from segtrack.training.common import DAVIS2016_TRAIN_FOLD0

    p = argparse.ArgumentParser(prog="python -m segtrack.eval.evs_study",
                                description=__doc__.splitlines()[0])
    p.add_argument("--davis", default="", help="DAVIS-2016 root (skip the DAVIS table if empty)")
    p.add_argument("--sequences", default=",".join(DAVIS2016_TRAIN_FOLD0),
                   help="held-out DAVIS sequences (default: fold 0 of 5)")
    p.add_argument("--base", default="semseg", help="keyframe segmenter for DAVIS")
    p.add_argument("--base-params", default="", help="its parameters, k=v;k=v")
    p.add_argument("--refiner-davis", default="", help="refiner weights for DAVIS R rows")
    p.add_argument("--refiner-synth", default="", help="refiner weights for synthetic R rows")
    p.add_argument("--semseg", default="", help="synthetic semseg weights (default committed)")
    p.add_argument("--lmanet", default="", help="synthetic LMANet weights (default committed)")
    p.add_argument("--test-videos", type=int, default=20)
    p.add_argument("--points", default="", help="synthetic points, e.g. '1,1,1,0;0.5,10,1,0'")
    p.add_argument("--davis-points", default="", help="DAVIS points (same format)")
    p.add_argument("--extra-base", default="", help="a second DAVIS keyframe segmenter (e.g. rts)")
    p.add_argument("--extra-points", default="1,1,1,0;1,3,1,0;1,5,1,0;0.5,10,1,0;0.5,20,1,0",
                   help="its operating points (fewer: it is slow)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: davis,synth,lmanet")
    p.add_argument("--json", default="", help="also write all numbers here")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    from segtrack.video.evs import parse_evs_spec

    def _points(text, default):
        return [tuple(parse_evs_spec(x).values()) for x in text.split(";")] if text else \
            list(default)

    dpoints = _points(a.davis_points, DAVIS_POINTS)
    spoints = _points(a.points, SYNTH_POINTS)
    from segtrack.models.semseg import WEIGHTS_DIR, load_semseg, resolve_weights
    from segtrack.training.semseg import TEST_SEED0, synthetic_video

    results: dict[str, Any] = {}
    print("(CPU shared with other training jobs: speeds are lower bounds; torch/cv2 1 thread)")
    if a.davis and "davis" not in skip:
        seqs = [s for s in a.sequences.split(",") if s]
        ref = a.refiner_davis or (str(WEIGHTS_DIR / "evs-refiner-davis.pt")
                                  if (WEIGHTS_DIR / "evs-refiner-davis.pt").is_file() else "")
        runs = [(a.base, a.base_params, dpoints)]
        if a.extra_base:
            runs.append((a.extra_base, "", _points(a.extra_points, ())))
        results["davis"] = {}
        for base, bparams, pts in runs:
            print(f"\nEVS on DAVIS-2016-train held-out {','.join(seqs)} (480p), base '{base}'")
            print("D     S    W  R   J&F     J      F      fps")
            rows = []
            for D, S, W, R in pts:
                if R and not ref:
                    continue
                s = evs_davis(a.davis, seqs, base, bparams, D, S, W, R, ref)
                rows.append({"D": D, "S": S, "W": W, "R": R, "JF": s["JF"], "J": s["J_M"],
                             "F": s["F_M"], "fps": s["fps"]})
                print(f"{_fmt_point(D, S, W, R)}  {s['JF']:.3f}  {s['J_M']:.3f}  "
                      f"{s['F_M']:.3f}  {s['fps']:6.1f}", flush=True)
            results["davis"][base] = rows
    videos = None
    if not {"synth", "lmanet"} <= skip:
        videos = [list(synthetic_video(s)) for s in range(TEST_SEED0,
                                                          TEST_SEED0 + a.test_videos)]
    if "synth" not in skip:
        model = load_semseg(resolve_weights(a.semseg, "semseg-synth"))
        refiner = None
        rpath = a.refiner_synth or str(WEIGHTS_DIR / "evs-refiner-synth.pt")
        if Path(rpath).is_file():
            from segtrack.models.refiner import load_refiner

            refiner = load_refiner(rpath)
        print(f"\nEVS on {a.test_videos} held-out synthetic multi-class videos (320x240, seeds "
              f"{TEST_SEED0}..), base semseg-synth")
        print("D     S    W  R   mIoU   flicker%  fps")
        rows = []
        for D, S, W, R in spoints:
            if R and refiner is None:
                continue
            s = evs_semantic(model, videos, D, S, W, R, refiner)
            rows.append({"D": D, "S": S, "W": W, "R": R, **{k: s[k] for k in
                                                              ("mIoU", "flicker", "fps")}})
            print(f"{_fmt_point(D, S, W, R)}  {s['mIoU']:.3f}  {s['flicker']:7.2f}  "
                  f"{s['fps']:6.1f}", flush=True)
        results["synthetic"] = rows
    if "lmanet" not in skip:
        from segtrack.models.lmanet import load_lmanet

        lma = load_lmanet(resolve_weights(a.lmanet, "lmanet-synth"))
        base = load_semseg(resolve_weights(a.semseg, "semseg-synth"))
        rb = evaluate_video_model(base, videos, memory=False)
        rl = evaluate_video_model(lma, videos, memory=True)
        names = rb["class_names"]
        print(f"\nLMANet (memory {lma.cfg.memory}, R={lma.cfg.radius}) vs the same segmenter "
              f"without memory, {a.test_videos} held-out synthetic videos")
        print(f"{'':10s}{'mIoU':>7s}{'flicker%':>10s}{'ms/frame':>10s}  "
              + " ".join(f"{n[:7]:>7s}" for n in names))
        for label, r in (("semseg", rb), ("+LMA", rl)):
            per = " ".join("    n/a" if v is None else f"{v:7.3f}" for v in r["per_class_IoU"])
            print(f"{label:10s}{r['mIoU']:7.3f}{r['flicker']:10.2f}{r['ms_per_frame']:10.1f}  "
                  f"{per}")
        print(f"change: mIoU {rl['mIoU'] - rb['mIoU']:+.3f}, flicker "
              f"{rl['flicker'] - rb['flicker']:+.2f} points")
        results["lmanet"] = {"baseline": rb, "lmanet": rl}
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
