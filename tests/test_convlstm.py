"""Tests of the pixel-wise ConvLSTM tracker (seed 003): Eq. 1 cell, spatial transformer crop,
ROI geometry, noisy-frame insertion (§3.3 step 4), losses Eq. 2 / Eq. 4, and tracking with the
committed weights (synthetic video; a shared DAVIS video when present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segtrack.errors import InputError
from segtrack.models import convlstm as M
from segtrack.training import convlstm as T

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def test_convlstm_cell_matches_hand_unrolled_eq1():
    torch.manual_seed(0)
    cin, hid, s = 3, 4, 5
    cell = M.ConvLSTMCell(cin, hid, s)
    with torch.no_grad():
        for p in (cell.w_ci, cell.w_cf, cell.w_co):
            p.normal_()
        cell.conv.bias.normal_()
    W, b = cell.conv.weight.detach(), cell.conv.bias.detach()

    def conv(x, gate, part):  # part 0: W_x*, part 1: W_h*
        w = W[gate * hid:(gate + 1) * hid]
        w = w[:, :cin] if part == 0 else w[:, cin:]
        return F.conv2d(x, w, padding=1)

    def bias(gate):
        return b[gate * hid:(gate + 1) * hid].view(1, -1, 1, 1)

    xs = torch.randn(3, 2, cin, s, s)
    h = torch.randn(2, hid, s, s)
    c = torch.randn(2, hid, s, s)
    state = (h, c)
    for x in xs:
        i = torch.sigmoid(conv(x, 0, 0) + conv(h, 0, 1) + cell.w_ci * c + bias(0))
        f = torch.sigmoid(conv(x, 1, 0) + conv(h, 1, 1) + cell.w_cf * c + bias(1))
        c = f * c + i * torch.tanh(conv(x, 2, 0) + conv(h, 2, 1) + bias(2))
        o = torch.sigmoid(conv(x, 3, 0) + conv(h, 3, 1) + cell.w_co * c + bias(3))
        h = o * torch.tanh(c)
        with torch.no_grad():
            state = cell(x, state)
        assert torch.allclose(state[0], h, atol=1e-5)
        assert torch.allclose(state[1], c, atol=1e-5)
    # the Hadamard peephole makes the cell position dependent: a zero w_c* would not
    assert cell.w_ci.shape == (1, hid, s, s)


def test_stn_crop_equals_slicing_and_block_mean():
    rng = np.random.default_rng(0)
    img = rng.random((40, 60, 3)).astype(np.float32)
    x0, y0, side = 10, 7, 16
    roi = (x0 + side / 2, y0 + side / 2, float(side))
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    theta = torch.from_numpy(M.roi_to_theta(roi, (40, 60)))[None]
    crop = M.stn_crop(t, theta, side)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(crop, img[y0:y0 + side, x0:x0 + side], atol=1e-5)
    np.testing.assert_allclose(M.crop_roi(img, roi, side), img[y0:y0 + side, x0:x0 + side],
                               atol=1e-5)
    # a ROI twice the output size: bilinear samples at 2x2 block centres = block means
    roi2 = (x0 + 16.0, y0 + 16.0, 32.0)
    theta2 = torch.from_numpy(M.roi_to_theta(roi2, (40, 60)))[None]
    c2 = M.stn_crop(t, theta2, 16)[0].permute(1, 2, 0).numpy()
    blocks = img[y0:y0 + 32, x0:x0 + 32].reshape(16, 2, 16, 2, 3).mean((1, 3))
    np.testing.assert_allclose(c2, blocks, atol=1e-5)
    # paste back: ones inside the ROI, zero outside
    back = M.paste_roi(np.ones((16, 16), np.float32), roi, (40, 60))
    expect = np.zeros((40, 60), np.float32)
    expect[y0:y0 + side, x0:x0 + side] = 1
    np.testing.assert_allclose(back, expect, atol=1e-5)


def test_roi_geometry_and_anchor():
    m = np.zeros((100, 200), bool)
    m[20:40, 50:90] = True  # box 40 x 20 -> side 80 around (70, 30)
    roi = M.roi_from_mask(m)
    assert roi == (70.0, 30.0, 80.0)
    th = M.roi_to_theta(roi, (100, 200))
    assert np.allclose(M.theta_to_roi(th, (100, 200)), roi)
    m2 = np.zeros((100, 200), bool)
    m2[5, 5] = True
    assert M.roi_from_mask(m2)[2] == M.MIN_SIDE  # clipped to [56, 672]
    # the anchor is the central half of the ROI: here 40 x 40 px at (70, 30) of a 200 x 100
    # frame; rendered on a 100 x 100 map -> columns 25..45, rows 10..50
    z = M.render_anchor(torch.from_numpy(th)[None], torch.tensor([2.0]), 100, 500.0)[0]
    expect = np.zeros((100, 100))
    expect[10:50, 25:45] = 1
    assert np.array_equal(z.numpy() > 0.5, expect > 0.5)


def test_noisy_frame_insertion_labels():
    n, t1, c, s, r = 6, 5, 2, 2, 4
    feats = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, t1, c, s, s)
    labels = torch.ones(n, t1, r, r, dtype=torch.uint8)
    video = np.array([0, 0, 1, 1, 2, 2])
    pool = T.ClipCache(feats.half(), torch.zeros(n, c, s, s).half(), labels, video)
    b = np.array([0, 2, 4])
    rng = np.random.default_rng(3)
    f2, l2, where = T.insert_noisy_frames(feats[b], labels[b], video[b], pool, rng, count=2)
    for k, clip in enumerate(b):
        assert len(where[k]) == 2 and 0 not in where[k]  # the initial frame is never replaced
        for t in range(t1):
            if t in where[k]:
                assert int(l2[k, t].sum()) == 0  # empty label
                assert int(f2[k, t, 0, 0, 0]) // 2 != video[clip]  # from another video
            else:
                assert int(l2[k, t].sum()) == r * r
                assert float(f2[k, t, 0, 0, 0]) == float(clip)
    assert int(labels.sum()) == n * t1 * r * r  # inputs untouched


def test_losses_eq2_eq4():
    p = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert float(T.tv_loss(p)) == 2.0  # |1-0| vertical + |1-0| horizontal
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    expect = 16 * np.log(2.0)  # TV of a constant map is 0
    assert abs(float(T.local_loss(logits, target)) - expect) < 1e-4
    # Eq. 4: the theta whose anchor covers the object exactly beats a shifted one
    tgt = torch.zeros(1, 3, 32, 32)
    tgt[..., 8:16, 8:16] = 1
    good = torch.tensor([0.5, -0.25, -0.25]).expand(1, 3, 3)  # anchor side 0.25 -> 8 px
    bad = good + torch.tensor([0.0, 0.3, 0.0])
    g = torch.tensor([1.0])
    lg = T.global_loss(good, tgt, g, sharpness=200.0)
    lb = T.global_loss(bad, tgt, g, sharpness=200.0)
    assert float(lg) < 0.01 < float(lb)


def test_bad_mode_is_input_error():
    from segtrack.trackers.convlstm import ConvLSTMTracker

    with pytest.raises(InputError, match="mode"):
        ConvLSTMTracker(mode="3stage")
    with pytest.raises(InputError, match="beta"):
        ConvLSTMTracker(beta=0.0)


def test_redo_stage_is_checked_before_any_work(tmp_path):
    with pytest.raises(InputError, match="--redo 'decoder'"):
        T.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--resume",
                "--redo", "decoder"])
    with pytest.raises(InputError, match="needs --resume"):
        T.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--redo", "perframe"])
    assert not (tmp_path / "o").exists()  # rejected before the output folder is made


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


needs_weights = pytest.mark.skipif(not M.default_weights().is_file(),
                                   reason="no committed convlstm weights")


@needs_weights
@pytest.mark.parametrize("method", ["convlstm-1stage", "perframe"])
def test_tracks_synthetic_video(method):
    # the committed global model (2-stage) has collapsed to a near-constant central ROI and
    # loses small objects of 320x240 videos (docs/convlstm.md); the 1-stage ROI rule tracks them
    from segtrack.data.synthetic import make_video
    from segtrack.trackers.registry import load_tracker

    v = make_video(123, num_frames=16, num_objects=1, height=240, width=320)
    tr = load_tracker(method)
    img, lab = v.frame(0)
    tr.init(img, mask=lab == 1)
    ious = []
    for t in range(1, len(v)):
        img, lab = v.frame(t)
        p = tr.track(img)
        assert p.scores is not None and p.scores.shape == lab.shape
        ious.append(_iou(p.mask, lab == 1))
    assert np.mean(ious) > 0.6, ious  # 1-stage 0.82 with the committed weights


@needs_weights
def test_tracks_davis_video():
    if not DAVIS.is_dir():
        pytest.skip("DAVIS-2016 train data not present")
    from segtrack.eval.datasets import load_davis
    from segtrack.trackers.registry import load_tracker

    seq = {s.name: s for s in load_davis(DAVIS)}["bear"]  # held out (fold 0)
    tr = load_tracker("convlstm")
    tr.init(seq.read_image(0), mask=seq.read_labels(0) > 0)
    ious = [_iou(tr.track(seq.read_image(i)).mask, seq.read_labels(i) > 0) for i in range(1, 12)]
    assert np.mean(ious) > 0.5, ious


def test_length_study_upsampling():
    from segtrack.eval.length_study import upsample_indices

    assert upsample_indices(100, 20) == list(range(20))  # longer: first L frames
    idx = upsample_indices(50, 160)  # shorter: every frame repeated 3-4 times, in order
    assert len(idx) == 160 and idx[0] == 0 and idx[-1] == 49
    assert np.all(np.diff(idx) >= 0) and set(idx) == set(range(50))
    assert sorted(set(np.bincount(idx).tolist())) == [3, 4]
    with pytest.raises(InputError):
        upsample_indices(0, 20)
