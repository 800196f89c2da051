"""SiamMask (seed 004): correlation, labels, boxes from masks, tracking a synthetic video."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segtrack.errors import InputError
from segtrack.models.siammask import (
    SiamMaskConfig,
    SiamMaskNet,
    anchor_labels,
    context_sides,
    decode_boxes,
    depthwise_xcorr,
    encode_boxes,
    load_siammask,
    make_anchors,
    response_size,
    save_siammask,
    siamfc_labels,
)


def test_depthwise_xcorr_matches_direct_sum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, generator=g)
    z = torch.randn(2, 3, 3, 2, generator=g)
    out = depthwise_xcorr(x, z)
    assert out.shape == (2, 3, 5, 5)
    direct = torch.zeros(2, 3, 5, 5)
    for b in range(2):
        for c in range(3):
            for i in range(5):
                for j in range(5):
                    direct[b, c, i, j] = (x[b, c, i:i + 3, j:j + 2] * z[b, c]).sum()
    assert torch.allclose(out, direct, atol=1e-5)
    with pytest.raises(InputError):
        depthwise_xcorr(x, z[:1])


def test_net_shapes_17x17_and_mask_windows():
    torch.manual_seed(0)
    for variant, k in (("3b", 5), ("2b", 1)):
        net = SiamMaskNet(SiamMaskConfig(variant=variant)).eval()
        zf = torch.randn(1, 112, 16, 16)  # 127x127 exemplar at stride 8
        feats = {16: torch.randn(1, 112, 32, 32), 8: torch.randn(1, 40, 32, 32),
                 4: torch.randn(1, 24, 64, 64)}  # 255x255 search
        with torch.no_grad():
            corr = net.correlate(net.template(zf), feats[16])
            score, box = net.heads(corr)
            m = net.masks(corr, feats, torch.tensor([0, 0]), torch.tensor([0, 16]),
                          torch.tensor([16, 3]))
        assert corr.shape == (1, 256, 17, 17)
        assert score.shape == (1, k, 17, 17)
        assert (box is None) == (variant == "2b")
        assert m.shape == (2, 64, 64)
    assert response_size(255) == 17 and response_size(191) == 9 and response_size(127) == 1
    plain = SiamMaskNet(SiamMaskConfig(variant="2b", refine=False)).eval()
    with torch.no_grad():
        corr = plain.correlate(plain.template(zf), feats[16])
        assert plain.masks(corr, feats, torch.tensor([0]), torch.tensor([1]),
                           torch.tensor([2])).shape == (1, 63, 63)  # 63^2 channels per RoW


def test_anchor_labels_hand_computed():
    cfg = SiamMaskConfig(variant="3b")
    anchors = make_anchors(cfg)
    assert anchors.shape == (5, 17, 17, 4)
    # RoW (8, 8) is centred at (8*8 + 64, 8*8 + 64) = (128, 128); ratio-1 anchor is 64x64
    assert tuple(anchors[2, 8, 8]) == (128.0, 128.0, 64.0, 64.0)
    lab, iou = anchor_labels(anchors, np.array([128.0, 128.0, 64.0, 64.0]))
    assert lab[2, 8, 8] == 1 and iou[2, 8, 8] == pytest.approx(1.0)
    # 64x64 boxes offset by d pixels in x: IoU = 64 (64 - d) / (2 * 64^2 - 64 (64 - d))
    assert iou[2, 8, 9] == pytest.approx(56 / 72)  # d = 8 -> 0.778: positive
    assert lab[2, 8, 9] == 1
    assert iou[2, 8, 11] == pytest.approx(40 / 88)  # d = 24 -> 0.455: ignored
    assert lab[2, 8, 11] == -1
    assert iou[2, 8, 13] == pytest.approx(24 / 104)  # d = 40 -> 0.231: negative
    assert lab[2, 8, 13] == 0
    assert lab[:, 0, 0].tolist() == [0] * 5
    # a wide target matches the h/w = 0.33 anchor best
    wide = np.array([128.0, 128.0, 64 / math.sqrt(0.33), 64 * math.sqrt(0.33)])
    lab, iou = anchor_labels(anchors, wide)
    assert int(np.argmax(iou[:, 8, 8])) == 0 and lab[0, 8, 8] == 1 and lab[4, 8, 8] == 0
    # negative pair: every anchor negative
    assert (anchor_labels(anchors, None)[0] == 0).all()
    # SiamFC labels: cells within 2 cells of the centre -> 13 lattice points
    sl = siamfc_labels(np.array([128.0, 128.0, 50.0, 50.0]))
    assert sl.sum() == 13 and sl[8, 8] == 1 and sl[8, 10] == 1 and sl[9, 10] == 0


def test_box_encoding_round_trip():
    anchors = make_anchors(SiamMaskConfig())
    gt = np.array([101.0, 140.5, 80.0, 30.0])
    d = encode_boxes(anchors, gt)
    back = decode_boxes(anchors, d)
    assert np.allclose(back, gt)
    s_z, s_x = context_sides(40.0, 20.0)
    assert s_z == pytest.approx(math.sqrt(70 * 50)) and s_x == pytest.approx(s_z * 255 / 127)


def test_lr_schedule_and_labels_of_pairs():
    from segtrack.training.siammask import lr_at, pair_labels

    base = (1e-3, 5e-3, 5e-4)
    assert lr_at(0, 100, base) == pytest.approx(1e-3)
    assert lr_at(25, 100, base) == pytest.approx(5e-3)
    assert lr_at(100, 100, base) == pytest.approx(5e-4)
    # logarithmic decay: half way through the decay = geometric mean
    assert lr_at(25 + 75 // 2, 100, base) == pytest.approx(math.sqrt(5e-3 * 5e-4), rel=0.05)
    gt = np.array([[128.0, 128.0, 64.0, 64.0], [np.nan] * 4])
    lab = pair_labels(SiamMaskConfig(variant="3b"), gt)
    assert lab["pos"][0, 8, 8] and not lab["pos"][1].any()
    assert np.allclose(lab["targets"][0, 2, 8, 8], 0.0)


def test_boxes_from_known_masks():
    """Min-max / MBR / Opt boxes the tracker reports, on masks with known answers."""
    from segtrack.eval.repr_study import fixed_aspect_oracle, polygon_minmax
    from segtrack.geometry import mask_polygon_iou, mask_to_opt_box, polygon_to_mask
    from segtrack.trackers.base import make_prediction

    m = np.zeros((60, 80), bool)
    m[10:30, 20:60] = True
    p = make_prediction(m)
    assert p.box == (20.0, 10.0, 40.0, 20.0)
    assert sorted(map(tuple, p.rotated_box)) == [(20, 10), (20, 30), (60, 10), (60, 30)]
    # a rectangle rotated by 30 degrees: the MBR fits it, the min-max box does not
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    half = np.array([[-30, -10], [30, -10], [30, 10], [-30, 10]], float)
    poly = half @ np.array([[c, s], [-s, c]]) + [60, 50]
    rm = polygon_to_mask(poly, (100, 120))
    pr = make_prediction(rm)
    x, y, w, h = polygon_minmax(poly)
    assert abs(pr.box[2] - w) <= 2 and abs(pr.box[3] - h) <= 2
    mbr_iou = mask_polygon_iou(rm, pr.rotated_box)
    assert mbr_iou > 0.9
    assert mask_polygon_iou(rm, np.array(pr.box)) < 0.6  # 1200 / (60c+20s)(60s+20c) = 0.53
    assert mask_polygon_iou(rm, mask_to_opt_box(rm)) >= mbr_iou - 1e-9
    # fixed aspect-ratio oracle: centre, area and aspect preserved
    bx = fixed_aspect_oracle((50.0, 40.0), 800.0, 2.0)
    assert bx == pytest.approx((30.0, 30.0, 40.0, 20.0))


def test_save_load_and_variant_check(tmp_path):
    net = SiamMaskNet(SiamMaskConfig(variant="2b"))
    path = save_siammask(net, tmp_path / "w.pt")
    back = load_siammask(path)
    k = "adjust_z.weight"
    assert torch.allclose(back.state_dict()[k], net.state_dict()[k].half().float())
    from segtrack.trackers.registry import load_tracker

    with pytest.raises(InputError, match="2b"):
        load_tracker("siammask", weights=str(path))
    with pytest.raises(InputError, match="no such file"):
        load_siammask(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_siammask(bad)


@pytest.mark.parametrize("method", ["siammask", "siammask-2b"])
def test_tracks_synthetic_video(method):
    from segtrack.data.synthetic import make_video
    from segtrack.geometry import mask_iou, mask_to_box
    from segtrack.models.siammask import default_weights
    from segtrack.trackers.registry import load_tracker

    if not default_weights(method).is_file():
        pytest.skip(f"no committed weights for {method}")
    torch.set_num_threads(1)
    video = make_video(99, num_frames=16, height=240, width=320, kinds=("shape",))
    tr = load_tracker(method)
    img, lab = video.frame(0)
    tr.init(img, box=mask_to_box(lab == 1))
    ious = []
    for t in range(1, len(video)):
        img, lab = video.frame(t)
        pred = tr.track(img)
        assert pred.mask.shape == lab.shape and pred.rotated_box.shape == (4, 2)
        ious.append(mask_iou(pred.mask, lab == 1))
    assert np.mean(ious) > 0.5, ious


def test_search_region_options_checked_and_stable_picks_the_nearer_size():
    from segtrack.models.siammask import default_weights
    from segtrack.trackers.registry import load_tracker
    from segtrack.trackers.siammask import _size_change

    size = np.array([40.0, 20.0])
    assert _size_change(40, 20, size) == 0.0
    # a box twice as wide is further than one 10 % narrower
    assert _size_change(80, 20, size) > _size_change(36, 20, size)
    assert np.isclose(_size_change(80, 10, size), 2 * np.log(2))
    if not default_weights("siammask").is_file():
        pytest.skip("no committed weights for siammask")
    with pytest.raises(InputError, match="state_from"):
        load_tracker("siammask", state_from="anchor")
    with pytest.raises(InputError, match="pieces"):
        load_tracker("siammask", pieces="near")
