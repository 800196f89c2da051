"""`segtrack eval` for OPE and VOT results, plus streaming, memory and determinism checks."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

import segtrack
from segtrack.cli import main
from segtrack.eval.vot import write_vot_results


def _img(path: Path, h: int = 40, w: int = 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


def test_eval_ope_otb_layout(tmp_path):
    root = tmp_path / "otb"
    gt = np.array([[10, 10, 10, 10]] * 4, float)
    for i in range(4):
        _img(root / "Seq" / "img" / f"{i + 1:04d}.jpg")
    np.savetxt(root / "Seq" / "groundtruth_rect.txt", gt, fmt="%d", delimiter=",")
    res = tmp_path / "res"
    res.mkdir()
    pred = gt.copy()
    pred[2] = [15, 10, 10, 10]  # IoU 50/150 = 1/3 on frame 2
    pred[3] = [40, 40, 5, 5]  # no overlap on frame 3
    np.savetxt(res / "Seq.txt", pred, fmt="%d", delimiter=",")
    out = tmp_path / "ope.json"
    assert main(["eval", "--dataset", "ope", "--root", str(root), "--results", str(res),
                 "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    # success curve: thresholds 0, .05, ..., 1; IoUs [1, 1, 1/3, 0] -> AUC by hand
    thresholds = np.linspace(0, 1, 21)
    ious = np.array([1, 1, 1 / 3, 0])
    expected_auc = np.mean([(ious > t).mean() for t in thresholds])
    assert s["AUC"] == pytest.approx(expected_auc)
    assert s["Precision@20"] == pytest.approx(0.75)  # centre errors 0, 0, 5, ~31


def test_eval_vot_baseline_results(tmp_path):
    root = tmp_path / "vot"
    n = 40
    for i in range(n):
        _img(root / "s" / "color" / f"{i + 1:08d}.jpg")
    (root / "s" / "groundtruth.txt").write_text("\n".join(["5,5,10,10"] * n) + "\n")
    (root / "list.txt").write_text("s\n")
    results: list = [1] + [[5.0, 5.0, 10.0, 10.0]] * 4 + [2, 0, 0, 0, 0] + [1]
    results += [[5.0, 5.0, 5.0, 10.0]] * (n - len(results))
    res_dir = tmp_path / "res" / "s"
    res_dir.mkdir(parents=True)
    write_vot_results(res_dir / "s_001.txt", results)
    out = tmp_path / "vot.json"
    assert main(["eval", "--dataset", "vot", "--root", str(root), "--results",
                 str(tmp_path / "res"), "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["failures"] == 1
    # burn-in: 10 frames after each (re)initialisation are left out; frames 20..39 overlap 1/2
    assert s["accuracy"] == pytest.approx(0.5)
    assert "EAO" in s


def test_eval_missing_results_is_a_clear_error(tmp_path, capsys):
    rc = main(["eval", "--dataset", "davis", "--root", str(tmp_path), "--results",
               str(tmp_path / "nope")])
    assert rc == 2
    assert "nope" in capsys.readouterr().err


def _frames(n: int, h: int = 48, w: int = 64):
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (w, h))
    for t in range(n):
        yield np.roll(base, t % 7, axis=1)


def test_memory_stays_bounded_on_long_streams():
    mask = np.zeros((48, 64), bool)
    mask[10:30, 10:30] = True

    def peak(n: int) -> int:
        tracemalloc.start()
        for _ in segtrack.track_video(_frames(n), mask=mask, method="flow"):
            pass
        _, p = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return p

    short, long = peak(20), peak(400)
    assert long < short * 1.5 + 200_000  # 20x the frames, about the same peak


def test_tracking_is_deterministic():
    mask = np.zeros((48, 64), bool)
    mask[10:30, 10:30] = True
    runs = [
        [r.labels.copy() for r in segtrack.track_video(_frames(15), mask=mask, method="flow")]
        for _ in range(2)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
