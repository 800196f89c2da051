"""The command line end to end: track, eval, bench, demo, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.cli import main
from segtrack.io import read_label_png, write_label_png


def _write_clip(folder: Path, n: int = 10) -> list[np.ndarray]:
    """A textured square sliding over a texture, as numbered JPEG-free PNG frames + masks."""
    rng = np.random.default_rng(0)
    h, w = 96, 128
    bg = cv2.resize(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), (w, h))
    patch = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (32, 32))
    folder.mkdir(parents=True)
    masks = []
    for t in range(n):
        img = bg.copy()
        m = np.zeros((h, w), np.uint8)
        x = 20 + 2 * t
        img[30:62, x : x + 32] = patch
        m[30:62, x : x + 32] = 1
        cv2.imwrite(str(folder / f"f{t}.png"), img[..., ::-1])
        masks.append(m)
    return masks


@pytest.fixture
def clip(tmp_path: Path):
    frames = tmp_path / "frames"
    masks = _write_clip(frames)
    mask_png = tmp_path / "first.png"
    write_label_png(mask_png, masks[0])
    return frames, mask_png, masks


def test_track_writes_masks_boxes_overlay(clip, tmp_path, capsys):
    frames, mask_png, masks = clip
    out = tmp_path / "out"
    overlay = tmp_path / "ov.mp4"
    rc = main(["track", str(frames), "--mask", str(mask_png), "--out", str(out),
               "--overlay", str(overlay), "--quiet"])
    assert rc == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(f"f{t}.png" for t in range(10))  # named after the input stems
    last = read_label_png(out / "f9.png")
    inter = np.logical_and(last == 1, masks[9] == 1).sum()
    union = np.logical_or(last == 1, masks[9] == 1).sum()
    assert inter / union > 0.4  # a mask that stayed put would score 0.28
    boxes = json.loads((out / "boxes.json").read_text())
    assert len(boxes["frames"]) == 10
    first = boxes["frames"][0]["objects"]["1"]
    assert first["box"] == [20.0, 30.0, 32.0, 32.0]
    assert len(first["rotated_box"]) == 4
    cap = cv2.VideoCapture(str(overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    cap.release()
    assert "wrote 10 masks" in capsys.readouterr().out


def test_track_with_box_and_later_frame(clip, tmp_path):
    frames, _, masks = clip
    out = tmp_path / "out"
    rc = main(["track", str(frames), "--box", "24,30,32,32", "--frame", "2", "--out", str(out),
               "--param", "box_init=box", "--quiet"])
    assert rc == 0
    assert not read_label_png(out / "f1.png").any()  # before the start frame: nothing
    assert (read_label_png(out / "f2.png") == masks[2]).all()  # the filled box, as asked


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, m, t: ["track", str(t / "nope.mp4"), "--mask", str(m)], "nope.mp4"),
        (lambda d, m, t: ["track", str(d), "--mask", str(m), "--method", "bogus"], "bogus"),
        (lambda d, m, t: ["track", str(d), "--box", "500,500,10,10"], "outside"),
        (lambda d, m, t: ["track", str(d), "--box", "1,2,3"], "X,Y,W,H"),
        (lambda d, m, t: ["track", str(d), "--mask", str(t / "small.png")], "small.png"),
        (lambda d, m, t: ["track", str(d), "--mask", str(t / "empty.png")], "empty"),
        (lambda d, m, t: ["track", str(t / "bad.mp4"), "--mask", str(m)], "bad.mp4"),
        (lambda d, m, t: ["track", str(d), "--mask", str(m), "--out", str(d)], "overwrite"),
        (lambda d, m, t: ["track", str(d), "--mask", str(m), "--device", "cuda:7"], "cuda"),
        (lambda d, m, t: ["track", str(d), "--mask", str(m), "--frame", "99"], "--frame 99"),
        (lambda d, m, t: ["track", str(d), "--mask", str(m), "--param", "nope=1"], "nope"),
    ],
)
def test_bad_input_one_line_error_and_nothing_left(
    clip, tmp_path, capsys, monkeypatch, make_args, message
):
    frames, mask_png, _ = clip
    monkeypatch.chdir(tmp_path)  # the default output folder would be created here
    write_label_png(tmp_path / "small.png", np.ones((10, 10), np.uint8))
    write_label_png(tmp_path / "empty.png", np.zeros((96, 128), np.uint8))
    (tmp_path / "bad.mp4").write_bytes(b"this is not a video")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = main(make_args(frames, mask_png, tmp_path) + ["--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("segtrack: error:"), err
    assert message in lines[0]
    assert "Traceback" not in err
    after = sorted(p.name for p in tmp_path.rglob("*"))
    assert after == before  # nothing partial left behind


def test_inputs_never_overwritten(clip, tmp_path):
    frames, mask_png, _ = clip
    digest = {p: p.read_bytes() for p in frames.iterdir()}
    rc = main(["track", str(frames), "--mask", str(mask_png), "--out", str(frames), "--quiet"])
    assert rc == 2
    assert {p: p.read_bytes() for p in frames.iterdir()} == digest


def test_eval_on_written_results_matches_perfect_and_shifted(tmp_path, capsys):
    root = tmp_path / "davis"
    for t in range(6):
        img = np.full((40, 50, 3), 100, np.uint8)
        (root / "JPEGImages/480p/seq").mkdir(parents=True, exist_ok=True)
        (root / "Annotations/480p/seq").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f"JPEGImages/480p/seq/{t:05d}.jpg"), img)
        m = np.zeros((40, 50), np.uint8)
        m[10:30, 10 + t : 30 + t] = 255
        cv2.imwrite(str(root / f"Annotations/480p/seq/{t:05d}.png"), m)
        write_label_png(tmp_path / f"res/seq/{t:05d}.png", (m > 0).astype(np.uint8))
    out_json = tmp_path / "scores.json"
    assert main(["eval", "--dataset", "davis", "--root", str(root), "--results",
                 str(tmp_path / "res"), "--json", str(out_json), "--quiet"]) == 0
    scores = json.loads(out_json.read_text())
    for key in ("J_M", "J_O", "J_D", "F_M", "F_O", "F_D", "JF"):
        assert key in scores
    assert scores["J_M"] == pytest.approx(1.0) and scores["JF"] == pytest.approx(1.0)


def test_bench_on_shared_davis_sequence(davis_root, tmp_path, capsys):
    out_json = tmp_path / "b.json"
    rc = main(["bench", "--dataset", "davis", "--root", str(davis_root), "--method", "flow",
               "--sequences", "dog-agility", "--json", str(out_json), "--quiet"])
    assert rc == 0
    scores = json.loads(out_json.read_text())
    for key in ("J_M", "J_O", "J_D", "F_M", "F_O", "F_D", "JF", "fps"):
        assert key in scores
    assert 0.0 < scores["JF"] <= 1.0 and scores["fps"] > 0


def test_track_shared_davis_video(davis_root, tmp_path):
    from segtrack.eval.datasets import load_davis

    seq = load_davis(davis_root, sequences=["bear"])[0]
    mask0 = seq.masks[0]
    out = tmp_path / "bear"
    src = davis_root / "JPEGImages" / "480p" / "bear"
    assert main(["track", str(src), "--mask", str(mask0), "--out", str(out), "--quiet"]) == 0
    res = read_label_png(out / "00010.png")
    gt = seq.read_labels(10)
    inter = np.logical_and(res == 1, gt == 1).sum()
    assert inter / np.logical_or(res == 1, gt == 1).sum() > 0.6


def test_track_synthetic_mp4_end_to_end(tmp_path):
    from segtrack.data.synthetic import make_video, write_video

    video = make_video(11, num_objects=2, num_frames=15, occlusion=False, speed=0.01)
    root = write_video(video, tmp_path / "ds", name="clip", as_mp4=True)
    first = root / "Annotations/480p/clip/00000.png"
    out = tmp_path / "out"
    rc = main(["track", str(root / "clip.mp4"), "--mask", str(first), "--out", str(out),
               "--quiet"])
    assert rc == 0
    masks = sorted(out.glob("*.png"))
    assert [m.stem for m in masks] == [f"{t:05d}" for t in range(15)]  # video: index names
    for k in (1, 2):
        res = read_label_png(masks[-1]) == k
        gt = video.frame(14)[1] == k
        assert np.logical_and(res, gt).sum() / np.logical_or(res, gt).sum() > 0.5
    boxes = json.loads((out / "boxes.json").read_text())
    assert set(boxes["frames"][-1]["objects"]) == {"1", "2"}


def test_demo_writes_overlay_and_masks(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert str(out / "overlay.mp4") in text
    assert len(list((out / "masks").glob("*.png"))) == 60
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    cap.release()
    iou = float(text.split("mean IoU ")[1].split()[0])
    assert iou > 0.7
