"""The one-shot family: OSVOS / MaskTrack networks, fine-tuning, osvos / onavos / masktrack /
masktrack-flow trackers on a synthetic video."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from segtrack.data.synthetic import make_video
from segtrack.errors import InputError
from segtrack.models.oneshot import (
    OneShotConfig,
    OneShotNet,
    balanced_bce,
    load_oneshot,
    net_size,
    save_oneshot,
)
from segtrack.trackers import oneshot
from segtrack.trackers.registry import load_tracker

FAST = dict(ft_iters=30, ft_seconds=0.0, ft_augment=3, ft_batch=3, lucid_samples=2,
            short_side=192)


@pytest.fixture(scope="module")
def video() -> list[tuple[np.ndarray, np.ndarray]]:
    torch.set_num_threads(1)
    v = make_video(5, num_frames=5, height=96, width=128, kinds=("shape",), speed=0.015,
                   min_size=0.45, max_size=0.55)
    return [(im, lab == 1) for im, lab in v]


def test_balanced_bce_hand_computed() -> None:
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # beta = |Y-|/|Y| = 3/4; L = -(3/4 * log .5 + 1/4 * 3 * log .5) / 4
    assert float(balanced_bce(logits, target)) == pytest.approx(1.5 * math.log(2) / 4, rel=1e-6)
    valid = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])  # 1 pos, 1 neg: beta = 1/2
    assert float(balanced_bce(logits, target, valid)) == pytest.approx(math.log(2) / 2, rel=1e-6)
    # a confident correct prediction costs almost nothing
    assert float(balanced_bce((target * 2 - 1) * 20, target)) < 1e-6


def test_net_size_and_head_shapes(tmp_path) -> None:
    assert net_size(480, 854, 256) == (256, 448)
    assert net_size(120, 160, 256) == (256, 352)
    net = OneShotNet(OneShotConfig(kind="masktrack-flow", extra=2))
    x = torch.rand(2, 3, 64, 96)
    extra = torch.rand(2, 2, 32, 48)
    logits_half = net.head(net.features(x), extra)
    assert logits_half.shape == (2, 1, 32, 48)  # stride 2
    assert net(x, extra).shape == (2, 1, 64, 96)
    with pytest.raises(InputError):
        net.head(net.features(x), None)
    # save (fp16 head) and load give the same network up to fp16 rounding
    path = tmp_path / "m.pt"
    save_oneshot(path, net)
    net2 = load_oneshot(path)
    assert net2.cfg.extra == 2
    assert torch.allclose(net2(x, extra), net(x, extra), atol=0.05)


def test_without_finetuning_loss_unchanged(video) -> None:
    img, mask = video[0]
    tr = load_tracker("osvos", **{**FAST, "finetune": False})
    tr.init(img, mask=mask)
    assert tr.ft_iters_done == 0 and tr.loss_after == tr.loss_before
    assert len(tr.ft_samples) == 1


@pytest.mark.parametrize(
    "method,params",
    [("osvos", {}), ("onavos", {"online_steps": 1}), ("masktrack", {}),
     ("masktrack-flow", {}), ("masktrack", {"lucid": "true"})],
)
def test_tracks_synthetic_video(video, method, params) -> None:
    tr = load_tracker(method, **FAST, **params)
    assert tr.params.lucid is (params.get("lucid") == "true")
    img, mask = video[0]
    tr.init(img, mask=mask)
    # fine-tuning lowers the first-frame loss; its seconds are logged
    assert tr.ft_iters_done == FAST["ft_iters"]
    assert tr.loss_after < 0.5 * tr.loss_before
    assert oneshot.FINETUNE_LOG[-1] == pytest.approx(tr.finetune_seconds)
    ious = []
    for img, gt in video[1:]:
        pred = tr.track(img)
        assert pred.mask.shape == gt.shape and pred.scores.shape == gt.shape
        ious.append((pred.mask & gt).sum() / max((pred.mask | gt).sum(), 1))
    assert np.mean(ious) > 0.7, ious
    if method == "onavos":
        assert tr.online_updates >= 1


def test_augment_pair_keeps_alignment() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((60, 80, 3), np.uint8)
    img[..., 2] = 200
    mask = np.zeros((60, 80), np.uint8)
    cv2.circle(mask, (40, 30), 12, 1, -1)
    mask = mask.astype(bool)
    img[mask] = (200, 0, 0)
    p = oneshot.OSVOSParams()
    for _ in range(5):
        ia, ma, ib, mb = oneshot.augment_pair(img, mask, rng, p, motion=0.2)
        for im, m in ((ia, ma), (ib, mb)):
            inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3))) > 0
            outer = cv2.dilate(m.astype(np.uint8), np.ones((3, 3))) == 0
            assert inner.any()
            assert np.all(im[inner][:, 0] > im[inner][:, 2])
            assert np.all(im[outer][:, 2] > im[outer][:, 0])


def test_wrong_weights_kind_is_input_error(tmp_path, video) -> None:
    path = tmp_path / "osvos-like.pt"
    save_oneshot(path, OneShotNet(OneShotConfig(kind="osvos", extra=0)))
    tr = load_tracker("masktrack", weights=str(path), **FAST)
    with pytest.raises(InputError, match="osvos"):
        tr.init(video[0][0], mask=video[0][1])
    with pytest.raises(InputError, match="not found"):
        load_tracker("osvos", weights=str(tmp_path / "none.pt")).init(
            video[0][0], mask=video[0][1])


def test_weights_by_committed_name_or_path(tmp_path):
    from segtrack.errors import InputError
    from segtrack.models.oneshot import WEIGHTS_DIR, resolve_weights

    assert resolve_weights("masktrack", "osvos") == WEIGHTS_DIR / "masktrack.pt"
    assert resolve_weights("", "osvos") == WEIGHTS_DIR / "osvos.pt"
    with pytest.raises(InputError, match="weights '.*nope' not found"):
        resolve_weights(str(tmp_path / "nope"), "osvos")
