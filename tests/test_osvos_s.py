"""OSVOS-S: semantic selection, propagation and fusion on constructed cases, a look-alike that
plain OSVOS segments and OSVOS-S drops, and a regression on a shared DAVIS sequence."""

from __future__ import annotations

import numpy as np
import pytest

from segtrack import load_tracker
from segtrack.trackers.osvos_s import (
    box_of,
    consistent_regions,
    fuse,
    grow,
    mask_iou,
    select_first,
)


def _disc(shape, cx, cy, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_selection_needs_the_proposal_to_match_the_mask():
    m = _disc((60, 80), 30, 30, 10)
    assert select_first(m, m, 0.5)
    assert select_first(grow(m, 1), m, 0.5)
    assert not select_first(_disc((60, 80), 55, 30, 10), m, 0.5)  # another object
    assert not select_first(np.zeros_like(m), m, 0.5)


def test_propagation_keeps_the_region_near_the_last_instance_only():
    shape = (80, 160)
    a, b = _disc(shape, 40, 40, 12), _disc(shape, 120, 40, 12)
    prob = np.where(a | b, 0.9, 0.05).astype(np.float32)
    previous = _disc(shape, 36, 42, 12)  # the target a frame ago, a little to the left
    kept, dropped = consistent_regions(prob, previous, 0.5, 0.5)
    assert mask_iou(kept, a) > 0.95
    assert mask_iou(dropped, b) > 0.95
    assert not (kept & b).any()
    # far from both: nothing is kept until the search area is grown enough
    far = _disc(shape, 80, 75, 3)
    assert not consistent_regions(prob, far, 0.5, 0.5)[0].any()
    assert consistent_regions(prob, far, 0.5, 12.0)[0].any()


def test_fusion_fills_inside_the_instance_and_drops_the_rest():
    prob = np.array([[0.9, 0.3, 0.9, 0.95]], np.float32)
    proposal = np.array([[0.9, 0.9, 0.1, 0.9]], np.float32)
    support = np.array([[True, True, True, False]])
    out = fuse(prob, proposal, support, 0.5, 0.0)
    np.testing.assert_allclose(out, [[0.9, 0.6, 0.5, 0.0]], atol=1e-6)
    # no proposal: OSVOS inside, outside scaled
    np.testing.assert_allclose(fuse(prob, None, support, 0.5, 0.5), [[0.9, 0.3, 0.9, 0.475]])
    assert box_of(np.zeros((3, 3), bool)) is None
    assert box_of(_disc((50, 50), 20, 25, 5)) == (15.0, 20.0, 11.0, 11.0)


def _twins(n: int = 8, shape=(144, 192)):
    """Two identical textured discs on a noise background: the target (left) drifts right, its
    twin (right) stays; returns frames and the target's masks and the twin's masks."""
    rng = np.random.default_rng(3)
    bg = rng.integers(60, 120, size=(*shape, 3)).astype(np.uint8)
    tex = rng.integers(0, 255, size=(41, 41, 3)).astype(np.uint8)
    frames, target, twin = [], [], []
    for t in range(n):
        f = bg.copy()
        masks = []
        for cx in (50 + 2 * t, 140):
            m = _disc(shape, cx, 70, 20)
            ys, xs = np.nonzero(m)
            f[ys, xs] = tex[ys - 50, xs - (cx - 20)]
            masks.append(m)
        frames.append(f)
        target.append(masks[0])
        twin.append(masks[1])
    return frames, target, twin


@pytest.mark.parametrize("method", ["osvos", "osvos-s"])
def test_a_twin_of_the_target(method):
    frames, target, twin = _twins()
    tr = load_tracker(method, seed=0)
    tr.init(frames[0], mask=target[0])
    ious, on_twin = [], []
    for f, a, b in zip(frames[1:], target[1:], twin[1:]):
        m = tr.track(f).mask
        ious.append(mask_iou(m, a))
        on_twin.append((m & b).sum() / b.sum())
    if method == "osvos":  # the appearance model alone takes the twin too
        assert np.mean(on_twin) > 0.3, on_twin
    else:
        assert tr.prior
        assert np.mean(on_twin) < 0.05, on_twin
        assert np.mean(ious) > 0.7, ious


def test_regression_on_a_shared_davis_sequence(davis_root):
    """car-turn, held out from the fold-0 OSVOS parent: measured 0.881 (osvos 0.881)."""
    from segtrack.eval.datasets import load_davis

    seq = {s.name: s for s in load_davis(davis_root)}["car-turn"]
    gt = [seq.read_labels(i) > 0 for i in range(20)]
    tr = load_tracker("osvos-s", weights="osvos-fold0")
    tr.init(seq.read_image(0), mask=gt[0])
    assert tr.prior
    ious = [mask_iou(tr.track(seq.read_image(i)).mask, gt[i]) for i in range(1, 20)]
    assert np.mean(ious) >= 0.85, (round(float(np.mean(ious)), 3), ious)
