"""segtrack batch (issue 9): manifest parsing, outputs, resumability, retries, Ray engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from segtrack.batch import DONE_FILE, format_summary, is_done, read_manifest, run_batch
from segtrack.batch.runner import STAGE_PREFIX
from segtrack.batch.synthetic import make_synthetic_batch
from segtrack.errors import InputError
from segtrack.io import coco_rle
from segtrack.io.palette import read_label_png

FRAMES = 5


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch_in")
    return make_synthetic_batch(root, 4, frames=FRAMES, height=64, width=80, seed=5)


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------- manifests


def test_manifest_csv_and_jsonl_rows(inputs, tmp_path):
    root = inputs.parent
    csv = _write(root / "m1.csv",
                 "video,mask,box,frame,method,params,name\n"
                 "JPEGImages/480p/vid0000,Annotations/480p/vid0000/00000.png,,,flow,,\n"
                 "# a comment line\n"
                 "JPEGImages/480p/vid0001,,\"10,12,20,18\",2,static,\"scale=0.5;x=1\",other\n")
    tasks = read_manifest(csv)
    assert [t.row for t in tasks] == [2, 4]
    a, b = tasks
    assert a.name == "vid0000" and a.method == "flow" and a.frame == 0 and a.box is None
    assert Path(a.video) == (root / "JPEGImages/480p/vid0000").resolve()
    assert Path(a.mask).name == "00000.png"
    assert b.name == "other" and b.box == (10.0, 12.0, 20.0, 18.0) and b.frame == 2
    assert b.method == "static" and b.params == {"scale": "0.5", "x": "1"}
    rle = coco_rle.encode(read_label_png(root / "Annotations/480p/vid0002/00000.png") > 0)
    jl = _write(root / "m1.jsonl", "\n".join([
        json.dumps({"video": "JPEGImages/480p/vid0002", "mask": rle, "params": {"scale": 1.0}}),
        "",
        json.dumps({"video": "JPEGImages/480p/vid0003", "box": [1, 2, 3, 4], "frame": 1}),
    ]) + "\n")
    c, d = read_manifest(jl)
    assert (c.row, d.row) == (1, 3)
    assert c.rle == rle and c.mask is None and c.params == {"scale": 1.0}
    assert d.box == (1.0, 2.0, 3.0, 4.0) and d.frame == 1
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == read_manifest(csv)[0].fingerprint()


BAD_CSV_ROWS = [
    (",Annotations/480p/vid0000/00000.png,,,,,", "row 3: missing 'video'"),
    ("nope/video.mp4,,\"1,2,3,4\",,,,", "row 3: video 'nope/video.mp4' does not exist"),
    ("JPEGImages/480p/vid0000,,,,,,", "row 3: give a 'mask' or a 'box'"),
    ("JPEGImages/480p/vid0000,Annotations/480p/vid0000/00000.png,\"1,2,3,4\",,,,",
     "row 3: give a 'mask' or a 'box', not both"),
    ("JPEGImages/480p/vid0000,,\"1,2,3\",,,,", "row 3: box '1,2,3'"),
    ("JPEGImages/480p/vid0000,,\"1,2,0,4\",,,,", "row 3: box '1,2,0,4': width and height"),
    ("JPEGImages/480p/vid0000,missing.png,,,,,", "row 3: mask 'missing.png' does not exist"),
    ("JPEGImages/480p/vid0000,,\"1,2,3,4\",-1,,,", "row 3: frame '-1'"),
    ("JPEGImages/480p/vid0000,,\"1,2,3,4\",1.5,,,", "row 3: frame '1.5'"),
    ("JPEGImages/480p/vid0000,,\"1,2,3,4\",,magic,,", "row 3: unknown method 'magic'"),
    ("JPEGImages/480p/vid0000,,\"1,2,3,4\",,,scale,", "row 3: params item 'scale'"),
    ("JPEGImages/480p/vid0000,,\"1,2,3,4\",,,,a/b", "row 3: name 'a/b'"),
    ("JPEGImages/480p/vid0001,,\"1,2,3,4\",,,,vid0002,extra",
     "row 3: 8 cells but the header has 7"),
    ("JPEGImages/480p/vid0001,,\"1,2,3,4\",,,,vid0002",
     "row 3: output name 'vid0002' is already used by row 2"),
]


@pytest.mark.parametrize("row,message", BAD_CSV_ROWS)
def test_manifest_bad_csv_rows_name_the_row(inputs, tmp_path, row, message):
    root = inputs.parent
    p = _write(root / "bad.csv",
               "video,mask,box,frame,method,params,name\n"
               "JPEGImages/480p/vid0002,,\"1,2,3,4\",,,,\n" + row + "\n")
    with pytest.raises(InputError) as ei:
        read_manifest(p)
    msg = str(ei.value)
    assert "\n" not in msg and f"manifest '{p}'" in msg
    assert message in msg


def test_manifest_bad_files_and_jsonl(inputs, tmp_path):
    root = inputs.parent
    with pytest.raises(InputError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")
    with pytest.raises(InputError, match="expected a .csv or .jsonl"):
        read_manifest(_write(tmp_path / "m.txt", "video\n"))
    with pytest.raises(InputError, match="has no rows"):
        read_manifest(_write(tmp_path / "e.csv", "video,box\n\n"))
    with pytest.raises(InputError, match="row 1: header must name a 'video'"):
        read_manifest(_write(tmp_path / "h.csv", "clip,box\nx,1\n"))
    with pytest.raises(InputError, match=r"row 1: unknown column\(s\) 'colour'"):
        read_manifest(_write(tmp_path / "u.csv", "video,colour\nx,red\n"))
    v = str(root / "JPEGImages/480p/vid0000")
    good = json.dumps({"video": v, "box": [1, 2, 3, 4]})
    with pytest.raises(InputError, match=r"row 2: not valid JSON"):
        read_manifest(_write(tmp_path / "a.jsonl", good + "\n{oops\n"))
    with pytest.raises(InputError, match="row 3: expected a JSON object"):
        read_manifest(_write(tmp_path / "b.jsonl", good + "\n\n[1, 2]\n"))
    bad_rle = json.dumps({"video": v, "mask": {"size": [2, 2], "counts": [1, 1]}, "name": "z"})
    with pytest.raises(InputError, match="row 2: inline RLE mask: RLE counts sum to 2"):
        read_manifest(_write(tmp_path / "c.jsonl", good + "\n" + bad_rle + "\n"))


# ---------------------------------------------------------------------------- local engine


def _check_output(out: Path, name: str) -> None:
    d = out / name
    assert len(list(d.glob("*.png"))) == FRAMES
    assert len(json.loads((d / "boxes.json").read_text())["frames"]) == FRAMES
    done = json.loads((d / DONE_FILE).read_text())
    assert done["frames"] == FRAMES and done["name"] == name


def test_local_batch_outputs_match_track_video(inputs, tmp_path):
    from segtrack.api import track_video

    out = tmp_path / "out"
    s = run_batch(inputs, out, quiet=True, rle=True)
    assert (s["done"], s["skipped"], s["failed"]) == (4, 0, 0)
    assert s["frames"] == 4 * FRAMES
    tasks = read_manifest(inputs)
    for t in tasks:
        _check_output(out, t.name)
        assert is_done(out, t) and is_done(out, t, rle=True)
    # same label maps as the Python API on the same input
    t0 = tasks[0]
    ref = [r.labels for r in track_video(t0.video, mask=t0.mask, method="flow")]
    got = [read_label_png(p) for p in sorted((out / t0.name).glob("*.png"))]
    assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    from segtrack.io.interchange import read_rle_masks

    rle = read_rle_masks(out / t0.name / "masks.rle.json")
    assert all(np.array_equal(a, lab) for a, (_, lab) in zip(ref, rle))
    table = format_summary(s)
    assert "4 done, 0 skipped, 0 failed" in table and "vid0003" in table


def test_resume_skips_done_and_redoes_partial(inputs, tmp_path):
    out = tmp_path / "out"
    run_batch(inputs, out, quiet=True)
    tasks = read_manifest(inputs)
    before = {t.name: (out / t.name / DONE_FILE).stat().st_mtime_ns for t in tasks}
    # vid0001: a partial output (marker missing) must not count as done
    (out / "vid0001" / DONE_FILE).unlink()
    (out / "vid0001" / "00004.png").unlink()
    # vid0002: a marker of another task (edited manifest row) must not count either
    rec = json.loads((out / "vid0002" / DONE_FILE).read_text())
    rec["fingerprint"] = "0" * 16
    (out / "vid0002" / DONE_FILE).write_text(json.dumps(rec))
    # a staging folder left by a killed attempt
    stale = out / f"{STAGE_PREFIX}vid0003-deadbeef"
    stale.mkdir()
    (stale / "00000.png").write_bytes(b"partial")
    s = run_batch(inputs, out, quiet=True)
    status = {r["name"]: r["status"] for r in s["tasks"]}
    assert status == {"vid0000": "skipped", "vid0001": "done", "vid0002": "done",
                      "vid0003": "skipped"}
    assert s["stale_partials"] == 1 and not stale.exists()
    for t in tasks:
        _check_output(out, t.name)
    after = {t.name: (out / t.name / DONE_FILE).stat().st_mtime_ns for t in tasks}
    assert after["vid0000"] == before["vid0000"] and after["vid0003"] == before["vid0003"]
    # a third run has nothing left to do
    s3 = run_batch(inputs, out, quiet=True)
    assert s3["skipped"] == 4 and s3["done"] == 0


def test_retries_and_final_failures(inputs, tmp_path, monkeypatch):
    import segtrack.api as api

    root = inputs.parent
    real = api.track_video
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient failure")
        return real(*a, **k)

    monkeypatch.setattr(api, "track_video", flaky)
    m = _write(root / "retry.csv",
               "video,mask,box,name\n"
               "JPEGImages/480p/vid0000,Annotations/480p/vid0000/00000.png,,a\n"
               "JPEGImages/480p/vid0001,,\"500,500,10,10\",b\n"  # box outside the frame
               "JPEGImages/480p/vid0002,Annotations/480p/vid0002/00000.png,,c\n")
    out = tmp_path / "out"
    s = run_batch(m, out, quiet=True, retries=1)
    rec = {r["name"]: r for r in s["tasks"]}
    assert rec["a"]["status"] == "done" and rec["a"]["attempts"] == 2  # retried once
    assert rec["b"]["status"] == "failed" and rec["b"]["attempts"] == 1  # input error: final
    assert "box" in rec["b"]["error"] and "\n" not in rec["b"]["error"]
    assert rec["c"]["status"] == "done"  # one bad video does not stop the others
    assert not (out / "b").exists() and not list(out.glob(STAGE_PREFIX + "*"))
    assert s["failed"] == 1 and s["retried"] == 1


def test_batch_refuses_to_write_into_inputs(inputs):
    with pytest.raises(InputError, match="refusing to overwrite"):
        run_batch(inputs, inputs.parent, quiet=True)
    with pytest.raises(InputError, match="--engine"):
        run_batch(inputs, inputs.parent / "o", engine="spark", quiet=True)


def test_unreachable_ray_address_is_a_quick_input_error(inputs, tmp_path):
    # port 1 on this machine refuses connections: one line, no minutes of Ray retries
    with pytest.raises(InputError, match="--address '127.0.0.1:1'|needs Ray"):
        run_batch(inputs, tmp_path / "o", engine="ray", address="127.0.0.1:1", quiet=True)
    assert not (tmp_path / "o").exists()


def test_cli_batch(inputs, tmp_path, capsys):
    from segtrack.cli import main

    out = tmp_path / "o"
    assert main(["batch", str(inputs), "--out", str(out), "--quiet",
                 "--json", str(tmp_path / "s.json")]) == 0
    text = capsys.readouterr().out
    assert "4 done, 0 skipped, 0 failed" in text
    assert json.loads((tmp_path / "s.json").read_text())["done"] == 4
    bad = _write(tmp_path / "bad.csv", "video,box\nmissing.mp4,\"1,2,3,4\"\n")
    assert main(["batch", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segtrack: error: manifest") and "row 2" in err
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------------------------ Ray engine


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray start for the module's Ray tests (run_batch / bench_davis reuse it)."""
    ray = pytest.importorskip("ray", reason="ray not installed (pip install 'segtrack[batch]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_engine_recovers_a_killed_worker(inputs, tmp_path, ray_instance):
    ref_out = tmp_path / "ref"
    run_batch(inputs, ref_out, quiet=True)
    crash = tmp_path / "crash"
    crash.mkdir()
    for name in ("vid0000", "vid0002", "vid0003"):  # only vid0001's first attempt dies
        (crash / f"{name}.crashed").touch()
    out = tmp_path / "out"
    s = run_batch(inputs, out, engine="ray", workers=2, quiet=True, crash_once_dir=str(crash))
    assert (s["done"], s["failed"]) == (4, 0)
    rec = {r["name"]: r for r in s["tasks"]}
    assert rec["vid0001"]["attempts"] == 2  # the worker process died, Ray re-ran the task
    assert s["stale_partials"] == 1 and not list(out.glob(STAGE_PREFIX + "*"))
    for name in rec:
        _check_output(out, name)
        for p in sorted((ref_out / name).glob("*.png")):
            assert np.array_equal(read_label_png(p), read_label_png(out / name / p.name))
    shutil.rmtree(out / "vid0002")
    s2 = run_batch(inputs, out, engine="ray", quiet=True)
    assert s2["skipped"] == 3 and s2["done"] == 1


def test_bench_engine_ray_gives_the_local_scores(inputs, ray_instance):
    from segtrack.eval.runner import bench_davis

    root = inputs.parent  # make_synthetic_batch writes a DAVIS-style dataset
    seqs = ["vid0000", "vid0001", "vid0002"]
    local = bench_davis(root, "flow", sequences=seqs, quiet=True)
    par = bench_davis(root, "flow", sequences=seqs, quiet=True, engine="ray")
    assert par["engine"] == "ray" and list(par["timing"]) == seqs
    for k in ("J_M", "F_M", "JF", "frames"):
        assert par[k] == pytest.approx(local[k])
    assert par["sequences"] == local["sequences"]  # per-sequence scores, same order
