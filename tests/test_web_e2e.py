"""End-to-end test of the workbench (issue 8) in a real headless browser.

Debian's ``chromium`` (``/usr/bin/chromium``, installed with apt; no browser download) is driven
by Playwright's Python API against a real uvicorn server on a free local port: open a frame
folder -> draw a box -> track with ``flow`` -> erase part of the mask on a later frame and
re-propagate -> rename in a second tab -> export -> upload frames with the file picker.
Screenshots of each step are written to ``tmp_path/screenshots`` and, when the environment
variable ``SEGTRACK_TEST_ARTIFACTS`` names a folder, copied there (CI keeps that folder as the
test artifacts). Skipped cleanly when playwright, fastapi/uvicorn or chromium is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian chromium not installed (apt-get install chromium)", allow_module_level=True)

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    from segtrack.web.app import create_app

    gts = _write_clip(tmp_path / "data" / "clip")
    app = create_app(tmp_path / "proj", allow=[tmp_path / "data"])
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t_end = time.time() + 10
    while not srv.started and time.time() < t_end:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    yield {"url": f"http://127.0.0.1:{port}/", "app": app, "gts": gts,
           "clip": tmp_path / "data" / "clip"}
    srv.should_exit = True
    th.join(timeout=10)


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


def test_open_box_track_correct_export(server, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    from segtrack import track_video
    from segtrack.io import read_image

    proj = server["app"].state.project
    gts = server["gts"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = None
        try:
            ctx = browser.new_context(viewport={"width": 1200, "height": 760})
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server["url"])
            page.wait_for_selector("body[data-ready='1']", timeout=10_000)

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
            page2 = ctx.new_page()
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
        except BaseException:
            if page is not None:  # keep what the page showed when it failed
                page.screenshot(path=str(shots / "failure.png"))
            _keep(shots)
            raise
        finally:
            browser.close()

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
