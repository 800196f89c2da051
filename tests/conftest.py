"""Shared fixtures: the DAVIS-2016 train data beside the repo (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
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


# -- small inputs of the clip generators (make-clips multi / box) ----------------------------
def _photo(folder: Path, name: str, colour, rng: np.random.Generator) -> None:
    """A 120x100 photo: grey noise, the object a textured ellipse of ``colour``."""
    h, w = 120, 100
    img = rng.integers(90, 140, (h, w, 3)).astype(np.uint8)
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (50, 60), (int(rng.integers(22, 30)), int(rng.integers(34, 44))),
                float(rng.uniform(-20, 20)), 0, 360, 255, -1)
    tex = np.clip(np.array(colour) + rng.integers(-25, 25, (h, w, 3)), 0, 255)
    img[m > 0] = tex[m > 0]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "images" / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "masks" / f"{name}.png"), m)


@pytest.fixture(scope="session")
def clip_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """(a photograph root with a people set and a set of two categories, a tiny DAVIS-2016
    folder of two blue-noise sequences)."""
    root = tmp_path_factory.mktemp("multi_inputs")
    rng = np.random.default_rng(0)
    static = root / "static"
    for i in range(15):  # 3 held out
        _photo(static / "people", f"{i:04d}", (230, 40, 40), rng)
    for i in range(10):  # 2 + 2 held out
        _photo(static / "coco", f"ball{i:02d}_{i + 100}", (40, 220, 40), rng)
        _photo(static / "coco", f"cup{i:02d}_{i + 200}", (230, 200, 30), rng)
    davis = root / "davis"
    for seq in ("alpha", "beta"):
        jd, ad = davis / "JPEGImages" / "480p" / seq, davis / "Annotations" / "480p" / seq
        jd.mkdir(parents=True)
        ad.mkdir(parents=True)
        for t in range(4):
            img = np.zeros((120, 214, 3), np.uint8)
            img[..., 0] = rng.integers(0, 60, (120, 214))
            img[..., 1] = rng.integers(0, 60, (120, 214))
            img[..., 2] = rng.integers(150, 255, (120, 214))
            cv2.imwrite(str(jd / f"{t:05d}.jpg"), img)
            m = np.zeros((120, 214), np.uint8)
            m[40:60, 20 + 10 * t:50 + 10 * t] = 255
            cv2.imwrite(str(ad / f"{t:05d}.png"), m)
    return static, davis
