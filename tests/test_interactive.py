"""Click-to-segment: the automatic clicker, crop geometry, guidance maps, the evaluation
protocol, the trainer, the API and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.cli import main
from segtrack.errors import InputError
from segtrack.eval.interactive import (
    EvalSample,
    evaluate_clicks,
    grabcut_box,
    heldout_photos,
    noc_curve,
)
from segtrack.interactive import check_points, iou, next_click
from segtrack.interactive.crops import crop, guide_maps, paste, region_around, whole_image
from segtrack.interactive.segmenter import default_weights

WEIGHTS = default_weights()


def _disc_image(h=120, w=160, c=(70, 60), r=30):
    """A textured red disc on a grey-green texture and its mask."""
    rng = np.random.default_rng(0)
    img = np.full((h, w, 3), (90, 120, 90), np.uint8)
    img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    m = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r
    img[m] = np.clip(np.array([210, 40, 40]) + rng.integers(-15, 15, (m.sum(), 3)), 0, 255)
    return img, m


# -- clicker ---------------------------------------------------------------------------------
def test_first_click_is_the_deepest_interior_point():
    m = np.zeros((50, 80), bool)
    m[10:31, 20:61] = True  # 21 x 41 rectangle: the deepest points lie on row 20
    c = next_click(m)
    assert c.positive and c.y == 20 and 30 <= c.x <= 50
    assert m[int(c.y), int(c.x)]


def test_next_click_goes_to_the_largest_error():
    gt = np.zeros((60, 60), bool)
    gt[10:50, 10:50] = True
    pred = gt.copy()
    pred[10:50, 30:50] = False  # a 40x20 miss: positive click inside it
    pred[0:5, 0:5] = True  # a small false positive
    c = next_click(gt, pred)
    assert c.positive and 30 <= c.x < 50 and gt[int(c.y), int(c.x)] and not pred[int(c.y),
                                                                                int(c.x)]
    pred2 = gt.copy()
    pred2[52:60, 0:60] = True  # only a false positive left: negative click on it
    c2 = next_click(gt, pred2)
    assert not c2.positive and c2.y >= 52
    assert next_click(gt, gt) is None


def test_training_clicks_are_random_but_stay_in_the_region():
    gt = np.zeros((60, 60), bool)
    gt[5:55, 5:55] = True
    rng = np.random.default_rng(0)
    clicks = {(c.x, c.y) for c in (next_click(gt, None, rng, spread=0.5) for _ in range(20))}
    assert len(clicks) > 5
    assert all(gt[int(y), int(x)] for x, y in clicks)


# -- crops and guidance --------------------------------------------------------------------------
def test_crop_and_paste_round_trip_and_coordinates():
    img, m = _disc_image()
    r = region_around(40, 30, 100, 90, 1.4)
    S = 96
    c = crop(m, r, S, fill=0.0)
    assert c.dtype == np.float32 and c.shape == (S, S)
    back = paste(c, r, m.shape) > 0.5
    assert iou(back, m) > 0.9
    # the disc centre maps to the crop where the cropped mask is centred
    cx, cy = r.to_crop(70, 60, S)
    ys, xs = np.nonzero(c > 0.5)
    assert abs(xs.mean() - cx) < 1.5 and abs(ys.mean() - cy) < 1.5
    # outside the frame: grey fill
    w = whole_image(img.shape)
    assert w.side == 160 and w.y0 == -20
    assert (crop(img, w, 80)[0] == 114).all()


def test_guide_maps_draw_clicks_and_box():
    g = guide_maps(64, [(10, 20, True), (40, 40, False)], 3, None, (5, 6, 30, 50))
    assert g.shape == (4, 64, 64)
    assert g[0, 20, 10] == 1 and g[0, 20, 14] == 0 and g[1, 40, 40] == 1 and g[1, 20, 10] == 0
    assert g[2].sum() == 0
    assert g[3, 6, 5] == 1 and g[3, 49, 29] == 1 and g[3, 50, 29] == 0 and g[3, 6, 30] == 0


def test_check_points_rejects_bad_clicks():
    assert check_points([(3, 4)], None, (10, 10)) == [(3.0, 4.0, True)]
    with pytest.raises(InputError, match="outside the 10x10 image"):
        check_points([(30, 4)], None, (10, 10))
    with pytest.raises(InputError, match="label"):
        check_points([(3, 4)], [2], (10, 10))
    with pytest.raises(InputError, match="one label per"):
        check_points([(3, 4), (5, 5)], [1], (10, 10))


# -- evaluation protocol -----------------------------------------------------------------------
def test_noc_counts_clicks_until_the_threshold():
    img, m = _disc_image()
    sample = EvalSample("disc", img, m)
    calls = []

    def third_click_exact(image, pts, labs, prev):
        calls.append(len(pts))
        if len(pts) < 3:
            return np.zeros(m.shape, np.float32) + 0.0 * m
        return m.astype(np.float32)

    ious, _ = noc_curve(sample, third_click_exact)
    assert ious == [0.0, 0.0, 1.0] and calls == [1, 2, 3]
    res = evaluate_clicks([sample], third_click_exact)
    assert res["NoC@85"] == 3 and res["NoC@90"] == 3 and res["NoF@90"] == 0

    def never(image, pts, labs, prev):
        return np.zeros(m.shape, np.float32)

    res = evaluate_clicks([sample], never, max_clicks=5)
    assert res["NoC@90"] == 5 and res["NoF@90"] == 1


def test_grabcut_baseline_finds_a_disc():
    img, m = _disc_image()
    g = grabcut_box(img, (38, 28, 65, 65))
    assert iou(g, m) > 0.8


def test_heldout_split_is_disjoint_and_per_kind():
    from segtrack.data.static import StaticSample

    s = [StaticSample(Path(f"/x/{k}{i:02d}_1.jpg"), Path("/m"), k, "coco") for k in ("cat", "dog")
         for i in range(10)]
    train, held = heldout_photos(s)
    assert len(held) == 4 and len(train) == 16
    assert {q.kind for q in held} == {"cat", "dog"}
    assert not {q.image for q in held} & {q.image for q in train}
    assert heldout_photos(list(reversed(s)))[1] == held  # independent of the listing order


# -- trainer -----------------------------------------------------------------------------------
def _photo_set(root: Path, n: int = 6) -> Path:
    d = root / "photos"
    (d / "images").mkdir(parents=True)
    (d / "masks").mkdir()
    for i in range(n):
        img, m = _disc_image(c=(60 + 5 * i, 60), r=20 + 2 * i)
        cv2.imwrite(str(d / "images" / f"disc{i:02d}_{i}.jpg"), img[..., ::-1])
        cv2.imwrite(str(d / "masks" / f"disc{i:02d}_{i}.png"), m.astype(np.uint8) * 255)
    return d


def test_trainer_runs_resumes_and_writes_a_manifest(tmp_path):
    photos = _photo_set(tmp_path)
    out = tmp_path / "run"
    common = ["train", "clickseg", "--static", str(photos), "--out", str(out),  # no DAVIS
              "--batch", "2", "--size", "96", "--threads", "1", "--quiet"]
    assert main([*common, "--iters", "3", "--stop-at", "2"]) == 0
    doc = json.loads((out / "clickseg.manifest.json").read_text())
    assert doc["photos"] == 5 and doc["photos_held_out"] == 1
    assert doc["iterations"] == 2 and doc["schedule_iterations"] == 3
    assert doc["command"].startswith("segtrack train clickseg")
    assert main([*common, "--iters", "3", "--resume"]) == 0
    doc = json.loads((out / "clickseg.manifest.json").read_text())
    assert doc["iterations"] == 3 and "--resume" not in doc["command"]


# -- API and command line ----------------------------------------------------------------------
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason="click-to-mask weights absent")


@needs_weights
def test_segment_api_box_and_clicks_find_the_disc():
    import segtrack

    img, m = _disc_image()
    assert iou(segtrack.segment(img, box=(38, 28, 65, 65)), m) > 0.85
    assert iou(segtrack.segment(img, points=[(70, 60)]), m) > 0.8
    # a negative click on the background keeps it out
    both = segtrack.segment(img, points=[(70, 60), (140, 100)], labels=[1, 0])
    assert not both[100, 140] and iou(both, m) > 0.8


def test_segment_cli_rejects_bad_input(tmp_path, capsys):
    img, _ = _disc_image()
    p = tmp_path / "img.png"
    cv2.imwrite(str(p), img[..., ::-1])
    out = tmp_path / "m.png"
    cases = [
        (["--out", str(out)], "nothing to segment"),
        (["--point", "500,3", "--out", str(out)], "outside the 160x120 image"),
        (["--point", "5", "--out", str(out)], "expected X,Y"),
        (["--point", "5,5,2", "--out", str(out)], "expected X,Y"),
        (["--box", "1,2,3", "--out", str(out)], "four numbers"),
        (["--point", "5,5", "--out", str(tmp_path / "m.jpg")], "must be a .png"),
        (["--point", "5,5", "--out", str(p)], "refusing to overwrite"),
    ]
    for extra, message in cases:
        assert main(["segment", str(p), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    assert not out.exists()


@needs_weights
def test_segment_cli_writes_the_mask(tmp_path):
    img, m = _disc_image()
    p = tmp_path / "img.png"
    cv2.imwrite(str(p), img[..., ::-1])
    out = tmp_path / "m.png"
    assert main(["segment", str(p), "--box", "38,28,65,65", "--out", str(out)]) == 0
    got = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE) > 127
    assert iou(got, m) > 0.85


def test_box_init_parameter_is_checked():
    import segtrack

    with pytest.raises(InputError, match="box_init"):
        segtrack.load_tracker("flow", box_init="magic")
    with pytest.raises(InputError, match="no box-to-mask step of its own"):
        segtrack.load_tracker("flow", box_init="own")
    img, m = _disc_image()
    t = segtrack.load_tracker("flow", box_init="box")
    pred = t.init(img, box=(38, 28, 65, 65))
    assert pred.mask.sum() == 65 * 65  # the filled box, as asked


@needs_weights
def test_track_from_clicks_and_box_starts_from_the_object(tmp_path):
    import segtrack

    img, m = _disc_image()
    frames = [img, np.roll(img, 2, axis=1)]
    res = list(segtrack.track_video(frames, points=[(70, 60)]))
    assert iou(res[0].labels == 1, m) > 0.8
    res = list(segtrack.track_video(frames, box=(38, 28, 65, 65)))
    assert iou(res[0].labels == 1, m) > 0.85  # not the filled box (IoU 0.67)


def test_onnx_runtime_matches_torch(tmp_path):
    """The click-to-mask network through ONNX Runtime gives torch's probabilities (1e-4)."""
    pytest.importorskip("onnxruntime")
    from segtrack.interactive import Segmenter
    from segtrack.models.clickseg import ClickSegConfig, ClickSegNet, save_clickseg

    net = ClickSegNet(ClickSegConfig(size=96), pretrained=False)
    for p in net.head.parameters():  # away from the all-zero start of the fusion
        p.data.normal_(0, 0.05)
    w = save_clickseg(net, tmp_path / "cs.pt")
    img, _ = _disc_image()
    a = Segmenter(weights=str(w), runtime="torch", edges=False)
    b = Segmenter(weights=str(w), runtime="onnx", edges=False)
    for kw in ({"box": (38, 28, 65, 65)}, {"points": [(70, 60), (140, 100)], "labels": [1, 0]}):
        pa, pb = a.predict(img, **kw), b.predict(img, **kw)
        assert pa.shape == img.shape[:2] and pa.dtype == np.float32
        assert np.abs(pa - pb).max() < 1e-4


def test_track_cli_rejects_bad_clicks(tmp_path, capsys):
    img, _ = _disc_image()
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), img[..., ::-1])
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.zeros((120, 160), np.uint8))
    cases = [
        (["--point", "300,10"], "outside the 160x120 image"),
        (["--point", "1,2,5"], "expected X,Y"),
        (["--mask", str(mask), "--point", "10,10"], "cannot be combined"),
        ([], "--mask, --box or --point"),
    ]
    for extra, message in cases:
        assert main(["track", str(frames), "--out", str(tmp_path / "out"), "--quiet",
                     *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "out").exists()
