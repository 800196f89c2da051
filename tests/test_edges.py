"""Full-resolution boundary refinement (segtrack.geometry.edges)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.geometry.edges import guided_filter, guided_refine


def _scene():
    img = np.zeros((120, 200, 3), np.uint8)
    img[:, :100] = (200, 60, 40)  # the object: left of column 100
    img[:, 100:] = (40, 90, 200)
    coarse = np.zeros((120 // 8, 200 // 8), np.float32)
    coarse[:, : 104 // 8] = 1.0  # the coarse mask ends at column 104
    prob = cv2.resize(coarse, (200, 120), interpolation=cv2.INTER_LINEAR)
    prob = cv2.GaussianBlur(prob, (0, 0), 4)
    return img, prob


def test_refinement_moves_the_boundary_onto_the_image_edge():
    img, prob = _scene()
    before = int((prob[60] > 0.5).sum())
    out = guided_refine(prob, img, radius=8, eps=1e-3)
    after = int((out[60] > 0.5).sum())
    assert abs(before - 100) >= 3  # the coarse mask is off by several pixels
    assert abs(after - 100) <= 1
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("sub", [1, 2, 4])
def test_guided_filter_keeps_a_constant_and_follows_the_guide(sub):
    img, prob = _scene()
    g = img.astype(np.float32) / 255
    flat = guided_filter(g, np.full(prob.shape, 0.3, np.float32), 6, 1e-3, subsample=sub)
    np.testing.assert_allclose(flat, 0.3, atol=1e-3)
    out = guided_filter(g, prob, 8, 1e-3, subsample=sub)
    assert prob[60, 102] > 0.5  # the coarse mask spills over the edge ...
    assert out[60, 98] > 0.5 > out[60, 102]  # ... the filtered one stops at it


def test_refinement_leaves_certain_regions_alone():
    img, _ = _scene()
    certain = np.zeros((120, 200), np.float32)
    certain[:, :100] = 1.0
    assert guided_refine(certain, img, 8) is certain


def test_edge_parameters_are_checked():
    import segtrack

    with pytest.raises(InputError, match="edge_radius"):
        segtrack.load_tracker("rts", edges=True, edge_radius=0)
