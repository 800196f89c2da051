"""Held-out multi-object clips (segtrack.data.multi, segtrack make-clips multi): masks aligned
with pixels, occlusion, late entries and exits, determinism, the written DAVIS layout read back
by the project's reader and benchmark, and the held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.cli import main
from segtrack.data.multi import (
    GENERATOR,
    MultiClipMaker,
    MultiParams,
    heldout_objects,
    write_multi_set,
)
from segtrack.data.static import (
    load_static_sets,
    render_layer,
    split_static,
    without_heldout,
)
from segtrack.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STATIC = SHARED / "static-masks"
DAVIS = SHARED / "davis2016-train"

SMALL = dict(frames=16, size=(96, 160), p_blur=0.0)


# -- small synthetic inputs (conftest.clip_inputs) ---------------------------------------------
@pytest.fixture(scope="module")
def inputs(clip_inputs) -> tuple[Path, Path]:
    return clip_inputs


@pytest.fixture(scope="module")
def maker(inputs) -> MultiClipMaker:
    static, davis = inputs
    return MultiClipMaker(load_static_sets([static]), davis, MultiParams(**SMALL))


@pytest.fixture(scope="module")
def clips(maker) -> list:
    return [maker.clip(i, 7) for i in range(6)]


# -- what a clip shows --------------------------------------------------------------------------
def _renders(clip, j, size):
    return {k: render_layer(L, j, size) for k, L in clip.layers.items()}


def test_labels_are_the_front_most_object_and_pixels_are_its_pixels(clips) -> None:
    """Each pixel's label is the front-most object whose warped mask covers it (void before
    the object's first annotated frame), and the pixel is that object's warped, coloured
    source pixel; masks of two objects never overlap (one label per pixel)."""
    size = SMALL["size"]
    for clip in clips:
        first = {int(k): o["first_frame"] for k, o in clip.info["objects"].items()}
        assert sorted(first) == sorted(clip.layers) and 3 <= len(first) <= 8
        for j, (frame, lab) in enumerate(zip(clip.frames, clip.labels, strict=True)):
            r = _renders(clip, j, size)
            want = np.zeros(size, np.uint8)
            pix = clip.backgrounds[j].copy()
            for k in clip.info["depth"][j]:  # back to front
                rgb, m, _ = r[k]
                want[m] = k if j >= first[k] else 255
                pix[m] = rgb[m]
            np.testing.assert_array_equal(lab, want)
            np.testing.assert_array_equal(frame, pix)
            for k in r:
                vis = lab == k
                assert (r[k][1][vis]).all()
                np.testing.assert_array_equal(frame[vis], r[k][0][vis])


def test_union_of_masks_is_what_differs_from_the_background(clips) -> None:
    for clip in clips:
        for frame, lab, bg in zip(clip.frames, clip.labels, clip.backgrounds, strict=True):
            differs = (frame != bg).any(-1)
            np.testing.assert_array_equal(differs, lab != 0)  # objects never match the blue


def test_occlusion_hides_exactly_what_lies_in_front(clips) -> None:
    size = SMALL["size"]
    hidden_somewhere = 0
    for clip in clips:
        for j, lab in enumerate(clip.labels):
            r = _renders(clip, j, size)
            order = clip.info["depth"][j]
            for pos, k in enumerate(order):
                full = r[k][1]
                front = np.zeros(size, bool)
                for q in order[pos + 1:]:
                    front |= r[q][1]
                vis = (lab == k) | ((lab == 255) & full & ~front)
                np.testing.assert_array_equal(vis, full & ~front)
                if (full & front).any() and vis.sum() < full.sum():
                    hidden_somewhere += 1
    assert hidden_somewhere > 0  # the crossings make objects hide each other


def test_objects_enter_late_and_leave_the_frame(clips) -> None:
    size = SMALL["size"]
    late = leave = 0
    for clip in clips:
        for key, o in clip.info["objects"].items():
            k, f = int(key), o["first_frame"]
            assert not any((lab == k).any() for lab in clip.labels[:f])
            assert (clip.labels[f] == k).sum() >= MultiParams().min_init_px or f == 0
            assert o["frames"][0] == f"{f:05d}"
            late += f > 0
            for j in o["leaves"]:
                assert not render_layer(clip.layers[k], j, size)[1].any()
                assert not (clip.labels[j] == k).any()
                leave += 1
            for j in o["returns"]:
                assert render_layer(clip.layers[k], j, size)[1].any()
        assert any(o["first_frame"] == 0 for o in clip.info["objects"].values())
    assert late > 0 and leave > 0


def test_same_seed_same_clip_and_other_seeds_differ(maker, clips) -> None:
    again = maker.clip(0, 7)
    for a, b in zip(clips[0].frames + clips[0].labels, again.frames + again.labels, strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.info == clips[0].info
    other = maker.clip(0, 8)
    assert not np.array_equal(other.frames[0], clips[0].frames[0])
    assert not np.array_equal(clips[1].frames[5], clips[2].frames[5])
    assert {c.info["theme"] for c in clips} == {"people", "category"}


def test_same_kind_clips(maker, clips) -> None:
    for c in clips:
        kinds = {o["kind"] for o in c.info["objects"].values()}
        assert kinds == {"person"} if c.info["theme"] == "people" else len(kinds) == 1


# -- the held-out split ------------------------------------------------------------------------
def test_objects_come_from_the_held_out_part_only(inputs, maker, clips) -> None:
    static, _ = inputs
    samples = load_static_sets([static])
    train = {f"{s.source}/{s.image.name}" for s in without_heldout(samples)}
    held = {f"{s.source}/{s.image.name}" for s in split_static(samples)[1]}
    assert len(held) == 3 + 2 + 2 and not train & held
    used = {o["source"] for c in clips for o in c.info["objects"].values()}
    assert used <= held and not used & train
    assert {f"{s.source}/{s.image.name}" for s in maker.usable} <= held


@pytest.mark.skipif(not STATIC.is_dir(), reason="shared static-masks data absent")
def test_real_held_out_objects_are_disjoint_from_training() -> None:
    from segtrack.eval.interactive import heldout_photos

    samples = load_static_sets([STATIC])
    train, held = split_static(samples)
    assert len(held) == 407 and len(train) + len(held) == len(samples)
    assert heldout_photos(samples) == (train, held)  # one rule for click-to-mask and here
    assert without_heldout(samples) == [s for s in samples if s in set(train)]
    objects = heldout_objects(samples)
    assert set(objects) <= set(held) and not set(objects) & set(without_heldout(samples))
    photo = {s.image.stem.split("_", 1)[-1] for s in train if s.source == "coco-mval"}
    assert not any(s.image.stem.split("_", 1)[-1] in photo for s in objects
                   if s.source == "coco-mval")  # no held-out object shares a training photo


@pytest.mark.skipif(not (STATIC.is_dir() and (DAVIS / "JPEGImages" / "480p").is_dir()),
                    reason="shared static-masks / DAVIS data absent")
def test_real_photographs_make_aligned_clips() -> None:
    samples = load_static_sets([STATIC])
    size = (180, 320)
    maker = MultiClipMaker(samples, DAVIS, MultiParams(frames=16, size=size, p_blur=0.0))
    held = {f"{s.source}/{s.image.name}" for s in heldout_objects(samples)}
    for i in (0, 1):
        clip = maker.clip(i, 3)
        assert {o["source"] for o in clip.info["objects"].values()} <= held
        for j in (0, 8, 15):
            frame, lab, bg = clip.frames[j], clip.labels[j], clip.backgrounds[j]
            for k, (rgb, m, _) in _renders(clip, j, size).items():
                vis = lab == k
                assert m[vis].all()
                np.testing.assert_array_equal(frame[vis], rgb[vis])
            differs = (frame != bg).any(-1)
            assert not (differs & (lab == 0)).any()  # nothing changed outside the masks
            assert ((lab != 0) & ~differs).sum() <= 0.01 * (lab != 0).sum() + 5


# -- the written set ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def written(inputs, tmp_path_factory) -> Path:
    static, davis = inputs
    out = tmp_path_factory.mktemp("multi_out") / "set"
    write_multi_set(out, [static], davis, count=3, seed=5, params=MultiParams(**SMALL),
                    quiet=True)
    return out


def test_written_set_is_read_by_the_davis_reader(written) -> None:
    from segtrack.eval.datasets import load_davis

    meta = json.loads((written / "meta.json").read_text())
    assert meta["generator"] == GENERATOR and meta["seed"] == 5
    seqs = load_davis(written)
    assert [s.name for s in seqs] == ["multi000", "multi001", "multi002"]
    assert [s.name for s in load_davis(written, imageset="val")] == [s.name for s in seqs]
    for seq in seqs:
        info = meta["videos"][seq.name]
        want = {int(k): o["first_frame"] for k, o in info["objects"].items()}
        assert seq.style == "davis2017" and len(seq.frames) == 16
        assert seq.object_ids == sorted(want) and seq.first_frames == want
        assert load_davis(written, sequences=[seq.name], scan_objects=True)[0].first_frames \
            == want
        assert seq.read_image(0).shape == (96, 160, 3)
        for k, o in info["objects"].items():
            for j in o["void_frames"]:
                assert seq.read_void(j).any() and not (seq.read_labels(j) == int(k)).any()


def test_bench_starts_late_objects_on_their_first_frame(written) -> None:
    import dataclasses

    from segtrack.eval.datasets import load_davis
    from segtrack.eval.runner import bench_sequence

    seq = next(s for s in load_davis(written) if max(s.first_frames.values()) > 0)
    late = {k: f for k, f in seq.first_frames.items() if f > 0}
    res, _ = bench_sequence(seq, "static")
    assert set(res["objects"]) == set(seq.first_frames)
    for k, f in late.items():  # per-frame J lists leave frame 0 out
        assert res["objects"][k]["J"][f - 1] > 0.5  # started from its mask on frame f
    # without the first frames of the late objects they are never started, and score 0 there
    blind = dataclasses.replace(seq, first_frames={k: 0 for k in seq.first_frames
                                                   if k not in late})
    res, _ = bench_sequence(blind, "static")
    for k, f in late.items():
        assert res["objects"][k]["J"][f - 1] == 0.0


def test_written_files_are_byte_identical_per_seed(inputs, written, tmp_path) -> None:
    static, davis = inputs
    again = tmp_path / "again"
    write_multi_set(again, [static], davis, count=3, seed=5, params=MultiParams(**SMALL),
                    quiet=True)
    files = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    meta_a = json.loads((written / "meta.json").read_text())
    meta_b = json.loads((again / "meta.json").read_text())
    assert meta_a["videos"] == meta_b["videos"]
    for f in files:
        if f.name != "meta.json":  # meta names the output folder's inputs only
            assert (written / f).read_bytes() == (again / f).read_bytes(), f
    other = tmp_path / "other"
    write_multi_set(other, [static], davis, count=1, seed=6, params=MultiParams(**SMALL),
                    quiet=True)
    f0 = Path("JPEGImages/480p/multi000/00003.jpg")
    assert (other / f0).read_bytes() != (written / f0).read_bytes()


def test_an_existing_folder_is_never_overwritten_unless_asked(inputs, tmp_path) -> None:
    static, davis = inputs
    p = MultiParams(**SMALL)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        write_multi_set(foreign, [static], davis, count=1, params=p, quiet=True)
    with pytest.raises(InputError, match="not a set written by make-clips"):
        write_multi_set(foreign, [static], davis, count=1, params=p, quiet=True, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "set"
    write_multi_set(out, [static], davis, count=2, params=p, quiet=True)
    write_multi_set(out, [static], davis, count=1, params=p, quiet=True, overwrite=True)
    assert sorted(q.name for q in (out / "JPEGImages" / "480p").iterdir()) == ["multi000"]
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no leftovers
    with pytest.raises(InputError, match="refusing to overwrite input"):
        write_multi_set(static.parent, [static], davis, count=1, params=p, quiet=True)


# -- the command line ---------------------------------------------------------------------------
def test_make_clips_command(inputs, tmp_path, capsys) -> None:
    static, davis = inputs
    out = tmp_path / "clips"
    base = ["make-clips", "multi", "--static", str(static), "--davis", str(davis)]
    assert main(base + ["--out", str(out), "--count", "1", "--frames", "16", "--size",
                        "160x96", "--quiet"]) == 0
    text = capsys.readouterr()
    assert "wrote 1 clips of 16 frames (160x96" in text.out and not text.err
    assert (out / "Annotations" / "480p" / "multi000" / "00015.png").is_file()
    cases = [
        (["--out", str(out)], "not empty"),
        (["--out", str(tmp_path / "o"), "--size", "big"], "--size 'big'"),
        (["--out", str(tmp_path / "o"), "--objects", "5,2"], "--objects 5,2"),
        (["--out", str(tmp_path / "o"), "--frames", "5"], "--frames 5"),
        (["--out", str(tmp_path / "o"), "--count", "0"], "--count 0"),
    ]
    for extra, message in cases:
        assert main(base + extra + ["--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("segtrack: error:") and message in err[0]
    assert main(["make-clips", "multi", "--static", str(tmp_path / "none"), "--davis",
                 str(davis), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["make-clips", "multi", "--static", str(static), "--davis",
                 str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no JPEGImages/480p" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_davis_reader_takes_late_objects_from_meta_json(tmp_path) -> None:
    from segtrack.eval.datasets import load_davis
    from segtrack.io import write_label_png

    for i in range(3):
        d = tmp_path / "JPEGImages" / "480p" / "v"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i:05d}.jpg"), np.zeros((8, 8, 3), np.uint8))
        lab = np.zeros((8, 8), np.uint8)
        lab[:2, :2] = 1
        if i == 2:
            lab[6:, 6:] = 2
        write_label_png(tmp_path / "Annotations" / "480p" / "v" / f"{i:05d}.png", lab)
    assert load_davis(tmp_path)[0].first_frames == {1: 0}
    (tmp_path / "meta.json").write_text(json.dumps(
        {"videos": {"v": {"objects": {"1": {"frames": ["00000"]}, "2": {"frames": ["00002"]},
                                      "9": {"frames": ["07"]}}}}, "other": 1}))
    assert load_davis(tmp_path)[0].first_frames == {1: 0, 2: 2}
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match="meta.json"):
        load_davis(tmp_path)


def test_training_clips_use_training_photographs_and_the_given_backgrounds(inputs) -> None:
    static, davis = inputs
    samples = load_static_sets([static])
    train = {f"{s.source}/{s.image.name}" for s in without_heldout(samples)}
    maker = MultiClipMaker(samples, davis, MultiParams(**SMALL), objects="training",
                           backgrounds=["beta"])
    clips = [maker.clip(i, 11) for i in range(4)]
    used = {o["source"] for c in clips for o in c.info["objects"].values()}
    assert used and used <= train  # never a held-out object
    assert {c.info["background"]["sequence"] for c in clips} == {"beta"}
    with pytest.raises(InputError, match="background sequences"):
        MultiClipMaker(samples, davis, MultiParams(**SMALL), objects="training",
                       backgrounds=["gamma"])


def test_make_clips_validation_set_from_training_photographs(inputs, tmp_path) -> None:
    static, davis = inputs
    out = tmp_path / "val"
    assert main(["make-clips", "multi", "--static", str(static), "--davis", str(davis),
                 "--out", str(out), "--count", "2", "--frames", "16", "--size", "160x96",
                 "--photos", "training", "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["held_out"]["rule"].startswith("none")
    train = {f"{s.source}/{s.image.name}" for s in without_heldout(load_static_sets([static]))}
    used = {o["source"] for v in meta["videos"].values() for o in v["objects"].values()}
    assert used and used <= train
