"""Tests for segtrack.eval.datasets (tiny hand-made fixtures of every layout + shared DAVIS)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segtrack.errors import InputError
from segtrack.eval.datasets import (
    decode_vot_rle,
    load_davis,
    load_got10k,
    load_lasot,
    load_otb,
    load_vot,
    load_ytvos,
    parse_vot_region,
)
from segtrack.io.palette import write_label_png

DAVIS_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def _img(path: Path, value: int = 0, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(size + (3,), value, np.uint8))
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- DAVIS -----------------------------------------------------------------------------------


def _davis2016(root: Path) -> None:
    for seq, n in (("dog", 3), ("cat", 2)):
        for i in range(n):
            _img(root / "JPEGImages" / "480p" / seq / f"{i:05d}.jpg", 10 * i)
            m = np.zeros((8, 8), np.uint8)
            m[i : i + 2, 1:3] = 255
            p = root / "Annotations" / "480p" / seq / f"{i:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save(p)  # grayscale "L", 0/255


def test_davis2016_folders_only(tmp_path):
    _davis2016(tmp_path)
    seqs = load_davis(tmp_path)
    assert [s.name for s in seqs] == ["cat", "dog"]  # sorted folder names
    dog = seqs[1]
    assert dog.style == "davis2016"
    assert len(dog.frames) == 3 and dog.frames[2].name == "00002.jpg"
    assert dog.masks[1].name == "00001.png"
    assert dog.object_ids == [1] and dog.first_frames == {1: 0}
    lab = dog.read_labels(1)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 1}
    assert lab.sum() == 4 and lab[1, 1] == 1 and lab[0, 1] == 0
    assert dog.read_void(1) is None
    assert dog.boxes is None and dog.polygons is None


def test_davis_imageset_2016_lines_and_restriction(tmp_path):
    _davis2016(tmp_path)
    line = "/JPEGImages/480p/dog/{0:05d}.jpg /Annotations/480p/dog/{0:05d}.png"
    lines = [line.format(i) for i in range(3)]
    lines += ["/JPEGImages/480p/cat/00000.jpg /Annotations/480p/cat/00000.png"]
    _text(tmp_path / "ImageSets" / "480p" / "train.txt", "\n".join(lines) + "\n")
    seqs = load_davis(tmp_path, imageset="train")
    assert [s.name for s in seqs] == ["dog", "cat"]  # file order, unique
    seqs = load_davis(tmp_path, sequences=["dog"])
    assert [s.name for s in seqs] == ["dog"]
    with pytest.raises(InputError, match="'bird'"):
        load_davis(tmp_path, sequences=["dog", "bird"])
    with pytest.raises(InputError, match="nope"):
        load_davis(tmp_path, imageset="nope")


def test_davis2017_palette_void_and_late_objects(tmp_path):
    for i in range(3):
        _img(tmp_path / "JPEGImages" / "480p" / "pigs" / f"{i:05d}.jpg")
        lab = np.zeros((8, 8), np.uint8)
        lab[0:2, 0:2] = 1
        lab[5:7, 5:7] = 2
        lab[4, :] = 255  # void line
        if i == 2:
            lab[0, 7] = 3  # object 3 only appears in frame 2
        write_label_png(tmp_path / "Annotations" / "480p" / "pigs" / f"{i:05d}.png", lab)
    _text(tmp_path / "ImageSets" / "2017" / "val.txt", "pigs\n")
    (seq,) = load_davis(tmp_path, imageset="val")
    assert seq.style == "davis2017"
    assert seq.object_ids == [1, 2] and seq.first_frames == {1: 0, 2: 0}
    lab = seq.read_labels(0)
    assert set(np.unique(lab)) == {0, 1, 2} and lab[4].sum() == 0  # void removed
    void = seq.read_void(0)
    assert void.dtype == bool and void.sum() == 8 and void[4].all()
    (seq,) = load_davis(tmp_path, scan_objects=True)
    assert seq.object_ids == [1, 2, 3] and seq.first_frames == {1: 0, 2: 0, 3: 2}


def test_davis_errors(tmp_path):
    with pytest.raises(InputError, match="missing_root"):
        load_davis(tmp_path / "missing_root")
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)
    with pytest.raises(InputError, match="Annotations"):
        load_davis(tmp_path)


@pytest.mark.skipif(not DAVIS_SHARED.is_dir(), reason="shared DAVIS-2016 data not present")
def test_shared_davis2016():
    seqs = load_davis(DAVIS_SHARED)
    assert len(seqs) == 30
    bear = next(s for s in seqs if s.name == "bear")
    assert len(bear.frames) == 82 and len(bear.masks) == 82
    assert all(m is not None for m in bear.masks)
    assert bear.style == "davis2016"
    lab = bear.read_labels(0)
    assert lab.shape == (480, 854)
    assert set(np.unique(lab).tolist()) == {0, 1}
    assert bear.object_ids == [1] and bear.first_frames == {1: 0}
    assert [s.name for s in load_davis(DAVIS_SHARED, imageset="train")] == [s.name for s in seqs]


# -- YouTube-VOS -----------------------------------------------------------------------------


def _ytvos(root: Path, with_meta: bool = True) -> None:
    base = root / "valid"
    for stem in ("00000", "00005", "00010"):
        _img(base / "JPEGImages" / "vid1" / f"{stem}.jpg")
    a = np.zeros((8, 8), np.uint8)
    a[0:2, 0:2] = 1
    write_label_png(base / "Annotations" / "vid1" / "00000.png", a)
    b = np.zeros((8, 8), np.uint8)
    b[6:8, 6:8] = 2
    write_label_png(base / "Annotations" / "vid1" / "00005.png", b)
    if with_meta:
        meta = {
            "videos": {
                "vid1": {
                    "objects": {
                        "1": {"frames": ["00000", "00005", "00010"]},
                        "2": {"frames": ["00005", "00010"]},
                    }
                }
            }
        }
        _text(base / "meta.json", json.dumps(meta))


@pytest.mark.parametrize("with_meta", [True, False])
def test_ytvos(tmp_path, with_meta):
    _ytvos(tmp_path, with_meta)
    (seq,) = load_ytvos(tmp_path, "valid")
    assert seq.name == "vid1" and seq.style == "ytvos"
    assert [f.name for f in seq.frames] == ["00000.jpg", "00005.jpg", "00010.jpg"]
    assert [None if m is None else m.name for m in seq.masks] == ["00000.png", "00005.png", None]
    assert seq.object_ids == [1, 2]
    assert seq.first_frames == {1: 0, 2: 1}
    assert seq.read_labels(2) is None
    assert seq.read_labels(1)[7, 7] == 2 and seq.read_labels(1).sum() == 8


def test_ytvos_errors(tmp_path):
    with pytest.raises(InputError, match="valid"):
        load_ytvos(tmp_path)
    _ytvos(tmp_path)
    _text(tmp_path / "valid" / "meta.json", "{not json")
    with pytest.raises(InputError, match="meta.json"):
        load_ytvos(tmp_path)


# -- VOT -------------------------------------------------------------------------------------


def test_vot_rle_decoding():
    patch = decode_vot_rle([1, 4, 1], 3, 2)
    assert patch.tolist() == [[False, True, True], [True, True, False]]
    assert decode_vot_rle([0, 3], 2, 2).tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError):
        decode_vot_rle([5, 5], 2, 2)
    kind, (x0, y0, p) = parse_vot_region("m2,3,3,2,1,4,1")
    assert kind == "mask" and (x0, y0) == (2, 3) and p.sum() == 4
    assert parse_vot_region("0") == ("none", None)
    assert parse_vot_region("nan,nan,nan,nan") == ("none", None)


def test_vot_all_formats(tmp_path):
    _text(tmp_path / "list.txt", "rect\npoly\nmask\n")
    for i in range(3):
        _img(tmp_path / "rect" / "color" / f"{i + 1:08d}.jpg")
        _img(tmp_path / "poly" / f"{i + 1:08d}.jpg")
        _img(tmp_path / "mask" / "color" / f"{i + 1:08d}.jpg", size=(8, 10))
    _text(tmp_path / "rect" / "groundtruth.txt", "1,2,3,4\n2.5,2,3,4\n3,2,3,4\n")
    _text(
        tmp_path / "poly" / "groundtruth.txt",
        "1,1,5,1,5,4,1,4\n0\n2,1,6,2,5,5,1,4\n",
    )
    # frame 0: 3x2 patch at (2, 3) = [[0,1,1],[1,1,0]]; frame 1: 2x2 patch at (0, 0) with
    # trailing zeros omitted = [[1,1],[1,0]]; frame 2: rectangle line
    _text(tmp_path / "mask" / "groundtruth.txt", "m2,3,3,2,1,4,1\nm0,0,2,2,0,3\n1,1,2,2\n")
    rect, poly, mask = load_vot(tmp_path)
    assert [s.style for s in (rect, poly, mask)] == ["vot"] * 3
    assert len(rect.frames) == 3 and rect.frames[0].parent.name == "color"
    assert rect.polygons[0].tolist() == [[1, 2], [4, 2], [4, 6], [1, 6]]
    assert rect.boxes[1].tolist() == [2.5, 2, 3, 4]
    assert rect.vot_masks is None

    assert poly.frames[0].parent.name == "poly"
    assert poly.polygons[0].shape == (4, 2) and poly.polygons[1] is None
    assert np.isnan(poly.boxes[1]).all()
    assert poly.boxes[2].tolist() == [1, 1, 5, 4]

    assert mask.vot_masks is not None and len(mask.vot_masks) == 3
    m0 = mask.vot_masks[0]
    assert m0.shape == (8, 10) and m0.dtype == bool  # image size (h, w)
    assert sorted(zip(*np.nonzero(m0))) == [(3, 3), (3, 4), (4, 2), (4, 3)]
    assert mask.boxes[0].tolist() == [2, 3, 3, 2]
    m1 = mask.vot_masks[1]
    assert m1.sum() == 3 and m1[0, 0] and m1[0, 1] and m1[1, 0] and not m1[1, 1]
    assert mask.vot_masks[2] is None and mask.polygons[2].shape == (4, 2)
    assert mask.polygons[0] is None
    assert mask.read_labels(0).sum() == 4


def test_vot_subfolders_and_errors(tmp_path):
    _img(tmp_path / "a" / "color" / "00000001.jpg")
    _text(tmp_path / "a" / "groundtruth.txt", "1,2,3\n")
    with pytest.raises(InputError, match=r"groundtruth\.txt' line 1"):
        load_vot(tmp_path)
    _text(tmp_path / "a" / "groundtruth.txt", "1,2,3,4\n")
    (seq,) = load_vot(tmp_path)  # no list.txt: folders with a groundtruth.txt
    assert seq.name == "a"
    _text(tmp_path / "list.txt", "a\nb\n")
    with pytest.raises(InputError, match="b"):
        load_vot(tmp_path)


# -- OTB -------------------------------------------------------------------------------------


def test_otb_separators_and_multi_target(tmp_path):
    for seq, sep in (("Comma", ","), ("Tab", "\t"), ("Space", " ")):
        for i in range(4):
            _img(tmp_path / seq / "img" / f"{i + 1:04d}.jpg")
        rows = [sep.join(str(v) for v in (i + 1, 2, 30, 40)) for i in range(3)]
        _text(tmp_path / seq / "groundtruth_rect.txt", "\n".join(rows) + "\n")
    for i in range(2):
        _img(tmp_path / "Jogging" / "img" / f"{i + 1:04d}.jpg")
    _text(tmp_path / "Jogging" / "groundtruth_rect.1.txt", "1,1,5,5\n2,2,5,5\n")
    _text(tmp_path / "Jogging" / "groundtruth_rect.2.txt", "7,7,3,3\n8,8,3,3\n")
    seqs = {s.name: s for s in load_otb(tmp_path)}
    assert sorted(seqs) == ["Comma", "Jogging-1", "Jogging-2", "Space", "Tab"]
    for name in ("Comma", "Space", "Tab"):
        s = seqs[name]
        assert s.style == "otb" and s.boxes.shape == (3, 4)
        assert s.boxes[:, 0].tolist() == [1, 2, 3]  # 1-based values kept as given
        assert len(s.frames) == 3 and s.frames[-1].name == "0003.jpg"  # first 3 of 4 images
    assert seqs["Jogging-2"].boxes[1].tolist() == [8, 8, 3, 3]
    assert seqs["Jogging-1"].frames == seqs["Jogging-2"].frames


def test_otb_errors(tmp_path):
    _img(tmp_path / "S" / "img" / "0001.jpg")
    with pytest.raises(InputError, match="groundtruth_rect.txt"):
        load_otb(tmp_path)
    _text(tmp_path / "S" / "groundtruth_rect.txt", "1,2,3,4\n1,2,3,4\n")
    with pytest.raises(InputError, match="2 boxes"):
        load_otb(tmp_path)
    _text(tmp_path / "S" / "groundtruth_rect.txt", "1,2,x,4\n")
    with pytest.raises(InputError, match="line 1"):
        load_otb(tmp_path)


# -- LaSOT / GOT-10k -------------------------------------------------------------------------


def test_lasot(tmp_path):
    d = tmp_path / "airplane" / "airplane-1"
    for i in range(3):
        _img(d / "img" / f"{i + 1:08d}.jpg")
    _text(d / "groundtruth.txt", "1,2,3,4\n5,6,7,8\n9,10,11,12\n")
    _text(d / "full_occlusion.txt", "0,1,0")
    _text(d / "out_of_view.txt", "0,0,1\n")
    d2 = tmp_path / "airplane" / "airplane-10"
    _img(d2 / "img" / "00000001.jpg")
    _text(d2 / "groundtruth.txt", "1,1,1,1\n")
    d3 = tmp_path / "airplane" / "airplane-2"
    _img(d3 / "img" / "00000001.jpg")
    _text(d3 / "groundtruth.txt", "1,1,1,1\n")
    seqs = load_lasot(tmp_path)
    assert [s.name for s in seqs] == ["airplane-1", "airplane-2", "airplane-10"]
    s = seqs[0]
    assert s.style == "lasot" and s.meta["category"] == "airplane"
    assert s.boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]  # kept
    assert s.absent.tolist() == [False, True, True]
    assert seqs[1].absent is None
    _text(d / "out_of_view.txt", "0,0")
    with pytest.raises(InputError, match="out_of_view.txt"):
        load_lasot(tmp_path)


def test_got10k(tmp_path):
    base = tmp_path / "val"
    _text(base / "list.txt", "GOT-10k_Val_000001\n")
    d = base / "GOT-10k_Val_000001"
    for i in range(3):
        _img(d / f"{i + 1:08d}.jpg")
    _text(d / "groundtruth.txt", "1,2,3,4\n2,3,4,5\n3,4,5,6\n")
    _text(d / "absence.label", "0\n1\n0\n")
    (s,) = load_got10k(tmp_path, "val")
    assert s.style == "got10k" and s.name == "GOT-10k_Val_000001"
    assert [f.name for f in s.frames] == ["00000001.jpg", "00000002.jpg", "00000003.jpg"]
    assert s.boxes[2].tolist() == [3, 4, 5, 6]
    assert s.absent.tolist() == [False, True, False]
    # test split: first box only, no absence labels
    t = tmp_path / "test" / "GOT-10k_Test_000001"
    for i in range(2):
        _img(t / f"{i + 1:08d}.jpg")
    _text(t / "groundtruth.txt", "5,5,2,2\n")
    _text(tmp_path / "test" / "list.txt", "GOT-10k_Test_000001\n")
    (s,) = load_got10k(tmp_path, "test")
    assert s.boxes[0].tolist() == [5, 5, 2, 2] and np.isnan(s.boxes[1]).all()
    assert s.absent is None
    with pytest.raises(InputError, match="train"):
        load_got10k(tmp_path, "train")
    (d / "groundtruth.txt").unlink()
    with pytest.raises(InputError, match="groundtruth.txt"):
        load_got10k(tmp_path, "val")
