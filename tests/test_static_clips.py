"""Clips synthesised from still photographs (segtrack.data.static)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.data.static import (
    ClipParams,
    StaticClipMaker,
    load_static_sets,
    tps_field,
)
from segtrack.errors import InputError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "static-masks"

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _write(folder: Path, name: str, colour, shape: str, hw=(200, 260)) -> None:
    """A PNG photo: blue everywhere, the object (disk / square / triangle) in ``colour``."""
    h, w = hw
    m = np.zeros((h, w), np.uint8)
    if shape == "disk":
        cv2.circle(m, (w // 2, h // 2), 45, 255, -1)
    elif shape == "square":
        m[60:140, 90:170] = 255
    else:
        cv2.fillPoly(m, [np.array([[130, 40], [60, 160], [200, 160]])], 255)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = BLUE
    img[m > 0] = colour
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "images" / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "masks" / f"{name}.png"), m)


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "static"
    _write(root / "things", "cat00_1", RED, "disk")
    _write(root / "things", "dog00_2", GREEN, "square")
    _write(root / "things", "dog01_3", GREEN, "triangle")
    return root


NO_COLOUR = dict(light=0.0, light_bias=0.0, light_step=0.0, hue=0.0, saturation=0.0, p_blur=0.0)


def _colour_masks(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = frame.astype(int)
    red = f[..., 0] > np.maximum(f[..., 1], f[..., 2])
    green = f[..., 1] > np.maximum(f[..., 0], f[..., 2])
    return red, green


def test_load_static_sets_finds_nested_sets_and_kinds(photos: Path) -> None:
    samples = load_static_sets([photos])
    assert [s.image.stem for s in samples] == ["cat00_1", "dog00_2", "dog01_3"]
    assert [s.kind for s in samples] == ["cat", "dog", "dog"]
    direct = load_static_sets([photos / "things"])
    assert len(direct) == 3


def test_load_static_sets_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        load_static_sets([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="'.*empty'"):
        load_static_sets([tmp_path / "empty"])


def test_masks_stay_aligned_with_pixels_through_every_transform(photos: Path) -> None:
    """Object pixels are red, other objects green, backgrounds blue: with the colour changes
    off, a pixel is red exactly where the target or its copy is visible, through the random
    walk, flips, rotation, aspect change, thin-plate spline, inpainted background and the
    crossing occluder (green)."""
    params = ClipParams(frames=4, p_other_background=0.0, p_distractor=1.0, p_occluder=1.0,
                        p_distractor_front=0.5, tps=0.12, rotate_step=15.0, **NO_COLOUR)
    maker = StaticClipMaker(load_static_sets([photos]), params)
    seen_front = set()
    for seed in range(6):
        clip = maker.clip(0, np.random.default_rng(seed))
        assert clip.info["distractor"] == "copy"  # no other cat: the copy of the target
        seen_front.add(clip.info["distractor_front"])
        assert len(clip.frames) == 4
        for frame, t, d in zip(clip.frames, clip.masks, clip.distractor_masks, strict=True):
            assert frame.shape == (384, 640, 3) and frame.dtype == np.uint8
            red, green = _colour_masks(frame)
            assert not (t & d).any()
            assert not (green & (t | d)).any()
            bad = int((red != (t | d)).sum())
            assert bad <= 2, f"seed {seed}: {bad} pixels where red and the masks disagree"
        assert clip.masks[0].sum() > 500
    assert seen_front == {True, False}


def test_same_kind_distractor_and_occluder_are_another_photo(photos: Path) -> None:
    params = ClipParams(frames=3, p_other_background=0.0, p_distractor=1.0,
                        p_distractor_copy=0.0, p_occluder=0.0, **NO_COLOUR)
    maker = StaticClipMaker(load_static_sets([photos]), params)
    clip = maker.clip(1, np.random.default_rng(3))  # a dog: the other dog is the distractor
    assert clip.info["distractor"] == "same-kind"
    for frame, t, d in zip(clip.frames, clip.masks, clip.distractor_masks, strict=True):
        _, green = _colour_masks(frame)
        assert int((green != (t | d)).sum()) <= 2
        assert d.sum() > 0


def test_clips_are_deterministic_and_diverse(photos: Path) -> None:
    maker = StaticClipMaker(load_static_sets([photos]), ClipParams(frames=3))
    a = maker.clip(0, np.random.default_rng(11))
    b = maker.clip(0, np.random.default_rng(11))
    for x, y in zip(a.frames + a.masks, b.frames + b.masks, strict=True):
        np.testing.assert_array_equal(x, y)
    clips = [maker.clip(0, np.random.default_rng(s)) for s in range(8)]
    for i in range(len(clips)):
        for k in range(i + 1, len(clips)):
            assert not np.array_equal(clips[i].frames[0], clips[k].frames[0])
            assert not np.array_equal(clips[i].masks[1], clips[k].masks[1])
    # the object moves within a clip
    assert not np.array_equal(a.masks[0], a.masks[2])


def test_first_frame_keeps_the_target_visible(photos: Path) -> None:
    params = ClipParams(frames=3, p_distractor=1.0, p_distractor_front=1.0, p_occluder=1.0,
                        distractor_gap=(0.0, 0.1), min_visible=0.6)
    maker = StaticClipMaker(load_static_sets([photos]), params)
    for seed in range(5):
        clip = maker.clip(0, np.random.default_rng(seed))
        assert clip.masks[0].sum() > 0.5 * np.pi * 45 ** 2 * 0.6 * 0.2


def test_tps_field_moves_control_points_and_is_zero_without_displacement() -> None:
    ctrl = np.array([[0, 0], [99, 0], [0, 79], [99, 79], [50, 40]], float)
    zero = tps_field((80, 100), ctrl, np.zeros_like(ctrl))
    assert zero.shape == (80, 100, 2) and np.abs(zero).max() < 1e-6
    disp = np.zeros_like(ctrl)
    disp[4] = (6.0, -4.0)
    f = tps_field((80, 100), ctrl, disp, step=1)
    np.testing.assert_allclose(f[40, 50], (6.0, -4.0), atol=0.05)
    np.testing.assert_allclose(f[0, 0], (0.0, 0.0), atol=0.05)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared static-masks data absent")
def test_real_photographs_make_clips() -> None:
    samples = load_static_sets([SHARED])
    assert len(samples) > 2000
    kinds = {s.kind for s in samples}
    assert "person" in kinds and len(kinds) >= 80
    maker = StaticClipMaker(samples, ClipParams(frames=3))
    for i in (0, 1000, 2000):
        clip = maker.clip(i, np.random.default_rng(i))
        assert all(f.shape == (384, 640, 3) for f in clip.frames)
        assert clip.masks[0].sum() > 100


def test_rts_static_cache_keeps_crops_masks_and_boxes_together(photos: Path) -> None:
    import torch

    from segtrack.training.rts import build_static_cache

    c = build_static_cache([str(photos)], 4, 3, 0.5, 96, 4.0, "efficientnet-lite0", None, True)
    assert c["names"] == [f"static{i}" for i in range(4)] and c["lengths"] == [3] * 4
    assert c["feats"][16].shape == (12, 112, 6, 6) and c["mloss"].shape == (12, 48, 48)
    for r in range(12):
        m = c["mloss"][r].numpy() > 127
        ys, xs = np.nonzero(m)
        x, y, w, h = (c["boxes"][r] / 2).tolist()  # the crop box at half the crop resolution
        assert abs(xs.min() - x) <= 1.5 and abs(xs.max() + 1 - (x + w)) <= 1.5
        assert abs(ys.min() - y) <= 1.5 and abs(ys.max() + 1 - (y + h)) <= 1.5
    again = build_static_cache([str(photos)], 4, 3, 0.5, 96, 4.0, "efficientnet-lite0", None,
                               True)
    assert torch.equal(again["m4"], c["m4"])


def test_trainers_name_a_bad_static_folder(tmp_path: Path, davis_root: Path) -> None:
    from segtrack.training import run_training

    for method in ("rts", "siammask", "osvos"):
        with pytest.raises(InputError, match="--static '.*nowhere': no such folder"):
            run_training(method, ["--data", str(davis_root), "--out", str(tmp_path / method),
                                  "--static", str(tmp_path / "nowhere")])


def test_static_stage_then_mixed_batches(photos: Path) -> None:
    import argparse

    from segtrack.training.common import add_static_args, check_static_args, static_share

    p = argparse.ArgumentParser()
    add_static_args(p, "clips", 10, 0.25)
    args = p.parse_args(["--static", str(photos), "--static-iters", "5"])
    assert len(check_static_args(args, "clips")) == 3
    rng = np.random.default_rng(0)
    assert all(static_share(rng, 8, step, args) == 8 for step in range(5))
    mixed = [static_share(rng, 8, step, args) for step in range(5, 2005)]
    assert 0 < min(mixed) or max(mixed) < 8
    assert abs(np.mean(mixed) / 8 - 0.25) < 0.02
    bad = p.parse_args(["--static", str(photos), "--static-ratio", "1.5"])
    with pytest.raises(InputError, match="--static-ratio 1.5"):
        check_static_args(bad, "clips")
    assert check_static_args(p.parse_args([]), "clips") == []


def test_convlstm_photograph_videos_are_consecutive_frames(photos: Path) -> None:
    from segtrack.data.static import load_static_sets as load
    from segtrack.training.convlstm import static_videos

    vids = static_videos(load([photos]), 2, 5, 0.0)
    assert [v.name for v in vids] == ["static-0", "static-1"] and vids[0].n == 5
    ims, ms = vids[1].load()
    assert len(ims) == 5 and ims[0].shape == (384, 640, 3) and all(m.any() for m in ms)
    a, b = ms[0], ms[1]
    overlap = (a & b).sum() / max((a | b).sum(), 1)
    assert overlap > 0.3  # small steps between consecutive frames
    again, _ = vids[1].load()
    np.testing.assert_array_equal(again[3], ims[3])
