"""Interchange formats (issue 9): RLE mask files, YouTube-VOS result folders, VOT trajectories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segtrack.errors import InputError
from segtrack.io import interchange as ic
from segtrack.io.palette import read_label_png, write_label_png

# pycocotools 2.0.x (reference implementation) warns about numpy 2 on decode
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _labels(h=12, w=16, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    lab[2:7, 3:9] = 1
    lab[8:11, 10:15] = 2
    lab[rng.random((h, w)) < 0.05] = 3
    return lab


def test_rle_writer_round_trip(tmp_path):
    frames = [_labels(seed=i) for i in range(3)]
    path = tmp_path / "m.rle.json"
    with ic.RleWriter(path) as w:
        for i, lab in enumerate(frames):
            w.add(i, f"{i:05d}", lab)
    back = ic.read_rle_masks(path)
    assert [n for n, _ in back] == ["00000", "00001", "00002"]
    for (_, lab), ref in zip(back, frames):
        assert np.array_equal(lab, ref)
    data = json.loads(path.read_text())
    assert set(data["frames"][0]["objects"]) == {"1", "2", "3"}
    # an aborted writer leaves nothing behind
    with pytest.raises(RuntimeError):
        with ic.RleWriter(tmp_path / "x.json") as w:
            w.add(0, "a", frames[0])
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rle.json"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a segtrack COCO-RLE"):
        ic.read_rle_masks(tmp_path / "bad.json")


def test_rle_file_readable_by_pycocotools(tmp_path):
    mask_api = pytest.importorskip("pycocotools.mask", reason="pycocotools not installed")
    lab = _labels()
    with ic.RleWriter(tmp_path / "m.json") as w:
        w.add(0, "f", lab)
    obj = json.loads((tmp_path / "m.json").read_text())["frames"][0]["objects"]["2"]
    m = mask_api.decode({"size": obj["size"], "counts": obj["counts"].encode()})
    assert np.array_equal(m.astype(bool), lab == 2)


def test_export_ytvos_with_meta_and_read_back(tmp_path):
    res = tmp_path / "res" / "vidA"
    res.mkdir(parents=True)
    labs = {f"{i:05d}": _labels(seed=i) for i in range(0, 25, 5)}
    for name, lab in labs.items():
        write_label_png(res / f"{name}.png", lab)
    meta = {"videos": {"vidA": {"objects": {"1": {"frames": ["00000", "00005"]},
                                            "2": {"frames": ["00010"]}}}}}
    dest = ic.export_ytvos({"vidA": res}, tmp_path / "sub", meta=meta)
    files = sorted(p.name for p in (dest / "Annotations" / "vidA").iterdir())
    assert files == ["00000.png", "00005.png", "00010.png"]  # only the frames meta.json lists
    back = ic.read_ytvos_results(dest)
    assert set(back) == {"vidA"}
    for name, lab in back["vidA"].items():
        assert np.array_equal(lab, labs[name])
    # without meta everything is copied; a frame meta lists but no result has is an error
    all_ = ic.export_ytvos({"vidA": res}, tmp_path / "all")
    assert len(list((all_ / "Annotations" / "vidA").glob("*.png"))) == 5
    meta["videos"]["vidA"]["objects"]["1"]["frames"].append("00099")
    with pytest.raises(InputError, match="frame '00099'"):
        ic.export_ytvos({"vidA": res}, tmp_path / "sub2", meta=meta)
    with pytest.raises(InputError, match="not in the YouTube-VOS meta"):
        ic.export_ytvos({"vidB": res}, tmp_path / "sub3", meta=meta)
    with pytest.raises(InputError, match="refusing to overwrite"):
        ic.export_ytvos({"vidA": res}, tmp_path / "res")
    assert np.array_equal(read_label_png(res / "00000.png"), labs["00000"])


def test_vot_region_encoding_known_strings():
    m = np.zeros((6, 8), bool)
    m[2, 3:5] = True
    m[3, 4] = True
    # bounds x 3..4, y 2..3 -> patch [[1, 1], [0, 1]] row-major -> runs 0,2,1,1
    assert ic.encode_vot_region(m) == "m3,2,2,2,0,2,1,1"
    assert ic.encode_vot_region(np.zeros((3, 3), bool)) == "m0,0,0,0,0"
    assert ic.encode_vot_region((1.5, 2, 3, 4)) == "1.5,2.0,3.0,4.0"
    assert ic.encode_vot_region(2) == "2"
    assert np.array_equal(ic.decode_vot_region("m3,2,2,2,0,2,1,1", (6, 8)), m)
    assert ic.decode_vot_region("0") == 0
    assert ic.decode_vot_region("nan,nan,nan,nan") == 0
    assert np.allclose(ic.decode_vot_region("1.5,2,3,4"), [1.5, 2, 3, 4])
    poly = ic.decode_vot_region("1,1,5,1,5,4,1,4")
    assert poly.shape == (8,)
    with pytest.raises(InputError):
        ic.decode_vot_region("1,2,3")


def test_vot_trajectory_and_result_layout(tmp_path):
    m = np.zeros((10, 12), bool)
    m[4:8, 2:6] = True
    regions = [1, np.array([1.0, 2.0, 3.0, 4.0]), m, 2, 0]
    p = ic.write_vot_result(tmp_path, "segtrack", "baseline", "seq1", regions,
                            times=[0.1, 0.2, 0.3, 0.0, 0.0])
    assert p == tmp_path / "segtrack" / "baseline" / "seq1" / "seq1_001.txt"
    assert p.read_text().splitlines()[:2] == ["1", "1.0,2.0,3.0,4.0"]
    back = ic.read_vot_trajectory(p, (10, 12))
    assert back[0] == 1 and back[3] == 2 and back[4] == 0
    assert np.allclose(back[1], [1, 2, 3, 4])
    assert np.array_equal(back[2], m)
    tv = (p.parent / "seq1_001_time.value").read_text().split()
    assert [float(t) for t in tv] == [0.1, 0.2, 0.3, 0.0, 0.0]
    with pytest.raises(InputError, match="invalid VOT sequence"):
        ic.vot_result_path(tmp_path, "t", "e", "../x")
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n1,2,3\n")
    with pytest.raises(InputError, match="line 2"):
        ic.read_vot_trajectory(bad)


def test_vot_masks_parse_with_toolkit_reader(tmp_path):
    io_mod = pytest.importorskip("vot.region.io", reason="vot-toolkit not installed")
    m = np.zeros((9, 11), bool)
    m[1:5, 6:9] = True
    m[3, 2:4] = True
    line = ic.encode_vot_region(m)
    patch, (ox, oy) = io_mod.create_mask_from_string(line[1:].split(","))
    full = np.zeros_like(m)
    full[oy:oy + patch.shape[0], ox:ox + patch.shape[1]] = patch > 0
    assert np.array_equal(full, m)
    from vot.region.shapes import Mask

    assert str(Mask(m.astype(np.uint8), optimize=True)) == line
