"""FlowNet: the correlation layer against a hand computation, the networks' shapes, the
synthetic pairs' exact flow, the estimator, and FlowNet as the flow of the flow-using methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segtrack.data.flow_pairs import FlowPairMaker, PairParams, affine, layer_flow
from segtrack.errors import InputError
from segtrack.models.flownet import (
    FLOW_DIV,
    FlowNet,
    FlowNetConfig,
    FlowNetEstimator,
    correlation,
)
from segtrack.models.semseg import WEIGHTS_DIR
from segtrack.trackers.flow import warp_backward

STATIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "static-masks"


def test_correlation_matches_a_hand_computation():
    f1 = torch.zeros(1, 2, 3, 3)
    f2 = torch.zeros(1, 2, 3, 3)
    f1[0, :, 1, 1] = torch.tensor([1.0, 2.0])
    f2[0, :, 1, 2] = torch.tensor([3.0, 4.0])  # one cell to the right of f1's vector
    f2[0, :, 0, 1] = torch.tensor([-1.0, 1.0])  # one cell above
    c = correlation(f1, f2, 1)
    assert c.shape == (1, 9, 3, 3)
    # channel = (dy + 1) * 3 + (dx + 1); at (1, 1): <f1(1,1), f2(1+dy, 1+dx)> / C
    assert c[0, 1 * 3 + 2, 1, 1] == pytest.approx((1 * 3 + 2 * 4) / 2)  # dx=+1, dy=0
    assert c[0, 0 * 3 + 1, 1, 1] == pytest.approx((1 * -1 + 2 * 1) / 2)  # dx=0, dy=-1
    assert c[0, 1 * 3 + 1, 1, 1] == 0.0  # no vector at the same place in f2
    # outside f2 counts as zero: at the corner (0, 0), dx = dy = -1 looks off the map
    f1[0, :, 0, 0] = 1.0
    f2[...] = 1.0
    c = correlation(f1, f2, 1)
    assert c[0, 0, 0, 0] == 0.0
    assert c[0, 4, 0, 0] == pytest.approx(1.0)


def test_correlation_peaks_at_the_true_shift():
    torch.manual_seed(0)
    f1 = torch.randn(1, 16, 12, 12)
    f2 = torch.roll(f1, shifts=(2, -1), dims=(2, 3))  # content moves down 2, left 1
    c = correlation(f1, f2, 3)
    k = int(c[0, :, 6, 6].argmax())
    dy, dx = k // 7 - 3, k % 7 - 3
    assert (dy, dx) == (2, -1)


@pytest.mark.parametrize("variant", ["s", "c"])
def test_the_networks_predict_at_four_strides(variant):
    net = FlowNet(FlowNetConfig(variant=variant, width=8))
    x = torch.rand(2, 3, 64, 96) * 255
    net.train()
    outs = net(x, x)
    assert [tuple(o.shape) for o in outs] == [(2, 2, 16, 24), (2, 2, 8, 12), (2, 2, 4, 6),
                                              (2, 2, 2, 3)]
    net.eval()
    assert tuple(net(x, x).shape) == (2, 2, 16, 24)
    with pytest.raises(ValueError):
        FlowNet(FlowNetConfig(variant="x"))


def test_layer_flow_of_a_translation_and_a_rotation():
    f = layer_flow(affine(5.0, -3.0), affine(8.0, 1.0), (10, 12))
    np.testing.assert_allclose(f[..., 0], -3.0, atol=1e-5)  # now 3 right of where it was
    np.testing.assert_allclose(f[..., 1], -4.0, atol=1e-5)
    a2 = affine(angle=90.0, centre=(5.0, 5.0))  # rotated a quarter turn about (5, 5)
    f = layer_flow(affine(), a2, (11, 11))
    assert np.allclose(f[5, 5], 0.0, atol=1e-5)
    # the point now at (5, 4) (above the centre) was at (4, 5) or (6, 5)
    p = np.array([5.0, 4.0]) + f[4, 5]
    assert np.allclose(np.abs(p - [5.0, 5.0]), [1.0, 0.0], atol=1e-5)


@pytest.fixture
def maker(davis_root) -> FlowPairMaker:
    if not STATIC.is_dir():
        pytest.skip(f"static-masks not found at {STATIC}")
    from segtrack.data.static import load_static_sets

    frames = sorted((davis_root / "JPEGImages" / "480p" / "bear").glob("*.jpg"))[:5]
    return FlowPairMaker(frames, load_static_sets([STATIC])[:40],
                         PairParams(size=(96, 128), gain=0.0, noise=0.0))


def test_pairs_flow_is_exact_and_pairs_differ(maker):
    q = maker.pair(3, 11)
    again = maker.pair(3, 11)
    assert np.array_equal(q.cur, again.cur) and np.array_equal(q.flow, again.flow)
    other = maker.pair(4, 11)
    assert not np.array_equal(q.cur, other.cur)
    assert q.flow.shape == (96, 128, 2) and q.flow.dtype == np.float32
    assert np.abs(q.flow).max() > 0.5  # things move
    import cv2

    for i in range(6):  # the exact flow explains the pair better than any flow 1.5 px off
        p = maker.pair(i, 5)
        prev, cur = p.prev.astype(np.float32), p.cur.astype(np.float32)

        def err(flow, prev=prev, cur=cur):
            w = warp_backward(prev, flow.astype(np.float32), cv2.INTER_LINEAR)
            return float(np.median(np.abs(w - cur).mean(2)))

        e = err(p.flow)
        assert e < 0.6 * err(np.zeros_like(p.flow)), i
        for off in ((1.5, 0.0), (-1.5, 0.0), (0.0, 1.5), (0.0, -1.5)):
            assert e < 0.8 * err(p.flow + np.array(off)), (i, off)


class _Constant(torch.nn.Module):
    """A stand-in network predicting (+1, -0.5) pixels / FLOW_DIV at stride 4."""

    cfg = FlowNetConfig()

    def forward(self, cur, prev):
        b, _, h, w = cur.shape
        out = torch.empty(b, 2, h // 4, w // 4)
        out[:, 0], out[:, 1] = 1.0 / FLOW_DIV, -0.5 / FLOW_DIV
        return out


def test_estimator_returns_frame_size_flow_in_frame_pixels():
    est = FlowNetEstimator(_Constant(), max_side=64)
    a = np.zeros((50, 130, 3), np.uint8)
    f = est.calc(a, a)
    assert f.shape == (50, 130, 2)
    # predicted at 64 pixels wide, so one network pixel is 130 / 64 frame pixels
    np.testing.assert_allclose(f[..., 0], 130 / 64, rtol=0.02)
    np.testing.assert_allclose(f[..., 1], -0.5 * 50 / 32, rtol=0.05)  # 50 rows -> 32
    g = est.calc(a[..., 0], a[..., 0])  # grey frames are accepted
    assert g.shape == (50, 130, 2)


def _committed(name: str):
    p = WEIGHTS_DIR / f"{name}.pt"
    if not p.is_file():
        pytest.skip(f"{p.name} not committed")
    return p


@pytest.mark.parametrize("name", ["flownet-s", "flownet-c"])
def test_committed_flownet_beats_zero_flow_on_held_out_pairs(name, davis_root):
    from segtrack.models.flownet import load_flownet
    from segtrack.training.flownet import TEST_SEED, epe, pair_sources

    if not STATIC.is_dir():
        pytest.skip(f"static-masks not found at {STATIC}")
    _, (bgs, photos), _ = pair_sources(str(davis_root), 0, 5, [str(STATIC)])
    mk = FlowPairMaker(bgs, photos, PairParams(size=(240, 320)))
    est = FlowNetEstimator(load_flownet(_committed(name)))
    net, zero = [], []
    for i in range(8):
        q = mk.pair(i, TEST_SEED)
        net.append(epe(est.calc(q.cur, q.prev), q.flow))
        zero.append(epe(np.zeros_like(q.flow), q.flow))
    assert np.mean(net) < 0.7 * np.mean(zero), (np.mean(net), np.mean(zero))


def test_flow_choice_is_checked():
    from segtrack import load_tracker

    with pytest.raises(InputError, match="flow=optical"):
        load_tracker("flow", flow="optical")
    with pytest.raises(InputError, match="flow=x"):
        load_tracker("evs", flow="x")


@pytest.mark.parametrize("method", ["flow", "evs", "masktrack-flow"])
def test_methods_track_with_flownet(method, bear_clip):
    _committed("flownet-s")  # flownet = the variant with the lower held-out EPE
    from segtrack import load_tracker
    from segtrack.io.sources import read_image

    clip, gts = bear_clip
    frames = [read_image(p) for p in sorted(clip.glob("*.jpg"))]
    kw = {"ft_iters": 5} if method == "masktrack-flow" else {}
    tr = load_tracker(method, flow="flownet", **kw)
    tr.init(frames[0], mask=gts[0])
    for f, g in zip(frames[1:], gts[1:]):
        m = tr.track(f).mask
        assert (m & g).sum() / (m | g).sum() > 0.6


def test_trainer_writes_weights_manifest_and_resumes(davis_root, tmp_path):
    if not STATIC.is_dir():
        pytest.skip(f"static-masks not found at {STATIC}")
    import json

    from segtrack.models.flownet import load_flownet
    from segtrack.training import run_training

    out = tmp_path / "fn"
    args = ["--variant", "c", "--data", str(davis_root), "--static", str(STATIC), "--out",
            str(out), "--batch", "1", "--width", "8", "--test-pairs", "2", "--quiet"]
    assert run_training("flownet", [*args, "--iters", "2"]) == 0
    man = json.loads((out / "flownet-c.manifest.json").read_text())
    assert set(man["metrics"]) >= {"flownet-c", "dis-ultrafast", "dis-medium"}
    assert man["metrics"]["dis-ultrafast"]["epe"] > 0
    first = load_flownet(out / "flownet-c.pt")
    assert first.cfg.width == 8
    (out / "flownet-c.pt").unlink()
    assert run_training("flownet", [*args, "--iters", "2", "--resume"]) == 0  # from step 2
    again = load_flownet(out / "flownet-c.pt")
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="--resume"):
        run_training("flownet", ["--data", str(davis_root), "--static", str(STATIC), "--out",
                                 str(tmp_path / "none"), "--iters", "2", "--resume"])
