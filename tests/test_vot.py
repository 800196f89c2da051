"""Tests of the VOT baseline experiment, accuracy / robustness and EAO."""

from __future__ import annotations

import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.eval.vot import (
    FAILURE,
    INIT,
    SKIPPED,
    accuracy_robustness,
    eao,
    eao_curve,
    evaluate_vot,
    read_vot_results,
    suggest_eao_interval,
    vot_baseline,
    write_vot_results,
)


def rect_iou(a, b, bounds=None):
    """Plain IoU of two (x, y, w, h) boxes, clipped to bounds = (width, height)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)

    def clip(r):
        x0, y0, x1, y1 = r[0], r[1], r[0] + r[2], r[1] + r[3]
        if bounds is not None:
            x0, x1 = np.clip([x0, x1], 0, bounds[0])
            y0, y1 = np.clip([y0, y1], 0, bounds[1])
        return x0, y0, x1, y1

    ax0, ay0, ax1, ay1 = clip(a)
    bx0, by0, bx1, by1 = clip(b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


N = 40
GT = [np.array([10.0 + i, 10.0, 20.0, 20.0]) for i in range(N)]
FAIL_AT = {15, 22}


class ScriptedTracker:
    """Fails at known frames; IoU 0.6 during the first 9 frames after an init, else 1."""

    def __init__(self):
        self.inits: list[tuple[int, np.ndarray]] = []
        self.tracked: list[int] = []
        self.last_init = None

    def init(self, frame, region):
        self.inits.append((frame, np.asarray(region)))
        self.last_init = frame

    def track(self, frame):
        self.tracked.append(frame)
        if frame in FAIL_AT:
            return np.array([150.0, 80.0, 5.0, 5.0])  # disjoint from the gt -> failure
        box = GT[frame].copy()
        if frame - self.last_init < 10:
            box[0] += 5  # 300 / 500 = IoU 0.6
        return box


def run_scripted(**kw):
    trk = ScriptedTracker()
    res = vot_baseline(
        trk.track, trk.init, range(N), GT, image_size=(200, 100), overlap_fn=rect_iou, **kw
    )
    return trk, res


def test_baseline_markers_and_reinit():
    trk, res = run_scripted()
    markers = {i: e for i, e in enumerate(res) if isinstance(e, int)}
    assert markers == {
        0: INIT,
        15: FAILURE,
        16: SKIPPED,
        17: SKIPPED,
        18: SKIPPED,
        19: SKIPPED,
        20: INIT,  # 5 frames after the failure
        22: FAILURE,
        23: SKIPPED,
        24: SKIPPED,
        25: SKIPPED,
        26: SKIPPED,
        27: INIT,
    }
    assert [f for f, _ in trk.inits] == [0, 20, 27]
    np.testing.assert_allclose(trk.inits[1][1], GT[20])  # re-initialised from the gt
    assert trk.tracked == list(range(1, 16)) + [21, 22] + list(range(28, 40))
    np.testing.assert_allclose(res[12], GT[12])
    np.testing.assert_allclose(res[3], GT[3] + [5, 0, 0, 0])


def test_baseline_other_skip_and_frame_count_check():
    _, res = run_scripted(skip=2)
    assert res[15] == FAILURE and res[16] == SKIPPED and res[17] == INIT
    with pytest.raises(InputError):
        vot_baseline(lambda f: GT[0], lambda f, r: None, range(5), GT, overlap_fn=rect_iou)


def test_accuracy_excludes_burnin_and_counts_failures():
    _, res = run_scripted()
    acc, failures = accuracy_robustness(res, GT, (200, 100), overlap_fn=rect_iou)
    # valid frames: 10..14 and 37..39, all with IoU 1 (the IoU-0.6 frames are in burn-in)
    assert acc == pytest.approx(1.0)
    assert failures == 2
    # without burn-in: 19 frames at 0.6 and 8 frames at 1.0
    acc0, _ = accuracy_robustness(res, GT, (200, 100), burnin=0, overlap_fn=rect_iou)
    assert acc0 == pytest.approx((19 * 0.6 + 8) / 27)


def _tiny_case():
    gt = np.array([[0, 0, 10, 10]] * 10, float)
    one = np.array([0, 0, 10, 10], float)
    half = np.array([0, 0, 10, 5], float)  # IoU 0.5
    seq_a = [INIT, one, half, FAILURE, 0, 0, 0, 0, INIT, one]
    seq_b = [INIT, one, half, one]
    return {"a": seq_a, "b": seq_b}, {"a": gt, "b": gt[:4]}


def test_eao_tiny_case_by_hand():
    results, gt = _tiny_case()
    # segments: a1 = [init, 1, .5] (failed, zeros after), a2 = [init, 1] (reached the end),
    # b = [init, 1, .5, 1] (reached the end)
    curve = eao_curve(results, gt, overlap_fn=rect_iou, length=6)
    expected = [
        0.0,
        1.0,  # (1 + 1 + 1) / 3
        0.75,  # a1: .75, b: .75 (a2 is too short)
        (0.5 + 2.5 / 3) / 2,  # a1: 1.5/3, b: 2.5/3
        0.375,  # only the failed a1 counts: 1.5/4
        0.3,  # 1.5/5
    ]
    np.testing.assert_allclose(curve, expected)
    assert eao(results, gt, interval=(1, 3), overlap_fn=rect_iou) == pytest.approx(
        (1 + 0.75 + (0.5 + 2.5 / 3) / 2) / 3
    )
    assert eao(results, gt, interval=(1, 5), overlap_fn=rect_iou) == pytest.approx(
        np.mean(expected[1:6])
    )


def test_eao_without_failures_undefined_beyond_sequence():
    results, gt = _tiny_case()
    only_b = {"b": results["b"]}
    curve = eao_curve(only_b, {"b": gt["b"]}, overlap_fn=rect_iou, length=6)
    assert np.isnan(curve[4]) and np.isnan(curve[5])
    # NaN entries are left out of the EAO mean
    value = eao(only_b, {"b": gt["b"]}, interval=(1, 5), overlap_fn=rect_iou)
    assert value == pytest.approx((1 + 0.75 + 2.5 / 3) / 3)
    with pytest.raises(InputError):
        eao(only_b, {"b": gt["b"]}, interval=(5, 1), overlap_fn=rect_iou)


def test_evaluate_vot_summary():
    results, gt = _tiny_case()
    out = evaluate_vot(results, gt, interval=(1, 5), burnin=2, overlap_fn=rect_iou)
    assert out["failures"] == 1
    assert out["robustness"] == pytest.approx(100 / 14)  # failures per 100 frames
    assert out["failures_per_sequence"] == pytest.approx(0.5)
    # burn-in 2: a keeps frame 2 (0.5) -> 0.5; b keeps frames 2, 3 -> 0.75; length-weighted
    assert out["sequences"]["a"]["accuracy"] == pytest.approx(0.5)
    assert out["sequences"]["b"]["accuracy"] == pytest.approx(0.75)
    assert out["accuracy"] == pytest.approx((10 * 0.5 + 4 * 0.75) / 14)
    assert out["EAO"] == pytest.approx((1 + 0.75 + (0.5 + 2.5 / 3) / 2 + 0.375 + 0.3) / 5)
    assert len(out["eao_curve"]) == 6


def test_results_file_round_trip(tmp_path):
    _, res = run_scripted()
    res[5] = np.array([1.5, 2.25, 3.0, 4.0, 5.0, 6.0, 7.0, 8.125])  # a polygon line
    path = tmp_path / "sub" / "seq_001.txt"
    write_vot_results(path, res)
    lines = path.read_text().splitlines()
    assert lines[0] == "1" and lines[15] == "2" and lines[16] == "0"
    assert lines[5] == "1.5000,2.2500,3.0000,4.0000,5.0000,6.0000,7.0000,8.1250"
    back = read_vot_results(path)
    assert len(back) == len(res)
    for a, b in zip(res, back):
        if isinstance(a, int):
            assert b == a
        else:
            np.testing.assert_allclose(b, a, atol=1e-4)


def test_results_file_errors(tmp_path):
    with pytest.raises(InputError):
        read_vot_results(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n3,4,5\n")
    with pytest.raises(InputError, match="line 2"):
        read_vot_results(bad)
    bad.write_text("7\n")
    with pytest.raises(InputError):
        read_vot_results(bad)


def test_suggest_eao_interval():
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.normal(200, 40, 80), 20, None).astype(int)
    lo, hi = suggest_eao_interval(lengths)
    assert lo < np.median(lengths) < hi
    inside = np.mean((lengths >= lo) & (lengths <= hi))
    assert 0.3 < inside < 0.7
    assert suggest_eao_interval([50, 50, 50]) == (50, 50)


def test_default_polygon_overlap_with_rotated_boxes():
    geometry = pytest.importorskip("segtrack.geometry")
    if not hasattr(geometry, "polygon_iou"):
        pytest.skip("segtrack.geometry.polygon_iou not available yet")
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], float)
    gt = [square] * 6
    calls = []

    def track(frame):
        return None if frame == 2 else square + [5, 0]  # IoU 15*20 / 500 = 0.6

    res = vot_baseline(track, lambda f, r: calls.append(f), range(6), gt, image_size=(100, 100))
    assert res[0] == INIT and res[2] == FAILURE
    assert res[1].shape == (8,)
    acc, failures = accuracy_robustness(res, gt, (100, 100), burnin=1)
    assert failures == 1 and acc == pytest.approx(0.6)
