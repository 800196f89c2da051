"""End-to-end test of the workbench (issue 8) in a real headless browser.

Debian's ``chromium`` (``/usr/bin/chromium``, installed with apt; no browser download) is driven
by Playwright's Python API against a real uvicorn server on a free local port: open a frame
folder -> draw a box -> track with ``flow`` -> erase part of the mask on a later frame and
re-propagate -> rename in a second tab -> export -> upload frames with the file picker.
Screenshots of each step are written to ``tmp_path/screenshots`` and, when the environment
variable ``SEGTRACK_TEST_ARTIFACTS`` names a folder, copied there (CI keeps that folder as the
test artifacts). Skipped cleanly when playwright, fastapi/uvicorn or chromium is missing.

``test_click_to_segment`` clicks on DAVIS bear with the Click tool (positive, right-click and
Shift+click negative points, Esc) and draws a box for the box tool's mask preview; it needs the
DAVIS data beside the repository and the committed click-to-segment weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import deepest_point

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian chromium not installed (apt-get install chromium)", allow_module_level=True)

from segtrack.interactive.segmenter import default_weights  # noqa: E402

CLICKSEG = default_weights()  # the committed click-to-segment weights
MIN_IOU = 0.7
needs_clickseg = pytest.mark.skipif(not CLICKSEG.is_file(),
                                    reason=f"click-to-segment weights {CLICKSEG} not committed")

N, H, W = 16, 120, 200
X0, Y0, SIDE, STEP = 30, 35, 44, 4  # the object: a textured square moving right STEP px/frame


def _write_clip(folder: Path) -> list[np.ndarray]:
    """N textured frames with a square moving right; returns the ground-truth masks."""
    import cv2

    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 1.5)
    tex = rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
    tex[..., 0] = 255 - tex[..., 0] // 4  # reddish, unlike the background
    folder.mkdir(parents=True)
    gts = []
    for t in range(N):
        img = bg.copy()
        x = X0 + STEP * t
        img[Y0:Y0 + SIDE, x:x + SIDE] = tex
        cv2.imwrite(str(folder / f"{t:05d}.png"), img[..., ::-1])
        gt = np.zeros((H, W), bool)
        gt[Y0:Y0 + SIDE, x:x + SIDE] = True
        gts.append(gt)
    return gts


def _serving(app):
    """A uvicorn server of ``app`` on a free local port, in a thread; yields its URL."""
    from segtrack.web.app import serve_in_background

    return serve_in_background(app)


@pytest.fixture
def server(tmp_path):
    from segtrack.web.app import create_app

    gts = _write_clip(tmp_path / "data" / "clip")
    # no click-to-segment weights: the box tool keeps the filled box, as without them
    app = create_app(tmp_path / "proj", allow=[tmp_path / "data"],
                     segment_weights=str(tmp_path / "no-clickseg.pt"))
    with _serving(app) as url:
        yield {"url": url, "app": app, "gts": gts, "clip": tmp_path / "data" / "clip"}


def _keep(shots: Path) -> None:
    """Copy the screenshots to $SEGTRACK_TEST_ARTIFACTS/workbench-e2e when that is set."""
    keep = os.environ.get("SEGTRACK_TEST_ARTIFACTS")
    if keep:
        dest = Path(keep) / "workbench-e2e"
        dest.mkdir(parents=True, exist_ok=True)
        for p in shots.glob("*.png"):
            shutil.copy2(p, dest / p.name)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


@contextlib.contextmanager
def _page(url: str, shots: Path):
    """A headless chromium page on ``url`` once the workbench is ready, and the list of page
    errors; on failure a screenshot of what the page showed is kept with ``shots``."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = None
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 760}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=10_000)
            yield page, errors
        except BaseException:
            if page is not None:  # keep what the page showed when it failed
                page.screenshot(path=str(shots / "failure.png"))
            _keep(shots)
            raise
        finally:
            browser.close()


def test_open_box_track_correct_export(server, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    from segtrack import track_video
    from segtrack.io import read_image

    proj = server["app"].state.project
    gts = server["gts"]
    with _page(server["url"], shots) as (page, errors):
        # open the frame folder by path
        page.fill("#path", str(server["clip"]))
        page.click("#open-btn")
        page.wait_for_selector("body[data-frame='0']", timeout=10_000)
        assert f"{N} frames" in page.inner_text("#session-name")
        page.screenshot(path=str(shots / "01-open.png"))

        # go to frame 4, new object, draw its box
        page.click("#view")
        for _ in range(4):
            page.keyboard.press("ArrowRight")
        page.wait_for_selector("body[data-frame='4']")
        page.click("#new-object")
        page.wait_for_selector("#objects .item[data-object='1']")
        page.click(".tool[data-tool='box']")
        rect = page.locator("#view").bounding_box()
        s = rect["width"] / W
        x = X0 + STEP * 4
        page.mouse.move(rect["x"] + x * s, rect["y"] + Y0 * s)
        page.mouse.down()
        page.mouse.move(rect["x"] + (x + SIDE / 2) * s, rect["y"] + (Y0 + SIDE / 2) * s)
        page.mouse.move(rect["x"] + (x + SIDE) * s, rect["y"] + (Y0 + SIDE) * s)
        page.mouse.up()
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('box of object 1')")
        assert "filled box" in page.inner_text("#status")
        sid = page.evaluate("window.segtrack.session.id")
        s0 = proj.load(sid)
        assert s0["keyframes"]["1"]["4"]["type"] == "box"
        assert _iou(proj.read_mask(sid, 1, 4), gts[4]) > 0.9
        page.screenshot(path=str(shots / "02-box.png"))

        # track forward and backward with flow
        page.select_option("#method", "flow")
        page.click("#track-both")
        page.wait_for_selector("body[data-jobs-finished='1']", timeout=30_000)
        assert page.get_attribute("body", "data-last-job") == "done"
        assert "done" in page.inner_text("#job-text")
        page.screenshot(path=str(shots / "03-tracked.png"))
        # the page's masks are those of the library, run forward and on reversed frames
        assert _iou(proj.read_mask(sid, 1, 3), gts[3]) > 0.8
        assert _iou(proj.read_mask(sid, 1, 5), gts[5]) > 0.8
        box = proj.load(sid)["keyframes"]["1"]["4"]["box"]
        frames = [read_image(server["clip"] / f"{t:05d}.png") for t in range(N)]
        for seq, order in ((frames[4:], range(4, N)), (frames[4::-1], range(4, -1, -1))):
            for res, t in zip(track_video(seq, box=box, method="flow"), order):
                assert np.array_equal(proj.read_mask(sid, 1, t), res.labels == 1), t
        before = proj.read_mask(sid, 1, 14).copy()

        # correct frame 10: erase the right half of the object, re-propagate forward
        page.click(".tool[data-tool='view']")
        page.eval_on_selector(  # drag the scrubber to frame 10
            "#scrub", "e => { e.value = 10; e.dispatchEvent(new Event('input')); }")
        page.wait_for_selector("body[data-frame='10']")
        pre = proj.read_mask(sid, 1, 10).copy()
        page.click(".tool[data-tool='erase']")
        page.eval_on_selector(
            "#brush", "e => { e.value = 30; e.dispatchEvent(new Event('input')); }")
        x = X0 + STEP * 10
        xr = x + SIDE * 0.75
        page.mouse.move(rect["x"] + xr * s, rect["y"] + (Y0 - 8) * s)
        page.mouse.down()
        for k in range(1, 9):
            page.mouse.move(rect["x"] + xr * s, rect["y"] + (Y0 - 8 + k * (SIDE + 16) / 8) * s)
        page.mouse.up()
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('mask of object 1')")
        corrected = proj.read_mask(sid, 1, 10)
        assert proj.load(sid)["keyframes"]["1"]["10"]["type"] == "mask"
        c0, c1 = int(xr - 15), int(xr + 15)  # the 30 px wide vertical stroke at xr
        assert np.array_equal(corrected[:, : c0 - 1], pre[:, : c0 - 1])  # left part kept
        assert pre[:, c0 + 1: c1 - 1].any() and not corrected[:, c0 + 1: c1 - 1].any()
        assert not (corrected & ~pre).any()  # erasing adds nothing
        early = proj.read_mask(sid, 1, 2).copy()
        page.click("#track-fwd")
        page.wait_for_selector("body[data-jobs-finished='2']", timeout=30_000)
        assert page.get_attribute("body", "data-last-job") == "done"
        page.screenshot(path=str(shots / "04-corrected.png"))
        after = proj.read_mask(sid, 1, 14)
        assert after.sum() < 0.8 * before.sum()  # the correction propagated forward
        assert np.array_equal(proj.read_mask(sid, 1, 2), early)  # frames before: untouched

        # a second tab renames the object; the first tab shows the new name
        page2 = page.context.new_page()
        page2.goto(server["url"] + f"?session={sid}")
        page2.wait_for_selector("#objects .item[data-object='1']")
        page2.once("dialog", lambda d: d.accept("bear cub"))
        page2.click("#objects .item[data-object='1'] .rename")
        page2.wait_for_function(
            "document.querySelector('#objects').textContent.includes('bear cub')")
        page.wait_for_function(
            "document.querySelector('#objects').textContent.includes('bear cub')",
            timeout=8_000)
        page2.close()

        # export everything
        page.click("#export-btn")
        page.wait_for_function("(document.body.dataset.exported || '').includes('coco')",
                               timeout=30_000)
        page.screenshot(path=str(shots / "05-exported.png"))

        # upload three frames from disk through the file picker: a new session opens
        files = [str(server["clip"] / f"{t:05d}.png") for t in range(3)]
        page.set_input_files("#upload-files", files)
        page.click("#upload-btn")
        page.wait_for_function(
            "document.querySelector('#session-name').textContent.includes('3 frames')")
        up_sid = page.evaluate("window.segtrack.session.id")
        assert up_sid != sid
        assert sorted(p.name for p in Path(proj.load(up_sid)["source"]).iterdir()) == [
            "00000.png", "00001.png", "00002.png"]
        assert not errors, errors

    out = proj.session_dir(sid) / "export"
    from segtrack.io import read_label_png
    from segtrack.io.coco_rle import decode

    pngs = sorted((out / "davis").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{t:05d}" for t in range(N)]
    for t in (0, 4, 10, 15):
        lab = read_label_png(out / "davis" / f"{t:05d}.png")
        assert np.array_equal(lab == 1, proj.read_mask(sid, 1, t))
    boxes = json.loads((out / "boxes.json").read_text())
    assert len(boxes["frames"]) == N
    x0, y0, bw, bh = boxes["frames"][4]["objects"]["1"]["box"]
    assert abs(x0 - (X0 + 4 * STEP)) <= 1 and abs(bw - SIDE) <= 1
    coco = json.loads((out / "coco_rle.json").read_text())
    assert coco["categories"] == [{"id": 1, "name": "bear cub"}]
    ann = next(a for a in coco["annotations"] if a["image_id"] == 11)
    assert np.array_equal(decode(ann["segmentation"]), proj.read_mask(sid, 1, 10))
    assert (out / "overlay.mp4").stat().st_size > 1000 or (out / "overlay.avi").is_file()

    names = sorted(p.name for p in shots.glob("*.png"))
    assert names == ["01-open.png", "02-box.png", "03-tracked.png", "04-corrected.png",
                     "05-exported.png"]
    _keep(shots)


# -- click-to-segment ---------------------------------------------------------------------------
BH, BW = 480, 854  # DAVIS 480p
# opaque pixels of the label overlay the page shows (background is transparent)
LABEL_AREA = """() => {
  const img = window.segtrack.labelsImg;
  if (!img.complete || !img.naturalWidth) return -1;
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const x = c.getContext("2d");
  x.drawImage(img, 0, 0);
  const d = x.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let p = 3; p < d.length; p += 4) if (d[p] > 0) n++;
  return n;
}"""
PIXEL = """([x, y]) => Array.from(document.querySelector("#view").getContext("2d")
  .getImageData(Math.round(x), Math.round(y), 1, 1).data)"""


def _centre(gt: np.ndarray) -> tuple[float, float]:
    return deepest_point(gt)


@pytest.fixture
def bear_server(bear_clip, tmp_path):
    from segtrack.web.app import create_app

    clip, gts = bear_clip
    app = create_app(tmp_path / "proj", allow=[tmp_path / "data"],
                     segment_weights=str(CLICKSEG))
    with _serving(app) as url:
        yield {"url": url, "app": app, "gts": gts, "clip": clip}


@needs_clickseg
def test_click_to_segment(bear_server, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    proj = bear_server["app"].state.project
    gts = bear_server["gts"]
    with _page(bear_server["url"], shots) as (page, errors):
        page.fill("#path", str(bear_server["clip"]))
        page.click("#open-btn")
        page.wait_for_selector("body[data-frame='0']", timeout=10_000)
        sid = page.evaluate("window.segtrack.session.id")
        page.click(".tool[data-tool='click']")
        rect = page.locator("#view").bounding_box()
        s = rect["width"] / BW

        def at(x: float, y: float) -> tuple[float, float]:
            return rect["x"] + (x + 0.5) * s, rect["y"] + (y + 0.5) * s

        # one click at the bear's centre: a new object and its mask, shown at once
        cx, cy = _centre(gts[0])
        page.mouse.click(*at(cx, cy))
        page.wait_for_selector("body[data-segments='1']", timeout=60_000)
        page.wait_for_selector("#objects .item.selected[data-object='1']")
        m = proj.read_mask(sid, 1, 0)
        assert m is not None and m.any()
        assert _iou(m, gts[0]) > MIN_IOU
        assert proj.load(sid)["keyframes"]["1"]["0"]["type"] == "mask"
        page.wait_for_function(f"({LABEL_AREA})() === {int(m.sum())}", timeout=10_000)
        assert page.get_attribute("body", "data-clicks") == "1"
        r, g, b, _ = page.evaluate(PIXEL, [cx, cy])
        assert g > 150 and r < 120 and b < 150  # a green dot where the click was
        page.screenshot(path=str(shots / "10-click.png"))

        # right click on the background: a negative click; Shift+click: another one
        neg = (700.0, 100.0)
        assert not gts[0][int(neg[1]), int(neg[0])]
        page.mouse.click(*at(*neg), button="right")
        page.wait_for_selector("body[data-segments='2']", timeout=30_000)
        assert page.get_attribute("body", "data-clicks") == "2"
        r, g, b, _ = page.evaluate(PIXEL, list(neg))
        assert r > 150 and g < 120  # a red dot
        page.keyboard.down("Shift")
        page.mouse.click(*at(60.0, 440.0))
        page.keyboard.up("Shift")
        page.wait_for_selector("body[data-segments='3']", timeout=30_000)
        clicks = page.evaluate("window.segtrack.clicks[`${window.segtrack.session.id}/1/0`]")
        assert clicks["labels"] == [1, 0, 0] and len(clicks["points"]) == 3
        m = proj.read_mask(sid, 1, 0)
        assert m.any() and not m[100, 700] and not m[440, 60]
        assert _iou(m, gts[0]) > MIN_IOU
        page.wait_for_function(f"({LABEL_AREA})() === {int(m.sum())}", timeout=10_000)
        page.screenshot(path=str(shots / "11-negative.png"))
        page.keyboard.press("Escape")
        page.wait_for_selector("body[data-clicks='0']")
        assert page.is_disabled("#clear-clicks")

        # the box tool on frame 1: the box's mask is shown at once, kept as a box keyframe
        page.keyboard.press("ArrowRight")
        page.wait_for_selector("body[data-frame='1']")
        page.click(".tool[data-tool='box']")
        ys, xs = np.nonzero(gts[1])
        x0, y0, x1, y1 = xs.min() - 4, ys.min() - 4, xs.max() + 5, ys.max() + 5
        page.mouse.move(*at(x0, y0))
        page.mouse.down()
        page.mouse.move(*at((x0 + x1) / 2, (y0 + y1) / 2))
        page.mouse.move(*at(x1, y1))
        page.mouse.up()
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('box of object 1')")
        page.wait_for_selector("body[data-segments='4']", timeout=30_000)
        kf = proj.load(sid)["keyframes"]["1"]["1"]
        assert kf["type"] == "box" and abs(kf["box"][0] - x0) < 2
        mb = proj.read_mask(sid, 1, 1)
        assert mb.sum() < 0.95 * kf["box"][2] * kf["box"][3]  # not the filled box
        assert _iou(mb, gts[1]) > MIN_IOU
        page.wait_for_function(f"({LABEL_AREA})() === {int(mb.sum())}", timeout=10_000)
        page.screenshot(path=str(shots / "12-box-preview.png"))

        # clicks on a frame with a mask correct it; the Clear button forgets them
        page.click(".tool[data-tool='click']")
        page.mouse.click(*at(*_centre(gts[1])))
        page.wait_for_selector("body[data-segments='5']", timeout=30_000)
        assert "corrected" in page.inner_text("#status")
        assert proj.load(sid)["keyframes"]["1"]["1"]["type"] == "mask"
        page.click("#clear-clicks")
        page.wait_for_selector("body[data-clicks='0']")
        assert not errors, errors
    _keep(shots)


# -- the annotation tools, and what a user meets first ------------------------------------------
@pytest.fixture
def started(tmp_path):
    """``segtrack serve CLIP``: the server started on a video; the page is opened bare."""
    from segtrack.web.app import create_app
    from segtrack.web.project import Project

    gts = _write_clip(tmp_path / "data" / "clip")
    proj = Project(tmp_path / "proj", allow=[tmp_path / "data"])
    sid = proj.create_session(tmp_path / "data" / "clip")["id"]
    app = create_app(proj, segment_weights=str(tmp_path / "no-clickseg.pt"), start_session=sid)
    with _serving(app) as url:
        yield {"url": url, "app": app, "gts": gts, "clip": tmp_path / "data" / "clip",
               "sid": sid, "proj": proj, "tmp": tmp_path}


def _to_page(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) of the view (zoomed or not)."""
    r = page.locator("#view").bounding_box()
    return r["x"] + x * r["width"] / W, r["y"] + y * r["height"] / H


def _drag(page, p0, p1, steps: int = 3) -> None:
    page.mouse.move(*_to_page(page, *p0))
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(*_to_page(page, p0[0] + (p1[0] - p0[0]) * k / steps,
                                  p0[1] + (p1[1] - p0[1]) * k / steps))
    page.mouse.up()


def test_annotation_tools(started, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    proj, sid, gts = started["proj"], started["sid"], started["gts"]
    with _page(started["url"], shots) as (page, errors):  # the plain URL, no ?session=
        page.wait_for_selector("body[data-frame='0']", timeout=10_000)
        assert page.evaluate("window.segtrack.session.id") == sid
        assert f"{N} frames" in page.inner_text("#session-name")
        # frames are counted from 1, as in the header
        assert page.input_value("#frame-input") == "1"
        assert page.inner_text("#frame-label").startswith(f"of {N}")
        # the method selector defaults to the best method for the init and says what each is
        assert page.input_value("#method") == "auto"
        options = page.eval_on_selector_all("#method option", "os => os.map(o => o.textContent)")
        assert options[0].startswith("auto") and len(options) > 5
        assert any(o.startswith("rts") and "J&F" in o and "flow" in o for o in options), options
        assert "from a box" in page.inner_text("#method-info")

        # a quick box at once on a session without objects: the box is not lost
        page.click(".tool[data-tool='box']")
        x = X0
        _drag(page, (x, Y0), (x + SIDE, Y0 + SIDE), steps=1)
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('box of object 1')")
        assert proj.load(sid)["keyframes"]["1"]["0"]["type"] == "box"
        assert _iou(proj.read_mask(sid, 1, 0), gts[0]) > 0.9
        box_mask = proj.read_mask(sid, 1, 0).copy()

        # a brush stroke, undone and redone (buttons and keys)
        page.click(".tool[data-tool='paint']")
        page.eval_on_selector("#brush",
                              "e => { e.value = 10; e.dispatchEvent(new Event('input')); }")
        _drag(page, (120, 90), (180, 90), steps=6)
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('mask of object 1')")
        painted = proj.read_mask(sid, 1, 0).copy()
        assert painted[90, 150] and not box_mask[90, 150]
        page.wait_for_selector("#undo:not([disabled])")
        page.click("#undo")
        page.wait_for_selector("body[data-undos='1']")
        assert np.array_equal(proj.read_mask(sid, 1, 0), box_mask)
        assert "undid the paint" in page.inner_text("#status")
        page.click("#view", position={"x": 5, "y": 5}, button="middle")  # focus the page
        page.keyboard.press("Control+Shift+Z")
        page.wait_for_selector("body[data-undos='2']")
        assert np.array_equal(proj.read_mask(sid, 1, 0), painted)
        page.keyboard.press("Control+z")
        page.wait_for_selector("body[data-undos='3']")
        assert np.array_equal(proj.read_mask(sid, 1, 0), box_mask)
        page.screenshot(path=str(shots / "10-undo.png"))

        # import a mask PNG (DAVIS palette: object 2) on frame 6 through the file picker
        page.click(".tool[data-tool='view']")
        page.fill("#frame-input", "7")
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-frame='6']")
        from PIL import Image

        from segtrack.io import davis_palette

        lab = np.zeros((H, W), np.uint8)
        lab[10:40, 140:190] = 2
        img = Image.fromarray(lab, mode="P")
        img.putpalette(davis_palette().tobytes())
        png = tmp_path / "00006.png"
        img.save(png)
        page.set_input_files("#import-file", str(png))
        page.wait_for_selector("body[data-imports='1']")
        assert "imported '00006.png' on frame 7" in page.inner_text("#status")
        assert np.array_equal(proj.read_mask(sid, 2, 6), lab == 2)
        page.wait_for_selector("#objects .item[data-object='2']")

        # keys: object by number, next/previous keyframe, outline view, zoom, play/pause
        page.keyboard.press("1")
        page.wait_for_function("window.segtrack.selected === 1")
        page.keyboard.press(",")  # object 1's keyframe on frame 0
        page.wait_for_selector("body[data-frame='0']")
        page.keyboard.press("2")
        page.keyboard.press(".")  # object 2's keyframe on frame 6
        page.wait_for_selector("body[data-frame='6']")
        inside = (165, 25)  # inside object 2's imported mask, away from its edge
        tinted = page.evaluate(PIXEL, list(inside))
        page.keyboard.press("o")
        page.wait_for_function("window.segtrack.outline === true")
        plain = page.evaluate(PIXEL, list(inside))
        frame = np.array(Image.open(started["clip"] / "00006.png").convert("RGB"))
        assert np.abs(np.array(plain[:3]) - frame[inside[1], inside[0]]).max() <= 2
        assert np.abs(np.array(tinted[:3]) - frame[inside[1], inside[0]]).max() > 10
        edge = page.evaluate(PIXEL, [140, 25])  # the outline in object 2's colour
        assert tuple(edge[:3]) == tuple(int(v) for v in davis_palette()[2])
        page.keyboard.press("o")
        page.eval_on_selector("#opacity",  # opacity 0: the frame as it is
                              "e => { e.value = 0; e.dispatchEvent(new Event('input')); }")
        clear = page.evaluate(PIXEL, list(inside))
        assert np.abs(np.array(clear[:3]) - frame[inside[1], inside[0]]).max() <= 2
        page.eval_on_selector("#opacity",
                              "e => { e.value = 50; e.dispatchEvent(new Event('input')); }")
        page.mouse.move(*_to_page(page, 100, 60))
        page.mouse.wheel(0, -300)
        page.wait_for_function("parseFloat(document.body.dataset.zoom) > 1.2")
        before = page.evaluate("window.segtrack.panX")
        page.mouse.move(*_to_page(page, 100, 60))  # pan: drag in View
        page.mouse.down()
        page.mouse.move(*_to_page(page, 60, 60))
        page.mouse.up()
        assert page.evaluate("window.segtrack.panX") < before - 20
        page.screenshot(path=str(shots / "11-zoomed.png"))
        page.keyboard.press("0")
        page.wait_for_function("document.body.dataset.zoom === '1.00'")
        page.keyboard.press(" ")
        page.wait_for_selector("body[data-playing='1']")
        page.wait_for_function("+document.body.dataset.frame >= 9", timeout=10_000)
        page.keyboard.press(" ")
        page.wait_for_selector("body[data-playing='0']")
        # the timeline: a click goes to that frame
        r = page.locator("#tracks").bounding_box()
        page.mouse.click(r["x"] + r["width"] * 12.5 / N, r["y"] + 3)
        page.wait_for_selector("body[data-frame='12']")
        # the keyboard help
        page.keyboard.press("?")
        assert page.is_visible("#help") and "undo" in page.inner_text("#help")
        page.keyboard.press("Escape")
        assert not page.is_visible("#help")
        assert not errors, errors
    _keep(shots)


def test_cancel_export_playback_zip_and_delete(started, tmp_path, monkeypatch):
    import zipfile

    shots = tmp_path / "screenshots"
    shots.mkdir()
    proj, sid = started["proj"], started["sid"]
    oid = proj.add_object(sid, "square")["id"]
    proj.set_keyframe(sid, oid, 5, started["gts"][5], box=[X0 + 5 * STEP, Y0, SIDE, SIDE])
    real = proj.read_frame

    def slow(s, i):  # a slow decoder, so that the job can be cancelled half-way
        time.sleep(0.25)
        return real(s, i)

    monkeypatch.setattr(proj, "read_frame", slow)
    with _page(started["url"] + f"?session={sid}", shots) as (page, errors):
        page.wait_for_selector("body[data-frame='0']", timeout=10_000)
        page.fill("#frame-input", "6")
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-frame='5']")
        page.select_option("#method", "flow")
        page.click("#track-both")
        page.wait_for_function("+document.body.dataset.frame >= 8", timeout=20_000)
        page.click("#cancel")
        page.wait_for_selector("body[data-jobs-finished='1']", timeout=20_000)
        assert page.get_attribute("body", "data-last-job") == "cancelled"
        # the view goes back to where the job started, and says where it stopped
        page.wait_for_selector("body[data-frame='5']")
        status = page.inner_text("#status")
        assert "cancelled at frame" in status and "back on frame 6" in status, status
        monkeypatch.setattr(proj, "read_frame", real)

        # export: the overlay plays in the page, everything downloads as one zip
        page.click("#export-btn")
        page.wait_for_function("(document.body.dataset.exported || '').includes('overlay')",
                               timeout=30_000)
        page.wait_for_selector("body[data-overlay='canplay']", timeout=10_000)
        t = page.evaluate("""async () => { const v = document.querySelector('#overlay-video');
            await v.play(); await new Promise(r => setTimeout(r, 600)); return v.currentTime; }""")
        assert t > 0.1, t
        page.screenshot(path=str(shots / "12-overlay.png"))
        with page.expect_download() as dl:
            page.click("#zip-link")
        z = zipfile.ZipFile(dl.value.path())
        names = z.namelist()
        assert "clip/boxes.json" in names and "clip/overlay.mp4" in names
        assert len([n for n in names if n.startswith("clip/davis/")]) == N

        # delete the session from the list
        page.click("#sessions-box summary")
        page.once("dialog", lambda d: d.accept())
        page.click(f"#sessions .item[data-session='{sid}'] .del")
        page.wait_for_function("document.body.dataset.session === ''")
        page.wait_for_function(
            f"!document.querySelector(\"#sessions .item[data-session='{sid}']\")")
        assert not (proj.root / "sessions" / sid).exists()
        assert started["clip"].is_dir() and len(list(started["clip"].iterdir())) == N
        assert page.is_visible("#empty")
        assert not errors, errors
    _keep(shots)
