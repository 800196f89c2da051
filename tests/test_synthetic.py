"""The synthetic video generator: determinism, exact masks, occlusion, exits, DAVIS-style output."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segtrack.data.synthetic import KINDS, demo_clip, make_video, write_video


def test_same_seed_same_video_and_order_independent():
    a = make_video(5, num_objects=2, num_frames=12)
    b = make_video(5, num_objects=2, num_frames=12)
    backwards = [b.frame(t) for t in reversed(range(12))][::-1]
    for t in range(12):
        ia, la = a.frame(t)
        ib, lb = backwards[t]
        assert np.array_equal(ia, ib) and np.array_equal(la, lb)
    c = make_video(6, num_objects=2, num_frames=12)
    assert not np.array_equal(a.frame(3)[0], c.frame(3)[0])


def test_labels_and_ids():
    v = make_video(1, num_objects=3, num_frames=6, occlusion=False)
    img, lab = v.frame(0)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert lab.shape == (240, 320) and lab.dtype == np.uint8
    assert set(np.unique(lab).tolist()) == {0, 1, 2, 3}


def test_masks_aligned_with_image_pixelwise():
    """Flat-coloured shapes on a flat background, no noise/light: every object pixel has the
    object's colour and every background pixel the background colour."""
    v = make_video(
        2, num_objects=2, num_frames=5, kinds=("ellipse", "star"), texture="flat",
        background="flat", noise=0.0, illumination=False, deform=True,
    )
    for t in range(5):
        img, lab = v.frame(t)
        bg_colours = np.unique(img[lab == 0].reshape(-1, 3), axis=0)
        assert len(bg_colours) == 1
        for k in (1, 2):
            if not (lab == k).any():
                continue
            cols = np.unique(img[lab == k].reshape(-1, 3), axis=0)
            assert len(cols) == 1, (t, k, cols[:5])
            assert not np.array_equal(cols[0], bg_colours[0])


def test_occlusion_top_object_wins():
    v = make_video(3, num_objects=2, num_frames=2, kinds=("ellipse",), texture="flat",
                   background="flat", noise=0.0, illumination=False, rotate=False,
                   scale=False, deform=False)
    # place both objects at the same spot: object 2 is drawn last, so it must own the overlap
    v._tracks[0][:, :2] = (160, 120)
    v._tracks[1][:, :2] = (170, 120)
    v._tracks[0][:, 2] = 80
    v._tracks[1][:, 2] = 80
    img, lab = v.frame(0)
    assert lab[120, 165] == 2
    assert (lab == 1).any()  # object 1 still shows on its uncovered side
    colour2 = np.unique(img[lab == 2].reshape(-1, 3), axis=0)
    assert len(colour2) == 1 and np.array_equal(img[120, 165], colour2[0])


def test_objects_exit_and_reenter():
    v = make_video(4, num_objects=1, num_frames=40, exits=True)
    present = [bool((v.frame(t)[1] == 1).any()) for t in range(40)]
    first_gone = present.index(False)
    assert any(present[:first_gone]) and any(present[first_gone:]) and present.count(False) >= 2
    assert any(present[first_gone + present[first_gone:].index(True):])


def test_semantic_mode_class_ids():
    v = make_video(7, num_objects=2, num_frames=3, semantic=True, kinds=("cat", "star"),
                   occlusion=False)
    _, lab = v.frame(0)
    kinds = {s.kind for s in v.sprites}
    assert set(np.unique(lab).tolist()) <= {0} | {KINDS.index(k) + 1 for k in kinds}
    assert v.num_classes == len(KINDS) + 1


def test_write_video_davis_tree(tmp_path):
    v = make_video(8, num_objects=2, num_frames=4, height=60, width=80)
    root = write_video(v, tmp_path / "ds", name="clip", as_mp4=True)
    frames = sorted((root / "JPEGImages/480p/clip").glob("*.jpg"))
    annos = sorted((root / "Annotations/480p/clip").glob("*.png"))
    assert [f.stem for f in frames] == ["00000", "00001", "00002", "00003"]
    im = Image.open(annos[2])
    assert im.mode == "P"
    assert np.array_equal(np.array(im), v.frame(2)[1])
    assert (root / "clip.mp4").stat().st_size > 0


def test_demo_clip_uses_real_photographs():
    v = demo_clip(0)
    assert [s.kind for s in v.sprites] == ["cat", "cup"]
    img, lab = v.frame(0)
    assert set(np.unique(lab).tolist()) == {0, 1, 2}
    # a photo has many distinct colours inside the object, unlike a flat shape
    assert len(np.unique(img[lab == 1].reshape(-1, 3), axis=0)) > 500
