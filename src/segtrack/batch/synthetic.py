"""Synthetic batch inputs: many short videos plus a manifest, for tests and the load test.

Uses :func:`segtrack.data.synthetic.make_video` / :func:`~segtrack.data.synthetic.write_video`
(DAVIS layout: ``JPEGImages/480p/<name>/*.jpg`` and ``Annotations/480p/<name>/*.png``).
"""

from __future__ import annotations

import csv
from pathlib import Path


def make_synthetic_batch(
    root: str | Path,
    n: int,
    *,
    frames: int = 8,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    method: str = "flow",
) -> Path:
    """Write ``n`` synthetic videos under ``root`` and ``root/manifest.csv``; returns the manifest.

    Row ``i`` tracks ``vid{i:04d}`` from the first-frame annotation with ``method``.
    """
    from segtrack.data.synthetic import make_video, write_video

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"vid{i:04d}"
        video = make_video(seed + i, height=height, width=width, num_frames=frames,
                           num_objects=1, background="texture", occlusion=False)
        write_video(video, root, name=name)
        rows.append({"video": f"JPEGImages/480p/{name}",
                     "mask": f"Annotations/480p/{name}/00000.png",
                     "method": method, "name": name})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["video", "mask", "method", "name"])
        w.writeheader()
        w.writerows(rows)
    return manifest
