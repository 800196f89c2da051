"""EVS (seed 001, ch. 3): warping by a known flow (Eq. 3.1-3.2), the inconsistency map on a
constructed case (Eq. 3.3), the IAM blend (Eq. 3.4), the keyframe schedule of the wrapper around
any method, and the ``--evs`` CLI option."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.trackers.base import Tracker, make_prediction
from segtrack.video.evs import (
    blend_iam,
    iam_attention,
    inconsistency_map,
    parse_evs_spec,
    warp_probs,
)


def _const_flow(h, w, dx, dy):
    f = np.zeros((h, w, 2), np.float32)
    f[..., 0], f[..., 1] = dx, dy
    return f


def test_warp_known_image_by_known_flow():
    rng = np.random.default_rng(0)
    img = rng.random((20, 30, 3)).astype(np.float32)
    # backward flow (current -> previous) of (+3, -2): current (y, x) = previous (y - 2, x + 3)
    out = warp_probs(img, _const_flow(20, 30, 3, -2))
    np.testing.assert_allclose(out[2:, :-3], img[:-2, 3:], atol=1e-6)
    # a half-pixel shift interpolates bilinearly; nearest keeps values exactly (Eq. 3.2)
    half = warp_probs(img[..., 0], _const_flow(20, 30, 0.5, 0))
    np.testing.assert_allclose(half[:, :-1], 0.5 * (img[:, :-1, 0] + img[:, 1:, 0]), atol=1e-5)
    lab = (rng.random((20, 30)) * 5).astype(np.uint8)
    near = warp_probs(lab, _const_flow(20, 30, -1, 1), nearest=True)
    assert near.dtype == np.uint8
    np.testing.assert_array_equal(near[:-1, 1:], lab[1:, :-1])
    # many channels (more than OpenCV's 4 at once)
    many = rng.random((20, 30, 10)).astype(np.float32)
    np.testing.assert_allclose(warp_probs(many, _const_flow(20, 30, 2, 0))[:, :-2], many[:, 2:],
                               atol=1e-6)


def test_inconsistency_map_constructed_cases():
    L = np.zeros((10, 12), np.uint8)
    L[:, 4:8] = 1
    # consistent: the scene moves 2 px right; forward flow +2, backward -2 -> no inconsistency
    m = inconsistency_map(L, _const_flow(10, 12, 2, 0), _const_flow(10, 12, -2, 0))
    assert m.dtype == np.float32 and m.shape == L.shape
    assert not m.any()
    # inconsistent: forward flow says +2 but backward says 0 -> L_BF is L shifted 2 px left,
    # so columns 2, 3 (L_BF = 1, L_F = 0) and 6, 7 (L_F = 1, L_BF = 0) are marked
    m = inconsistency_map(L, _const_flow(10, 12, 2, 0), _const_flow(10, 12, 0, 0))
    expected = np.zeros_like(m)
    expected[:, [2, 3, 6, 7]] = 1.0
    np.testing.assert_array_equal(m, expected)


def test_iam_attention_and_blend():
    m = np.zeros((21, 21), np.float32)
    m[10, 10] = 1
    att = iam_attention(m, dilate=5, blur=9)
    assert att[10, 10] == 1.0 and 0.0 < att[10, 13] < 1.0 and att[0, 0] == 0.0
    assert float(att.min()) >= 0.0 and float(att.max()) <= 1.0
    assert att[10, 12] >= att[10, 14] >= att[10, 16]  # decays away from the inconsistency
    p_ref = np.zeros((21, 21, 2), np.float32)
    p_ref[..., 1] = 1
    p_warp = np.zeros((21, 21, 2), np.float32)
    p_warp[..., 0] = 1
    out = blend_iam(att, p_ref, p_warp)  # Eq. 3.4
    np.testing.assert_allclose(out[..., 1], att)
    np.testing.assert_allclose(out.sum(2), 1.0, atol=1e-6)
    assert not iam_attention(np.zeros((5, 5), np.float32)).any()


def test_parse_evs_spec():
    assert parse_evs_spec("0.5,10,1,0") == {"D": 0.5, "S": 10, "W": True, "R": False}
    for bad in ("0.5,10,1", "x,1,1,0", "0.5,0,1,0", "2,1,1,0", "0.5,2,maybe,0"):
        with pytest.raises(InputError):
            parse_evs_spec(bad)


class _Oracle(Tracker):
    """A base 'segmenter' that returns the ground truth of the frame it is given (it only ever
    sees keyframes, so its k-th frame is video frame k*S) and counts its calls."""

    name = "oracle"
    calls: list[int] = []
    video = None
    S = 1

    def _init(self, frame, mask, box):
        _Oracle.calls.clear()

    def _track(self, frame):
        t = self.frame_index * _Oracle.S
        _Oracle.calls.append(t)
        gt = _Oracle.video.frame(t)[1] == 1
        small = cv2.resize(gt.astype(np.uint8), (frame.shape[1], frame.shape[0]),
                           interpolation=cv2.INTER_NEAREST).astype(bool)
        return make_prediction(small, scores=small.astype(np.float32))


def _run_evs(monkeypatch, W: bool, S: int = 5, n: int = 26):
    from segtrack.data.synthetic import make_video
    from segtrack.trackers import registry

    video = make_video(5, num_objects=1, num_frames=n, speed=0.025, background="texture")
    _Oracle.video, _Oracle.S = video, S
    real = registry.load_tracker

    def fake(name, device="cpu", **kw):
        return _Oracle() if name == "oracle" else real(name, device=device, **kw)

    monkeypatch.setattr(registry, "load_tracker", fake)
    tr = real("evs", base="oracle", D=0.5, S=S, W=W, R=False)
    img0, lab0 = video.frame(0)
    tr.init(img0, mask=lab0 == 1)
    ious = []
    for t in range(1, n):
        img, lab = video.frame(t)
        pred = tr.track(img)
        g = lab == 1
        ious.append((pred.mask & g).sum() / max((pred.mask | g).sum(), 1))
        assert pred.mask.shape == g.shape and pred.scores.shape == g.shape
    return tr, np.array(ious)


def test_evs_runs_base_on_keyframes_only_and_propagates(monkeypatch):
    tr, ious = _run_evs(monkeypatch, W=True)
    assert _Oracle.calls == [5, 10, 15, 20, 25]  # keyframes only, frame 0 is the given mask
    assert tr.base_calls == 5
    assert ious[[4, 9, 14, 19, 24]].min() > 0.9  # keyframes: the (downscaled) oracle itself
    assert ious.mean() > 0.8
    _, held = _run_evs(monkeypatch, W=False)
    assert ious.mean() > held.mean() + 0.03  # warping beats holding the keyframe prediction


def test_evs_refiner_needs_weights(tmp_path):
    from segtrack.trackers.registry import load_tracker

    tr = load_tracker("evs", base="static", R=True, refiner_weights=str(tmp_path / "none.pt"))
    img = np.zeros((40, 40, 3), np.uint8)
    m = np.zeros((40, 40), bool)
    m[10:20, 10:20] = True
    with pytest.raises(InputError, match="not found"):
        tr.init(img, mask=m)


def test_cli_track_with_evs(tmp_path: Path):
    from segtrack.cli import main
    from segtrack.data.synthetic import make_video, write_video
    from segtrack.io import read_label_png

    root = write_video(make_video(2, num_frames=8, height=96, width=128), tmp_path / "d", "clip")
    frames = root / "JPEGImages" / "480p" / "clip"
    mask = root / "Annotations" / "480p" / "clip" / "00000.png"
    out = tmp_path / "out"
    rc = main(["track", str(frames), "--mask", str(mask), "--method", "flow", "--param",
               "preset=fast", "--evs", "0.5,3,1,0", "--out", str(out), "--quiet"])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["params"]["method"] == "evs" and run["params"]["base"] == "flow"
    assert run["params"]["S"] == 3 and run["params"]["base_params"] == "preset=fast"
    labels = read_label_png(sorted(out.glob("*.png"))[-1])
    assert labels.shape == (96, 128) and labels.max() == 1
    assert main(["track", str(frames), "--mask", str(mask), "--evs", "0.5,3", "--out",
                 str(tmp_path / "o2"), "--quiet"]) == 2
