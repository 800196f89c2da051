"""Tests of the OPE measures (OTB / LaSOT / GOT-10k) on hand-computed boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.eval.ope import (
    SUCCESS_THRESHOLDS,
    ao,
    auc,
    center_errors,
    evaluate_ope,
    normalized_center_errors,
    normalized_precision,
    normalized_precision_curve,
    overlaps,
    precision_at,
    sr,
    success_curve,
)

GT = np.array([[0, 0, 10, 10]] * 5, dtype=float)
PRED = np.array(
    [
        [0, 0, 10, 10],  # IoU 1, centre error 0
        [5, 0, 10, 10],  # 50 / 150, error 5
        [20, 20, 5, 5],  # disjoint, error sqrt(2) * 17.5
        [2, 2, 5, 5],  # inside: 25 / 100, error sqrt(0.5)
        [0, 0, 10, 10],  # gt absent below
    ],
    dtype=float,
)


def gt_with_absent():
    g = GT.copy()
    g[4] = [0, 0, 0, 0]
    return g


def test_overlaps_by_hand():
    ious = overlaps(PRED, gt_with_absent())
    np.testing.assert_allclose(ious[:4], [1.0, 1 / 3, 0.0, 0.25])
    assert math.isnan(ious[4])
    # invalid predictions score 0; NaN ground truth is absent
    ious = overlaps([[np.nan] * 4, [3, 3, 0, 5]], [[0, 0, 10, 10], [0, 0, 10, 10]])
    np.testing.assert_array_equal(ious, [0.0, 0.0])
    assert math.isnan(overlaps([[0, 0, 1, 1]], [[np.nan] * 4])[0])


def test_overlaps_continuous_intervals_and_bound():
    # touching boxes [0, 10) and [10, 20) do not overlap
    assert overlaps([[10, 0, 10, 10]], [[0, 0, 10, 10]])[0] == 0.0
    # half outside the image on the right: unclipped 50 / 150; clipped to (95, 0, 5, 10): 50 / 100
    assert overlaps([[95, 0, 10, 10]], [[90, 0, 10, 10]])[0] == pytest.approx(1 / 3)
    clipped = overlaps([[95, 0, 10, 10]], [[90, 0, 10, 10]], bound=(100, 100))[0]
    assert clipped == pytest.approx(0.5)
    # GOT-10k toolkit quirk kept: a box starting left of the image is moved to x = 0, not cut
    assert overlaps([[-5, 0, 10, 10]], [[0, 0, 10, 10]], bound=(100, 100))[0] == 1.0


def test_success_curve_is_strictly_greater():
    ious = np.array([1.0, 1 / 3, 0.0, 0.25, np.nan])
    curve = success_curve(ious, [0.0, 0.25, 0.5])
    np.testing.assert_allclose(curve, [3 / 5, 2 / 5, 1 / 5])  # NaN counts as a failure
    curve = success_curve(ious, [0.0, 0.25, 0.5], ignore_nan=True)
    np.testing.assert_allclose(curve, [3 / 4, 2 / 4, 1 / 4])
    assert len(SUCCESS_THRESHOLDS) == 21 and SUCCESS_THRESHOLDS[1] == pytest.approx(0.05)
    assert auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    # a perfect tracker: every threshold but 1.0 is passed -> 20/21
    assert auc(success_curve(np.ones(7))) == pytest.approx(20 / 21)


def test_center_errors_and_precision():
    g = gt_with_absent()
    err = center_errors(PRED, g)
    np.testing.assert_allclose(err[:4], [0.0, 5.0, 17.5 * math.sqrt(2), math.sqrt(0.5)])
    assert math.isnan(err[4])
    assert precision_at(PRED, g, 20) == pytest.approx(3 / 5)
    assert precision_at(PRED, g, 0.5) == pytest.approx(1 / 5)


def test_normalized_precision_by_hand():
    g = gt_with_absent()
    nerr = normalized_center_errors(PRED, g)
    np.testing.assert_allclose(nerr[:4], [0.0, 0.5, 1.75 * math.sqrt(2), math.sqrt(0.5) / 10])
    assert normalized_precision(PRED, g, 0.2) == pytest.approx(2 / 5)
    # non-square gt: x is divided by the width, y by the height
    gt = np.array([[0, 0, 20, 10]], float)
    pred = np.array([[2, 1, 20, 10]], float)  # dx = 2/20, dy = 1/10
    assert normalized_center_errors(pred, gt)[0] == pytest.approx(math.hypot(0.1, 0.1))
    curve = normalized_precision_curve(pred, gt)
    assert len(curve) == 51
    assert curve[14] == 0.0 and curve[15] == 1.0  # 0.1414 lies between 0.14 and 0.15


def test_ao_sr():
    ious = np.array([1.0, 1 / 3, 0.0, 0.25, np.nan])
    assert ao(ious) == pytest.approx((1 + 1 / 3 + 0.25) / 4)
    assert sr(ious, 0.5) == pytest.approx(0.25)
    assert sr(ious, 0.2) == pytest.approx(0.75)


def _two_sequences():
    gt_a = np.array([[0, 0, 10, 10]] * 4 + [[0, 0, 0, 0]], float)  # last frame: absent
    pred_a = np.array(
        [
            [50, 50, 3, 3],  # init frame: replaced by the ground truth
            [5, 0, 10, 10],  # IoU 1/3, err 5
            [0, 0, 0, 0],  # invalid -> previous box carried forward: IoU 1/3, err 5
            [20, 20, 5, 5],  # IoU 0
            [0, 0, 10, 10],  # absent target
        ],
        float,
    )
    gt_b = np.array([[10, 10, 20, 20]] * 3, float)
    pred_b = np.array([[0, 0, 1, 1], [10, 10, 20, 20], [20, 10, 20, 20]], float)  # 1, 1, 1/3
    return {"a": pred_a, "b": pred_b}, {"a": gt_a, "b": gt_b}


def test_evaluate_ope_by_hand():
    preds, gts = _two_sequences()
    res = evaluate_ope(preds, gts)
    # seq a: IoUs [1, 1/3, 1/3, 0, absent] over 21 thresholds: 20 + 7 + 7 passes of 5 * 21
    auc_a = 34 / 105
    # seq b: IoUs [1, 1, 1/3]: 20 + 20 + 7 of 3 * 21
    auc_b = 47 / 63
    assert res["sequences"]["a"]["AUC"] == pytest.approx(auc_a)
    assert res["sequences"]["b"]["AUC"] == pytest.approx(auc_b)
    assert res["AUC"] == pytest.approx((auc_a + auc_b) / 2)
    # precision: a errors [0, 5, 5, 24.7, absent] -> 3/5; b [0, 0, 10] -> 1
    assert res["Precision@20"] == pytest.approx((0.6 + 1.0) / 2)
    # normalised: a [0, .5, .5, 2.47, absent] -> 1/5; b [0, 0, .5] -> 2/3
    assert res["NormPrecision"] == pytest.approx((0.2 + 2 / 3) / 2)
    # GOT-10k: frame 0 and absent frames dropped, frames pooled: [1/3, 1/3, 0] + [1, 1/3]
    assert res["AO"] == pytest.approx(2.0 / 5)
    assert res["SR0.5"] == pytest.approx(1 / 5)
    assert res["SR0.75"] == pytest.approx(1 / 5)
    assert res["sequences"]["a"]["AO"] == pytest.approx(2 / 9)
    assert len(res["success_curve"]) == 21 and len(res["norm_precision_curve"]) == 51


def test_evaluate_ope_visibility_flags():
    preds, gts = _two_sequences()
    vis = {"b": np.array([True, True, False])}
    res = evaluate_ope(preds, gts, visible_by_seq=vis)
    assert res["AO"] == pytest.approx((1 / 3 + 1 / 3 + 0 + 1) / 4)
    # b's invisible frame still counts in the success denominator: [1, 1, absent]
    assert res["sequences"]["b"]["AUC"] == pytest.approx(40 / 63)


def test_evaluate_ope_input_errors():
    preds, gts = _two_sequences()
    with pytest.raises(InputError):
        evaluate_ope({"a": preds["a"]}, gts)
    with pytest.raises(InputError):
        evaluate_ope({"a": preds["a"][:3], "b": preds["b"]}, gts)
    with pytest.raises(InputError):
        overlaps(np.zeros((3, 5)), np.zeros((3, 5)))
    # over-long results are cut (LaSOT toolkit)
    long_a = np.concatenate([preds["a"], preds["a"]])
    res = evaluate_ope({"a": long_a, "b": preds["b"]}, gts)
    assert res["sequences"]["a"]["AUC"] == pytest.approx(34 / 105)
