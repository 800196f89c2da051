"""RTS / LWL building blocks: steepest-descent learners, Lovász loss, memory rules, training
helpers (seed 001 §5.3.2-5.3.6).  No weights needed; fast."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from segtrack.errors import InputError
from segtrack.models.rts.learners import InstanceLearner, SegmentationLearner, gaussian_label
from segtrack.models.rts.search import Crop, box_map, crop_mask, paste_scores, search_side
from segtrack.trackers.rts import _Memory
from segtrack.training import run_training
from segtrack.training.common import (
    DAVIS2016_TRAIN_FOLD0,
    Checkpointer,
    ClipSampler,
    davis_folds,
    seed_everything,
    split_sequences,
    write_manifest,
)
from segtrack.training.losses import hinge_cls_loss, lovasz_hinge, lovasz_hinge_flat


def test_segmentation_learner_lowers_eq51_loss():
    torch.manual_seed(0)
    learner = SegmentationLearner(feat_dim=8, enc_dim=4, filter_size=3, init_reg=1e-2)
    x = torch.randn(2, 3, 8, 10, 10)
    true_tau = torch.randn(2, 4, 8, 3, 3) * 0.3
    enc = learner.apply(true_tau, x)  # realisable target: the optimum has a tiny loss
    w = torch.rand(2, 3, 4, 10, 10) + 0.5
    with torch.no_grad():
        tau, losses = learner(x, enc, w, num_iter=15, return_losses=True, create_graph=False)
    L = torch.stack(losses)  # (iters + 1, B)
    # steepest descent with the exact line search never increases a quadratic
    assert bool((L[1:] <= L[:-1] + 1e-4).all())
    assert bool((L[-1] < 0.05 * L[0]).all())
    assert tau.shape == (2, 4, 8, 3, 3)


def test_segmentation_learner_is_differentiable():
    learner = SegmentationLearner(feat_dim=4, enc_dim=2, filter_size=3)
    x = torch.randn(1, 2, 4, 6, 6, requires_grad=True)
    enc = torch.randn(1, 2, 2, 6, 6)
    w = torch.ones(1, 2, 2, 6, 6)
    tau = learner(x, enc, w, num_iter=2, create_graph=True)
    tau.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert learner.log_reg.grad is not None


def test_instance_learner_lowers_eq52_loss_and_peaks_at_target():
    torch.manual_seed(1)
    learner = InstanceLearner(feat_dim=16, filter_size=5, init_reg=1e-3)
    H = W = 16
    x = torch.randn(1, 4, 16, H, W) * 0.2
    centers = torch.tensor([[[4.5, 5.5], [10.5, 3.5], [8.5, 12.5], [3.5, 11.5]]])
    # a distinctive pattern at the target centre of every sample
    for n, (cx, cy) in enumerate(centers[0].tolist()):
        x[0, n, :4, int(cy) - 1 : int(cy) + 2, int(cx) - 1 : int(cx) + 2] += 2.0
    boxes = torch.tensor([[2.5, 3.5, 4.0, 4.0]])
    dist_w = torch.ones(1, 4)
    with torch.no_grad():
        its = learner(x, centers, boxes=boxes, num_iter=10, create_graph=False)
        from segtrack.models.rts.learners import distance_map

        dist = distance_map(centers, (H, W))
        losses = [float(learner.loss(k, x, dist, dist_w)) for k in its]
        s = learner.apply(its[-1], x)
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a + 1e-4 for a, b in zip(losses, losses[1:]))
    for n, (cx, cy) in enumerate(centers[0].tolist()):
        idx = int(torch.argmax(s[0, n]))
        py, px = divmod(idx, W)
        assert abs(px + 0.5 - cx) <= 1.5 and abs(py + 0.5 - cy) <= 1.5


def test_gaussian_label_peak_and_width():
    y = gaussian_label(torch.tensor([[[2.5, 1.5]]]), torch.tensor([[1.0]]), (4, 6))
    assert y.shape == (1, 1, 4, 6)
    assert float(y[0, 0, 1, 2]) == pytest.approx(1.0)
    assert float(y[0, 0, 1, 3]) == pytest.approx(np.exp(-0.5))


def _jaccard_loss_of_errors(gt: list[int], mis: set[int]) -> float:
    """Δ_J as a set function of the mispredicted pixels: |M| / |gt ∪ M|."""
    union = {i for i, g in enumerate(gt) if g} | mis
    return len(mis) / len(union) if union else 0.0


def test_lovasz_hinge_equals_jaccard_loss_on_vertices():
    gt = [1, 1, 0, 0, 1, 0]
    # logits giving hinge errors exactly 0 (right side, margin 1) or 1 (logit 0)
    for mis in [set(), {0}, {2}, {0, 2, 3}, {0, 1, 2, 3, 4, 5}]:
        logits = torch.tensor([0.0 if i in mis else (1.0 if g else -1.0) for i, g in enumerate(gt)])
        loss = float(lovasz_hinge_flat(logits, torch.tensor(gt, dtype=torch.float32)))
        assert loss == pytest.approx(_jaccard_loss_of_errors(gt, mis), abs=1e-6)


def test_lovasz_hinge_matches_brute_force_extension():
    rng = np.random.default_rng(3)
    for _ in range(5):
        gt = rng.integers(0, 2, 7).tolist()
        gt[0] = 1
        logits = rng.normal(size=7)
        err = np.maximum(0.0, 1.0 - logits * (2 * np.array(gt) - 1))
        # Lovász extension by its definition: sorted errors times set-function increments
        order = sorted(range(7), key=lambda i: -err[i])
        want, prev = 0.0, 0.0
        for k in range(1, 8):
            cur = _jaccard_loss_of_errors(gt, set(order[:k]))
            want += err[order[k - 1]] * (cur - prev)
            prev = cur
        got = float(lovasz_hinge_flat(torch.tensor(logits), torch.tensor(gt, dtype=torch.float64)))
        assert got == pytest.approx(want, abs=1e-9)
    # batched = mean of per-image losses
    lg = torch.randn(3, 4, 4)
    lb = (torch.rand(3, 4, 4) > 0.5).float()
    per = [float(lovasz_hinge_flat(lg[i].flatten(), lb[i].flatten())) for i in range(3)]
    assert float(lovasz_hinge(lg, lb)) == pytest.approx(np.mean(per), rel=1e-6)


def test_hinge_cls_loss_ignores_negative_scores_on_background():
    y = torch.tensor([0.0, 0.0, 1.0])
    assert float(hinge_cls_loss(torch.tensor([-5.0, -1.0, 1.0]), y)) == pytest.approx(0.0)
    assert float(hinge_cls_loss(torch.tensor([0.5, 0.0, 1.0]), y)) == pytest.approx(0.25 / 3)


def test_memory_keeps_first_and_replaces_oldest():
    m = _Memory(4)
    m.add("f0", permanent=True)
    m.add("f0-flip", permanent=True)
    for i in range(1, 7):
        m.add(f"t{i}")
    assert len(m) == 4
    assert m.items[:2] == ["f0", "f0-flip"]  # first-frame samples always kept
    assert sorted(m.items[2:]) == ["t5", "t6"]  # the oldest others were replaced
    m.add("t7")
    assert sorted(m.items[2:]) == ["t6", "t7"]


def test_search_region_round_trip():
    crop = Crop(100.0, 80.0, 64.0, 32)
    assert crop.scale == 0.5
    assert crop.box_to_crop((68.0, 48.0, 64.0, 64.0)) == (0.0, 0.0, 32.0, 32.0)
    mask = np.zeros((160, 200), bool)
    mask[60:100, 90:110] = True
    c = crop_mask(mask, crop, 32)
    assert c.shape == (32, 32)
    assert c[20, 16] == pytest.approx(1.0) and c[2, 2] == pytest.approx(0.0)
    back = paste_scores(c, crop, (160, 200)) > 0.5
    iou = (back & mask).sum() / (back | mask).sum()
    assert iou > 0.9
    assert search_side(50, 50, (480, 854)) == pytest.approx(200.0)
    assert search_side(800, 400, (480, 854)) == pytest.approx(854.0)  # clamped to the frame
    bm = box_map((1.5, 0.0, 2.0, 1.0), 4)
    assert bm.sum() == pytest.approx(2.0) and bm[0, 1] == pytest.approx(0.5)


def test_folds_and_split():
    names = [f"s{i:02d}" for i in range(30)]
    folds = davis_folds(names, 5)
    assert [len(f) for f in folds] == [6] * 5
    assert sorted(itertools.chain(*folds)) == names
    train, held = split_sequences(names, 0, 5)
    assert held == folds[0] and not set(train) & set(held) and len(train) == 24
    assert split_sequences(names, None)[1] == []
    with pytest.raises(InputError):
        split_sequences(names, 5, 5)
    assert DAVIS2016_TRAIN_FOLD0[0] == "bear" and len(DAVIS2016_TRAIN_FOLD0) == 6


def test_clip_sampler_ordered_and_deterministic():
    s = ClipSampler([5, 40, 100], length=3, max_gap=10)
    a = [s.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [s.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    for _ in range(200):
        seq, idx = s.sample(rng)
        assert idx == sorted(idx) and len(idx) == 3
        assert 0 <= idx[0] and idx[-1] < [5, 40, 100][seq]
        if seq > 0:
            assert max(np.diff(idx)) <= 20 and len(set(idx)) == 3


def test_checkpoint_resume_restores_rng(tmp_path):
    rng = seed_everything(5)
    ck = Checkpointer(tmp_path, every_seconds=0)
    ck.save(12, {"w": torch.ones(2)}, rng)
    want = (rng.random(), torch.rand(1).item())
    rng2 = np.random.default_rng(999)
    st = ck.load(rng2)
    assert st["step"] == 12 and torch.equal(st["w"], torch.ones(2))
    assert (rng2.random(), torch.rand(1).item()) == want


def test_manifest_sha256(tmp_path):
    f = tmp_path / "w.pt"
    f.write_bytes(b"abc")
    doc = write_manifest(tmp_path / "m.json", [f], command="segtrack train rts", seed=1)
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk["files"][0]["sha256"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert doc["seed"] == 1 and on_disk["files"][0]["bytes"] == 3


def test_run_training_rejects_unknown_method_and_bad_data(tmp_path):
    with pytest.raises(InputError, match="no trainer"):
        run_training("nope", [])
    with pytest.raises(InputError, match="not a DAVIS folder"):
        run_training("rts", ["--data", str(tmp_path), "--out", str(tmp_path / "o")])


def test_fuse_batchnorm_keeps_backbone_outputs():
    from segtrack.models.backbones import build_backbone
    from segtrack.models.rts.infer import fuse_batchnorm

    torch.manual_seed(0)
    a = build_backbone("efficientnet-lite0", pretrained=False, out_strides=(4, 8, 16)).eval()
    for m in a.modules():  # non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    b = build_backbone("efficientnet-lite0", pretrained=False, out_strides=(4, 8, 16)).eval()
    b.load_state_dict(a.state_dict())
    fuse_batchnorm(b)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in b.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        fa, fb = a(x), b(x)
    for s in (4, 8, 16):
        assert torch.allclose(fa[s], fb[s], atol=1e-3, rtol=1e-3)


def test_start_run_seeds_and_creates_output(tmp_path):
    import torch

    from segtrack.training.common import start_run

    before = torch.get_num_threads()
    try:
        rng1, out, t0 = start_run(3, tmp_path / "run" / "a")
        a = rng1.random(3)
        rng2, _, _ = start_run(3, tmp_path / "run" / "a")
        assert out.is_dir() and torch.get_num_threads() == 1 and t0 > 0
        assert np.array_equal(a, rng2.random(3))
    finally:
        torch.set_num_threads(before)


def _tiny_run(root, out, folds: int, iters: int, photos, *extra: str) -> list[str]:
    """A seconds-long ``segtrack train rts`` argument list on tiny data, fold 0 held out,
    with a two-iteration photograph stage."""
    return ["--data", str(root), "--out", str(out), "--fold", "0", "--folds", str(folds),
            "--iters", str(iters), "--batch", "2", "--crop-size", "96", "--variants", "1",
            "--threads", "1", "--quiet", "--static", str(photos), "--static-iters", "2",
            *extra]


def test_rts_trainer_tunes_the_stride16_stage_and_the_tracker_uses_it(tmp_path):
    import cv2

    from segtrack.data.synthetic import make_video, write_video
    from segtrack.models.rts import RTSNet, load_heads
    from segtrack.models.rts.net import RTSConfig
    from segtrack.trackers.registry import load_tracker

    root = tmp_path / "d"
    for s in (0, 1):
        write_video(make_video(s, num_frames=5, height=96, width=128), root, f"clip{s}")
    photos = tmp_path / "photos"
    for d in ("images", "masks"):
        (photos / d).mkdir(parents=True)
    for i in range(2):
        img = np.random.default_rng(i).integers(0, 255, (80, 100, 3), dtype=np.uint8)
        m = np.zeros((80, 100), np.uint8)
        m[20 + i:60, 30:70 - i] = 255
        cv2.imwrite(str(photos / "images" / f"cat0{i}_{i}.jpg"), img)
        cv2.imwrite(str(photos / "masks" / f"cat0{i}_{i}.png"), m)
    out = tmp_path / "run"
    assert run_training("rts", _tiny_run(root, out, 2, 3, photos, "--static-clips", "3",
                                         "--tune-stride16", "static", "--tune-lr", "1e-2")) == 0
    net = load_heads(out / "rts.pt")
    assert net.cfg.tuned_stride16
    ref = RTSNet(RTSConfig(tuned_stride16=True))
    ref.load_pretrained_stage16()
    moved = [float((a - b).abs().max()) for a, b in
             zip(net.stage16.state_dict().values(), ref.stage16.state_dict().values(),
                 strict=True)]
    assert max(moved) > 1e-3  # trained during the photograph stage
    bb = net.build_backbone((8, 16))
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        f = bb(x)
        assert torch.allclose(net.stage16(f[8]), f[16], atol=1e-5)
        assert not torch.allclose(ref.stage16(f[8]), f[16], atol=1e-3)
    frame = cv2.cvtColor(cv2.imread(str(root / "JPEGImages" / "480p" / "clip0" / "00000.jpg")),
                         cv2.COLOR_BGR2RGB)
    mask = np.zeros(frame.shape[:2], bool)
    mask[30:60, 40:80] = True
    tr = load_tracker("rts", weights=str(out / "rts.pt"), crop_size=96, runtime="torch")
    tr.init(frame, mask=mask)
    assert tr.track(frame).mask.shape == frame.shape[:2]
    with pytest.raises(InputError, match="--tune-stride16 static"):
        run_training("rts", ["--data", str(root), "--out", str(tmp_path / "x"),
                             "--tune-stride16", "static"])


def test_rts_trainer_learns_from_multi_object_samples(tmp_path):
    import json

    import cv2

    from segtrack.data.synthetic import make_video, write_video
    from segtrack.training.rts import build_multi_cache

    root = tmp_path / "d"
    for s in (0, 1, 2):
        write_video(make_video(s, num_frames=5, height=120, width=200), root, f"clip{s}")
    photos = tmp_path / "photos"
    for d in ("images", "masks"):
        (photos / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        img = rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)
        m = np.zeros((90, 70), np.uint8)
        cv2.ellipse(m, (35, 45), (22, 35), 0, 0, 360, 255, -1)
        cv2.imwrite(str(photos / "images" / f"{i:04d}.jpg"), img)
        cv2.imwrite(str(photos / "masks" / f"{i:04d}.png"), m)
    cache = build_multi_cache([str(photos)], root, 5, 3, ["clip1"], 96, 4.0,
                              "efficientnet-lite0", None, True)
    assert len(cache["names"]) == 5 and set(cache["lengths"]) == {3}
    first = cache["m4"][::3].reshape(5, -1)
    assert bool((first.amax(1) > 127).all())  # every sample starts with its target visible
    assert not torch.isnan(cache["boxes"][::3]).any()
    out = tmp_path / "run"
    assert run_training("rts", _tiny_run(root, out, 3, 2, photos, "--static-clips", "2",
                                         "--static-multi", "4",
                                         "--static-multi-share", "1.0")) == 0
    info = json.loads((out / "rts.manifest.json").read_text())
    assert info["static"]["multi"]["samples"] == 4
    assert "clip0" not in info["static"]["multi"]["backgrounds"]  # the held-out fold's videos
    with pytest.raises(InputError, match="--static-multi: needs --static"):
        run_training("rts", ["--data", str(root), "--out", str(tmp_path / "x"),
                             "--static-multi", "4"])
