"""Tests of the DAVIS J / F measures against hand-computed values and a slow reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.eval.davis_metrics import (
    SequenceEvaluator,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    evaluate_sequence,
    format_table,
    seg2bmap,
    summarize,
)

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def square(shape=(30, 30), r0=5, c0=5, h=10, w=10) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[r0 : r0 + h, c0 : c0 + w] = True
    return m


# ---------------------------------------------------------------- independent slow reference


def ref_boundary(m: np.ndarray) -> np.ndarray:
    """Boundary by explicit neighbour comparison, pixel by pixel (official semantics).

    A pixel is a boundary pixel if it differs from its east, south or south-east neighbour;
    in the last row only the east neighbour exists for the rule, in the last column only the
    south one, and the bottom-right pixel is never a boundary.
    """
    h, w = m.shape
    out = np.zeros((h, w), dtype=bool)
    if not m.any():
        return out
    rows, cols = np.nonzero(m)
    # outside this window every pixel and all its E/S/SE neighbours are 0 -> no boundary
    r_lo, r_hi = max(rows.min() - 1, 0), rows.max()
    c_lo, c_hi = max(cols.min() - 1, 0), cols.max()
    g = m.tolist()
    for r in range(r_lo, r_hi + 1):
        for c in range(c_lo, c_hi + 1):
            v = g[r][c]
            if r == h - 1 and c == w - 1:
                continue
            if r == h - 1:
                out[r, c] = v != g[r][c + 1]
            elif c == w - 1:
                out[r, c] = v != g[r + 1][c]
            else:
                out[r, c] = v != g[r][c + 1] or v != g[r + 1][c] or v != g[r + 1][c + 1]
    return out


def ref_matched(a: np.ndarray, b: np.ndarray, radius: float) -> int:
    """How many points of a have a point of b with dx^2 + dy^2 <= radius^2 (skimage disk)."""
    if len(a) == 0 or len(b) == 0:
        return 0
    r2 = radius * radius
    n = 0
    for i in range(0, len(a), 256):
        chunk = a[i : i + 256]
        d2 = ((chunk[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        n += int((d2.min(axis=1) <= r2).sum())
    return n


def ref_f(pred: np.ndarray, gt: np.ndarray, bound_th: float, void=None) -> float:
    if void is not None:
        pred = pred & ~void
        gt = gt & ~void
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.hypot(*gt.shape))
    pb = np.argwhere(ref_boundary(pred))
    gb = np.argwhere(ref_boundary(gt))
    if len(pb) == 0 and len(gb) == 0:
        p, r = 1.0, 1.0
    elif len(pb) == 0:
        p, r = 1.0, 0.0
    elif len(gb) == 0:
        p, r = 0.0, 1.0
    else:
        p = ref_matched(pb, gb, radius) / len(pb)
        r = ref_matched(gb, pb, radius) / len(gb)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ref_j(pred, gt, void=None) -> float:
    keep = np.ones_like(gt) if void is None else ~void
    inter = int((pred & gt & keep).sum())
    union = int(((pred | gt) & keep).sum())
    return 1.0 if union == 0 else inter / union


def random_blob(rng, shape, thr=0.6) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal(shape), sigma=3.0)
    return noise > thr * noise.std()


# ------------------------------------------------------------------------------------- J


def test_iou_shifted_squares_by_hand():
    gt = square()
    pred = square(c0=6)  # shifted 1 px right: 90 common pixels, union 110
    assert db_eval_iou(gt, pred) == pytest.approx(90 / 110)
    pred2 = square(c0=7)  # 80 / 120
    assert db_eval_iou(gt, pred2) == pytest.approx(2 / 3)


def test_iou_void_and_empty_rules():
    gt = square()
    pred = square(c0=6)
    void = np.zeros_like(gt)
    void[:, 15] = True  # the 10 pixels only the prediction has -> leaves 90 / 100
    assert db_eval_iou(gt, pred, void) == pytest.approx(0.9)
    empty = np.zeros_like(gt)
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_iou(gt, empty) == 0.0
    assert db_eval_iou(empty, gt) == 0.0
    # union entirely void -> counts as empty
    assert db_eval_iou(empty, pred, void_pixels=pred) == 1.0


def test_iou_stack_per_frame():
    gt = np.stack([square(), square(), np.zeros((30, 30), bool)])
    pred = np.stack([square(), square(c0=6), np.zeros((30, 30), bool)])
    j = db_eval_iou(gt, pred)
    np.testing.assert_allclose(j, [1.0, 90 / 110, 1.0])


def test_iou_shape_mismatch_is_input_error():
    with pytest.raises(InputError):
        db_eval_iou(np.zeros((4, 4)), np.zeros((4, 5)))


# ------------------------------------------------------------------------------- seg2bmap


def test_seg2bmap_tiny_by_hand():
    s = np.zeros((3, 3), bool)
    s[1, 1] = True
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(s), expected)
    # bottom-right pixel: last-row and last-column special rules, corner forced to 0
    s = np.zeros((3, 3), bool)
    s[2, 2] = True
    expected = np.array([[0, 0, 0], [0, 1, 1], [0, 1, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(s), expected)
    # a full mask has no boundary at all (the image border is not a boundary)
    assert not seg2bmap(np.ones((4, 5), bool)).any()


def test_seg2bmap_square_outline():
    # boundary of rows 5..14 x cols 5..14 = outline of rows 4..14 x cols 4..14 (40 pixels)
    b = seg2bmap(square())
    outline = np.zeros((30, 30), bool)
    outline[4:15, 4:15] = True
    outline[5:14, 5:14] = False
    np.testing.assert_array_equal(b, outline)
    assert b.sum() == 40


def test_seg2bmap_other_size_rejected():
    with pytest.raises(InputError):
        seg2bmap(np.zeros((4, 4)), width=8, height=8)
    assert seg2bmap(np.zeros((4, 6)), width=6, height=4).shape == (4, 6)


# ------------------------------------------------------------------------------------- F


def test_f_square_shifted_two_pixels_tolerance_one():
    # pred outline = gt outline shifted 2 px right; with a radius-1 cross as tolerance:
    # 18 of the 40 pred boundary pixels are unmatched (7 inner left column pixels, 11 of the
    # right column), symmetric for recall -> P = R = 22/40
    gt = square()
    pred = square(c0=7)
    assert db_eval_boundary(gt, pred, bound_th=1) == pytest.approx(0.55)
    # 1 px shift: everything is within 1 px
    assert db_eval_boundary(gt, square(c0=6), bound_th=1) == pytest.approx(1.0)


def test_f_inner_square_exact_tolerance():
    # bound_th = 0 -> radius ceil(0) = 0: exact boundary matches only.
    # gt outline 40 px, pred (6x6 at the same corner) outline 24 px, 13 shared pixels:
    # P = 13/24, R = 13/40, F = 26/64
    gt = square()
    pred = square(h=6, w=6)
    assert db_eval_boundary(gt, pred, bound_th=0) == pytest.approx(26 / 64)
    assert db_eval_iou(gt, pred) == pytest.approx(0.36)


def test_f_empty_rules():
    gt = square()
    empty = np.zeros_like(gt)
    assert db_eval_boundary(empty, empty) == 1.0  # P = R = 1
    assert db_eval_boundary(gt, empty) == 0.0  # P = 1, R = 0
    assert db_eval_boundary(empty, gt) == 0.0  # P = 0, R = 1


def test_f_relative_threshold_radius():
    # 30x30 image: 0.008 * 42.4 -> radius 1; 0.05 * 42.4 = 2.12 -> radius 3
    gt = square()
    pred = square(c0=7)
    assert db_eval_boundary(gt, pred) == pytest.approx(0.55)
    assert db_eval_boundary(gt, pred, bound_th=0.05) == pytest.approx(1.0)


def test_f_stack_and_void():
    gt = np.stack([square(), square()])
    pred = np.stack([square(c0=7), square(h=6, w=6)])
    f = db_eval_boundary(gt, pred, bound_th=1)
    assert f.shape == (2,)
    assert f[0] == pytest.approx(0.55)
    # void covering everything -> both boundaries empty -> 1
    void = np.ones_like(gt)
    np.testing.assert_allclose(db_eval_boundary(gt, pred, void), [1.0, 1.0])


@pytest.mark.parametrize("bound_th", [0.008, 0.05, 2, 3])
def test_f_matches_slow_reference_on_random_blobs(bound_th):
    rng = np.random.default_rng(int(bound_th * 1000))
    for _ in range(4):
        gt = random_blob(rng, (37, 53))
        pred = random_blob(rng, (37, 53))
        assert 0 < gt.sum() < gt.size and 0 < pred.sum() < pred.size
        void = None
        if rng.random() < 0.5:
            void = np.zeros_like(gt)
            void[rng.integers(0, 30) :, rng.integers(0, 40)] = True
        got = db_eval_boundary(gt, pred, void, bound_th=bound_th)
        assert abs(got - ref_f(pred, gt, bound_th, void)) < 1e-6
        assert abs(db_eval_iou(gt, pred, void) - ref_j(pred, gt, void)) < 1e-6


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path).convert("L")) > 127


def test_real_davis_bear_pair_matches_reference():
    ann = DAVIS / "Annotations" / "480p" / "bear"
    if not (ann / "00010.png").exists():
        pytest.skip("DAVIS-2016 train data not available")
    gt = _read_mask(ann / "00010.png")
    pred = _read_mask(ann / "00015.png")  # frame t+5 plays the prediction
    f = db_eval_boundary(gt, pred)
    j = db_eval_iou(gt, pred)
    assert abs(f - ref_f(pred, gt, 0.008)) < 1e-6
    assert abs(j - ref_j(pred, gt)) < 1e-6
    assert 0.0 < f < 1.0 and 0.0 < j < 1.0


# ---------------------------------------------------------------------------- statistics


def test_db_statistics_ten_values_by_hand():
    x = 1.0 - 0.1 * np.arange(10)  # 1.0, 0.9, ..., 0.1
    m, o, d = db_statistics(x)
    # ids = round([1, 3.25, 5.5, 7.75, 10]) - 1 = [0, 2, 5, 7, 9]
    # bin0 = x[0:3] (mean 0.9), bin3 = x[7:10] (mean 0.2)
    assert m == pytest.approx(0.55)
    assert o == pytest.approx(0.5)  # 1.0 .. 0.6 are > 0.5, 0.5 itself is not
    assert d == pytest.approx(0.7)


def test_db_statistics_tie_rounding_seven_values():
    # linspace(1, 7, 5) = [1, 2.5, 4, 5.5, 7]; +1e-10 makes 2.5 round up to 3:
    # ids = [0, 2, 3, 5, 6] -> bin0 = x[0:3], bin3 = x[5:7]
    x = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.1, 0.6])
    _, _, d = db_statistics(x)
    assert d == pytest.approx(np.mean([0.9, 0.8, 0.4]) - np.mean([0.1, 0.6]))


def test_db_statistics_nan_ignored_and_long_sequences():
    x = np.array([1.0, np.nan, 0.0, 1.0, 0.0])
    m, o, _ = db_statistics(x)
    assert m == pytest.approx(0.5)
    assert o == pytest.approx(0.4)  # NaN > 0.5 is False and nanmean keeps it in the count
    # beyond 255 frames the bins do not wrap around (official uint8 cast would)
    x = np.linspace(1.0, 0.0, 300)
    _, _, d = db_statistics(x)
    ids = (np.round(np.linspace(1, 300, 5) + 1e-10) - 1).astype(int)
    assert d == pytest.approx(x[: ids[1] + 1].mean() - x[ids[3] :].mean())
    assert d > 0.5


# ------------------------------------------------------------------------- sequences


def _label_seq():
    t, h, w = 4, 30, 30
    gt = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        gt[i][square(r0=5, c0=5)] = 1
        gt[i][square(r0=18, c0=18, h=6, w=6)] = 2
    pred = gt.copy()
    pred[0] = 0  # first and last frames are wrong; dropped in the semi-supervised protocol
    pred[3] = 0
    pred[2][pred[2] == 1] = 0
    pred[2][square(r0=5, c0=7)] = 1  # object 1 shifted by 2 px in frame 2
    return gt, pred


def test_evaluate_sequence_semi_supervised_drops_first_and_last():
    gt, pred = _label_seq()
    res = evaluate_sequence(gt, pred)
    o1, o2 = res["objects"][1], res["objects"][2]
    np.testing.assert_allclose(o1["J"], [1.0, 2 / 3])
    np.testing.assert_allclose(o1["F"], [1.0, 0.55])  # 30x30 -> radius 1
    np.testing.assert_allclose(o2["J"], [1.0, 1.0])
    assert o1["J_M"] == pytest.approx((1 + 2 / 3) / 2)
    assert o1["J_O"] == pytest.approx(1.0)
    full = evaluate_sequence(gt, pred, semi_supervised=False)
    np.testing.assert_allclose(full["objects"][1]["J"], [0.0, 1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(full["objects"][2]["F"], [0.0, 1.0, 1.0, 0.0])


def test_streaming_evaluator_equals_batch():
    gt, pred = _label_seq()
    ev = SequenceEvaluator()
    for t in range(gt.shape[0]):
        ev.add(gt[t], pred[t])
    res = ev.result()
    batch = evaluate_sequence(gt, pred)
    for k in (1, 2):
        np.testing.assert_allclose(res["objects"][k]["J"], batch["objects"][k]["J"])
        np.testing.assert_allclose(res["objects"][k]["F"], batch["objects"][k]["F"])
        assert res["objects"][k]["F_D"] == pytest.approx(batch["objects"][k]["F_D"])


def test_object_ids_follow_official_rule():
    # first frame holds only label 2 -> objects 1..2; object 1 never exists: J = F = 1
    gt = np.zeros((3, 10, 10), np.uint8)
    gt[:, 2:5, 2:5] = 2
    gt[:, 0, 0] = 255  # 255 is background, not an object
    pred = gt.copy()
    pred[pred == 255] = 0
    res = evaluate_sequence(gt, pred, semi_supervised=False)
    assert sorted(res["objects"]) == [1, 2]
    np.testing.assert_allclose(res["objects"][1]["J"], [1, 1, 1])
    np.testing.assert_allclose(res["objects"][1]["F"], [1, 1, 1])
    # a spurious prediction of object 1 scores 0 on that frame
    pred[1, 7:9, 7:9] = 1
    res = evaluate_sequence(gt, pred, semi_supervised=False)
    np.testing.assert_allclose(res["objects"][1]["J"], [1, 0, 1])
    only2 = evaluate_sequence(gt, pred, object_ids=[2])
    assert list(only2["objects"]) == [2]


def test_evaluator_input_errors():
    ev = SequenceEvaluator()
    with pytest.raises(InputError):
        ev.add(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(InputError):
        evaluate_sequence(np.zeros((4, 4)), np.zeros((4, 4)))


def test_summarize_means_over_objects_and_table():
    def fake(jm, fm):
        j = np.array([jm])
        f = np.array([fm])
        m = {"J": j, "F": f, "J_M": jm, "J_O": float(jm > 0.5), "J_D": 0.0}
        m.update({"F_M": fm, "F_O": float(fm > 0.5), "F_D": 0.0})
        return m

    per_seq = {
        "a": {"objects": {1: fake(1.0, 0.8), 2: fake(0.4, 0.2)}},
        "b": {"objects": {1: fake(0.1, 0.5)}},
    }
    s = summarize(per_seq)
    # over the 3 objects, not over the 2 sequences (which would give (0.7 + 0.1) / 2 = 0.4)
    assert s["J_M"] == pytest.approx(0.5)
    assert s["F_M"] == pytest.approx(0.5)
    assert s["J_O"] == pytest.approx(1 / 3)
    assert s["JF"] == pytest.approx(0.5)
    assert s["objects"] == 3
    assert set(s["sequences"]) == {"a_1", "a_2", "b_1"}
    assert s["sequences"]["a_2"]["JF"] == pytest.approx(0.3)
    table = format_table(s)
    assert "J&F-Mean" in table and "a_2" in table
    assert "0.400" in table and "0.500" in table
