"""Drive the workbench in headless chromium on a DAVIS sequence: mask on frame 0 (the DAVIS
annotation, painted into the page's mask layer), track forward, report the job's fps;
optionally save a screenshot mid-tracking.

usage: python3 scripts/bench_workbench.py SEQ METHOD REPEATS [SCREENSHOT.png]
"""

import base64
import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from segtrack.web.app import create_app, serve_in_background

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"
seq, method, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
shot = sys.argv[4] if len(sys.argv) > 4 else None
proj = Path(tempfile.mkdtemp()) / "proj"
app = create_app(proj, allow=[DAVIS])
server = serve_in_background(app)
url = server.__enter__()
gt = base64.b64encode((DAVIS / "Annotations/480p" / seq / "00000.png").read_bytes()).decode()
with sync_playwright() as pw:
    b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = b.new_page(viewport={"width": 1280, "height": 720})
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    page.fill("#path", str(DAVIS / "JPEGImages/480p" / seq))
    page.click("#open-btn")
    page.wait_for_selector("body[data-frame='0']")
    page.click("#new-object")
    page.wait_for_selector("#objects .item[data-object='1']")
    # the DAVIS mask, sent as the page's paint tool sends a painted mask
    page.evaluate(
        """async (gt) => { const S = window.segtrack;
      await fetch(`/api/sessions/${S.session.id}/annotations/1/0`, {method: 'PUT',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({mask_png: gt})}); }""",
        gt,
    )
    page.reload()
    page.wait_for_selector("body[data-frame='0']")
    page.select_option("#method", method)
    import os

    if os.environ.get("NOFOLLOW"):
        page.uncheck("#follow")
    for r in range(reps):
        page.eval_on_selector(
            "#scrub", "e => { e.value = 0; e.dispatchEvent(new Event('input')); }"
        )
        page.wait_for_selector("body[data-frame='0']")
        page.click("#track-fwd")
        if shot and r == 0:
            page.wait_for_function(
                "document.querySelector('#progress').value"
                " >= 0.55 * document.querySelector('#progress').max",
                timeout=600_000,
            )
            page.click(".tool[data-tool='view']")
            page.screenshot(path=shot)
        page.wait_for_selector(f"body[data-jobs-finished='{r + 1}']", timeout=600_000)
        st = app.state.jobs.jobs[
            max(app.state.jobs.jobs, key=lambda k: app.state.jobs.jobs[k].started_at)
        ].status()
        print(
            json.dumps(
                {
                    k: st[k]
                    for k in (
                        "method",
                        "state",
                        "done",
                        "wall_seconds",
                        "track_seconds",
                        "fps",
                        "track_fps",
                    )
                }
            ),
            flush=True,
        )
    b.close()
server.__exit__(None, None, None)
