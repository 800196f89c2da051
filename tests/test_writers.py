"""Tests for segtrack.io.palette and segtrack.io.writers."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from segtrack.errors import InputError
from segtrack.io import (
    BoxesWriter,
    MaskWriter,
    OverlayWriter,
    atomic_write_bytes,
    atomic_writer,
    davis_palette,
    guard_output,
    read_label_png,
    read_mask_input,
    write_label_png,
)
from segtrack.io.writers import draw_predictions
from segtrack.types import Prediction


def _pred(mask, box, rb, score=0.9):
    return Prediction(mask=mask, box=box, rotated_box=np.asarray(rb, float), score=score)


# -- palette ---------------------------------------------------------------------------------


def test_davis_palette_known_entries():
    pal = davis_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert tuple(pal[0]) == (0, 0, 0)
    assert tuple(pal[1]) == (128, 0, 0)
    assert tuple(pal[2]) == (0, 128, 0)
    assert tuple(pal[3]) == (128, 128, 0)
    assert tuple(pal[4]) == (0, 0, 128)
    assert tuple(pal[8]) == (64, 0, 0)
    assert tuple(pal[255]) == (224, 224, 192)  # VOC "void" colour
    assert len({tuple(c) for c in pal}) == 256


def test_label_png_round_trip_palette_mode(tmp_path):
    labels = np.zeros((6, 9), np.uint8)
    labels[1:3, 2:5] = 1
    labels[4, :] = 3
    labels[0, 8] = 255
    p = tmp_path / "00000.png"
    write_label_png(p, labels)
    with Image.open(p) as im:
        assert im.mode == "P"
        pal = np.array(im.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
    assert np.array_equal(pal[:4], davis_palette()[:4])
    back = read_label_png(p)
    assert back.dtype == np.uint8
    assert np.array_equal(back, labels)
    assert [f for f in os.listdir(tmp_path)] == ["00000.png"]  # no temp file left


def test_read_label_png_rgb_and_l(tmp_path):
    labels = np.array([[0, 1, 2], [3, 4, 1]], np.uint8)
    rgb = davis_palette()[labels]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(read_label_png(tmp_path / "rgb.png"), labels)
    Image.fromarray(np.array([[0, 255], [7, 0]], np.uint8)).save(tmp_path / "l.png")
    assert np.array_equal(read_label_png(tmp_path / "l.png"), [[0, 255], [7, 0]])
    bad = rgb.copy()
    bad[0, 0] = (1, 2, 3)
    Image.fromarray(bad).save(tmp_path / "bad.png")
    with pytest.raises(InputError, match="bad.png"):
        read_label_png(tmp_path / "bad.png")


def test_read_mask_input_rules(tmp_path):
    gray = np.zeros((4, 5), np.uint8)
    gray[1:3, 1:4] = 255
    Image.fromarray(gray).save(tmp_path / "m.png")
    masks = read_mask_input(tmp_path / "m.png", (4, 5))
    assert list(masks) == [1]
    assert masks[1].dtype == bool and masks[1].sum() == 6 and masks[1][1, 1]

    labels = np.zeros((4, 5), np.uint8)
    labels[0, 0] = 2
    labels[3, 4] = 5
    write_label_png(tmp_path / "multi.png", labels)
    masks = read_mask_input(tmp_path / "multi.png", (4, 5))
    assert sorted(masks) == [2, 5]
    assert masks[2].sum() == 1 and masks[5][3, 4]

    noisy = gray.copy()
    noisy[0, 0] = 3  # JPEG-like noise below the threshold is background
    noisy[1, 1] = 250
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    masks = read_mask_input(tmp_path / "noisy.png", (4, 5))
    assert list(masks) == [1] and masks[1].sum() == 6 and not masks[1][0, 0]
    small = np.zeros((4, 5), np.uint8)
    small[0, :2] = 1
    small[3, 3] = 2
    Image.fromarray(small).save(tmp_path / "ids.png")
    masks = read_mask_input(tmp_path / "ids.png", (4, 5))
    assert sorted(masks) == [1, 2] and masks[1].sum() == 2 and masks[2][3, 3]

    with pytest.raises(InputError, match=r"mask '.*m\.png' is 5x4 but the frame is 854x480"):
        read_mask_input(tmp_path / "m.png", (480, 854))
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "e.png")
    with pytest.raises(InputError, match=r"mask '.*e\.png' is empty"):
        read_mask_input(tmp_path / "e.png", (4, 5))
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="junk.png"):
        read_mask_input(tmp_path / "junk.png", (4, 5))
    with pytest.raises(InputError, match="missing.png"):
        read_mask_input(tmp_path / "missing.png", (4, 5))


# -- atomic writes / guard -------------------------------------------------------------------


def test_atomic_write_bytes_replaces(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"first")
    atomic_write_bytes(p, b"second")
    assert p.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_atomic_writer_failure_leaves_nothing(tmp_path):
    p = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_writer(p, "w") as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # an existing complete file survives a failed rewrite untouched
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_writer(p) as f:
            f.write(b"new")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_guard_output(tmp_path):
    video = tmp_path / "in" / "video.mp4"
    video.parent.mkdir()
    video.write_bytes(b"x")
    frames = tmp_path / "frames"
    frames.mkdir()
    with pytest.raises(InputError, match="refusing to overwrite input"):
        guard_output(video, [video])
    with pytest.raises(InputError, match="refusing to overwrite input"):
        guard_output(tmp_path / "in" / ".." / "in" / "video.mp4", [video])
    with pytest.raises(InputError, match="refusing to overwrite input"):
        guard_output(tmp_path / "in", [video], is_dir=True)  # folder containing the input
    with pytest.raises(InputError, match="refusing to overwrite input"):
        guard_output(frames, [frames])
    link = tmp_path / "link.mp4"
    os.symlink(video, link)
    with pytest.raises(InputError, match="refusing to overwrite input"):
        guard_output(link, [video])
    # fine: a different file, and a sub-folder of an input folder
    assert guard_output(tmp_path / "out.mp4", [video, frames]) == (tmp_path / "out.mp4").resolve()
    guard_output(frames / "masks", [video, frames], is_dir=True)


def test_mask_writer_names_and_guard(tmp_path):
    out = tmp_path / "masks" / "seq"
    w = MaskWriter(out)
    lab = np.zeros((3, 4), np.uint8)
    lab[1, 2] = 2
    p = w.write("00007", lab)
    assert p == out / "00007.png"
    w.write("frame_b", lab * 0)
    assert sorted(os.listdir(out)) == ["00007.png", "frame_b.png"]
    assert np.array_equal(read_label_png(out / "00007.png"), lab)
    with pytest.raises(InputError):
        w.write("../escape", lab)
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    (img_dir / "0.png").write_bytes(b"x")
    with pytest.raises(InputError, match="refusing to overwrite input"):
        MaskWriter(img_dir, protected=[img_dir / "0.png"])


# -- boxes -----------------------------------------------------------------------------------


def test_boxes_writer_json(tmp_path):
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    rb = [[3, 2], [7, 2], [7, 5], [3, 5]]
    path = tmp_path / "boxes.json"
    with BoxesWriter(path) as bw:
        bw.add(0, "00000", {1: _pred(m, (3.0, 2.0, 4.0, 3.0), rb, 0.75)})
        assert not path.exists()  # only appears when complete
        two = {2: _pred(m, (1.0, 1.0, 2.0, 2.0), rb, 0.5), 1: _pred(m, (0, 0, 1, 1), rb)}
        bw.add(1, "00001", two)
        bw.add(2, "00002", {})
    data = json.loads(path.read_text())
    assert [f["index"] for f in data["frames"]] == [0, 1, 2]
    assert [f["name"] for f in data["frames"]] == ["00000", "00001", "00002"]
    o = data["frames"][0]["objects"]["1"]
    assert o["box"] == [3.0, 2.0, 4.0, 3.0]
    assert o["rotated_box"] == [[3.0, 2.0], [7.0, 2.0], [7.0, 5.0], [3.0, 5.0]]
    assert o["score"] == 0.75
    assert list(data["frames"][1]["objects"]) == ["1", "2"]
    assert data["frames"][2]["objects"] == {}
    assert os.listdir(tmp_path) == ["boxes.json"]


def test_boxes_writer_nan_and_abort(tmp_path):
    m = np.zeros((4, 4), bool)
    path = tmp_path / "b.json"
    with BoxesWriter(path) as bw:
        bw.add(0, "a", {1: _pred(m, (float("nan"),) * 4, np.full((4, 2), np.nan), 0.0)})
    data = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert data["frames"][0]["objects"]["1"]["box"] == [None] * 4
    path2 = tmp_path / "c.json"
    with pytest.raises(RuntimeError):
        with BoxesWriter(path2) as bw:
            bw.add(0, "a", {})
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["b.json"]


# -- overlay ---------------------------------------------------------------------------------


def test_overlay_writer_video(tmp_path):
    h, w = 96, 128
    path = tmp_path / "overlay.mp4"
    m = np.zeros((h, w), bool)
    m[20:80, 40:100] = True
    rb = [[40, 20], [100, 20], [100, 80], [40, 80]]
    with OverlayWriter(path, 10.0, (h, w)) as ow:
        for _ in range(7):
            ow.write(np.full((h, w, 3), 200, np.uint8), {1: _pred(m, (40, 20, 60, 60), rb)})
        assert not path.exists()
    assert ow.path == path and path.exists()
    assert os.listdir(tmp_path) == ["overlay.mp4"]
    cap = cv2.VideoCapture(str(path))
    n = 0
    first = None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        first = f if first is None else first
        n += 1
    cap.release()
    assert n == 7
    assert first.shape == (h, w, 3)
    # inside the mask (away from the outlines) the tint is 0.5*200 + 0.5*(128,0,0) = (164,100,100)
    rgb = first[65, 70, ::-1].astype(int)  # below the id tag
    assert abs(rgb[0] - 164) < 20 and abs(rgb[1] - 100) < 20 and abs(rgb[2] - 100) < 20
    # outside untouched grey
    assert np.all(np.abs(first[90, 4].astype(int) - 200) < 15)


def test_overlay_writer_abort_removes_temp(tmp_path):
    path = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError):
        with OverlayWriter(path, 5, (16, 16)) as ow:
            ow.write(np.zeros((16, 16, 3), np.uint8), {})
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    with OverlayWriter(tmp_path / "p.mp4", 5, (16, 16)) as ow:
        with pytest.raises(ValueError):
            ow.write(np.zeros((8, 8, 3), np.uint8), {})
    video = tmp_path / "p.mp4"
    with pytest.raises(InputError, match="refusing to overwrite input"):
        OverlayWriter(video, 5, (16, 16), protected=[video])


def _codec_name(path):
    import av

    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.name, c.streams.video[0].frames


def test_overlay_writer_plays_in_browsers(tmp_path):
    """H.264 in MP4 (default, also without a suffix) and VP9 in WebM; odd sizes are padded."""
    pytest.importorskip("av")
    h, w = 31, 45
    for name, codec in (("a.mp4", "h264"), ("b", "h264"), ("c.webm", "vp9")):
        with OverlayWriter(tmp_path / name, 12.0, (h, w), names={1: "dog"}) as ow:
            for _ in range(5):
                ow.write(np.full((h, w, 3), 90, np.uint8), {})
        assert not ow.fell_back
        got, frames = _codec_name(ow.path)
        assert got == codec, (name, got)
        cap = cv2.VideoCapture(str(ow.path))
        ok, f = cap.read()
        cap.release()
        assert ok and f.shape == (h + 1, w + 1, 3)
    assert (tmp_path / "b.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "c.webm"]


def test_overlay_labels_show_id_and_name():
    m = np.zeros((240, 320), bool)
    m[100:200, 100:200] = True
    img = np.zeros((240, 320, 3), np.uint8)
    rb = [[100, 100], [200, 100], [200, 200], [100, 200]]
    plain = draw_predictions(img, {1: _pred(m, (100, 100, 100, 100), rb)})
    named = draw_predictions(img, {1: _pred(m, (100, 100, 100, 100), rb)}, names={1: "dog"})
    # the label sits above the box: white text there; the name makes it wider
    above_plain = plain[70:100, 100:320].max(axis=2) > 200
    above_named = named[70:100, 100:320].max(axis=2) > 200
    assert above_plain.any() and above_named.sum() > above_plain.sum()
    cols = np.flatnonzero(above_named.any(axis=0))
    assert cols.max() - cols.min() > 25


def test_overlay_writer_falls_back_without_pyav(tmp_path, monkeypatch):
    import segtrack.io.writers as writers

    def no_pyav(*a, **k):
        raise ImportError("no av")

    monkeypatch.setattr(writers._PyAVVideo, "__init__", no_pyav)
    with pytest.warns(RuntimeWarning, match="do not play"):
        ow = OverlayWriter(tmp_path / "v.mp4", 5, (16, 24))
    with ow:
        for _ in range(3):
            ow.write(np.zeros((16, 24, 3), np.uint8), {})
    assert ow.fell_back and ow.codec == "mp4v" and ow.path == tmp_path / "v.mp4"

    real = cv2.VideoWriter

    def fake_writer(path, fourcc, fps, size):
        if fourcc == cv2.VideoWriter_fourcc(*"mp4v"):
            return real()  # a writer that is not opened
        return real(path, fourcc, fps, size)

    monkeypatch.setattr(cv2, "VideoWriter", fake_writer)
    with pytest.warns(RuntimeWarning, match="MJPG"):
        ow = OverlayWriter(tmp_path / "w.mp4", 5, (16, 24))
    with ow:
        for _ in range(3):
            ow.write(np.zeros((16, 24, 3), np.uint8), {})
    assert ow.fell_back and ow.path == tmp_path / "w.avi"
    assert sorted(os.listdir(tmp_path)) == ["v.mp4", "w.avi"]
    cap = cv2.VideoCapture(str(ow.path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 24
    cap.release()
