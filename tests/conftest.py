"""Shared fixtures: the DAVIS-2016 train data beside the repo (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DAVIS_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


@pytest.fixture
def davis_root() -> Path:
    if not (DAVIS_ROOT / "JPEGImages" / "480p").is_dir():
        pytest.skip(f"DAVIS-2016 train data not found at {DAVIS_ROOT}")
    return DAVIS_ROOT


@pytest.fixture
def bear_clip(davis_root, tmp_path) -> tuple[Path, list[np.ndarray]]:
    """The first three frames of DAVIS bear copied to ``tmp_path/data/bear``, and their
    ground-truth masks."""
    import shutil

    from PIL import Image

    jpg = davis_root / "JPEGImages" / "480p" / "bear"
    ann = davis_root / "Annotations" / "480p" / "bear"
    names = [f"{t:05d}" for t in range(3)]
    if not all((jpg / f"{n}.jpg").is_file() and (ann / f"{n}.png").is_file() for n in names):
        pytest.skip(f"DAVIS bear frames not found under {davis_root}")
    clip = tmp_path / "data" / "bear"
    clip.mkdir(parents=True)
    for n in names:
        shutil.copy2(jpg / f"{n}.jpg", clip / f"{n}.jpg")
    gts = [np.array(Image.open(ann / f"{n}.png").convert("L")) > 127 for n in names]
    return clip, gts


def deepest_point(gt: np.ndarray) -> tuple[float, float]:
    """The object's point farthest from its boundary (where a user clicks first)."""
    from segtrack.interactive import next_click

    c = next_click(gt)
    return c.x, c.y
