"""Mean IoU against sequence length (seed 003, Tables 2-3).

For each length L (20/40/80/160) every test sequence is cut to its first L frames, or, when it
is shorter, *temporally upsampled* to L frames (frame i of the new sequence is original frame
``floor(i * n / L)``, i.e. repeated frames) as the paper does ("for sequences shorter than the
pre-set length, we upsample the testing sequences to the fixed length"). The tracker is
initialised with the ground-truth mask of frame 0 and its soft foreground map is binarised at
each threshold (0.4 / 0.7: our reading of "threshold at 0.4" in Tables 2-3); the table entry is
the per-frame IoU (Eq. 3) averaged over frames 1..L-1 and then over sequences.

``python -m segtrack.eval.length_study --root DAVIS --sequences a,b --methods convlstm,...
--json out.json``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from segtrack.errors import InputError


def upsample_indices(n: int, length: int) -> list[int]:
    """Frame indices of a sequence of ``n`` frames cut or upsampled to ``length``."""
    if n <= 0 or length <= 0:
        raise InputError(f"length study: need n > 0 and length > 0, got n={n}, length={length}")
    if n >= length:
        return list(range(length))
    return [i * n // length for i in range(length)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def length_study(
    root: str,
    sequences: Sequence[str] | None,
    methods: Sequence[str],
    lengths: Sequence[int] = (20, 40, 80, 160),
    thresholds: Sequence[float] = (0.4, 0.7),
    device: str = "cpu",
    params: dict | None = None,
    log=print,
) -> dict:
    """-> ``{method: {f"{thr}": {f"{L}": mean IoU}}, "per_sequence": ...}``."""
    from segtrack.eval.datasets import load_davis
    from segtrack.trackers.registry import load_tracker

    seqs = load_davis(root)
    if sequences:
        want = set(sequences)
        missing = want - {s.name for s in seqs}
        if missing:
            raise InputError(f"--sequences: not found under '{root}': {', '.join(sorted(missing))}")
        seqs = [s for s in seqs if s.name in want]
    result: dict = {"lengths": list(lengths), "thresholds": list(thresholds),
                    "sequences": [s.name for s in seqs], "methods": {}}
    for method in methods:
        per: dict = {}
        t0 = time.time()
        for s in seqs:
            ims = [s.read_image(i) for i in range(len(s))]
            gts = [s.read_labels(i) > 0 for i in range(len(s))]
            for L in lengths:
                idx = upsample_indices(len(s), L)
                tr = load_tracker(method, device=device, **dict(params or {}))
                tr.init(ims[idx[0]], mask=gts[idx[0]])
                vals = {t: [] for t in thresholds}
                for i in idx[1:]:
                    p = tr.track(ims[i])
                    soft = p.scores if p.scores is not None else p.mask.astype(np.float32)
                    for t in thresholds:
                        vals[t].append(_iou(soft > t, gts[i]))
                for t in thresholds:
                    per.setdefault(f"{t}", {}).setdefault(f"{L}", {})[s.name] = float(
                        np.mean(vals[t]))
        table = {t: {L: float(np.mean(list(v.values()))) for L, v in d.items()}
                 for t, d in per.items()}
        result["methods"][method] = {"mean_iou": table, "per_sequence": per,
                                     "seconds": round(time.time() - t0, 1)}
        log(f"{method}: {json.dumps(table)}")
    return result


def format_table(result: dict) -> str:
    lines = []
    for t in result["thresholds"]:
        head = f"threshold {t}".ljust(24) + "".join(f"{L:>8}" for L in result["lengths"])
        lines.append(head)
        for m, r in result["methods"].items():
            row = r["mean_iou"][f"{t}"]
            lines.append(m.ljust(24) + "".join(f"{row[f'{L}']:8.4f}" for L in result["lengths"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segtrack.eval.length_study",
                                 description="mean IoU against sequence length (seed 003)")
    ap.add_argument("--root", required=True, help="DAVIS-style root")
    ap.add_argument("--sequences", default="", help="comma-separated names (default: all)")
    ap.add_argument("--methods", default="convlstm,convlstm-1stage,perframe")
    ap.add_argument("--lengths", default="20,40,80,160")
    ap.add_argument("--thresholds", default="0.4,0.7")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="write the result here")
    a = ap.parse_args(argv)
    try:
        lengths = [int(v) for v in a.lengths.split(",")]
        thresholds = [float(v) for v in a.thresholds.split(",")]
    except ValueError:
        raise InputError("--lengths / --thresholds: comma-separated numbers expected") from None
    seqs = [s for s in a.sequences.split(",") if s] or None
    res = length_study(a.root, seqs, [m for m in a.methods.split(",") if m], lengths,
                       thresholds, a.device)
    print(format_table(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
