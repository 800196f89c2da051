"""What the command line says to people: the method table, --help texts, errors, speed lines,
run.json.  No issue numbers, class names, seed section numbers or tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtrack.cli import build_parser, main
from segtrack.io import write_label_png
from segtrack.trackers.registry import available_methods, best_method, method_catalogue
from segtrack.training import TRAINERS

ROOT = Path(__file__).resolve().parents[1]

#: internal references that must not reach a user (case-sensitive where a plain word could match)
INTERNAL = re.compile(r"[Ii]ssue \d|\(issue|seed 0|seeds 0|Params\b|<class|`|§")


def _internal(text: str) -> list[str]:
    return [text[max(0, m.start() - 30):m.end() + 30] for m in INTERNAL.finditer(text)]


# -- segtrack methods / the catalogue ---------------------------------------------------------
CATALOGUE_KEYS = {"name", "inits", "learns", "speed", "speed_ratio", "quality", "quality_jf",
                  "summary"}


def test_catalogue_covers_every_registered_method():
    entries = method_catalogue()
    assert [e["name"] for e in entries] == available_methods()
    for e in entries:
        assert set(e) == CATALOGUE_KEYS, e["name"]
        assert e["inits"] and set(e["inits"]) <= {"mask", "box", "clicks"}, e["name"]
        for key in ("learns", "speed", "quality", "summary"):
            assert isinstance(e[key], str) and e[key].strip(), (e["name"], key)
            assert "\n" not in e[key] and not _internal(e[key]), (e["name"], key)
        assert e["summary"] != "a method registered outside segtrack", e["name"]
        assert e["speed_ratio"] is None or e["speed_ratio"] > 0
        assert e["quality_jf"] is None or 0.0 < e["quality_jf"] <= 1.0


def test_catalogue_figures_are_benchmarks():
    """The figures named by BENCHMARKS.md: three-fold means where they exist, else fold 0;
    speed = the "x flow onnx" column."""
    by = {e["name"]: e for e in method_catalogue()}
    assert by["flow"]["speed_ratio"] == 1.0 and "1.00x flow" in by["flow"]["speed"]
    assert by["rts"]["speed_ratio"] == 0.50 and by["osvos"]["speed_ratio"] == 0.51
    assert by["onavos"]["speed_ratio"] == 0.11 and "slow" in by["onavos"]["speed"]
    assert by["rts"]["quality_jf"] == 0.663 and by["rts"]["quality"] == "J&F 0.66 (3 folds)"
    assert by["osvos"]["quality_jf"] == 0.813 and "3 folds" in by["osvos"]["quality"]
    assert by["siammask"]["quality_jf"] == 0.565
    assert by["siammask"]["quality"] == "J&F 0.57 (box, 3 folds)"  # 0.565 rounds up
    assert by["masktrack"]["quality"].endswith("(fold 0)")
    assert by["osvos"]["learns"] != "no" and by["rts"]["learns"] != by["osvos"]["learns"]
    assert by["flow"]["learns"] == "no"
    assert by["siammask"]["inits"][0] == "box"
    # one description per method: no two alike
    assert len({e["summary"] for e in by.values()}) == len(by)


def test_best_method_by_held_out_quality():
    assert best_method("mask") == "osvos-s"  # 0.912 on fold 0 against osvos's 0.880
    assert best_method("box") == "osvos"
    assert best_method(" Clicks ") == "osvos"  # clicks go through the box's path
    from segtrack.errors import InputError

    with pytest.raises(InputError, match="mask, box or clicks"):
        best_method("scribble")


def test_methods_prints_an_aligned_table(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0]
    assert header.startswith("METHOD")
    table = lines[1:1 + 2 * len(available_methods())]
    rows, summaries = table[0::2], table[1::2]
    assert [r.split()[0] for r in rows] == available_methods()
    # every column starts where its header starts
    starts = [m.start() for m in re.finditer(r"(?<=  )\S", header)]
    assert len(starts) == 4
    for row in rows:
        for s in starts:
            assert row[s - 2:s] == "  " and row[s] != " ", (row, s)
    indent = starts[0]
    for line, e in zip(summaries, method_catalogue()):
        assert line == " " * indent + e["summary"]  # whole, never cut
    assert not _internal(out)
    assert "seed" not in out.lower() and "issue" not in out.lower() and "`" not in out
    assert "Most accurate from a mask: osvos-s; from a box: osvos" in out


# -- --help of every subcommand and every trainer ---------------------------------------------
def _commands() -> list[list[str]]:
    p = build_parser()
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return [[]] + [[c] for c in subs.choices] + [["train", m] for m in sorted(TRAINERS)]


def _help(argv: list[str], monkeypatch) -> tuple[str, argparse.ArgumentParser]:
    shown: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.print_help

    def record(self, file=None):
        shown.append(self)
        return original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", record)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code in (0, None), argv
    assert shown, argv
    return buf.getvalue(), shown[-1]


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a) or "segtrack")
def test_help_texts_are_for_users(argv, monkeypatch):
    text, parser = _help(argv, monkeypatch)
    assert text.strip()
    assert not _internal(text), _internal(text)
    assert "issue" not in text.lower()
    assert text.count("(") == text.count(")"), text  # no help text cut mid-parenthesis
    for action in parser._actions:  # every option and argument says what it is for
        assert action.help and action.help.strip(), (argv, action.option_strings or action.dest)


def test_train_help_lists_the_trainable_methods(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for m in TRAINERS:
        assert m in out
    assert main(["train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segtrack: error:") and "rts" in err[0]
    assert main(["train", "flow"]) == 2
    assert "nothing to train" in capsys.readouterr().err
    assert main(["train", "siammask-2b"]) == 2
    assert "--variant 2b" in capsys.readouterr().err


def test_train_method_help_is_its_own(monkeypatch):
    text, _ = _help(["train", "onavos"], monkeypatch)
    assert text.startswith("usage: segtrack train onavos")
    text, _ = _help(["train", "rts"], monkeypatch)
    assert "RTS" in text and "(seed" not in text


def test_every_option_of_the_main_parser_has_help():
    def walk(parser: argparse.ArgumentParser, where: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{where} {name}")
                continue
            yield where, action

    missing = [f"{where}: {a.option_strings or a.dest}" for where, a in walk(build_parser(),
                                                                            "segtrack")
               if not (a.help and a.help.strip())]
    assert not missing, missing
    for opt in ("--host", "--port", "--device", "--method", "--quiet"):
        assert any(opt in a.option_strings for _, a in walk(build_parser(), ""))


def test_docs_headings_carry_no_internal_references():
    docs = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in docs:
        in_code, heads = False, 0
        for ln in path.read_text(encoding="utf-8").splitlines():
            if ln.startswith("```"):
                in_code = not in_code
            elif not in_code and re.match(r"#{1,6} \S", ln):
                heads += 1
                assert not re.search(r"[Ii]ssue \d|seed 0|seeds 0|§", ln), (path.name, ln)
        assert heads, path


# -- errors: one line, in the user's words ----------------------------------------------------
@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for t in range(4):
        cv2.imwrite(str(folder / f"{t}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return folder


@pytest.mark.parametrize("param, message", [
    ("scale=abc", "--param scale=abc: expected a number"),
    ("fb_check=maybe", "--param fb_check=maybe: expected true or false"),
    ("interpolation=cubic", "--param interpolation=cubic: expected nearest or linear"),
    ("nope=1", "unknown parameter 'nope' of method 'flow'"),
])
def test_param_errors_name_the_value_not_the_code(frames, tmp_path, capsys, param, message):
    rc = main(["track", str(frames), "--box", "2,2,20,20", "--param", param, "--out",
               str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("segtrack: error:"), err
    assert message in err[0]
    assert "FlowParams" not in err[0] and "<class" not in err[0]


def test_param_whole_number_error():
    from segtrack.errors import InputError
    from segtrack.trackers.registry import load_tracker

    with pytest.raises(InputError) as exc:
        load_tracker("rts", crop_size="abc")
    assert str(exc.value) == "--param crop_size=abc: expected a whole number"
    with pytest.raises(InputError, match="expected numbers separated by commas"):
        from dataclasses import dataclass

        from segtrack.params import apply_overrides

        @dataclass
        class P:
            sizes: tuple[float, ...] = (1.0,)

        apply_overrides(P(), {"sizes": "1,x"})


def _run_cli(args: list[str], cwd: Path, module: str = "segtrack") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}  # the defaults under test
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_broken_video_and_missing_camera_give_one_line(tmp_path):
    """OpenCV's and FFmpeg's own messages ("moov atom not found", "VIDEOIO(V4L2...)") are
    silenced: stderr is exactly segtrack's line."""
    from segtrack.data.synthetic import make_video, write_video

    root = write_video(make_video(3, num_frames=6, height=48, width=64), tmp_path / "d", "clip",
                       as_mp4=True)
    data = (root / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    write_label_png(tmp_path / "m.png", np.pad(np.ones((10, 10), np.uint8), ((5, 33), (5, 49))))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 4)
    cases = [
        (["track", "cut.mp4", "--mask", "m.png", "--quiet"], "cut.mp4", "segtrack"),
        (["track", "cut.mp4", "--mask", "m.png", "--quiet"], "cut.mp4", "segtrack.cli"),
        (["track", "57", "--box", "1,1,5,5", "--quiet"], "webcam 57", "segtrack"),
        (["segment", "bad.png", "--box", "1,1,5,5", "--out", "o.png"], "bad.png", "segtrack"),
    ]
    for args, name, module in cases:
        res = _run_cli(args, tmp_path, module)
        lines = res.stderr.splitlines()
        assert res.returncode == 2, res.stderr
        assert len(lines) == 1 and lines[0].startswith("segtrack: error:"), res.stderr
        assert name in lines[0]
    assert not (tmp_path / "cut_segtrack").exists()


# -- what a run reports and records -----------------------------------------------------------
def test_track_reports_both_speeds_and_records_the_init(frames, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["track", str(frames), "--box", "2,3,20,21", "--frame", "1", "--out", str(out),
                 "--param", "box_init=box", "--quiet"]) == 0
    text = capsys.readouterr().out
    m = re.search(r"tracked 4 frames in [\d.]+ s \((\d+) fps tracking alone; (\d+) fps with "
                  r"decoding and writing\)", text)
    assert m, text
    run = json.loads((out / "run.json").read_text())
    assert run["init"] == {"frame": 1, "box": [2, 3, 20, 21], "objects": [1]}
    assert run["wall_seconds"] >= run["track_seconds"] > 0

    mask = tmp_path / "first.png"
    write_label_png(mask, np.pad(np.ones((10, 10), np.uint8), ((5, 33), (5, 49))))
    out2 = tmp_path / "o2"
    assert main(["track", str(frames), "--mask", str(mask), "--out", str(out2), "--quiet"]) == 0
    run = json.loads((out2 / "run.json").read_text())
    assert run["init"] == {"frame": 0, "mask": str(mask), "objects": [1]}


def test_track_records_clicks(frames, tmp_path, monkeypatch):
    import segtrack.api as api

    first = np.zeros((48, 64), bool)
    first[8:20, 8:20] = True
    monkeypatch.setattr(api, "_clicks_to_mask",  # the click network is not what is tested
                        lambda image, spec, device: first)
    out = tmp_path / "o"
    assert main(["track", str(frames), "--point", "12,14", "--point", "40,30,0", "--out",
                 str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["init"] == {"frame": 0, "points": [[12, 14], [40, 30]], "labels": [1, 0],
                           "objects": [1]}


def test_demo_reports_both_speeds_and_writes_run_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    m = re.search(r"tracked 60 frames in ([\d.]+) s \((\d+) fps tracking alone; (\d+) fps "
                  r"with decoding and writing\)", text)
    assert m, text
    assert int(m.group(3)) <= int(m.group(2))
    run = json.loads((out / "run.json").read_text())
    assert run["init"]["frame"] == 0 and run["init"]["objects"] == [1, 2]
    from segtrack.data.synthetic import demo_clip
    from segtrack.io import read_label_png

    first = read_label_png(run["init"]["mask"])  # the mask the objects started from
    assert (first == demo_clip(0).frame(0)[1]).all()


def test_batch_run_json_records_the_init(tmp_path):
    from segtrack.batch import read_manifest
    from segtrack.batch.synthetic import make_synthetic_batch

    manifest = make_synthetic_batch(tmp_path / "in", 2, frames=3, height=48, width=64, seed=5)
    out = tmp_path / "o"
    assert main(["batch", str(manifest), "--out", str(out), "--quiet"]) == 0
    for task in read_manifest(manifest):
        init = json.loads((out / task.name / "run.json").read_text())["init"]
        assert init["frame"] == task.frame
        if task.mask:
            assert init["mask"] == task.mask
        else:
            assert init["box"] == [int(v) if float(v).is_integer() else v for v in task.box]
