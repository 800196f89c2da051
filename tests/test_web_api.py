"""The workbench's HTTP API (issue 8) through FastAPI's TestClient: persistence, concurrent
edits, upload limits and type checks, refused paths, tracking jobs (keyframe boundaries, cancel,
server-sent events), exports (DAVIS PNG, boxes.json, COCO RLE round-trip) and click-to-segment
(input checks without weights; masks on DAVIS bear with the committed click-to-segment
weights)."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import deepest_point

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's notice about httpx vs httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from segtrack.interactive.segmenter import default_weights  # noqa: E402
from segtrack.web.app import create_app, sniff_type  # noqa: E402
from segtrack.web.project import Project  # noqa: E402

CLICKSEG = default_weights()  # the committed click-to-segment weights
MIN_IOU = 0.7
needs_clickseg = pytest.mark.skipif(not CLICKSEG.is_file(),
                                    reason=f"click-to-segment weights {CLICKSEG} not committed")

N, H, W = 10, 60, 80
X0, Y0, SIDE, STEP = 10, 15, 20, 3


def _frames() -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(1)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 2)
    tex = rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
    out = []
    for t in range(N):
        img = bg.copy()
        img[Y0:Y0 + SIDE, X0 + STEP * t: X0 + STEP * t + SIDE] = tex
        out.append(img)
    return out


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def env(tmp_path):
    data = tmp_path / "data"
    clip = data / "clip"
    clip.mkdir(parents=True)
    for t, img in enumerate(_frames()):
        (clip / f"f{t}.png").write_bytes(_png_bytes(img))
    app = create_app(tmp_path / "proj", allow=[data], max_upload_bytes=200_000)
    client = TestClient(app)
    r = client.post("/api/sessions", json={"path": str(clip)})
    assert r.status_code == 200, r.text
    return {"app": app, "client": client, "sid": r.json()["id"], "clip": clip,
            "tmp": tmp_path, "proj": app.state.project}


def _box_object(env, frame: int = 0) -> int:
    c, sid = env["client"], env["sid"]
    oid = c.post(f"/api/sessions/{sid}/objects", json={"name": "sq"}).json()["id"]
    box = [X0 + STEP * frame, Y0, SIDE, SIDE]
    r = c.put(f"/api/sessions/{sid}/annotations/{oid}/{frame}", json={"box": box})
    assert r.status_code == 200 and r.json()["area"] == SIDE * SIDE
    return oid


def _run(env, frame: int, objects: list[int], direction: str = "both") -> dict:
    c, sid = env["client"], env["sid"]
    r = c.post(f"/api/sessions/{sid}/track",
               json={"frame": frame, "objects": objects, "direction": direction,
                     "method": "flow"})
    assert r.status_code == 200, r.text
    env["app"].state.jobs.wait(r.json()["id"], timeout=30)
    return c.get(f"/api/jobs/{r.json()['id']}").json()


# -- sessions, persistence, concurrency ---------------------------------------------------------
def test_session_fields_and_natural_frame_order(env):
    s = env["client"].get(f"/api/sessions/{env['sid']}").json()
    assert (s["num_frames"], s["height"], s["width"]) == (N, H, W)
    assert s["frame_names"][:3] == ["f0", "f1", "f2"] and s["frame_names"][-1] == "f9"
    img = np.array(Image.open(io.BytesIO(
        env["client"].get(f"/api/sessions/{env['sid']}/frames/3").content)))
    assert np.array_equal(img, _frames()[3])
    assert env["client"].get(f"/api/sessions/{env['sid']}/frames/{N}").status_code == 404


def test_reopening_restores_everything(env):
    c, sid = env["client"], env["sid"]
    oid = _box_object(env, frame=2)
    c.patch(f"/api/sessions/{sid}/objects/{oid}", json={"name": "cube", "hidden": True})
    c.patch(f"/api/sessions/{sid}", json={"method": "static"})
    _run(env, 2, [oid], "forward")
    before = np.array(Image.open(io.BytesIO(
        c.get(f"/api/sessions/{sid}/masks/{oid}/2.png").content)))
    # a new server on the same project folder
    c2 = TestClient(create_app(env["tmp"] / "proj"))
    assert [s["id"] for s in c2.get("/api/sessions").json()] == [sid]
    s = c2.get(f"/api/sessions/{sid}").json()
    assert s["objects"][str(oid)] == {"id": oid, "name": "cube", "hidden": True}
    assert s["keyframes"][str(oid)]["2"] == {"type": "box", "box": [16.0, 15.0, 20.0, 20.0]}
    assert s["method"] == "flow"  # the job ran flow and remembered it (the default is "auto")
    assert s["coverage"][str(oid)] == list(range(2, N))
    m = np.array(Image.open(io.BytesIO(c2.get(f"/api/sessions/{sid}/masks/{oid}/2.png").content)))
    assert np.array_equal(m, before)  # the box's mask, as it was before reopening
    assert abs(int(m.astype(bool).sum()) - SIDE * SIDE) < SIDE * SIDE // 4  # about the square


def _add_many(root: str, sid: str, n: int) -> None:
    p = Project(root)
    for i in range(n):
        p.add_object(sid, f"p{os.getpid()}-{i}")


def test_concurrent_writers_do_not_corrupt_the_session(env):
    """Two processes and two threads add objects at once: none is lost, ids stay unique."""
    import threading

    root, sid = str(env["tmp"] / "proj"), env["sid"]
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        pytest.skip("fork start method unavailable")
    procs = [ctx.Process(target=_add_many, args=(root, sid, 15)) for _ in range(2)]
    threads = [threading.Thread(target=_add_many, args=(root, sid, 15)) for _ in range(2)]
    for w in procs + threads:
        w.start()
    for w in procs + threads:
        w.join(60)
    assert all(p.exitcode == 0 for p in procs)
    s = json.loads((Path(root) / "sessions" / sid / "session.json").read_text())
    assert len(s["objects"]) == 60
    assert sorted(int(k) for k in s["objects"]) == list(range(1, 61))
    assert s["rev"] == 61  # one revision per change


# -- refused paths ------------------------------------------------------------------------------
def test_paths_outside_the_project_are_refused(env, tmp_path):
    c, sid = env["client"], env["sid"]
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "a.png").write_bytes(_png_bytes(_frames()[0]))
    assert c.post("/api/sessions", json={"path": str(outside)}).status_code == 403
    assert c.post("/api/sessions", json={"path": "../secret"}).status_code == 403
    assert c.post("/api/sessions", json={"path": str(env["clip"]) + "/../../secret"}
                  ).status_code == 403
    os.symlink(outside, env["tmp"] / "proj" / "link")  # a symlink inside pointing outside
    assert c.post("/api/sessions", json={"path": str(env["tmp"] / "proj" / "link")}
                  ).status_code == 403
    assert c.get("/api/browse", params={"path": "/"}).status_code == 403
    r = c.get("/api/browse", params={"path": str(env["tmp"] / "data")})
    assert [(e["name"], e["kind"]) for e in r.json()["entries"]] == [("clip", "frames")]
    assert r.json()["parent"] is None  # the allowed folder's parent is not browsable
    _box_object(env)
    c.post(f"/api/sessions/{sid}/export", json={"formats": ["boxes"]})
    assert c.get(f"/api/sessions/{sid}/export/boxes.json").status_code == 200
    assert c.get(f"/api/sessions/{sid}/export/..%2Fsession.json").status_code == 403
    assert c.get("/api/sessions/..%2F..%2Fproject/").status_code in (403, 404)
    assert c.get("/api/sessions/nope").status_code == 404


# -- uploads ------------------------------------------------------------------------------------
def test_upload_frames_and_video(env, tmp_path):
    import cv2

    c = env["client"]
    up = c.post("/api/uploads").json()["id"]
    for t, img in enumerate(_frames()[:3]):
        r = c.put(f"/api/uploads/{up}/files/u{t}.png", content=_png_bytes(img))
        assert r.status_code == 200, r.text
    s = c.post(f"/api/uploads/{up}/open").json()
    assert s["num_frames"] == 3 and s["source"].startswith(str(env["tmp"] / "proj" / "uploads"))

    vid = tmp_path / "v.mp4"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    for img in _frames()[:5]:
        w.write(img[..., ::-1].copy())
    w.release()
    up = c.post("/api/uploads").json()["id"]
    assert c.put(f"/api/uploads/{up}/files/v.mp4", content=vid.read_bytes()).status_code == 200
    s = c.post(f"/api/uploads/{up}/open").json()
    assert s["kind"] == "video" and s["num_frames"] == 5 and (s["height"], s["width"]) == (H, W)
    assert c.get(f"/api/sessions/{s['id']}/frames/4").status_code == 200


def test_upload_limits_and_type_checks(env):
    c = env["client"]
    up = c.post("/api/uploads").json()["id"]
    big = b"\xff\xd8\xff" + bytes(300_000)
    assert c.put(f"/api/uploads/{up}/files/a.jpg", content=big).status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(30):
            yield b"\xff\xd8\xff" + bytes(10_000)

    assert c.put(f"/api/uploads/{up}/files/b.jpg", content=chunks()).status_code == 413
    assert c.put(f"/api/uploads/{up}/files/c.txt", content=b"hello").status_code == 415
    assert c.put(f"/api/uploads/{up}/files/d.jpg", content=b"<html>not a jpeg").status_code == 415
    assert c.put(f"/api/uploads/{up}/files/e.mp4", content=_png_bytes(_frames()[0])
                 ).status_code == 415
    assert c.put(f"/api/uploads/{up}/files/..%2Fx.png", content=b"x").status_code in (400, 404)
    assert sorted(os.listdir(env["tmp"] / "proj" / "uploads" / up)) == []  # nothing left over
    assert c.post(f"/api/uploads/{up}/open").status_code == 400
    assert (sniff_type(b"\x00\x00\x00\x18ftypmp42"), sniff_type(b"RIFF\x00\x00\x00\x00AVI LIST"),
            sniff_type(b"\x89PNG\r\n\x1a\n"), sniff_type(b"GIF89a")) == (
            "video", "video", "image", None)


# -- annotations --------------------------------------------------------------------------------
def test_annotation_masks_boxes_and_bad_input(env):
    c, sid = env["client"], env["sid"]
    oid = c.post(f"/api/sessions/{sid}/objects", json={}).json()["id"]
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[5:9, 10:20] = (255, 255, 255, 255)
    rgba[30, 30] = (255, 255, 255, 90)  # faint anti-aliased edge: not part of the mask
    data = "data:image/png;base64," + base64.b64encode(_png_bytes(rgba)).decode()
    r = c.put(f"/api/sessions/{sid}/annotations/{oid}/4", json={"mask_png": data})
    assert r.json() == {"frame": 4, "object": oid, "area": 40}
    expect = np.zeros((H, W), bool)
    expect[5:9, 10:20] = True
    assert np.array_equal(env["proj"].read_mask(sid, oid, 4), expect)
    # the label map shows it with id oid, transparent background
    lab = Image.open(io.BytesIO(c.get(f"/api/sessions/{sid}/labels/4.png").content))
    assert lab.mode == "P" and lab.info.get("transparency") == 0
    assert np.array_equal(np.array(lab) == oid, expect)
    bad = [{"mask_png": base64.b64encode(_png_bytes(np.zeros((5, 5), np.uint8))).decode()},
           {"mask_png": "@@@"}, {"box": [1, 2, 3]}, {"box": [500, 500, 10, 10]}, {},
           {"box": [1, 1, 5, 5], "mask_png": data}]
    for body in bad:
        assert c.put(f"/api/sessions/{sid}/annotations/{oid}/4", json=body).status_code == 400
    assert c.put(f"/api/sessions/{sid}/annotations/99/4", json={"box": [1, 1, 5, 5]}
                 ).status_code == 404
    # erasing everything removes the keyframe and the mask
    empty = base64.b64encode(_png_bytes(np.zeros((H, W, 4), np.uint8))).decode()
    c.put(f"/api/sessions/{sid}/annotations/{oid}/4", json={"mask_png": empty})
    assert env["proj"].read_mask(sid, oid, 4) is None
    assert c.get(f"/api/sessions/{sid}").json()["keyframes"][str(oid)] == {}


# -- tracking -----------------------------------------------------------------------------------
def test_track_both_ways_matches_the_library(env):
    from segtrack import track_video

    oid = _box_object(env, frame=4)
    st = _run(env, 4, [oid])
    assert st["state"] == "done" and st["done"] == st["total"] == N - 1
    frames = _frames()
    box = [X0 + STEP * 4, Y0, SIDE, SIDE]
    proj, sid = env["proj"], env["sid"]
    for seq, order in ((frames[4:], range(4, N)), (frames[4::-1], range(4, -1, -1))):
        for res, t in zip(track_video(seq, box=box, method="flow"), order):
            assert np.array_equal(proj.read_mask(sid, oid, t), res.labels == 1), t


def test_repropagation_stops_at_keyframes(env):
    c, sid, proj = env["client"], env["sid"], env["proj"]
    oid = _box_object(env, frame=0)
    _run(env, 0, [oid], "forward")
    # a correction on frame 6: a smaller square
    small = np.zeros((H, W), bool)
    small[Y0:Y0 + 10, X0 + 18: X0 + 28] = True
    c.put(f"/api/sessions/{sid}/annotations/{oid}/6",
          json={"mask_png": base64.b64encode(_png_bytes(small)).decode()})
    before = {t: proj.read_mask(sid, oid, t) for t in range(N)}
    st = _run(env, 0, [oid], "forward")  # again from 0: must stop before keyframe 6
    assert st["total"] == 5 and st["done"] == 5
    assert np.array_equal(proj.read_mask(sid, oid, 6), small)
    st = _run(env, 6, [oid], "both")  # from 6: forward to the end, backward down to 1
    assert st["total"] == (N - 7) + 5
    assert np.array_equal(proj.read_mask(sid, oid, 0), before[0])  # keyframe 0 untouched
    assert proj.read_mask(sid, oid, 8).sum() < 0.6 * before[8].sum()  # small mask propagated
    assert proj.read_mask(sid, oid, 3).sum() < 0.6 * before[3].sum()


def test_two_objects_share_frames_without_overlap(env):
    c, sid, proj = env["client"], env["sid"], env["proj"]
    a = _box_object(env, frame=0)
    b = c.post(f"/api/sessions/{sid}/objects", json={}).json()["id"]
    c.put(f"/api/sessions/{sid}/annotations/{b}/0", json={"box": [50, 40, 20, 15]})
    st = _run(env, 0, [a, b], "forward")
    assert st["objects"] == [a, b] and st["done"] == N - 1
    for t in range(1, N):
        ma, mb = proj.read_mask(sid, a, t), proj.read_mask(sid, b, t)
        assert ma is not None and mb is not None and not (ma & mb).any()


def test_job_errors_conflicts_cancel_and_events(env, monkeypatch):
    c, sid, proj = env["client"], env["sid"], env["proj"]
    oid = _box_object(env, frame=0)
    other = c.post(f"/api/sessions/{sid}/objects", json={}).json()["id"]
    url = f"/api/sessions/{sid}/track"
    assert c.post(url, json={"frame": 0, "objects": [oid], "method": "nope"}).status_code == 400
    r = c.post(url, json={"frame": 0, "objects": [other]})
    assert r.status_code == 400 and "no mask or box on frame 0" in r.json()["detail"]
    assert c.post(url, json={"frame": N, "objects": [oid]}).status_code == 404
    assert c.post(url, json={"frame": 0, "objects": [oid], "direction": "up"}).status_code == 400

    real = proj.read_frame

    def slow(s, i):  # a slow decoder, so that the job is still running below
        time.sleep(0.15)
        return real(s, i)

    monkeypatch.setattr(proj, "read_frame", slow)
    job = c.post(url, json={"frame": 0, "objects": [oid], "direction": "forward"}).json()
    assert c.post(url, json={"frame": 0, "objects": [oid]}).status_code == 409
    assert c.delete(f"/api/sessions/{sid}/objects/{oid}").status_code == 409
    assert c.put(f"/api/sessions/{sid}/annotations/{oid}/3", json={"box": [1, 1, 5, 5]}
                 ).status_code == 409
    assert c.post(f"/api/sessions/{sid}/segment", json={"index": 3, "oid": oid,
                                                         "points": [[5, 5]]}).status_code == 409
    assert c.get(f"/api/sessions/{sid}").json()["job"]["id"] == job["id"]
    seen: list[int] = []
    last = None
    with c.stream("GET", f"/api/jobs/{job['id']}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line.startswith("data: "):
                continue
            last = json.loads(line[6:])
            seen += last["frames"]
            if len(seen) >= 2 and last["state"] == "running":
                c.post(f"/api/jobs/{job['id']}/cancel")
    assert last["state"] == "cancelled"
    assert seen == list(range(1, 1 + len(seen))) and 2 <= len(seen) < N - 1
    assert last["done"] == len(seen)
    assert proj.read_mask(sid, oid, len(seen) + 1) is None  # nothing after the cancel
    assert c.delete(f"/api/sessions/{sid}/objects/{oid}").status_code == 200


# -- click-to-segment ---------------------------------------------------------------------------
def test_segment_bad_input_is_refused_before_loading_weights(env):
    c, sid = env["client"], env["sid"]
    oid = c.post(f"/api/sessions/{sid}/objects", json={}).json()["id"]
    url = f"/api/sessions/{sid}/segment"
    cases = [
        ({"index": 0, "oid": oid, "points": [[W + 5, 10]], "labels": [1]}, "outside"),
        ({"index": 0, "oid": oid, "points": [[10, -1]]}, "outside"),
        ({"index": 0, "oid": oid, "points": [[10, 10]], "labels": [2]}, "label"),
        ({"index": 0, "oid": oid, "points": [[10, 10]], "labels": ["yes"]}, "label"),
        ({"index": 0, "oid": oid, "points": [[10, 10]], "labels": 1}, "label"),
        ({"index": 0, "oid": oid, "points": [[10, 10], [20, 20]], "labels": [1]}, "label"),
        ({"index": 0, "oid": oid}, "nothing to segment"),
        ({"index": 0, "oid": oid, "points": [], "labels": [], "box": None, "correct": True},
         "nothing to segment"),
        ({"index": 0, "points": [[1, 2, 3]]}, "pairs"),
        ({"index": 0, "points": "here"}, "pairs"),
        ({"index": 0, "points": [["a", "b"]]}, "pairs"),
        ({"index": 0, "points": [[1, 2], [3]]}, "pairs"),
        ({"index": 0, "box": [1, 2, 3]}, "box"),
        ({"index": 0, "box": [500, 500, 10, 10]}, "outside"),
        ({"index": "first", "points": [[1, 1]]}, "index"),
        ({"points": [[1, 1]]}, "index"),
        ({"index": 0, "points": [[1, 1]], "correct": "maybe"}, "correct"),
    ]
    for body, words in cases:
        r = c.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
        msg = r.json()["detail"]
        assert isinstance(msg, str) and words in msg, (body, msg)
        assert "\n" not in msg and "Error" not in msg and "Traceback" not in msg
    assert c.post(url, json={"index": N, "points": [[1, 1]]}).status_code == 404
    assert c.post(url, json={"index": 0, "oid": 99, "points": [[1, 1]]}).status_code == 404
    assert c.post("/api/sessions/nope/segment", json={"index": 0, "points": [[1, 1]]}
                  ).status_code == 404
    assert env["app"].state.segmenter is None  # all refused before the network was loaded
    s = c.get(f"/api/sessions/{sid}").json()
    assert list(s["objects"]) == [str(oid)] and s["keyframes"] == {}


def test_segment_without_weights_says_so(env, tmp_path):
    app = create_app(env["tmp"] / "proj", segment_weights=str(tmp_path / "missing.pt"))
    c, sid = TestClient(app), env["sid"]
    r = c.post(f"/api/sessions/{sid}/segment", json={"index": 0, "points": [[20, 20]]})
    assert r.status_code == 503
    msg = r.json()["detail"]
    assert "not available" in msg and "missing.pt" in msg and "\n" not in msg
    assert c.get(f"/api/sessions/{sid}").json()["objects"] == {}  # no object made


@pytest.fixture
def bear(bear_clip, tmp_path):
    """A session on the first three frames of DAVIS bear, with their ground truth."""
    clip, gts = bear_clip
    app = create_app(tmp_path / "proj", allow=[clip], segment_weights=str(CLICKSEG))
    client = TestClient(app)
    r = client.post("/api/sessions", json={"path": str(clip)})
    assert r.status_code == 200, r.text
    return {"app": app, "client": client, "sid": r.json()["id"], "gts": gts,
            "proj": app.state.project}


def _centre(gt: np.ndarray) -> list[float]:
    return list(deepest_point(gt))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


@needs_clickseg
def test_segment_clicks_and_box_make_keyframes(bear):
    from segtrack.geometry import mask_to_box

    c, sid, proj, gts = bear["client"], bear["sid"], bear["proj"], bear["gts"]
    url = f"/api/sessions/{sid}/segment"
    # one click at the bear's centre, no object yet: a new object with a mask keyframe
    r = c.post(url, json={"index": 0, "points": [_centre(gts[0])], "labels": [1]})
    assert r.status_code == 200, r.text
    out = r.json()
    oid = out["object"]
    assert out["created"] and out["keyframe"] == "mask" and not out["corrected"]
    m0 = proj.read_mask(sid, oid, 0)
    assert m0 is not None and out["area"] == int(m0.sum()) > 0
    assert out["box"] == list(mask_to_box(m0))
    assert _iou(m0, gts[0]) > MIN_IOU
    served = Image.open(io.BytesIO(c.get(f"/api/sessions/{sid}/masks/{oid}/0.png").content))
    assert np.array_equal(np.array(served.convert("L")) > 127, m0)
    lab = np.array(Image.open(io.BytesIO(c.get(f"/api/sessions/{sid}/labels/0.png").content)))
    assert np.array_equal(lab == oid, m0)
    s = c.get(f"/api/sessions/{sid}").json()
    assert s["keyframes"][str(oid)] == {"0": {"type": "mask", "box": None}}
    assert s["coverage"][str(oid)] == [0]

    # track on; a click on the tracked frame 2 corrects its mask and makes it a keyframe
    st = _run(bear, 0, [oid], "forward")
    assert st["state"] == "done" and st["total"] == 2
    tracked = proj.read_mask(sid, oid, 2)
    r = c.post(url, json={"index": 2, "oid": oid, "points": [_centre(gts[2])], "labels": [1],
                          "correct": True})
    assert r.status_code == 200, r.text
    assert r.json()["corrected"] and not r.json()["created"] and r.json()["keyframe"] == "mask"
    m2 = proj.read_mask(sid, oid, 2)
    assert m2 is not None and m2.any() and _iou(m2, gts[2]) > MIN_IOU
    assert tracked is not None
    assert c.get(f"/api/sessions/{sid}").json()["keyframes"][str(oid)]["2"]["type"] == "mask"
    st = _run(bear, 0, [oid], "forward")  # re-propagation stops before the new keyframe
    assert st["total"] == 1
    assert np.array_equal(proj.read_mask(sid, oid, 2), m2)

    # a wrong mask on frame 1 (the bear and a patch of background) corrected by a negative click
    wrong = gts[1].copy()
    wrong[20:120, 40:200] = True
    c.put(f"/api/sessions/{sid}/annotations/{oid}/1",
          json={"mask_png": base64.b64encode(_png_bytes(wrong)).decode()})
    r = c.post(url, json={"index": 1, "oid": oid, "points": [[120, 70]], "labels": [0],
                          "correct": True})
    assert r.status_code == 200, r.text
    m1 = proj.read_mask(sid, oid, 1)
    assert r.json()["corrected"] and not m1[70, 120] and m1.sum() < wrong.sum()
    assert _iou(m1, gts[1]) > MIN_IOU

    # a box alone (the box tool's preview): a box keyframe holding the network's mask
    ys, xs = np.nonzero(gts[1])
    box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
           float(ys.max() - ys.min() + 1)]
    r = c.post(url, json={"index": 1, "oid": None, "box": box, "points": []})
    assert r.status_code == 200, r.text
    b = r.json()["object"]
    assert b != oid and r.json()["created"] and r.json()["keyframe"] == "box"
    assert c.get(f"/api/sessions/{sid}").json()["keyframes"][str(b)] == {
        "1": {"type": "box", "box": box}}
    mb = proj.read_mask(sid, b, 1)
    assert mb.sum() < 0.95 * box[2] * box[3]  # not the filled box
    assert _iou(mb, gts[1]) > MIN_IOU
    assert bear["app"].state.segmenter is not None


# -- exports ------------------------------------------------------------------------------------
def test_exports_davis_boxes_coco_overlay(env):
    from segtrack.io import read_label_png
    from segtrack.io.coco_rle import decode
    from segtrack.trackers.base import make_prediction

    c, sid, proj = env["client"], env["sid"], env["proj"]
    a = _box_object(env, frame=0)
    b = c.post(f"/api/sessions/{sid}/objects", json={"name": "hidden one"}).json()["id"]
    c.put(f"/api/sessions/{sid}/annotations/{b}/0", json={"box": [55, 5, 20, 10]})
    _run(env, 0, [a], "forward")
    c.patch(f"/api/sessions/{sid}/objects/{b}", json={"hidden": True})
    lab = np.array(Image.open(io.BytesIO(c.get(f"/api/sessions/{sid}/labels/0.png").content)))
    assert set(np.unique(lab)) == {0, a}  # hidden objects are not drawn

    r = c.post(f"/api/sessions/{sid}/export", json={"formats": ["davis", "boxes", "overlay",
                                                                "coco"]})
    assert r.status_code == 200, r.text
    assert set(r.json()["files"]) >= {"davis/", "boxes.json", "coco_rle.json"}
    out = Path(r.json()["folder"])
    for t in range(N):
        lab = read_label_png(out / "davis" / f"f{t}.png")
        assert np.array_equal(lab == a, proj.read_mask(sid, a, t))
    assert (read_label_png(out / "davis" / "f0.png") == b).sum() == 200  # hidden: exported
    boxes = json.loads(c.get(f"/api/sessions/{sid}/export/boxes.json").content)
    assert [f["name"] for f in boxes["frames"]] == [f"f{t}" for t in range(N)]
    assert boxes["frames"][0]["objects"][str(a)]["box"] == [10.0, 15.0, 20.0, 20.0]
    p5 = make_prediction(proj.read_mask(sid, a, 5))
    assert boxes["frames"][5]["objects"][str(a)]["box"] == list(p5.box)
    coco = json.loads((out / "coco_rle.json").read_text())
    assert [cat["name"] for cat in coco["categories"]] == ["sq", "hidden one"]
    assert len(coco["images"]) == N and len(coco["annotations"]) == N + 1
    for ann in coco["annotations"]:
        m = proj.read_mask(sid, ann["category_id"], ann["image_id"] - 1)
        assert np.array_equal(decode(ann["segmentation"]), m)  # RLE round-trip
        assert ann["area"] == int(m.sum()) and isinstance(ann["segmentation"]["counts"], str)
    ov = [f for f in r.json()["files"] if f.startswith("overlay")][0]
    assert (out / ov).stat().st_size > 1000
    assert c.post(f"/api/sessions/{sid}/export", json={"formats": ["gif"]}).status_code == 400


def test_cli_serve_arguments():
    from segtrack.cli import build_parser

    args = build_parser().parse_args(["serve", "clip", "--port", "8123", "--allow", "/data"])
    assert (args.source, args.port, args.host, args.allow) == ("clip", 8123, "127.0.0.1",
                                                               ["/data"])
    assert args.func.__name__ == "cmd_serve"


# -- opening: relative paths, the server's start video, folders that are not videos ------------
def test_relative_paths_are_taken_from_the_folder_the_server_started_in(env, monkeypatch):
    c = env["client"]
    monkeypatch.chdir(env["tmp"] / "data")
    app = create_app(env["tmp"] / "proj2", allow=[env["tmp"] / "data"])
    c2 = TestClient(app)
    r = c2.post("/api/sessions", json={"path": "clip"})
    assert r.status_code == 200, r.text
    assert r.json()["source"] == str(env["clip"]) and r.json()["method"] == "auto"
    assert c.get("/api/sessions").status_code == 200


def test_serve_checks_its_video_first_and_opens_it_on_the_plain_url(env, monkeypatch):
    import uvicorn

    from segtrack.errors import InputError
    from segtrack.web.app import serve

    monkeypatch.chdir(env["tmp"] / "data")
    with pytest.raises(InputError, match="'camel.mp4' does not exist"):
        serve("camel.mp4", project=str(env["tmp"] / "fresh"))
    assert not (env["tmp"] / "fresh").exists()  # a failed start creates no project folder
    (env["tmp"] / "data" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="neither a frame folder nor a video"):
        serve("notes.txt", project=str(env["tmp"] / "fresh"))
    assert not (env["tmp"] / "fresh").exists()
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    assert serve("clip", project=str(env["tmp"] / "fresh")) == 0  # relative to this folder
    info = TestClient(apps[0]).get("/api/info").json()
    s = TestClient(apps[0]).get(f"/api/sessions/{info['start_session']}").json()
    assert s["source"] == str(env["clip"])
    assert TestClient(apps[0]).get("/favicon.ico").status_code == 200


def test_a_folder_of_unrelated_images_is_refused_when_opened(env):
    c, d = env["client"], env["tmp"] / "data" / "photos"
    d.mkdir()
    (d / "a.png").write_bytes(_png_bytes(np.zeros((H, W, 3), np.uint8)))
    (d / "b.png").write_bytes(_png_bytes(np.zeros((H + 4, W, 3), np.uint8)))
    r = c.post("/api/sessions", json={"path": str(d)})
    assert r.status_code == 400
    assert "differ in size" in r.json()["detail"] and "'b.png' is 80x64" in r.json()["detail"]
    assert len(c.get("/api/sessions").json()) == 1  # no session was made


# -- sessions: rename and delete -----------------------------------------------------------------
def test_sessions_can_be_renamed_and_deleted(env):
    c, sid, proj = env["client"], env["sid"], env["proj"]
    assert c.patch(f"/api/sessions/{sid}", json={"name": " my clip "}).json()["name"] == "my clip"
    _box_object(env)
    up = c.post("/api/uploads").json()["id"]
    for t, img in enumerate(_frames()[:2]):
        c.put(f"/api/uploads/{up}/files/u{t}.png", content=_png_bytes(img))
    other = c.post(f"/api/uploads/{up}/open").json()["id"]
    assert c.delete(f"/api/sessions/{sid}").json() == {"deleted": sid}
    assert c.get(f"/api/sessions/{sid}").status_code == 404
    assert [s["id"] for s in c.get("/api/sessions").json()] == [other]
    assert env["clip"].is_dir() and len(os.listdir(env["clip"])) == N  # the user's frames stay
    assert c.delete(f"/api/sessions/{other}").status_code == 200
    assert not (proj.root / "uploads" / up).exists()  # its upload goes with it
    assert c.delete(f"/api/sessions/{other}").status_code == 404


# -- importing masks ------------------------------------------------------------------------------
def test_import_png_masks_and_coco_rle(env):
    from segtrack.io import davis_palette
    from segtrack.io.coco_rle import encode

    c, sid, proj = env["client"], env["sid"], env["proj"]
    url = f"/api/sessions/{sid}/import"
    lab = np.zeros((H, W), np.uint8)
    lab[5:20, 5:25] = 1
    lab[30:50, 40:70] = 3
    pal = Image.fromarray(lab, mode="P")
    pal.putpalette(davis_palette().tobytes())
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    r = c.post(url, json={"index": 2, "png": b64, "name": "00002.png"})
    assert r.status_code == 200, r.text
    assert [o["object"] for o in r.json()["objects"]] == [1, 3]  # palette ids are object ids
    assert np.array_equal(proj.read_mask(sid, 3, 2), lab == 3)
    s = c.get(f"/api/sessions/{sid}").json()
    assert sorted(s["objects"]) == ["1", "3"] and s["keyframes"]["3"]["2"]["type"] == "mask"
    # a 0/255 mask: a new object, or the chosen one
    binary = ((lab == 1) * 255).astype(np.uint8)
    r = c.post(url, json={"index": 4, "png": "data:image/png;base64,"
                          + base64.b64encode(_png_bytes(binary)).decode()})
    assert [o["object"] for o in r.json()["objects"]] == [4]
    r = c.post(url, json={"index": 5, "oid": 3, "png": base64.b64encode(
        _png_bytes(binary)).decode()})
    assert r.json()["objects"] == [{"object": 3, "frame": 5, "area": int((lab == 1).sum())}]
    # COCO RLE, one or several (with their track ids)
    rle = encode(lab == 3)
    r = c.post(url, json={"index": 6, "oid": 1, "rle": rle})
    assert np.array_equal(proj.read_mask(sid, 1, 6), lab == 3)
    r = c.post(url, json={"index": 7, "rle": [{"segmentation": encode(lab == 1), "track_id": 9},
                                              {"segmentation": rle, "track_id": 3}]})
    assert [o["object"] for o in r.json()["objects"]] == [3, 9]
    r = c.post(url, json={"index": 8, "oid": 4, "png": b64})  # several objects: by their ids
    assert [o["object"] for o in r.json()["objects"]] == [1, 3]
    # bad input: one line each
    bad = [({"index": 2}, "exactly one"),
           ({"index": 2, "png": "???"}, "not base64"),
           ({"index": 2, "png": base64.b64encode(b"not a png").decode()}, "not a readable"),
           ({"index": 2, "png": base64.b64encode(_png_bytes(np.zeros((4, 4), np.uint8))
                                                 ).decode()}, "but the frame is 80x60"),
           ({"index": 2, "png": base64.b64encode(_png_bytes(np.zeros((H, W), np.uint8))
                                                 ).decode()}, "empty"),
           ({"index": 2, "rle": {"size": [3, 3], "counts": "x"}}, "not a valid COCO RLE"),
           ({"index": 2, "rle": encode(np.ones((4, 4), bool))}, "but the frame is 80x60")]
    for body, msg in bad:
        r = c.post(url, json=body)
        assert r.status_code == 400 and msg in r.json()["detail"], (body, r.text)
        assert "\n" not in r.json()["detail"]
    assert c.post(url, json={"index": N, "png": b64}).status_code == 404


# -- undo and redo ---------------------------------------------------------------------------------
def test_undo_and_redo_of_boxes_strokes_and_imports(env):
    c, sid, proj = env["client"], env["sid"], env["proj"]
    assert c.post(f"/api/sessions/{sid}/undo").status_code == 409  # nothing yet
    oid = _box_object(env, frame=1)
    box_mask = proj.read_mask(sid, oid, 1)
    stroke = np.zeros((H, W), np.uint8)
    stroke[40:55, 5:30] = 255
    r = c.put(f"/api/sessions/{sid}/annotations/{oid}/1",
              json={"mask_png": base64.b64encode(_png_bytes(stroke)).decode()})
    assert r.status_code == 200
    r = c.post(f"/api/sessions/{sid}/undo").json()
    assert r["what"] == "paint" and r["frames"] == [1] and r["can_undo"] and r["can_redo"]
    assert np.array_equal(proj.read_mask(sid, oid, 1), box_mask)
    assert c.get(f"/api/sessions/{sid}").json()["keyframes"][str(oid)]["1"]["type"] == "box"
    r = c.post(f"/api/sessions/{sid}/redo").json()
    assert r["what"] == "paint" and not r["can_redo"]
    assert np.array_equal(proj.read_mask(sid, oid, 1), stroke > 0)
    c.post(f"/api/sessions/{sid}/undo")
    c.post(f"/api/sessions/{sid}/undo")  # the box too: the frame has no mask again
    assert proj.read_mask(sid, oid, 1) is None
    assert str(1) not in c.get(f"/api/sessions/{sid}").json()["keyframes"][str(oid)]
    c.post(f"/api/sessions/{sid}/redo")  # the box is back; a new edit clears the redo stack
    c.put(f"/api/sessions/{sid}/annotations/{oid}/3", json={"box": [1, 1, 9, 9]})
    assert c.post(f"/api/sessions/{sid}/redo").status_code == 409
    assert np.array_equal(proj.read_mask(sid, oid, 1), box_mask)


# -- tracking: the method chosen for the init, scores, the loading message -----------------------
def test_auto_method_scores_and_loading_message(env, monkeypatch):
    import segtrack.trackers.registry as registry

    c, sid = env["client"], env["sid"]
    oid = _box_object(env, frame=0)
    asked = []
    monkeypatch.setattr(registry, "best_method",
                        lambda init: asked.append(init) or "flow")
    real = registry.load_tracker

    def slow_load(*a, **k):  # model loading that takes a moment
        time.sleep(0.4)
        return real(*a, **k)

    monkeypatch.setattr(registry, "load_tracker", slow_load)
    job = c.post(f"/api/sessions/{sid}/track",
                 json={"frame": 0, "objects": [oid], "direction": "forward"}).json()
    assert job["method"] == "flow" and asked == ["box"]  # "auto": the best for a box
    states = []
    with c.stream("GET", f"/api/jobs/{job['id']}/events") as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                st = json.loads(line[6:])
                states.append((st["state"], st["message"]))
    assert any(st == "loading" and "loading flow" in msg for st, msg in states)
    assert states[-1][0] == "done"
    scores = c.get(f"/api/sessions/{sid}/scores").json()
    assert sorted(map(int, scores[str(oid)])) == list(range(1, N))
    assert all(0.0 <= v <= 1.0 for v in scores[str(oid)].values())
    c.put(f"/api/sessions/{sid}/annotations/{oid}/4", json={"box": [20, 15, 20, 20]})
    assert "4" not in c.get(f"/api/sessions/{sid}/scores").json()[str(oid)]  # now a keyframe
    boxes_scores = []
    c.post(f"/api/sessions/{sid}/export", json={"formats": ["boxes"]})
    for f in json.loads(c.get(f"/api/sessions/{sid}/export/boxes.json").content)["frames"]:
        boxes_scores.append(f["objects"][str(oid)]["score"])
    assert boxes_scores[0] == 1.0 and boxes_scores[1] == scores[str(oid)]["1"]


# -- exports: zip, nothing to export ---------------------------------------------------------------
def test_export_zip_download_and_empty_export(env):
    import zipfile

    c, sid = env["client"], env["sid"]
    r = c.post(f"/api/sessions/{sid}/export", json={"formats": ["davis", "boxes"]})
    assert r.status_code == 400 and "nothing to export" in r.json()["detail"]
    assert c.get(f"/api/sessions/{sid}/export.zip").status_code == 404
    _box_object(env)
    c.post(f"/api/sessions/{sid}/export", json={"formats": ["davis", "boxes", "overlay"]})
    c.post(f"/api/sessions/{sid}/export", json={"formats": ["boxes", "coco"]})
    r = c.get(f"/api/sessions/{sid}/export.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "clip-segtrack.zip" in r.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert sorted(names) == ["clip/boxes.json", "clip/coco_rle.json"]  # the last export only
    c.post(f"/api/sessions/{sid}/export", json={"formats": ["davis", "overlay"]})
    z = zipfile.ZipFile(io.BytesIO(c.get(f"/api/sessions/{sid}/export.zip").content))
    assert len([n for n in z.namelist() if n.startswith("clip/davis/")]) == N
    assert "clip/overlay.mp4" in z.namelist()
    import av

    with av.open(io.BytesIO(z.read("clip/overlay.mp4"))) as v:  # plays in browsers
        assert v.streams.video[0].codec_context.name == "h264"


def test_upload_errors_speak_of_files_not_server_folders(env):
    c, proj = env["client"], env["proj"]
    up = c.post("/api/uploads").json()["id"]
    r = c.put(f"/api/uploads/{up}/files/a.jpg", content=b"\xff\xd8\xff" + bytes(300_000))
    assert r.status_code == 413 and "195 KB" in r.json()["detail"]  # 200,000 bytes
    assert c.delete(f"/api/uploads/{up}").status_code == 200  # what the page does then
    assert not (proj.root / "uploads" / up).exists()  # no empty folder left behind
    old = c.post("/api/uploads").json()["id"]  # an abandoned upload is swept after an hour
    os.utime(proj.root / "uploads" / old, (time.time() - 7200,) * 2)
    c.post("/api/uploads")
    assert not (proj.root / "uploads" / old).exists()
    up = c.post("/api/uploads").json()["id"]
    c.put(f"/api/uploads/{up}/files/a.png", content=_png_bytes(_frames()[0]))
    c.put(f"/api/uploads/{up}/files/b.png", content=_png_bytes(np.zeros((9, 9, 3), np.uint8)))
    r = c.post(f"/api/uploads/{up}/open")
    assert r.status_code == 400 and "differ in size" in r.json()["detail"]
    assert str(proj.root) not in r.json()["detail"], r.json()["detail"]
    assert not (proj.root / "uploads" / up).exists()
