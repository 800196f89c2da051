"""One object at a time on the held-out multi-object clips: its J and F, and the false-positive
area on the other objects (its look-alikes: pixels of the prediction on another object's
ground truth, divided by the object's first-frame area, mean over the frames where another
object is visible).  The first PER_CLIP objects of each clip's first frame; the one-shot
methods with the fold-0 OSVOS parent.

    python scripts/distractor_eval.py METHOD CLIPS_ROOT PER_CLIP OUT.json
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from segtrack import load_tracker
from segtrack.eval.datasets import load_davis
from segtrack.eval.davis_metrics import db_eval_boundary

method, root, per_clip, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = []
for seq in load_davis(root, scan_objects=True):
    labs0 = seq.read_labels(0)
    ids = [int(k) for k in np.unique(labs0) if k > 0][:per_clip]
    imgs = [seq.read_image(i) for i in range(len(seq))]
    labs = [seq.read_labels(i) for i in range(len(seq))]
    for k in ids:
        t0 = time.time()
        tr = load_tracker(method, weights="osvos-fold0")
        tr.init(imgs[0], mask=labs0 == k)
        area0 = float((labs0 == k).sum())
        J, Fm, fp = [], [], []
        for i in range(1, len(seq)):
            m = tr.track(imgs[i]).mask
            g = labs[i] == k
            others = (labs[i] > 0) & ~g
            u = (m | g).sum()
            J.append(float((m & g).sum() / u) if u else 1.0)
            Fm.append(float(db_eval_boundary(m, g)))
            if others.any():
                fp.append(float((m & others).sum()) / area0)
        rows.append({"clip": seq.name, "object": k, "J": np.mean(J), "F": np.mean(Fm),
                     "fp_on_others": float(np.mean(fp)) if fp else 0.0,
                     "frames_with_others": len(fp),
                     "seconds": time.time() - t0})
        print(method, rows[-1], flush=True)
s = {"method": method, "objects": len(rows), "J": float(np.mean([r["J"] for r in rows])),
     "F": float(np.mean([r["F"] for r in rows])),
     "fp_on_others": float(np.mean([r["fp_on_others"] for r in rows])), "rows": rows}
s["JF"] = (s["J"] + s["F"]) / 2
json.dump(s, open(out, "w"), indent=1)
print(json.dumps({k: v for k, v in s.items() if k != "rows"}))
