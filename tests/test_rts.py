"""RTS / LWL trackers with the committed weights (seed 001 ch. 5): synthetic and DAVIS videos,
mask and box initialisation, memory rules (a)-(d), CLI ``track --box``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from segtrack import load_tracker
from segtrack.models.rts import default_weights

pytestmark = pytest.mark.skipif(
    not default_weights("rts").is_file() or not default_weights("lwl").is_file(),
    reason="committed RTS/LWL weights missing",
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def moving_object_video(n: int = 12, h: int = 240, w: int = 320, seed: int = 0):
    """A textured background and a textured ellipse moving right-down (own generator)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (h // 8, w // 8, 3)).astype(np.float32)
    bg = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)  # smooth blotches
    bg = np.clip(110 + 35 * bg, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames, masks = [], []
    for t in range(n):
        cx, cy = 90 + 6 * t, 100 + 3 * t
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (cx, cy), (38, 26), 10, 0, 360, 1, -1)
        m = m.astype(bool)
        img = bg.copy()
        shade = 1.0 - 0.4 * np.clip(((xx - cx + 15) ** 2 + (yy - cy + 10) ** 2) / 50.0**2, 0, 1)
        obj = np.array([220, 50, 40], np.float32)[None, None] * shade[..., None]
        img[m] = obj[m].astype(np.uint8)
        frames.append(img)
        masks.append(m)
    return frames, masks


def run(tracker, frames, masks, init: str = "mask") -> list[float]:
    if init == "mask":
        tracker.init(frames[0], mask=masks[0])
    else:
        ys, xs = np.nonzero(masks[0])
        box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        tracker.init(frames[0], box=box)
    return [iou(tracker.track(f).mask, m) for f, m in zip(frames[1:], masks[1:])]


def test_rts_tracks_synthetic_object():
    frames, masks = moving_object_video()
    ious = run(load_tracker("rts"), frames, masks)
    assert np.mean(ious) > 0.6, ious
    assert min(ious) > 0.4, ious


def _davis(davis_root, name: str, n: int):
    from segtrack.eval.datasets import load_davis

    seq = [s for s in load_davis(davis_root) if s.name == name][0]
    return [seq.read_image(i) for i in range(n)], [seq.read_labels(i) > 0 for i in range(n)]


def test_lwl_tracks_davis_video(davis_root):
    frames, masks = _davis(davis_root, "car-turn", 8)
    ious = run(load_tracker("lwl"), frames, masks, "mask")
    assert np.mean(ious) > 0.6, ious


def test_rts_tracks_davis_video_mask_and_box(davis_root):
    frames, masks = _davis(davis_root, "bear", 16)
    ious = run(load_tracker("rts"), frames, masks, "mask")
    assert np.mean(ious) > 0.75, ious
    tr = load_tracker("rts")
    pred0 = tr.init(frames[0], box=_box(masks[0]))
    assert iou(pred0.mask, masks[0]) > 0.6  # box-to-mask network, not the filled box
    assert iou(pred0.mask, masks[0]) > iou(_box_mask(masks[0]), masks[0])
    ious_b = [iou(tr.track(f).mask, m) for f, m in zip(frames[1:], masks[1:])]
    assert np.mean(ious_b) > 0.6, ious_b


def _box(m):
    ys, xs = np.nonzero(m)
    return (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def _box_mask(m):
    x, y, w, h = _box(m)
    b = np.zeros_like(m)
    b[y : y + h, x : x + w] = True
    return b


def test_memory_rules_a_to_d():
    frames, masks = moving_object_video(n=6)
    # (a) both branches confident: both memories grow by one per frame (4 first-frame samples)
    tr = load_tracker("rts")
    tr.init(frames[0], mask=masks[0])
    assert len(tr.seg_mem) == 4 and len(tr.inst_mem) == 4
    first = tr.seg_mem.items[0][0]
    for f in frames[1:]:
        tr.track(f)
    tr._flush()  # the last frame's update waits for the next frame (or the objects' feedback)
    assert len(tr.seg_mem) == 9 and len(tr.inst_mem) == 9
    assert tr.seg_mem.items[0][0] is first
    # (d) instance branch never confident: no memory update at all
    tr = load_tracker("rts", t_sc=1e9)
    tr.init(frames[0], mask=masks[0])
    for f in frames[1:]:
        tr.track(f)
    tr._flush()  # the last frame's update waits for the next frame (or the objects' feedback)
    assert len(tr.seg_mem) == 4 and len(tr.inst_mem) == 4
    # (c) segmentation never valid: instance memory only
    tr = load_tracker("rts", t_ss=1.01)
    tr.init(frames[0], mask=masks[0])
    for f in frames[1:]:
        tr.track(f)
    tr._flush()  # the last frame's update waits for the next frame (or the objects' feedback)
    assert len(tr.seg_mem) == 4 and len(tr.inst_mem) == 9
    # capacity: the first-frame samples stay, the total is bounded
    tr = load_tracker("rts", seg_memory=6, inst_memory=5)
    tr.init(frames[0], mask=masks[0])
    first = tr.seg_mem.items[0][0]
    for f in frames[1:]:
        tr.track(f)
    tr._flush()  # the last frame's update waits for the next frame (or the objects' feedback)
    assert len(tr.seg_mem) == 6 and len(tr.inst_mem) == 5 and tr.seg_mem.items[0][0] is first


def test_update_schedule_after_frame_100():
    frames, masks = moving_object_video(n=2)
    tr = load_tracker("rts", update_all_until=0, update_every=20)
    tr.init(frames[0], mask=masks[0])
    tr.track(frames[1])  # frame 1: not a multiple of 20 -> no update
    tr._flush()
    assert len(tr.seg_mem) == 4


def test_cli_track_box(tmp_path):
    from segtrack.cli import main

    frames, masks = moving_object_video(n=5)
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(src / f"{i:05d}.png"), f[..., ::-1])
    x, y, w, h = _box(masks[0])
    out = tmp_path / "out"
    rc = main(["track", str(src), "--box", f"{x},{y},{w},{h}", "--method", "rts",
               "--out", str(out), "--quiet"])
    assert rc == 0
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) >= 5
    last = cv2.imread(str(pngs[-1]), cv2.IMREAD_GRAYSCALE)
    assert iou(last > 0, masks[-1]) > 0.5
    assert any(p.suffix == ".json" for p in out.rglob("*"))
    boxes = [p for p in out.rglob("*.json")]
    json.loads(boxes[0].read_text())
