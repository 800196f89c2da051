"""Lucid data dreaming and MaskTrack's simulated previous masks (segtrack.data.lucid)."""

from __future__ import annotations

import cv2
import numpy as np

from segtrack.data.lucid import (
    dream_frame,
    dream_pair,
    inpaint_background,
    simulate_previous_mask,
)


def _scene(h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Blue textured background, red textured ellipse object (R > B exactly on the object)."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = rng.integers(10, 50, (h, w))
    img[..., 1] = rng.integers(60, 120, (h, w))
    img[..., 2] = rng.integers(170, 230, (h, w))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (60, 55), (25, 18), 20, 0, 360, 1, -1)
    mask = mask.astype(bool)
    img[mask, 0] = rng.integers(180, 240, int(mask.sum()))
    img[mask, 2] = rng.integers(10, 50, int(mask.sum()))
    return img, mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _check_aligned(img: np.ndarray, mask: np.ndarray) -> None:
    """Pixel-wise: every pixel one step inside the mask is red, every pixel one step outside
    is blue (illumination changes keep the order of R and B)."""
    assert mask.any() and not mask.all()
    k = np.ones((3, 3), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), k) > 0
    outer = cv2.dilate(mask.astype(np.uint8), k) == 0
    r = img[..., 0].astype(int)
    b = img[..., 2].astype(int)
    assert np.all(r[inner] > b[inner])
    assert np.all(b[outer] > r[outer])


def test_inpaint_removes_object() -> None:
    img, mask = _scene()
    bg = inpaint_background(img, mask)
    assert np.array_equal(bg[~cv2.dilate(mask.astype(np.uint8), np.ones((7, 7))).astype(bool)],
                          img[~cv2.dilate(mask.astype(np.uint8), np.ones((7, 7))).astype(bool)])
    hole = bg[mask].astype(int)
    assert np.mean(hole[:, 2] > hole[:, 0]) > 0.99  # filled with the blue background


def test_dream_frame_mask_aligned_and_moved() -> None:
    img, mask = _scene()
    moved = 0
    for seed in range(6):
        im, m = dream_frame(img, mask, np.random.default_rng(seed))
        assert im.shape == img.shape and im.dtype == np.uint8 and m.dtype == bool
        _check_aligned(im, m)
        # area kept up to the scale range (1 +- 0.15)^2
        assert 0.6 < m.sum() / mask.sum() < 1.45
        moved += _iou(m, mask) < 0.9
    assert moved >= 3  # the object is placed anew


def test_dream_pair_consecutive_and_aligned() -> None:
    img, mask = _scene()
    for seed in range(4):
        i1, m1, i2, m2 = dream_pair(img, mask, np.random.default_rng(seed))
        _check_aligned(i1, m1)
        _check_aligned(i2, m2)
        assert _iou(m1, m2) > 0.5  # small motion between the two frames
    # deterministic given the generator
    a = dream_pair(img, mask, np.random.default_rng(3))
    b = dream_pair(img, mask, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_simulated_previous_masks() -> None:
    _, mask = _scene()
    rng = np.random.default_rng(0)
    ious = [_iou(simulate_previous_mask(mask, rng, p_coarse=0.0), mask) for _ in range(30)]
    assert 0.4 < np.mean(ious) < 0.97  # perturbed, yet about the object
    assert min(ious) > 0.1
    # coarsening: boxes are filled axis-aligned rectangles, blobs cover the object's centre
    rng = np.random.default_rng(1)
    n_box = 0
    for _ in range(12):
        m = simulate_previous_mask(mask, rng, p_coarse=1.0, morph=0.0)
        ys, xs = np.nonzero(m)
        is_box = m.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        n_box += bool(is_box)
    assert 2 <= n_box <= 10
    assert not simulate_previous_mask(np.zeros((10, 10), bool), rng).any()
