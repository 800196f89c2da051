"""Make README's workbench screenshot (docs/img/workbench.png) from DAVIS bear.

Starts the workbench on ``<davis>/JPEGImages/480p/bear``, imports the first frame's ground-truth
mask as object 1 ("bear"), tracks it forward with ``--method`` (default: ``auto``, the page's
default), goes to ``--frame``, exports, and saves a screenshot of the page in headless chromium::

    python3 scripts/workbench_screenshot.py --davis ../shared/data/davis2016-train
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--davis", default="../shared/data/davis2016-train", help="DAVIS-2016 root")
    ap.add_argument("--sequence", default="bear", help="sequence to show")
    ap.add_argument("--method", default="auto", help="tracking method")
    ap.add_argument("--frame", type=int, default=40, help="frame to show (counted from 1)")
    ap.add_argument("--out", default="docs/img/workbench.png", help="screenshot file")
    args = ap.parse_args()

    from segtrack.web.app import create_app, serve_in_background
    from segtrack.web.project import Project

    root = Path(args.davis)
    frames = root / "JPEGImages" / "480p" / args.sequence
    gt = sorted((root / "Annotations" / "480p" / args.sequence).glob("*.png"))[0]
    work = Path(tempfile.mkdtemp(prefix="segtrack-shot-"))
    try:
        proj = Project(work / "proj", allow=[frames.parent])
        sid = proj.create_session(frames, name=args.sequence)["id"]
        with serve_in_background(create_app(proj, start_session=sid)) as url:
            shot(url, sid, gt, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def shot(url: str, sid: str, gt: Path, args: argparse.Namespace) -> None:
    """Import the first mask, track, export and save the screenshot."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 820})
        page.goto(url)
        page.wait_for_selector("body[data-frame='0']", timeout=20_000)
        page.evaluate("""async ([sid, png]) => {
            await fetch(`/api/sessions/${sid}/import`, {method: "POST",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({index: 0, png, name: "00000.png"})});
            const r = await fetch(`/api/sessions/${sid}/objects/1`, {method: "PATCH",
              headers: {"Content-Type": "application/json"},
              body: JSON.stringify({name: "bear"})});
            return r.status; }""", [sid, base64.b64encode(gt.read_bytes()).decode()])
        page.reload()
        page.wait_for_selector("#objects .item[data-object='1']", timeout=20_000)
        page.select_option("#method", args.method)
        page.uncheck("#follow")
        page.click("#track-fwd")
        page.wait_for_selector("body[data-jobs-finished='1']", timeout=600_000)
        page.fill("#frame-input", str(args.frame))
        page.keyboard.press("Enter")
        page.wait_for_selector(f"body[data-frame='{args.frame - 1}']")
        page.click("#export-btn")
        page.wait_for_function("(document.body.dataset.exported || '').includes('overlay')",
                               timeout=600_000)
        page.wait_for_timeout(500)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        print(json.dumps({"screenshot": str(out), "job": page.inner_text("#job-text")}))
        browser.close()


if __name__ == "__main__":
    raise SystemExit(main())
