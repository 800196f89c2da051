"""Tests for segtrack.geometry: Min-max / MBR / Opt boxes, IoUs, rasterisation (hand-computed)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.geometry import (
    box_iou,
    box_to_mask,
    box_to_polygon,
    mask_iou,
    mask_polygon_iou,
    mask_to_box,
    mask_to_opt_box,
    mask_to_rotated_box,
    polygon_area,
    polygon_iou,
    polygon_to_mask,
    rotated_box_from_params,
    rotated_box_params,
)

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def _ellipse_mask(shape=(480, 854), center=(427, 240), axes=(300, 200), angle=30) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, center, axes, angle, 0, 360, 1, -1)
    return m.astype(bool)


def _l_mask() -> np.ndarray:
    m = np.zeros((100, 100), bool)
    m[10:90, 10:30] = True  # vertical bar 80 x 20
    m[70:90, 10:70] = True  # foot 20 x 60; total area 1600 + 1200 - 400 = 2400
    return m


def _angle_err(poly: np.ndarray, target_deg: float) -> float:
    """Distance between the rectangle's orientation and target_deg, modulo 90 degrees."""
    d = (rotated_box_params(poly)[4] - target_deg) % 90.0
    return min(d, 90.0 - d)


# ------------------------------------------------------------------------------------------
# mask_to_box
# ------------------------------------------------------------------------------------------


def test_mask_to_box_patterns():
    m = np.zeros((6, 8), bool)
    assert mask_to_box(m) == (0.0, 0.0, 0.0, 0.0)
    m[2, 3] = True
    assert mask_to_box(m) == (3.0, 2.0, 1.0, 1.0)
    m[4, 6] = True
    assert mask_to_box(m) == (3.0, 2.0, 4.0, 3.0)
    m[:] = False
    m[1, 7] = m[5, 0] = True  # anti-diagonal corners
    assert mask_to_box(m) == (0.0, 1.0, 8.0, 5.0)
    u8 = np.zeros((4, 4), np.uint8)
    u8[1:3, 2] = 255
    assert mask_to_box(u8) == (2.0, 1.0, 1.0, 2.0)


# ------------------------------------------------------------------------------------------
# MBR
# ------------------------------------------------------------------------------------------


def test_mbr_of_axis_rectangle_is_its_box():
    m = np.zeros((50, 60), bool)
    m[10:20, 5:45] = True
    mbr = mask_to_rotated_box(m)
    expected = box_to_polygon(mask_to_box(m))
    assert sorted(map(tuple, mbr)) == sorted(map(tuple, expected))
    assert polygon_area(mbr) == pytest.approx(400.0)


def test_mbr_single_pixel_and_empty():
    m = np.zeros((5, 5), bool)
    assert np.array_equal(mask_to_rotated_box(m), np.zeros((4, 2)))
    m[2, 3] = True
    mbr = mask_to_rotated_box(m)
    assert sorted(map(tuple, mbr)) == [(3.0, 2.0), (3.0, 3.0), (4.0, 2.0), (4.0, 3.0)]


def test_mbr_of_rotated_rectangle_angle_and_area():
    w, h = 120.0, 60.0
    poly = rotated_box_from_params(100.0, 90.0, w, h, 30.0)
    m = np.zeros((200, 200), np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 1, shift=4)
    m = m.astype(bool)
    mbr = mask_to_rotated_box(m)
    assert _angle_err(mbr, 30.0) < 1.0
    _, _, mw, mh, _ = rotated_box_params(mbr)
    assert sorted((mw, mh)) == pytest.approx(sorted((w, h)), abs=3.0)
    area = polygon_area(mbr)
    assert w * h <= area <= (w + 3) * (h + 3)
    # it covers every pixel square, hence every pixel centre
    assert np.all(polygon_to_mask(mbr, m.shape)[m])


def test_mbr_covers_pixel_squares():
    m = _ellipse_mask()
    mbr = mask_to_rotated_box(m)
    assert np.all(polygon_to_mask(mbr, m.shape)[m])
    # covering whole pixel squares: every pixel corner of the mask lies in the rectangle
    ys, xs = np.nonzero(m)
    pts = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    c = mbr.mean(axis=0)
    e1 = (mbr[1] - mbr[0]) / np.linalg.norm(mbr[1] - mbr[0])
    e2 = (mbr[2] - mbr[1]) / np.linalg.norm(mbr[2] - mbr[1])
    half_w = np.linalg.norm(mbr[1] - mbr[0]) / 2
    half_h = np.linalg.norm(mbr[2] - mbr[1]) / 2
    assert np.all(np.abs((pts - c) @ e1) <= half_w + 1e-3)
    assert np.all(np.abs((pts - c) @ e2) <= half_h + 1e-3)
    # ellipse with semi-axes 300 x 200: MBR about 601 x 401 (+- pixelisation)
    assert polygon_area(mbr) == pytest.approx(601 * 401, rel=0.02)


# ------------------------------------------------------------------------------------------
# rotated box parameters, box <-> polygon
# ------------------------------------------------------------------------------------------


def test_rotated_box_params_round_trip():
    poly = rotated_box_from_params(10.0, 20.0, 30.0, 40.0, 25.0)
    assert rotated_box_params(poly) == pytest.approx((10.0, 20.0, 30.0, 40.0, 25.0))
    assert polygon_area(poly) == pytest.approx(1200.0)
    # angle 0 is the axis box, in box_to_polygon order
    np.testing.assert_allclose(
        rotated_box_from_params(5.0, 6.0, 4.0, 2.0, 0.0), box_to_polygon((3.0, 5.0, 4.0, 2.0))
    )
    # 90 degrees: first edge points down (+y)
    p90 = rotated_box_from_params(0.0, 0.0, 4.0, 2.0, 90.0)
    np.testing.assert_allclose(p90[1] - p90[0], [0.0, 4.0], atol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = (*rng.uniform(-50, 50, 2), *rng.uniform(1, 80, 2), rng.uniform(-179, 180))
        got = rotated_box_params(rotated_box_from_params(*params))
        assert got == pytest.approx(params, abs=1e-9)


def test_box_to_polygon():
    np.testing.assert_array_equal(
        box_to_polygon((1, 2, 3, 4)), [[1, 2], [4, 2], [4, 6], [1, 6]]
    )


# ------------------------------------------------------------------------------------------
# rasterisation
# ------------------------------------------------------------------------------------------


def test_box_to_mask_pixel_centres():
    m = box_to_mask((1.5, 2.0, 2.0, 3.0), (8, 8))
    # centres c + .5 in [1.5, 3.5) -> c in {1, 2}; r + .5 in [2, 5) -> r in {2, 3, 4}
    expected = np.zeros((8, 8), bool)
    expected[2:5, 1:3] = True
    assert np.array_equal(m, expected)
    assert not box_to_mask((2, 2, 0, 3), (8, 8)).any()
    assert not box_to_mask((2, 2, -1, 3), (8, 8)).any()
    # clipped to the image
    assert box_to_mask((-5, -5, 7, 7), (4, 4)).sum() == 4


def test_box_mask_round_trips():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m = np.zeros((30, 40), bool)
        x, y = rng.integers(0, 30), rng.integers(0, 20)
        m[y : y + rng.integers(1, 10), x : x + rng.integers(1, 10)] = True
        assert np.array_equal(box_to_mask(mask_to_box(m), m.shape), m)
        assert np.array_equal(polygon_to_mask(box_to_polygon(mask_to_box(m)), m.shape), m)
        assert mask_to_box(box_to_mask(mask_to_box(m), m.shape)) == mask_to_box(m)
    # arbitrary masks: the min-max box covers them
    blob = rng.random((30, 40)) > 0.97
    assert np.all(box_to_mask(mask_to_box(blob), blob.shape)[blob])
    # float boxes: box_to_mask == polygon_to_mask(box_to_polygon)
    for _ in range(50):
        box = (*rng.uniform(-5, 35, 2), *rng.uniform(0, 20, 2))
        assert np.array_equal(
            box_to_mask(box, (30, 40)), polygon_to_mask(box_to_polygon(box), (30, 40))
        )


def test_polygon_to_mask_triangle_and_rotated_rect():
    tri = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    m = polygon_to_mask(tri, (4, 4))
    # centre (c+.5, r+.5) strictly below the hypotenuse x + y = 4 <=> c + r <= 2
    rr, cc = np.mgrid[0:4, 0:4]
    assert np.array_equal(m, rr + cc <= 2)
    assert m.sum() == 6
    # shape may carry a channel dim
    assert polygon_to_mask(tri, (4, 4, 3)).shape == (4, 4)
    # a rotated rectangle rasterises to about its area
    poly = rotated_box_from_params(50.0, 50.0, 60.0, 20.0, 30.0)
    pm = polygon_to_mask(poly, (100, 100))
    assert abs(int(pm.sum()) - 1200) < 40
    # matches cv2.fillPoly away from the boundary: fillPoly's set contains ours
    fp = np.zeros((100, 100), np.uint8)
    cv2.fillPoly(fp, [np.round((poly - 0.5) * 16).astype(np.int32)], 1, shift=4)
    assert np.all(fp.astype(bool)[pm])
    # polygon fully outside -> empty
    assert not polygon_to_mask(poly + 500, (100, 100)).any()


# ------------------------------------------------------------------------------------------
# IoUs
# ------------------------------------------------------------------------------------------


def test_polygon_iou_axis_squares():
    assert polygon_iou((0, 0, 2, 2), (1, 1, 2, 2)) == pytest.approx(1 / 7)
    sq_a = box_to_polygon((0, 0, 2, 2))
    assert polygon_iou(sq_a, (1, 1, 2, 2)) == pytest.approx(1 / 7)
    assert polygon_iou(sq_a[::-1], box_to_polygon((1, 1, 2, 2))) == pytest.approx(1 / 7)
    assert polygon_iou((0, 0, 2, 2), (0, 0, 2, 2)) == pytest.approx(1.0)
    assert polygon_iou((0, 0, 2, 2), (0, 0, 1, 1)) == pytest.approx(0.25)  # nested
    assert polygon_iou((0, 0, 2, 2), (2, 0, 2, 2)) == 0.0  # touching
    assert polygon_iou((0, 0, 1, 1), (5, 5, 1, 1)) == 0.0
    # flat VOT format
    assert polygon_iou([0, 0, 2, 0, 2, 2, 0, 2], (1, 1, 2, 2)) == pytest.approx(1 / 7)


def test_polygon_iou_square_vs_rotated_45():
    sq = rotated_box_from_params(0.0, 0.0, 2.0, 2.0, 0.0)
    rot = rotated_box_from_params(0.0, 0.0, 2.0, 2.0, 45.0)
    # intersection: regular octagon with inradius 1, area 8 (sqrt2 - 1); union 8 - that
    inter = 8 * (math.sqrt(2) - 1)
    expected = inter / (8 - inter)
    assert expected == pytest.approx(math.sqrt(2) / 2)
    assert polygon_iou(sq, rot) == pytest.approx(expected, abs=1e-6)
    # far from the origin (float32 in cv2 handled through a local frame)
    assert polygon_iou(sq + 5000, rot + 5000) == pytest.approx(expected, abs=1e-6)


def test_polygon_iou_bounds_clipping():
    assert polygon_iou((-1, -1, 2, 2), (0, 0, 2, 2)) == pytest.approx(1 / 7)
    # clipped to [0, 10]^2: a becomes (0, 0, 1, 1) inside b
    assert polygon_iou((-1, -1, 2, 2), (0, 0, 2, 2), bounds=(10, 10)) == pytest.approx(0.25)
    # both clipped on the right: (8,0,4,2)->(8,0,2,2), (9,0,4,2)->(9,0,1,2): IoU 2/4
    assert polygon_iou((8, 0, 4, 2), (9, 0, 4, 2), bounds=(10, 10)) == pytest.approx(0.5)
    # a region entirely outside the image -> 0
    assert polygon_iou((20, 20, 2, 2), (20, 20, 2, 2), bounds=(10, 10)) == 0.0
    # non-convex with bounds: L clipped to x <= 1 is the unit column 0..1 x 0..2
    ell = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], float)
    assert polygon_iou(ell, (0, 0, 1, 2), bounds=(1, 5)) == pytest.approx(1.0)


def test_polygon_iou_non_convex_exact():
    ell = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], float)  # area 3
    assert polygon_area(ell) == pytest.approx(3.0)
    assert polygon_iou(ell, (0, 0, 2, 2)) == pytest.approx(3 / 4)
    assert polygon_iou(ell, ell[::-1]) == pytest.approx(1.0)
    assert polygon_iou(ell, (1, 1, 1, 1)) == 0.0  # the notch
    # (0.5, 0.5, 1, 1) misses the notch quarter [1, 1.5]^2: inter .75, union 3 + 1 - .75
    assert polygon_iou(ell, (0.5, 0.5, 1, 1)) == pytest.approx(0.75 / 3.25)
    # two non-convex polygons: ell = [0,2]x[0,1] u [0,1]x[1,2] and its mirror image
    # [0,2]x[0,1] u [1,2]x[1,2] share [0,2]x[0,1]: inter 2, union 3 + 3 - 2
    mirror = np.array([[0, 0], [2, 0], [2, 2], [1, 2], [1, 1], [0, 1]], float)
    assert polygon_iou(ell, mirror) == pytest.approx(2 / 4)


def test_polygon_iou_self_intersecting_fallback():
    bowtie = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float)  # two triangles of area 1
    assert polygon_iou(bowtie, bowtie) == pytest.approx(1.0)
    assert polygon_iou(bowtie, (0, 0, 2, 2)) == pytest.approx(0.5, abs=5e-3)


def test_polygon_iou_degenerate():
    assert polygon_iou((0, 0, 0, 1), (0, 0, 1, 1)) == 0.0
    assert polygon_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # both empty: 0 by convention
    line = np.array([[0, 0], [1, 1], [2, 2]], float)
    assert polygon_iou(line, (0, 0, 2, 2)) == 0.0
    assert polygon_iou(np.array([[0, 0], [1, 1]], float), (0, 0, 2, 2)) == 0.0
    assert polygon_iou((0, 0, 1, 1), (0, 0, 1, 1), bounds=(0, 5)) == 0.0
    # duplicate / collinear vertices do not change the result
    sq = np.array([[0, 0], [1, 0], [2, 0], [2, 0], [2, 2], [0, 2]], float)
    assert polygon_iou(sq, (1, 1, 2, 2)) == pytest.approx(1 / 7)


def test_polygon_iou_bad_input():
    with pytest.raises(InputError, match="a:"):
        polygon_iou((0, 0, 1), (0, 0, 1, 1))
    with pytest.raises(InputError, match="b:"):
        polygon_iou((0, 0, 1, 1), (0, float("nan"), 1, 1))
    with pytest.raises(InputError, match="b:"):
        polygon_iou((0, 0, 1, 1), np.zeros((3, 3)))
    with pytest.raises(InputError, match="bounds"):
        polygon_iou((0, 0, 1, 1), (0, 0, 1, 1), bounds=(1,))


def test_box_iou_vectorised():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 4, 4]], float)
    b = np.array([[1, 1, 2, 2], [0, 0, 1, 1], [2, 2, 1, 1], [0, 0, 0, 1], [1, 1, 2, 2]], float)
    np.testing.assert_allclose(box_iou(a, b), [1 / 7, 1.0, 0.0, 0.0, 0.25])
    # broadcasting against a single box; agrees with polygon_iou
    out = box_iou(a, [1, 1, 2, 2])
    assert out.shape == (5,)
    for row, val in zip(a, out):
        assert val == pytest.approx(polygon_iou(row, (1, 1, 2, 2)))
    assert box_iou([0, 0, 2, 2], [1, 1, 2, 2]) == pytest.approx(1 / 7)
    with pytest.raises(InputError):
        box_iou(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(InputError):
        box_iou(np.zeros((3, 4)), np.zeros((2, 4)))


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert mask_iou(a, b) == 1.0
    a[0, :2] = True
    assert mask_iou(a, b) == 0.0
    b[0, 1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    with pytest.raises(InputError):
        mask_iou(a, np.zeros((3, 4), bool))
    with pytest.raises(InputError):
        mask_iou(np.zeros((4, 4, 1), bool), np.zeros((4, 4, 1), bool))


def test_mask_polygon_iou_matches_rasterised():
    m = _ellipse_mask((100, 120), (60, 50), (40, 20), 30)
    rng = np.random.default_rng(2)
    for _ in range(30):
        poly = rotated_box_from_params(
            *rng.uniform(-20, 140, 2), *rng.uniform(0.5, 90, 2), rng.uniform(-180, 180)
        )
        assert mask_polygon_iou(m, poly, clip_to_image=True) == pytest.approx(
            mask_iou(m, polygon_to_mask(poly, m.shape)), abs=1e-12
        )
        # unclipped: same as rendering on a canvas large enough to hold the polygon
        pad = 200
        big = np.zeros((100 + 2 * pad, 120 + 2 * pad), bool)
        big[pad : pad + 100, pad : pad + 120] = m
        assert mask_polygon_iou(m, poly) == pytest.approx(
            mask_iou(big, polygon_to_mask(poly + pad, big.shape)), abs=1e-12
        )
    # a box hanging out of the image: outside pixels count as background unless clipped
    full = np.ones((10, 10), bool)
    assert mask_polygon_iou(full, (0, 0, 20, 10)) == pytest.approx(0.5)
    assert mask_polygon_iou(full, (0, 0, 20, 10), clip_to_image=True) == pytest.approx(1.0)
    assert mask_polygon_iou(np.zeros((4, 4), bool), (10, 10, 0, 0)) == 1.0


# ------------------------------------------------------------------------------------------
# Opt box
# ------------------------------------------------------------------------------------------


def _check_opt(m: np.ndarray) -> float:
    opt = mask_to_opt_box(m)
    assert opt.shape == (4, 2)
    got = mask_polygon_iou(m, opt)
    assert got >= mask_polygon_iou(m, mask_to_rotated_box(m)) - 1e-12
    assert got >= mask_polygon_iou(m, mask_to_box(m)) - 1e-12
    return got


def test_opt_box_l_shape():
    m = _l_mask()
    assert mask_polygon_iou(m, mask_to_box(m)) == pytest.approx(0.5)
    got = _check_opt(m)
    # the vertical bar alone gives 1600 / 2400; Opt should find it (or better)
    assert got >= 2 / 3 - 0.01


def test_opt_box_ellipse():
    m = _ellipse_mask()
    got = _check_opt(m)
    assert got > mask_polygon_iou(m, mask_to_rotated_box(m)) + 0.02
    opt = mask_to_opt_box(m)
    assert _angle_err(opt, 30.0) < 3.0
    assert _check_opt(_ellipse_mask((100, 120), (60, 50), (40, 12), -20)) > 0.8


def test_opt_box_rotated_rectangle_is_exact():
    poly = rotated_box_from_params(200.0, 150.0, 160.0, 70.0, 30.0)
    m = polygon_to_mask(poly, (300, 400))
    opt = mask_to_opt_box(m)
    assert mask_polygon_iou(m, opt) >= 0.98
    assert polygon_iou(opt, poly) >= 0.98
    assert mask_polygon_iou(m, opt) >= mask_polygon_iou(m, mask_to_rotated_box(m))


def test_opt_box_degenerate():
    assert np.array_equal(mask_to_opt_box(np.zeros((10, 10), bool)), np.zeros((4, 2)))
    one = np.zeros((10, 10), bool)
    one[3, 4] = True
    assert mask_polygon_iou(one, mask_to_opt_box(one)) == 1.0


def test_bad_masks():
    with pytest.raises(InputError, match="mask"):
        mask_to_box(np.zeros((3, 3, 3), bool))
    with pytest.raises(InputError, match="mask"):
        mask_to_rotated_box(np.zeros(5, bool))
    with pytest.raises(InputError, match="mask"):
        mask_to_opt_box(np.array([["a"]]))
    with pytest.raises(InputError, match="shape"):
        box_to_mask((0, 0, 1, 1), (-1, 3))


def test_davis_masks_opt_mbr_minmax():
    ann = DAVIS / "Annotations" / "480p"
    if not ann.is_dir():
        pytest.skip("DAVIS-2016 train data not available")
    from PIL import Image

    files = sorted(ann.glob("*/00000.png"))[:3]
    if not files:
        pytest.skip("no DAVIS annotations found")
    for f in files:
        m = np.array(Image.open(f)) > 127
        if m.ndim == 3:
            m = m[..., 0]
        mbr = mask_to_rotated_box(m)
        assert np.all(polygon_to_mask(mbr, m.shape)[m])
        assert np.all(box_to_mask(mask_to_box(m), m.shape)[m])
        _check_opt(m)


def test_piece_box_picks_the_piece_under_the_point_or_the_nearest():
    from segtrack.geometry import piece_box

    m = np.zeros((50, 60), bool)
    m[5:10, 5:15] = True
    m[30:40, 40:55] = True
    assert piece_box(m, (7.5, 7.2)) == (5.0, 5.0, 10.0, 5.0)
    assert piece_box(m, (45.0, 35.0)) == (40.0, 30.0, 15.0, 10.0)
    assert piece_box(m, (50.0, 20.0)) == (40.0, 30.0, 15.0, 10.0)  # nearest box centre
    assert piece_box(m, (-100.0, 0.0)) == (5.0, 5.0, 10.0, 5.0)  # outside the frame
    assert piece_box(np.zeros((4, 4), bool), (1.0, 1.0)) == (0.0, 0.0, 0.0, 0.0)
