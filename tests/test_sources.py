"""Tests for segtrack.io.sources."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from segtrack.errors import InputError
from segtrack.io import natural_key, open_source, read_image
from segtrack.types import Frame


def _write_rgb(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _frames_folder(tmp_path, names, size=(6, 8)):
    d = tmp_path / "frames"
    d.mkdir()
    for k, n in enumerate(names):
        img = np.zeros(size + (3,), np.uint8)
        img[..., 0] = 10 * (k + 1)  # red channel encodes the creation order
        _write_rgb(d / n, img)
    return d


def test_natural_key_order():
    names = ["10.jpg", "2.jpg", "1.jpg", "frame10.png", "frame9.png"]
    expected = ["1.jpg", "2.jpg", "10.jpg", "frame9.png", "frame10.png"]
    assert sorted(names, key=natural_key) == expected


def test_folder_natural_sort_and_reiteration(tmp_path):
    d = _frames_folder(tmp_path, ["10.png", "2.png", "1.png"])
    (d / "readme.txt").write_text("not an image")
    src = open_source(d)
    assert src.kind == "folder" and src.num_frames == 3 and len(src) == 3
    assert src.fps is None
    assert src.frame_size == (6, 8)
    frames = list(src)
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.name for f in frames] == ["1", "2", "10"]
    assert [f.index for f in frames] == [0, 1, 2]
    # 10.png was written first (red 10), 2.png second (20), 1.png third (30)
    assert [int(f.image[0, 0, 0]) for f in frames] == [30, 20, 10]
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (6, 8, 3)
    again = [f.name for f in src]  # a source can be iterated twice
    assert again == ["1", "2", "10"]


def test_folder_start_skips(tmp_path):
    d = _frames_folder(tmp_path, [f"{i}.jpg" for i in range(5)])
    src = open_source(str(d), start=3)
    assert len(src) == 2
    assert [(f.index, f.name) for f in src] == [(3, "3"), (4, "4")]
    with pytest.raises(InputError, match="start frame 5"):
        open_source(d, start=5)


def test_list_of_paths(tmp_path):
    d = _frames_folder(tmp_path, ["b.png", "a.png"])
    src = open_source([d / "b.png", str(d / "a.png")])
    assert src.kind == "list" and len(src) == 2
    frames = list(src)
    assert [f.name for f in frames] == ["b", "a"]  # the given order, not sorted
    assert int(frames[0].image[0, 0, 0]) == 10


def test_read_image_grayscale_and_rgba(tmp_path):
    Image.fromarray(np.full((3, 4), 77, np.uint8)).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 3) and np.all(g == 77)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    c = read_image(tmp_path / "c.png")
    assert c.shape == (3, 4, 3) and np.all(c[..., 0] == 200) and np.all(c[..., 2] == 0)


def _write_video(path, n, size=(32, 48), fourcc="mp4v", fps=12.0):
    h, w = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        bgr = np.zeros((h, w, 3), np.uint8)
        bgr[..., 2] = 255  # pure red in BGR order
        bgr[: 4 + 2 * i, :8, 1] = 255  # a growing green bar marks the frame number
        vw.write(bgr)
    vw.release()


def test_video_file(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path, 6)
    src = open_source(path)
    assert src.kind == "video"
    assert src.num_frames == 6 and len(src) == 6
    assert src.fps == pytest.approx(12.0)
    assert src.frame_size == (32, 48)
    frames = list(src)
    assert len(frames) == 6
    assert [f.name for f in frames] == [f"{i:05d}" for i in range(6)]
    img = frames[0].image
    assert img.shape == (32, 48, 3)
    assert img[20, 30, 0] > 200 and img[20, 30, 2] < 60  # RGB order: red is channel 0
    assert len(list(src)) == 6  # re-iterable


def test_video_start(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, 6, fourcc="MJPG")
    src = open_source(path, start=4)
    frames = list(src)
    assert [f.index for f in frames] == [4, 5]
    assert len(src) == 2
    # frame i has a green bar of 4 + 2 i rows in the left columns
    bar = (frames[0].image[:, 2, 1] > 128).sum()
    assert bar == 4 + 2 * 4


def test_errors_name_the_input(tmp_path):
    with pytest.raises(InputError, match="nothere.mp4"):
        open_source(tmp_path / "nothere.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"folder '.*empty' has no images"):
        open_source(empty)
    bad_video = tmp_path / "x.mp4"
    bad_video.write_bytes(b"this is not a video")
    with pytest.raises(InputError, match=r"cannot decode video '.*x\.mp4'"):
        open_source(bad_video)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match="notes.txt"):
        open_source(txt)
    with pytest.raises(InputError, match="webcam 97"):
        open_source(97)
    with pytest.raises(InputError, match="webcam 98"):
        open_source("98")


def test_unreadable_frame_raised_when_reached(tmp_path):
    d = _frames_folder(tmp_path, ["0.png", "1.png"])
    (d / "2.png").write_bytes(b"garbage")
    src = open_source(d)  # opening does not decode every frame
    it = iter(src)
    assert next(it).name == "0"
    assert next(it).name == "1"
    with pytest.raises(InputError, match=r"2\.png"):
        next(it)


def test_frame_size_mismatch(tmp_path):
    d = _frames_folder(tmp_path, ["0.png"])
    _write_rgb(d / "1.png", np.zeros((5, 8, 3), np.uint8))
    with pytest.raises(InputError, match=r"1\.png' is 8x5 but the first frame is 8x6"):
        list(open_source(d))
    with pytest.raises(InputError, match=r"1\.png"):
        list(open_source([d / "0.png", d / "1.png"]))


def test_list_errors(tmp_path):
    with pytest.raises(InputError, match="missing.jpg"):
        open_source([tmp_path / "missing.jpg"])
    with pytest.raises(InputError, match="empty"):
        open_source([])
