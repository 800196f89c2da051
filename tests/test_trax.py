"""TraX entry point (issue 9): the session logic, and the real VOT toolkit client against
``segtrack trax`` on a local synthetic sequence."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.geometry import mask_to_box
from segtrack.integrations.trax import TraxSession, polygon_to_mask

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _sequence(tmp_path: Path, n: int = 6, objects: int = 1):
    import cv2

    from segtrack.data.synthetic import make_video

    video = make_video(3, height=96, width=128, num_frames=n, num_objects=objects,
                       background="texture", occlusion=False)
    paths, gts = [], []
    for t, (img, labels) in enumerate(video):
        p = tmp_path / f"{t:08d}.jpg"
        cv2.imwrite(str(p), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(p)
        gts.append(labels == 1 if objects == 1 else labels)
    return paths, gts


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


def test_polygon_to_mask_pixel_centres():
    # the square [1, 4) x [2, 5) covers the pixels with centres inside: cols 1..3, rows 2..4
    m = polygon_to_mask([[1, 2], [4, 2], [4, 5], [1, 5]], (7, 6))
    expected = np.zeros((7, 6), bool)
    expected[2:5, 1:4] = True
    assert np.array_equal(m, expected)


def test_session_states_follow_region_types(tmp_path):
    paths, gts = _sequence(tmp_path, 3)
    from segtrack.io.sources import read_image

    img0 = read_image(paths[0])
    s = TraxSession("flow")
    box = mask_to_box(gts[0])
    states = s.initialize(img0, [("rectangle", box), ("mask", gts[0])])
    assert [k for k, _ in states] == ["rectangle", "mask"]
    assert np.allclose(states[0][1], box, atol=1.0)
    assert _iou(states[1][1], gts[0]) > 0.9
    later = s.frame(read_image(paths[1]))
    assert [k for k, _ in later] == ["rectangle", "mask"]
    with pytest.raises(InputError, match="before initialize"):
        TraxSession("flow").frame(img0)
    with pytest.raises(InputError, match="--region"):
        TraxSession("flow", region="ellipse")


def test_trax_handshake_and_session_with_libtrax_client(tmp_path):
    """The TraX exchange with libtrax's own client (vot-trax only, no toolkit): hello
    (name, channels, multi-object), initialize with a rectangle and a mask object, frames,
    quit - the server process then exits with code 0."""
    import subprocess

    trax = pytest.importorskip("trax", reason="vot-trax (TraX library) not installed")
    from trax.client import Client
    from trax.image import FileImage
    from trax.region import Mask, Rectangle

    paths, labels = _sequence(tmp_path, 4, objects=2)
    assert all((lab == 1).any() and (lab == 2).any() for lab in labels)
    env = dict(os.environ, TRAX="1",
               PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "segtrack.cli", "trax", "--method", "flow"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, bufsize=0)
    log: list[str] = []
    try:
        client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), timeout=30,
                        log=log.append)
        assert client.tracker_name == "segtrack-flow"
        assert client.channels == ["color"]
        assert client.get("multiobject") is True
        x, y, w, h = mask_to_box(labels[0] == 1)
        objects = [(Rectangle.create(x, y, w, h), {}),  # object 1 by its box
                   (Mask.create((labels[0] == 2).astype(np.uint8)), {})]  # object 2 by mask
        state, _ = client.initialize({"color": FileImage.create(str(paths[0]))}, objects, {})
        assert [r.type for r, _ in state] == [trax.region.Region.RECTANGLE,
                                              trax.region.Region.MASK]
        assert np.allclose(state[0][0].bounds(), (x, y, w, h), atol=1.0)
        for p, lab in zip(paths[1:], labels[1:]):
            state, _ = client.frame({"color": FileImage.create(str(p))}, {}, [])
            assert len(state) == 2
            gt = lab == 2
            m = state[1][0].array() > 0
            ox, oy = state[1][0].offset()
            full = np.zeros(gt.shape, bool)
            full[oy:oy + m.shape[0], ox:ox + m.shape[1]] = m
            assert _iou(full, gt) > 0.5
        client.quit()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class _Frame:
    """The part of a vot-toolkit Frame the TraX runtime uses."""

    def __init__(self, path: Path):
        self._path = str(path)

    def filename(self, channel: str) -> str | None:
        return self._path if channel == "color" else None


@pytest.mark.parametrize("init", ["mask"])
def test_vot_toolkit_client_runs_segtrack(tmp_path, init):
    pytest.importorskip("trax", reason="vot-trax (TraX library) not installed")
    tt = pytest.importorskip("vot.tracker.trax", reason="vot-toolkit not installed")
    from vot.region.shapes import Mask, Polygon, Rectangle

    paths, gts = _sequence(tmp_path)
    command = f"{sys.executable} -m segtrack.cli trax --method flow"
    env = {"TRAX": "1", "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log: list[str] = []
    # the toolkit's runtime always passes a log callable (vot-trax's Client rejects log=False)
    proc = tt.TrackerProcess(command, envvars=env, timeout=30, log=log.append)
    try:
        # the handshake: the server announced itself as a multi-object TraX tracker
        assert proc.alive
        assert proc.multiobject
        assert proc._client.tracker_name == "segtrack-flow"
        assert proc._client.channels == ["color"]
        x, y, w, h = mask_to_box(gts[0])
        obj = Rectangle(x, y, w, h) if init == "rectangle" else Mask(gts[0].astype(np.uint8))
        status, _elapsed = proc.initialize(_Frame(paths[0]), obj)
        assert len(status) == 1
        ious = []
        for p, gt in zip(paths[1:], gts[1:]):
            status, _ = proc.update(_Frame(p))
            region = status[0].region
            if init == "rectangle":
                assert isinstance(region, Rectangle)
                bx = (region.x, region.y, region.width, region.height)
                from segtrack.geometry import box_iou

                ious.append(float(box_iou(np.array([bx]), np.array([mask_to_box(gt)]))[0]))
            else:
                assert isinstance(region, (Mask, Polygon))
                full = np.zeros(gt.shape, bool)
                m = region.mask > 0
                ox, oy = region.offset
                full[oy:oy + m.shape[0], ox:ox + m.shape[1]] = m[: gt.shape[0] - oy,
                                                                 : gt.shape[1] - ox]
                ious.append(_iou(full, gt))
        # a working tracker on an easy synthetic clip: the state follows the object
        assert min(ious) > 0.5, (ious, "".join(log)[-2000:])
    finally:
        proc.terminate()
    assert not proc.alive


def test_vot_evaluate_workspace_runs_segtrack(tmp_path):
    """The toolkit's own ``vot evaluate`` + ``vot analysis`` on a local one-sequence workspace
    with segtrack registered as a TraX tracker (trackers.ini), as a user would run it."""
    pytest.importorskip("trax", reason="vot-trax (TraX library) not installed")
    pytest.importorskip("vot.tracker.trax", reason="vot-toolkit not installed")
    import json
    import subprocess

    ws = tmp_path / "ws"
    seq = ws / "sequences" / "synth"
    (seq / "color").mkdir(parents=True)
    paths, gts = _sequence(seq / "color", 8)
    for i, p in reversed(list(enumerate(paths))):  # the toolkit's 1-based frame names
        p.rename(seq / "color" / f"{i + 1:08d}.jpg")
    rows = [",".join(str(v) for v in mask_to_box(g)) for g in gts]
    (seq / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    (seq / "sequence").write_text("channels.color=color/%08d.jpg\nformat=default\nname=synth\n")
    (ws / "sequences" / "list.txt").write_text("synth\n")
    (ws / "stack.yaml").write_text(
        "title: segtrack test\nexperiments:\n  baseline:\n    type: unsupervised\n"
        "    repetitions: 1\n    analyses:\n      - type: average_accuracy\n"
        "        name: accuracy\n        burnin: 0\n")
    (ws / "trackers.ini").write_text(
        f"[segtrack_flow]\nlabel = segtrack flow\nprotocol = trax\n"
        f"command = {sys.executable} -m segtrack.cli trax --method flow\n"
        f"env_PYTHONPATH = {SRC}\n")
    (ws / "config.yaml").write_text("registry:\n- ./trackers.ini\nstack: ./stack.yaml\n")
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for cmd in (["evaluate"], ["analysis", "--format", "json"]):
        r = subprocess.run([sys.executable, "-m", "vot", *cmd, "--workspace", str(ws),
                            "segtrack_flow"], capture_output=True, text=True, timeout=120,
                           env=env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = ws / "results" / "segtrack_flow" / "baseline" / "synth"
    assert (res / "synth_001_time.value").is_file()
    times = (res / "synth_001_time.value").read_text().split()
    assert len(times) == 8  # one timing per frame: the tracker answered every frame
    report = json.loads(next((ws / "analysis").glob("*.json")).read_text())
    acc = report["results"]["baseline"]["results"][0][0][0]
    assert 0.3 < acc <= 1.0  # boxes overlap the ground truth on this easy clip
